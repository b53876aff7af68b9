//! Hostile input to every governance parser a user reaches: durations (`/wait`, `closes`),
//! policy files (`polity policy check`, `/policy install`) and their script blocks (the rhai
//! sandbox). Whatever comes in, the parser returns, and every refusal is clear: not empty,
//! no Rust debug formatting or panic text, naming what is wrong (and, for policies, where).
//!
//! Bounded for CI (a fixed seed, no failure files); `PROPTEST_CASES=100000` runs longer and
//! `PROPTEST_RNG_SEED=N` explores other inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeDelta;
use polity_governance::PolicyId;
use polity_governance::duration::{format_duration, parse_duration};
use polity_governance::kits::starter_kits;
use polity_governance::policy::{CompiledPolicy, PolicyErrors};
use polity_governance::script::{Block, NoHostData, Sandbox, ScriptError, ScriptErrorKind, ScriptInput};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::json;
use std::sync::{Arc, LazyLock};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, rng_seed: RngSeed::Fixed(9), ..ProptestConfig::default() }
}

/// Debug formatting and panic text that must never reach a user, unless the input itself
/// held it (refusals quote what was written).
const LEAKS: [&str; 8] = ["Err(", "Ok(", "Some(", "None", "{ ..", "called `", "panicked", "\\u{"];

fn assert_clear(message: &str, input: &str) {
    assert_clear_quoting(message, &Quotable::of(input), input);
}

/// Which of [`LEAKS`] (and whether a backtick) an input holds, found once for all its refusals.
struct Quotable {
    leaks: Vec<&'static str>,
    backtick: bool,
}

impl Quotable {
    fn of(input: &str) -> Self {
        Self { leaks: LEAKS.into_iter().filter(|l| input.contains(l)).collect(), backtick: input.contains('`') }
    }
}

