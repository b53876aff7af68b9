//! Policies: the document ([`document`]), its compiled form with sandboxed scripts, and
//! PolicyKit's selection rule ([`select`]).

pub mod document;

pub use document::{DoAction, Outcome, Policy, PolicyError, PolicyErrors, PolicyKind, ScriptSource, parse_policy};

use crate::action::ActionType;
use crate::ids::PolicyId;
use crate::script::{Block, Sandbox, Script};
use std::sync::Arc;

/// A policy with its script blocks compiled, ready to run many times.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub id: PolicyId,
    pub policy: Policy,
    /// The TOML it was parsed from, kept so every version can be shown again.
    pub source: String,
    pub filter: Option<Script>,
    pub initialize: Option<Script>,
    pub check: Option<Script>,
    pub notify: Option<Script>,
    pub pass_script: Option<Script>,
    pub fail_script: Option<Script>,
}

impl CompiledPolicy {
    /// Whether any of its scripts reads the host's data (`polity`, `sourcecred`), so the
    /// runtime gathers it for a step.
    pub fn reads_host(&self) -> bool {
        let voters_by_cred =
            self.policy.vote.as_ref().is_some_and(|v| matches!(v.voters, crate::vote::Voters::Cred(_)));
        voters_by_cred
            || [&self.filter, &self.initialize, &self.check, &self.notify, &self.pass_script, &self.fail_script]
                .iter()
                .filter_map(|s| s.as_ref())
                .any(|s| s.uses("polity") || s.uses("sourcecred"))
    }

    /// Whether any of its blocks is a script.
    pub fn has_scripts(&self) -> bool {
        [&self.filter, &self.initialize, &self.check, &self.notify, &self.pass_script, &self.fail_script]
            .iter()
            .any(|s| s.is_some())
    }

    /// Parses, validates and compiles a policy file.
    ///
    /// # Errors
    /// Every mistake found, each with its line in the file (script errors included).
    pub fn compile(id: PolicyId, source: &str, sandbox: &Sandbox) -> Result<Self, PolicyErrors> {
        let policy = parse_policy(source)?;
        let mut errors = Vec::new();
        let mut compile = |block: Block, src: &Option<ScriptSource>| -> Option<Script> {
            let s = src.as_ref()?;
            match sandbox.compile(&policy.name, block, &s.code) {
                Ok(script) => Some(script),
                Err(e) => {
                    let line = e.line().map(|l| s.line + l - 1).or(Some(s.line));
                    errors.push(PolicyError { line, message: e.to_string() });
                    None
                }
            }
        };
        let filter = compile(Block::Filter, &policy.filter);
        let initialize = compile(Block::Initialize, &policy.initialize);
        let check = compile(Block::Check, &policy.check);
        let notify = compile(Block::Notify, &policy.notify);
        let pass_script = compile(Block::Pass, &policy.on_pass.script);
        let fail_script = compile(Block::Fail, &policy.on_fail.script);
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        Ok(Self { id, policy, source: source.to_string(), filter, initialize, check, notify, pass_script, fail_script })
    }

    pub fn name(&self) -> &str {
        &self.policy.name
    }

    /// How specifically this policy names `action` (2 exactly, 1 by platform, 0 by covering
    /// every action of its kind), or `None` when it does not cover it.
    pub fn covers(&self, action: &ActionType) -> Option<u8> {
        let of_kind = match self.policy.kind {
            PolicyKind::Constitution => action.is_constitutional(),
            PolicyKind::Platform => !action.is_constitutional(),
            PolicyKind::Trigger => action.as_str() != crate::action::PROPOSE,
        };
        if !of_kind {
            return None;
        }
        if self.policy.actions.is_empty() {
            // A platform policy that names no action decides plain proposals only: governing
            // every member's every action (each chat message) is never a default anyone
            // wants, so platform actions are governed by policies that name them.
            return match self.policy.kind {
                PolicyKind::Platform => (action.as_str() == crate::action::PROPOSE).then_some(0),
                _ => Some(0),
            };
        }
        self.policy.actions.iter().filter_map(|p| p.specificity(action)).max()
    }
}

/// PolicyKit's selection rule.
pub mod select {
    use super::*;

    /// The policies of `kind` that cover `action`, most specific first; equally specific ones
    /// by priority, then the most recently installed first.
    pub fn candidates<'a>(
        policies: &'a [Arc<CompiledPolicy>],
        kind: PolicyKind,
        action: &ActionType,
    ) -> Vec<&'a Arc<CompiledPolicy>> {
        let mut found: Vec<(u8, i64, usize, &Arc<CompiledPolicy>)> = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.policy.kind == kind)
            .filter_map(|(i, p)| p.covers(action).map(|s| (s, p.policy.priority, i, p)))
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse((f.0, f.1, f.2)));
        found.into_iter().map(|(_, _, _, p)| p).collect()
    }
}
