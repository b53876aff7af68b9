//! The neutral reply every adapter renders its own way (Discord embeds, Slack blocks,
//! console lines).

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Only the invoker sees it.
    pub ephemeral: bool,
    /// Lines of text; the first is the headline.
    pub text: String,
    /// A file that goes with it (an export).
    pub attachment: Option<Attachment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content: String,
}

impl Reply {
    /// For the invoker only: answers, mistakes, lists.
    pub fn private(text: impl Into<String>) -> Self {
        Self { ephemeral: true, text: text.into(), attachment: None }
    }

    /// For everyone in the channel.
    pub fn public(text: impl Into<String>) -> Self {
        Self { ephemeral: false, text: text.into(), attachment: None }
    }
}
