//! Hostile console lines: whatever a user types, `parse_line` returns, and every refusal
//! says what the line should look like.
//!
//! Bounded for CI (a fixed seed, no failure files); `PROPTEST_CASES=100000` runs longer and
//! `PROPTEST_RNG_SEED=N` explores other inputs.

use chrono::TimeDelta;
use polity_console::{Line, parse_line};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1000, failure_persistence: None, rng_seed: RngSeed::Fixed(9), ..ProptestConfig::default() }
}

/// Debug formatting and panic text that must never reach a user, unless the line itself
/// held it (refusals quote what was typed).
const LEAKS: [&str; 8] = ["Err(", "Ok(", "Some(", "None", "{ ..", "called `", "panicked", "\\u{"];

fn assert_clear(message: &str, input: &str) {
    assert!(!message.trim().is_empty(), "an empty refusal of {input:?}");
    for leak in LEAKS {
        assert!(input.contains(leak) || !message.contains(leak), "{message:?} shows `{leak}` for {input:?}");
    }
    assert!(input.contains('`') || !message.contains("``"), "{message:?} quotes nothing for {input:?}");
}

const TEN_YEARS: i64 = 10 * 365 * 86_400;

/// Parses `input` and checks what came back: a refusal is clear and names the form to use;
/// a line that parses holds what the grammar promises.
fn check(input: &str) {
    match parse_line(input) {
        Err(e) => {
            assert_clear(&e.0, input);
            let forms = ["`/as NAME`", "`/in #CHANNEL`", "`/wait DURATION`: ", "a command needs a name after `/`"];
            assert!(forms.iter().any(|f| e.0.starts_with(f)), "{e} names no form, for {input:?}");
        }
        Ok(Line::Blank) => assert!(input.trim().is_empty(), "{input:?} is not blank"),
        Ok(Line::As(name)) => {
            assert!(!name.is_empty() && !name.contains(char::is_whitespace), "/as {name:?} from {input:?}");
        }
        Ok(Line::In(channel)) => {
            assert!(channel.starts_with('#') && channel.len() > 1, "/in {channel:?} from {input:?}");
            assert!(!channel.contains(char::is_whitespace), "/in {channel:?} from {input:?}");
        }
        Ok(Line::Wait(d)) => {
            assert!(d >= TimeDelta::zero() && d.num_seconds() <= TEN_YEARS, "/wait {d} from {input:?}");
        }
        Ok(Line::React { emoji, message, added }) => {
            assert!(!emoji.is_empty() && !emoji.contains(char::is_whitespace), "{emoji:?} from {input:?}");
            assert!(!message.is_empty() && message.bytes().all(|b| b.is_ascii_digit()), "{message:?} from {input:?}");
            assert_eq!(added, input.trim().starts_with('+'));
        }
        Ok(Line::Command { name, args }) => {
            assert!(!name.is_empty() && !name.contains(char::is_whitespace), "/{name:?} from {input:?}");
            assert!(!["as", "in", "wait"].contains(&name.as_str()), "/{name} is a console line, from {input:?}");
            assert_eq!(args, args.trim(), "from {input:?}");
        }
        Ok(Line::Message(text)) => {
            assert!(!text.is_empty() && text == text.trim(), "{text:?} from {input:?}");
            assert!(!text.starts_with('/'), "{text:?} is a command, from {input:?}");
        }
    }
}

fn spaces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just(" "), Just("\t"), Just("\u{a0}"), Just("\u{3000}"), Just("\r")], 0..3)
        .prop_map(|s| s.concat())
}

fn ending() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("\r"), Just("\r\n"), Just("\n"), Just(" \r\n")]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just(u128::MAX.to_string()),
        "[0-9]{15,40}",
        "0{1,30}[1-9]",
        Just(String::new()),
    ]
}

fn unit() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("s"),
        Just("m"),
        Just("h"),
        Just("d"),
        Just("w"),
        Just(""),
        Just("y"),
        Just("H"),
        Just("ms"),
        Just("µs"),
        Just(" "),
        Just("٣"),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop::collection::vec((number(), unit()), 1..4)
        .prop_map(|parts| parts.into_iter().map(|(n, u)| format!("{n}{u}")).collect())
}

fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{0,70}",
        "#[a-z]{0,10}",
        "##[a-z]{1,4}",
        "[a-z]{0,8}:[a-z0-9]{0,8}(:[a-z]{1,3})?",
        "[a-z]{1,6} [a-z]{1,6}",
        duration(),
        any::<String>(),
    ]
}

fn command_line() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("as"),
        Just("in"),
        Just("wait"),
        Just("AS"),
        Just("Wait"),
        Just(""),
        Just("propose"),
        Just("help"),
        Just("as:"),
        Just("/"),
    ];
    (spaces(), word, spaces(), argument(), spaces(), ending())
        .prop_map(|(a, w, b, arg, c, end)| format!("{a}/{w}{b}{arg}{c}{end}"))
}

fn reaction_line() -> impl Strategy<Value = String> {
    let sign = prop_oneof![Just('+'), Just('-')];
    let emoji = prop_oneof![
        Just("👍".to_string()),
        Just(":+1:".to_string()),
        Just("1️⃣".to_string()),
        Just("👍🏽".to_string()),
        Just(String::new()),
        "\\PC{0,4}",
    ];
    let id = prop_oneof!["[0-9]{1,30}", Just("-1".to_string()), Just("1e3".to_string()), any::<String>()];
    (spaces(), sign, emoji, spaces(), id, spaces(), ending())
        .prop_map(|(a, sign, emoji, b, id, c, end)| format!("{a}{sign}{emoji}{b}{id}{c}{end}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_returns(line in any::<String>()) {
        check(&line);
    }

    #[test]
    fn any_text_with_newlines_returns(line in "(?s).{0,300}") {
        check(&line);
    }

    #[test]
    fn lines_near_the_grammar_return(line in prop_oneof![command_line(), reaction_line()]) {
        check(&line);
    }

    #[test]
    fn a_wait_within_ten_years_moves_the_clock_by_it(
        unit in prop_oneof![Just(('s', 1i64)), Just(('m', 60)), Just(('h', 3_600)), Just(('d', 86_400)), Just(('w', 604_800))],
        n in 0i64..400_000_000,
        (before, after, end) in (spaces(), spaces(), ending()),
    ) {
        let line = format!("{before}/wait {n}{}{after}{end}", unit.0);
        let seconds = n * unit.1;
        match parse_line(&line) {
            Ok(Line::Wait(d)) => prop_assert_eq!(d.num_seconds(), seconds),
            Err(e) => {
                prop_assert!(seconds > TEN_YEARS, "{line:?}: {e}");
                prop_assert!(e.0.contains("longer than ten years"), "{line:?}: {e}");
            }
            Ok(other) => prop_assert!(false, "{line:?} is {other:?}"),
        }
    }

    #[test]
    fn a_very_long_line_returns(word in "[a-z+/#: -]{1,8}", times in 1usize..20_000) {
        check(&word.repeat(times));
        check(&format!("/wait {}s", "9".repeat(times)));
        check(&format!("+👍 {}", "1".repeat(times)));
    }
}
