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
    /// The command needs a secret, typed where nobody else sees it (a Discord or Slack modal,
    /// the console's next line); the adapter hands it to [`crate::integration::add_with_secret`].
    pub secret_prompt: Option<SecretPrompt>,
}

/// What to ask for privately, and what the answer is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPrompt {
    pub platform: String,
    pub name: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    /// What to type: "the bot token".
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content: String,
}

impl Reply {
    /// For the invoker only: answers, mistakes, lists.
    pub fn private(text: impl Into<String>) -> Self {
        Self { ephemeral: true, text: text.into(), attachment: None, secret_prompt: None }
    }

    /// For everyone in the channel.
    pub fn public(text: impl Into<String>) -> Self {
        Self { ephemeral: false, text: text.into(), attachment: None, secret_prompt: None }
    }
}
