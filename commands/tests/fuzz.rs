//! Hostile slash-command text: whatever a user types, `parse` returns; a command it accepts
//! holds every argument the catalogue requires, in the form it requires; every refusal is
//! clear and says what to write.
//!
//! Bounded for CI (a fixed seed, no failure files); `PROPTEST_CASES=100000` runs longer and
//! `PROPTEST_RNG_SEED=N` explores other inputs.

use polity_commands::catalogue::{ArgKind, CATALOGUE, Spec};
use polity_commands::parse::parse;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1000, failure_persistence: None, rng_seed: RngSeed::Fixed(9), ..ProptestConfig::default() }
}

/// Debug formatting and panic text that must never reach a user, unless the text itself
/// held it (refusals quote what was typed).
const LEAKS: [&str; 8] = ["Err(", "Ok(", "Some(", "None", "{ ..", "called `", "panicked", "\\u{"];

fn assert_clear(message: &str, input: &str) {
    assert!(!message.trim().is_empty(), "an empty refusal of {input:?}");
    for leak in LEAKS {
        assert!(input.contains(leak) || !message.contains(leak), "{message:?} shows `{leak}` for {input:?}");
    }
    assert!(input.contains('`') || !message.contains("``"), "{message:?} quotes nothing for {input:?}");
}

/// Parses `input` and checks what came back.
fn check(input: &str) {
    match parse(input) {
        Err(e) => {
            let message = &e.0;
            assert_clear(message, input);
            if let Some(name) = message.strip_prefix("There is no command /") {
                let name = name.split(':').next().unwrap_or_default();
                assert!(
                    !CATALOGUE.iter().any(|s| s.path[0].eq_ignore_ascii_case(name)),
                    "{message:?}, yet /{name} is a command, for {input:?}"
                );
            } else {
                let says_what_to_write = message == "Type a command: /help lists them."
                    || message.contains(" needs one of: ")
                    || message.contains(". Usage: /");
                assert!(says_what_to_write, "{message:?} shows no usage, for {input:?}");
            }
        }
        Ok(parsed) => check_parsed(parsed.spec, &parsed.values, input),
    }
}

fn check_parsed(spec: &Spec, values: &std::collections::BTreeMap<&'static str, String>, input: &str) {
    assert!(CATALOGUE.contains(spec));
    for arg in spec.args {
        let value = values.get(arg.name);
        if arg.required {
            assert!(value.is_some(), "/{} without {} from {input:?}", spec.name(), arg.name);
        }
        let Some(value) = value else { continue };
        match arg.kind {
            ArgKind::Proposal => {
                let n = value.trim().trim_start_matches('#').parse::<i64>();
                assert!(n.is_ok_and(|n| n > 0), "{value:?} as a proposal from {input:?}");
            }
            ArgKind::Number => assert!(value.parse::<u64>().is_ok(), "{value:?} as a number from {input:?}"),
            ArgKind::OneOf(words) => assert!(words.contains(&value.as_str()), "{value:?} from {input:?}"),
            ArgKind::Keyword => assert!(!value.is_empty(), "an empty {}: from {input:?}", arg.name),
            ArgKind::Word | ArgKind::Rest => {}
        }
    }
    assert!(values.keys().all(|k| spec.args.iter().any(|a| a.name == *k)), "{values:?} from {input:?}");
}

/// A command's words (all of them, or only the first) as a user might type them: any case,
/// any spacing.
fn words(spec: &'static Spec) -> impl Strategy<Value = String> {
    let n = spec.path.len();
    let typed = (1..=n).prop_map(move |typed| &spec.path[..typed]);
    (typed, prop::collection::vec(any::<bool>(), n), prop::collection::vec(spaces(), n)).prop_map(
        |(path, upper, gaps)| {
            let mut out = String::new();
            for ((word, upper), gap) in path.iter().zip(upper).zip(gaps) {
                out.push_str(&if upper { word.to_uppercase() } else { word.to_string() });
                out.push_str(if gap.is_empty() { " " } else { &gap });
            }
            out
        },
    )
}

fn spaces() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just(" "), Just("\t"), Just("\u{a0}"), Just("\u{3000}"), Just("\n")], 0..3)
        .prop_map(|s| s.concat())
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,10}",
        "#?-?[0-9]{1,25}",
        Just("#0".to_string()),
        Just("#".to_string()),
        "\"[a-z ]{0,12}\"",
        "\"[a-z ]{0,12}",
        "[a-z]{0,5}\"[a-z]{0,5}",
        Just("\"\"".to_string()),
        Just("\"".to_string()),
        "(policy|since):[a-zA-Z0-9\" ]{0,12}",
        Just("policy:".to_string()),
        Just("policy: x".to_string()),
        prop::sample::select(vec!["open", "all", "json", "csv", "propose", "execute", "vote", "yes", "3>1>2"])
            .prop_map(str::to_string),
        "[a-z]{1,8}\\.(\\*|[a-z_]{1,8})",
        "\\PC{1,8}",
        any::<String>(),
    ]
}

fn command_text() -> impl Strategy<Value = String> {
    let spec = prop::sample::select(CATALOGUE.iter().collect::<Vec<&'static Spec>>());
    (spec, prop_oneof![Just(""), Just("/"), Just(" /")], prop::collection::vec((token(), spaces()), 0..5))
        .prop_flat_map(|(spec, slash, args)| {
            (Just(slash), words(spec), Just(args)).prop_map(|(slash, words, args)| {
                let args: String =
                    args.into_iter().map(|(t, s)| format!("{t}{}", if s.is_empty() { " " } else { &s })).collect();
                format!("{slash}{words}{args}")
            })
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_returns(text in any::<String>()) {
        check(&text);
        check(&format!("/{text}"));
    }

    #[test]
    fn any_text_with_newlines_returns(text in "(?s).{0,300}") {
        check(&text);
    }

    #[test]
    fn real_commands_with_random_arguments_return(text in command_text()) {
        check(&text);
    }

    #[test]
    fn very_long_text_returns(command in command_text(), word in "[a-z\"#: ]{1,6}", times in 1usize..10_000) {
        check(&format!("{command} {}", word.repeat(times)));
        check(&format!("{command}{}", "\"".repeat(times)));
    }
}
