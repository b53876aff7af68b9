//! The neutral reply every adapter renders its own way (Discord embeds, Slack blocks,
//! console lines).

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Only the invoker sees it.
    pub ephemeral: bool,
    /// Lines of text; the first is the headline.
    pub text: String,
}

impl Reply {
    /// For the invoker only: answers, mistakes, lists.
    pub fn private(text: impl Into<String>) -> Self {
        Self { ephemeral: true, text: text.into() }
    }

    /// For everyone in the channel.
    pub fn public(text: impl Into<String>) -> Self {
        Self { ephemeral: false, text: text.into() }
    }
}
