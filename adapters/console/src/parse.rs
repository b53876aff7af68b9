//! The console's fixed grammar, one line at a time.

use chrono::TimeDelta;
use polity_governance::duration::parse_duration;

/// What one line of input means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `/as NAME`: act as another user (a new name is a new member). `/as PLATFORM:ACCOUNT`
    /// acts as an account on another platform (to try linking accounts), which is not a
    /// member until it links or takes part.
    As(String),
    /// `/in #CHANNEL`: move to another channel.
    In(String),
    /// `+EMOJI ID` / `-EMOJI ID`: react to message ID, or take the reaction back.
    React { emoji: String, message: String, added: bool },
    /// `/wait DURATION`: move the console's clock forward.
    Wait(TimeDelta),
    /// Any other `/command args`; `/quit` and `/exit` among them, which end the session
    /// (see [`Line::quits`]).
    Command { name: String, args: String },
    /// Anything else: a message in the current channel.
    Message(String),
    /// A blank line.
    Blank,
}

/// The commands that end a session, as the end of input does.
pub const QUIT: [&str; 2] = ["quit", "exit"];

impl Line {
    /// Whether this line ends the session: `/quit` or `/exit`.
    ///
    /// # Errors
    /// When one of them has more after it (it takes nothing).
    pub fn quits(&self) -> Result<bool, LineError> {
        match self {
            Self::Command { name, args } if QUIT.contains(&name.as_str()) => {
                if args.is_empty() {
                    Ok(true)
                } else {
                    Err(LineError(format!("`/{name}` takes nothing after it: it ends the session")))
                }
            }
            _ => Ok(false),
        }
    }
}

/// A line that does not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

const NAME_CHARS: &str = "letters, digits, `-`, `_` and `.`";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The console's own lines, besides the commands: what [`parse_line`] takes, as `/help`
/// shows it (usage, then what it does).
pub const GRAMMAR: &[(&str, &str)] = &[
    (
        "/as NAME",
        "act as NAME (a new name is a new member); /as PLATFORM:ACCOUNT acts as an account on another platform",
    ),
    ("/in #CHANNEL", "move to another channel"),
    ("/wait DURATION", "move the console's clock forward (90s, 15m, 72h, 3d, 1w, 1d12h), deciding what comes due"),
    ("+EMOJI MSG", "react to message number MSG: +👍 1 votes yes on a vote message (also +:+1: 1, +thumbsup 1)"),
    ("-EMOJI MSG", "take that reaction back: -👍 1"),
    ("/quit, /exit", "end the session (as the end of input does): what is pending is done first"),
    ("any other line", "a message in the current channel, numbered so it can be reacted to"),
];

/// [`GRAMMAR`] as lines of text, under a heading.
#[must_use]
pub fn grammar_help() -> String {
    let mut out = String::from("On the console:");
    for (usage, what) in GRAMMAR {
        out.push_str(&format!("\n{usage} — {what}"));
    }
    out
}

