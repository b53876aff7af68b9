//! Typed identifiers, so a proposal id can never be passed where a member id belongs.

pub use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! int_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

int_id!(
    /// One governed community.
    CommunityId,
    "community "
);
int_id!(
    /// One person in a community, whatever platforms they use.
    MemberId,
    "member "
);
int_id!(
    /// One run of a policy on one action.
    ProposalId,
    "#"
);
int_id!(
    /// One version of one policy (every version is kept).
    PolicyId,
    "policy version "
);

/// A platform connection, by the name the community gave it (`discord`, `slack-eng`, `console`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlatformRef(pub CompactString);

impl PlatformRef {
    pub fn new(name: impl Into<CompactString>) -> Self {
        Self(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlatformRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account on one platform connection: the platform's own user id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountRef {
    pub platform: PlatformRef,
    pub account: CompactString,
}

impl AccountRef {
    pub fn new(platform: impl Into<CompactString>, account: impl Into<CompactString>) -> Self {
        Self { platform: PlatformRef(platform.into()), account: account.into() }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.account)
    }
}

/// A message on one platform connection, by the platform's own ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageRef {
    pub platform: PlatformRef,
    pub channel: CompactString,
    pub message: CompactString,
}

impl MessageRef {
    pub fn new(
        platform: impl Into<CompactString>,
        channel: impl Into<CompactString>,
        message: impl Into<CompactString>,
    ) -> Self {
        Self { platform: PlatformRef(platform.into()), channel: channel.into(), message: message.into() }
    }
}

impl fmt::Display for MessageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.platform, self.channel, self.message)
    }
}

/// Where something is said: a channel on a platform connection (`discord:#finance`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    pub platform: PlatformRef,
    pub channel: CompactString,
}

impl Place {
    pub fn new(platform: impl Into<CompactString>, channel: impl Into<CompactString>) -> Self {
        Self { platform: PlatformRef(platform.into()), channel: channel.into() }
    }

    /// Parses `PLATFORM:CHANNEL`, e.g. `discord:#finance`.
    ///
    /// # Errors
    /// Returns a message saying what shape is expected when either half is missing.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((p, c)) if !p.trim().is_empty() && !c.trim().is_empty() => Ok(Self::new(p.trim(), c.trim())),
            _ => Err(format!("`{text}` is not a place: write PLATFORM:CHANNEL, e.g. discord:#finance")),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_parses_and_prints() {
        let p = Place::parse("discord:#finance").unwrap();
        assert_eq!(p, Place::new("discord", "#finance"));
        assert_eq!(p.to_string(), "discord:#finance");
        assert!(Place::parse("#finance").is_err());
        assert!(Place::parse("discord:").is_err());
    }

    #[test]
    fn ids_display_distinctly() {
        assert_eq!(ProposalId(12).to_string(), "#12");
        assert_eq!(MemberId(3).to_string(), "member 3");
    }
}