fn assert_clear_quoting(message: &str, quotable: &Quotable, input: &str) {
    assert!(!message.trim().is_empty(), "an empty refusal of {input:?}");
    for leak in LEAKS {
        assert!(quotable.leaks.contains(&leak) || !message.contains(leak), "{message:?} shows `{leak}` for {input:?}");
    }
    assert!(quotable.backtick || !message.contains("``"), "{message:?} quotes nothing for {input:?}");
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

const TEN_YEARS: i64 = 10 * 365 * 86_400;

fn check_duration(text: &str) {
    match parse_duration(text) {
        Ok(d) => {
            assert!(d >= TimeDelta::zero() && d.num_seconds() <= TEN_YEARS, "{text:?} is {d}");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{text:?} does not read back");
        }
        Err(e) => {
            assert_clear(&e, text);
            assert!(e.contains(&format!("`{text}`")) || e.contains("empty"), "{e:?} does not name {text:?}");
            if let Some((_, unit)) = e.split_once("unknown unit `") {
                let unit = unit.chars().next().unwrap_or(' ');
                assert!(!unit.is_whitespace() && !unit.is_control(), "{e:?} names an invisible unit");
            }
        }
    }
}

fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{15,40}",
        "0{1,30}[1-9]",
        Just(String::new()),
    ];
    let unit = prop::sample::select(vec!["s", "m", "h", "d", "w", "", "y", "H", "ms", "µs", " ", "\t", "٣", "-", "."]);
    let part = (number, unit).prop_map(|(n, u)| format!("{n}{u}"));
    (" ?", prop::collection::vec(part, 1..5), " ?").prop_map(|(a, parts, b)| format!("{a}{}{b}", parts.concat()))
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn any_duration_text_returns(text in any::<String>()) {
        check_duration(&text);
    }

    #[test]
    fn durations_near_the_grammar_return(text in duration_text()) {
        check_duration(&text);
    }

    #[test]
    fn a_duration_of_one_unit_is_that_many_seconds(
        (unit, seconds) in prop::sample::select(vec![("s", 1i64), ("m", 60), ("h", 3_600), ("d", 86_400), ("w", 604_800)]),
        n in 0i64..400_000_000,
    ) {
        let text = format!("{n}{unit}");
        match parse_duration(&text) {
            Ok(d) => prop_assert_eq!(d.num_seconds(), n * seconds),
            Err(e) => prop_assert!(n * seconds > TEN_YEARS && e.contains("longer than ten years"), "{text}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Policy files
// ---------------------------------------------------------------------------------------------

/// Valid policies to mutate: every starter kit's and every worked example in the guide.
static SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    // A kit's options that have no default are given a value of the right shape.
    let configured = |k: &polity_governance::kits::Kit| {
        let given: Vec<String> =
            k.options.iter().filter(|o| o.default.is_none()).map(|o| format!("{}=discord:1", o.name)).collect();
        k.configured(&given.join(" ")).unwrap().policies
    };
    let mut seeds: Vec<String> = starter_kits().iter().flat_map(configured).collect();
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policies.md")).unwrap();
    let mut block: Option<String> = None;
    for line in guide.lines() {
        match (&mut block, line.trim()) {
            (None, "```toml") => block = Some(String::new()),
            (Some(_), "```") => seeds.extend(block.take().map(|b| b.replace("\"...\"", "\"true\""))),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    let sandbox = Sandbox::default();
    for seed in &seeds {
        assert!(CompiledPolicy::compile(PolicyId(1), seed, &sandbox).is_ok(), "a seed does not compile:\n{seed}");
    }
    assert!(seeds.len() >= 10, "{} seeds", seeds.len());
    seeds
});

static SANDBOX: LazyLock<Sandbox> = LazyLock::new(Sandbox::default);

/// Compiles `source` as `polity policy check` does and checks what came back.
fn check_policy(source: &str) -> Result<(), PolicyErrors> {
    let errors = match CompiledPolicy::compile(PolicyId(1), source, &SANDBOX) {
        Ok(p) => {
            assert!(!p.name().trim().is_empty(), "a nameless policy from {source:?}");
            return Ok(());
        }
        Err(errors) => errors,
    };
    assert!(!errors.0.is_empty(), "refused with no reason: {source:?}");
    let last_line = source.split('\n').count();
    let quotable = Quotable::of(source);
    for e in &errors.0 {
        assert_clear_quoting(&e.message, &quotable, source);
        if let Some(line) = e.line {
            assert!((1..=last_line).contains(&line), "line {line} of {last_line}: {e}\n{source}");
        }
    }
    Err(errors)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML value of any type, sizes and signs included, and strings near what policies hold.
fn toml_value() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "72h",
            "0s",
            "-5m",
            "1 h",
            "99999999999999999999d",
            "5000d",
            "2/3",
            "0/0",
            "3/2",
            "1/0",
            "-1/2",
            "4294967296/4294967297",
            "1000%",
            "-5%",
            "100%",
            "%",
            "role:",
            "role: ",
            "role:member",
            "everyone",
            "yes-no",
            "choice",
            "ranked",
            "approval",
            "platform",
            "trigger",
            "constitution",
            "discord:",
            ":x",
            "discord:#finance",
            "polity.role_grant",
            "polity.propose",
            "discord.*",
            "*",
            "Discord",
            "{{action.id}}",
            "{{secret.x}}",
            "{{",
            "}}",
            "message",
            "majority",
            "no-objection",
            "loop {}",
            "((((((((",
            "eval(\"1\")",
            "import \"x\" as y;",
            "x +",
            "fn f() { f() } f()",
            "\u{0}",
            "\u{202e}",
            "👍",
        ])
        .prop_map(str::to_string),
        "\\PC{0,20}",
        any::<String>(),
    ];
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "3",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999999",
            "4294967296",
            "1.5",
            "-0.0",
            "nan",
            "inf",
            "-inf",
            "1e999",
            "true",
            "false",
            "[]",
            "[\"\"]",
            "[\"a\", \"A\"]",
            "[1, \"a\"]",
            "[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\", \"k\"]",
            "[\"1\", \"2\"]",
            "{}",
            "{ action = 1 }",
            "[{ action = \"message\" }]",
            "[{ action = \"message\", text = 5 }]",
            "[{ action = \"message\", text = \"hi\", on = 3 }]",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "\"\"\"",
            "'''",
            "\"",
            "",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        text.clone().prop_map(|s| toml_string(&s)),
        prop::collection::vec(text, 0..4)
            .prop_map(|items| { format!("[{}]", items.iter().map(|s| toml_string(s)).collect::<Vec<_>>().join(", ")) }),
    ]
}

const KEYS: [&str; 25] = [
    "name",
    "kind",
    "description",
    "actions",
    "priority",
    "announce",
    "filter",
    "initialize",
    "check",
    "notify",
    "on",
    "type",
    "options",
    "voters",
    "jury",
    "exclude_proposer",
    "quorum",
    "pass",
    "closes",
    "early",
    "secret",
    "do",
    "script",
    "bogus",
    "\"name\"",
];