/// Parses one line of console input.
///
/// # Errors
/// Says what the line should look like.
pub fn parse_line(line: &str) -> Result<Line, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(rest) = trimmed.strip_prefix('/') {
        let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let args = args.trim();
        return match name {
            "as" => {
                let valid = match args.split_once(':') {
                    Some((platform, account)) => valid_name(platform) && valid_name(account),
                    None => valid_name(args),
                };
                if valid {
                    Ok(Line::As(args.to_string()))
                } else {
                    Err(LineError(format!("`/as NAME` takes one name of {NAME_CHARS}")))
                }
            }
            "in" => {
                let channel = args.strip_prefix('#').unwrap_or(args);
                if valid_name(channel) {
                    Ok(Line::In(format!("#{channel}")))
                } else {
                    Err(LineError(format!("`/in #CHANNEL` takes one channel name of {NAME_CHARS}")))
                }
            }
            "wait" => parse_duration(args).map(Line::Wait).map_err(|e| LineError(format!("`/wait DURATION`: {e}"))),
            "" => Err(LineError("a command needs a name after `/`: `/help` lists them".into())),
            _ => Ok(Line::Command { name: name.to_string(), args: args.to_string() }),
        };
    }
    if let Some(sign @ ('+' | '-')) = trimmed.chars().next() {
        let rest = &trimmed[1..];
        let mut parts = rest.split_whitespace();
        if let (Some(emoji), Some(id), None) = (parts.next(), parts.next(), parts.next())
            && !emoji.is_empty()
            && id.chars().all(|c| c.is_ascii_digit())
        {
            return Ok(Line::React { emoji: emoji.to_string(), message: id.to_string(), added: sign == '+' });
        }
    }
    Ok(Line::Message(line.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        assert_eq!(parse_line("/as alice"), Ok(Line::As("alice".into())));
        assert_eq!(parse_line("/as discord:1234"), Ok(Line::As("discord:1234".into())));
        assert!(parse_line("/as discord:").is_err());
        assert_eq!(parse_line("/in #finance"), Ok(Line::In("#finance".into())));
        assert_eq!(parse_line("/in finance"), Ok(Line::In("#finance".into())));
        assert_eq!(parse_line("+:+1: 12"), Ok(Line::React { emoji: ":+1:".into(), message: "12".into(), added: true }));
        assert_eq!(parse_line("-👎 3"), Ok(Line::React { emoji: "👎".into(), message: "3".into(), added: false }));
        assert_eq!(parse_line("/wait 72h"), Ok(Line::Wait(TimeDelta::hours(72))));
        assert_eq!(
            parse_line("/propose Buy a new server"),
            Ok(Line::Command { name: "propose".into(), args: "Buy a new server".into() })
        );
        assert_eq!(parse_line("hello everyone"), Ok(Line::Message("hello everyone".into())));
        assert_eq!(parse_line("+1 for that"), Ok(Line::Message("+1 for that".into())));
        assert_eq!(parse_line("   "), Ok(Line::Blank));
        assert_eq!(parse_line("/quit").and_then(|l| l.quits()), Ok(true));
        assert_eq!(parse_line(" /exit ").and_then(|l| l.quits()), Ok(true));
        assert_eq!(parse_line("/quitter").and_then(|l| l.quits()), Ok(false));
        assert_eq!(parse_line("quit").and_then(|l| l.quits()), Ok(false));
    }

    #[test]
    fn the_help_shows_what_the_parser_takes() {
        let help = grammar_help();
        assert!(help.starts_with("On the console:\n/as NAME — "), "{help}");
        // Each example the help gives is read as the help says.
        assert!(matches!(parse_line("/as NAME"), Ok(Line::As(_))));
        assert!(matches!(parse_line("/as PLATFORM:ACCOUNT"), Ok(Line::As(_))));
        assert!(matches!(parse_line("/in #CHANNEL"), Ok(Line::In(_))));
        for d in ["90s", "15m", "72h", "3d", "1w", "1d12h"] {
            assert!(help.contains(d), "{d}");
            assert!(matches!(parse_line(&format!("/wait {d}")), Ok(Line::Wait(_))), "{d}");
        }
        for r in ["+👍 1", "+:+1: 1", "+thumbsup 1"] {
            assert!(help.contains(r), "{r}");
            assert!(matches!(parse_line(r), Ok(Line::React { added: true, .. })), "{r}");
        }
        assert!(help.contains("-👍 1"));
        assert!(matches!(parse_line("-👍 1"), Ok(Line::React { added: false, .. })));
        assert_eq!(parse_line("/quit").and_then(|l| l.quits()), Ok(true));
        assert_eq!(parse_line("/exit").and_then(|l| l.quits()), Ok(true));
        assert!(matches!(parse_line("any other line"), Ok(Line::Message(_))));
    }

    #[test]
    fn mistakes_say_what_to_write() {
        assert!(parse_line("/as").unwrap_err().0.contains("`/as NAME`"));
        assert!(parse_line("/as two names").is_err());
        assert!(parse_line("/wait soon").unwrap_err().0.contains("`/wait DURATION`"));
        assert!(parse_line("/").is_err());
        assert!(parse_line("/quit now").unwrap().quits().unwrap_err().0.contains("`/quit` takes nothing"));
    }
}
