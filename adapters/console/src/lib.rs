//! The console platform: the way to try Polity with no tokens, and the way end-to-end
//! scenarios are easiest to read. [`parse_line`] reads the fixed grammar of a line of input;
//! [`ConsolePlatform`] performs effects by printing them. It holds no governance logic: the
//! runtime turns lines into governance inputs and effects into calls to this platform.

pub mod parse;
pub mod platform;

pub use parse::{GRAMMAR, Line, LineError, grammar_help, parse_line};
pub use platform::{CONSOLE, Claim, ConsolePlatform, Ledger, MESSAGE_ACTION, MemoryLedger, Posting, actions};