/// A line to put into a policy: a key with a value, a table header, or anything.
fn toml_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(KEYS.to_vec()), toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec![
            "[vote]", "[pass]", "[fail]", "[[vote]]", "[vote.x]", "[", "]", "[[pass.do]]", "action = \"message\"",
            "check = \"\"\"", "\"\"\"", "filter = '''", "'''", "#", "",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Replace(usize, String),
    Insert(usize, String),
    /// The line's value (after `=`) becomes another.
    Revalue(usize, String),
    /// The file ends after this many characters.
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        1 => at.prop_map(Edit::Delete),
        1 => at.prop_map(Edit::Duplicate),
        1 => (at, at).prop_map(|(a, b)| Edit::Swap(a, b)),
        1 => (at, toml_line()).prop_map(|(i, l)| Edit::Replace(i, l)),
        1 => (at, toml_line()).prop_map(|(i, l)| Edit::Insert(i, l)),
        3 => (at, toml_value()).prop_map(|(i, v)| Edit::Revalue(i, v)),
        1 => at.prop_map(Edit::Truncate),
    ]
}

fn apply(source: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => lines.insert(i % n, lines[i % n].clone()),
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Replace(i, l) if !lines.is_empty() => lines[i % n] = l.clone(),
            Edit::Insert(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
            Edit::Revalue(i, v) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                if let Some((key, _)) = line.split_once('=') {
                    *line = format!("{key}= {v}");
                }
            }
            Edit::Truncate(at) => {
                let text = lines.join("\n");
                let cut = text.char_indices().nth(at % (text.chars().count() + 1)).map_or(text.len(), |(i, _)| i);
                lines = text[..cut].lines().map(str::to_string).collect();
            }
            _ => {}
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn mutated_policy() -> impl Strategy<Value = String> {
    (prop::sample::select(SEEDS.clone()), prop::collection::vec(edit(), 1..4))
        .prop_map(|(seed, edits)| apply(&seed, &edits))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_text_as_a_policy_returns(source in any::<String>()) {
        let _ = check_policy(&source);
    }

    #[test]
    fn any_lines_as_a_policy_return(lines in prop::collection::vec(toml_line(), 0..12)) {
        let _ = check_policy(&lines.join("\n"));
    }

    #[test]
    fn mutated_policies_return_with_their_mistakes_on_their_lines(source in mutated_policy()) {
        if let Err(errors) = check_policy(&source) {
            // Each seed is one valid document with lines, so every mistake in it has a line.
            for e in &errors.0 {
                prop_assert!(e.line.is_some(), "no line for {e}\n{source}");
            }
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn long_policies_return(
        key in prop::sample::select(vec!["voters", "actions", "options"]),
        item in prop::sample::select(vec!["alice", "Alice", "", " ", "discord.x", "Bad", "role:x"]),
        fresh in any::<bool>(),
        n in 0usize..20_000,
        description in 0usize..100_000,
    ) {
        // Thousands of items, each a mistake or each distinct, after a long description.
        let items: Vec<String> =
            (0..n).map(|i| toml_string(&if fresh { format!("{item}{i}") } else { item.to_string() })).collect();
        let table = if key == "actions" { "" } else { "[vote]\ntype = \"choice\"\n" };
        let source = format!(
            "name = \"x\"\nkind = \"platform\"\ndescription = \"{}\"\n{table}{key} = [{}]\n",
            "d".repeat(description),
            items.join(", ")
        );
        let _ = check_policy(&source);
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

const POLICY: &str = "Fuzz";

fn script_input() -> ScriptInput {
    ScriptInput {
        action: json!({ "kind": "opencollective.expense_created", "id": 42, "amount": 60_000, "text": "hi" }),
        proposal: json!({ "id": 9, "tally": { "yes": 3, "no": 1 } }),
        initiator: json!({ "id": 7, "name": "alice", "roles": ["member"], "admin": false }),
        ..ScriptInput::default()
    }
}

/// Compiles and runs `source` as a `check` block in the default sandbox: it returns (the
/// sandbox's limits stop it), and an error says which policy, which block and what.
fn check_script(source: &str) {
    let result = SANDBOX
        .compile(POLICY, Block::Check, source)
        .and_then(|script| SANDBOX.run(&script, &script_input(), Arc::new(NoHostData)));
    if let Err(e) = result {
        check_script_error(&e, source);
    }
}

fn check_script_error(e: &ScriptError, source: &str) {
    let shown = e.to_string();
    assert!(shown.starts_with("policy \"Fuzz\" block check: "), "{shown:?} for {source:?}");
    assert_clear(&shown, source);
    match &e.kind {
        ScriptErrorKind::Runtime { message } => {
            assert!(!message.contains("panicked") && !message.contains("could not start"), "{shown} for {source:?}");
            assert!(!message.trim().is_empty(), "an empty runtime error for {source:?}");
        }
        ScriptErrorKind::Syntax { message } => {
            assert!(!message.trim().is_empty(), "an empty syntax error for {source:?}");
            assert!(!message.contains("maximum complexity"), "{shown} does not say what to change");
        }
        ScriptErrorKind::UndefinedVariable { name } => assert!(!name.is_empty(), "{shown} for {source:?}"),
        _ => {}
    }
}

/// Words, symbols and values of rhai and of what policies see, to make scripts out of.
const TOKENS: &[&str] = &[
    "let",
    "const",
    "fn",
    "if",
    "else",
    "while",
    "loop",
    "for",
    "in",
    "do",
    "until",
    "break",
    "continue",
    "return",
    "throw",
    "try",
    "catch",
    "switch",
    "true",
    "false",
    "()",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "#{",
    "|",
    "||",
    "=>",
    "=",
    "==",
    "!=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "<<",
    ">>",
    "&",
    "^",
    "&&",
    "!",
    "?",
    ".",
    "?.",
    "..",
    "..=",
    ",",
    ";",
    ":",
    "::",
    "+=",
    "x",
    "y",
    "s",
    "action",
    "proposal",
    "initiator",
    "polity",
    "action.amount",
    "action.text",
    "proposal.tally.yes",
    "initiator.roles",
    "polity.message(\"hi\")",
    "polity.act(\"a.b\")",
    "polity.cred(7)",
    "polity.start_process(\"p\")",
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    "0.0",
    "\"s\"",
    "`t${x}`",
    "'c'",
    "Fn(\"f\")",
    "eval",
    "import",
    "export",
    "as",
    "sleep(1)",
    "print(1)",
    "debug(1)",
    "is_def_var(\"x\")",
    "this",
    "global",
    "private",
    "curry",
    "call",
    "blob(10)",
    "range(0, 10)",
    "//",
    "/*",
    "*/",
    "\n",
    "exit(1)",
    "type_of(x)",
    ".len()",
    ".pad(1000000, 0)",
    "[1, 2, 3]",
    "#{a: 1}",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..30).prop_map(|t| t.join(" "))
}

/// Nesting as deep as a hostile script might go, balanced or not.
fn deep_nesting() -> impl Strategy<Value = String> {
    let pair = prop::sample::select(vec![
        ("(", ")"),
        ("[", "]"),
        ("#{a: ", "}"),
        ("{", "}"),
        ("if true {", "}"),
        ("|| ", ""),
        ("-", ""),
        ("!", ""),
        ("`${", "}`"),
        ("(", ""),
        ("[", ""),
        ("/*", "*/"),
        ("/*", ""),
        ("fn f() {", "}"),
        ("\"", ""),
    ]);
    let core = prop::sample::select(vec!["1", "action", "x", "", "polity.message(\"x\")"]);
    (pair, 1usize..400, core)
        .prop_map(|((open, close), depth, core)| format!("{}{core}{}", open.repeat(depth), close.repeat(depth)))
}

/// Long literals, big loops and other ways to spend a sandbox's limits.
fn heavy() -> impl Strategy<Value = String> {
    let n = prop::sample::select(vec!["10", "1000", "1000000", "1000000000000", "9223372036854775807"]);
    let body = prop::sample::select(vec![
        "",
        "polity.message(\"x\");",
        "s += \"abc\";",
        "s += s;",
        "a.push(i);",
        "a += a;",
        "m[`k${i}`] = i;",
        "m = #{a: m, b: m};",
        "let f = || i; f = || f.call();",
    ]);
    prop_oneof![
        (n.clone(), body).prop_map(|(n, body)| format!(
            "let s = \"x\"; let a = [1]; let m = #{{}}; for i in 0..{n} {{ {body} }} s.len()"
        )),
        (0usize..100_000).prop_map(|n| format!("\"{}\"", "a".repeat(n))),
        (0usize..100_000).prop_map(|n| format!("let s = \"{}", "ab".repeat(n))),
        n.clone().prop_map(|n| format!("\"x\".pad({n}, \"y\")")),
        n.clone().prop_map(|n| format!("fn f(n) {{ if n <= 0 {{ 0 }} else {{ f(n - 1) + f(n - 1) }} }} f({n})")),
        n.prop_map(|n| format!("fn f(n) {{ f(n + 1) }} f({n})")),
        Just("let x = 0; while true { x += 1; }".to_string()),
        Just("try { loop {} } catch { 1 }".to_string()),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_text_as_a_script_returns(source in any::<String>()) {
        check_script(&source);
    }

    #[test]
    fn scripts_of_rhai_words_return(source in token_soup()) {
        check_script(&source);
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn deeply_nested_scripts_return(source in deep_nesting()) {
        check_script(&source);
    }

    #[test]
    fn scripts_that_spend_the_limits_return(source in heavy()) {
        check_script(&source);
    }
}
