//! The policies shown in `docs/policies.md` and the README compile, so the documentation
//! cannot drift from what Polity accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_governance::PolicyId;
use polity_governance::policy::CompiledPolicy;
use polity_governance::script::Sandbox;

fn toml_blocks(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => out.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_worked_example_in_the_policy_guide_compiles() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policies.md")).unwrap();
    let sandbox = Sandbox::default();
    let blocks = toml_blocks(&doc);
    // The reference block uses "..." for scripts; every other block is a real policy.
    let examples: Vec<&String> = blocks.iter().filter(|b| !b.contains("\"...\"")).collect();
    assert!(examples.len() >= 4, "found {} examples", examples.len());
    for b in examples {
        if let Err(e) = CompiledPolicy::compile(PolicyId(1), b, &sandbox) {
            panic!("a documented policy does not compile:\n{b}\n{e}");
        }
    }
}

#[test]
fn the_reference_block_parses_once_its_scripts_are_filled_in() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policies.md")).unwrap();
    let reference = toml_blocks(&doc).into_iter().find(|b| b.contains("\"...\"")).unwrap();
    let filled = reference.replace("\"...\"", "\"true\"");
    CompiledPolicy::compile(PolicyId(1), &filled, &Sandbox::default()).unwrap();
}
