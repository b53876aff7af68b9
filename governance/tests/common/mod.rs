//! A small world for playing scenarios through the engine: a console community with a few
//! members, a clock that moves only when told, and vote messages numbered by proposal.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity_governance::action::PROPOSE;
use polity_governance::community::Community;
use polity_governance::script::{HostData, NoHostData, Sandbox};
use polity_governance::*;
use std::sync::Arc;

pub const PLATFORM: &str = "console";

pub struct World {
    pub engine: Engine,
    pub now: DateTime<Utc>,
    pub seed: u64,
    pub host: Arc<dyn HostData>,
    pub log: Vec<Effect>,
}

pub fn account(name: &str) -> AccountRef {
    AccountRef::new(PLATFORM, name)
}

pub fn general() -> Place {
    Place::new(PLATFORM, "#general")
}

pub fn vote_message(id: ProposalId) -> MessageRef {
    MessageRef::new(PLATFORM, "#general", format!("vote-{}", id.0))
}

impl World {
    /// `admin` (an admin) and the given members.
    pub fn new(members: &[&str]) -> Self {
        let mut c = Community::new(CommunityId(1), "test");
        c.add_member("admin", account("admin"), true).unwrap();
        for m in members {
            c.add_member(m, account(m), false).unwrap();
        }
        Self {
            engine: Engine::new(c, Arc::new(Sandbox::default())),
            now: Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
            seed: 7,
            host: Arc::new(NoHostData),
            log: Vec::new(),
        }
    }

    pub fn with_kit(members: &[&str], kit: &str) -> Self {
        let mut w = Self::new(members);
        let admin = w.member("admin");
        w.engine.install_kit(&kits::starter_kit(kit).unwrap().configured("").unwrap(), Some(admin)).unwrap();
        w
    }

    pub fn install(&mut self, toml: &str) {
        self.engine.install_policy(toml).unwrap();
    }

    pub fn member(&self, name: &str) -> MemberId {
        self.engine.community.member_by_name(name).unwrap().id
    }

    pub fn ctx(&self) -> Ctx {
        Ctx { now: self.now, seed: self.seed, host: self.host.clone() }
    }

    /// Pushes one input; a posted vote message is reported back at once, as a platform would.
    pub fn push(&mut self, input: Inbound) -> Result<Step, GovError> {
        let step = self.engine.step(input, &self.ctx())?;
        for e in &step.effects {
            if let Effect::PostVote { proposal, .. } = e {
                let posted =
                    Inbound::VoteMessagePosted { proposal: *proposal, message: vote_message(*proposal), link: None };
                self.engine.step(posted, &self.ctx()).unwrap();
            }
        }
        self.log.extend(step.effects.iter().cloned());
        Ok(step)
    }

    pub fn propose(&mut self, who: &str, text: &str) -> ProposalId {
        let step = self.push(Inbound::Action { action: proposal_action(who, text) }).unwrap();
        *step.changed.iter().next().unwrap()
    }

    pub fn react(&mut self, who: &str, id: ProposalId, emoji: &str) -> Step {
        self.push(Inbound::Reaction {
            message: vote_message(id),
            voter: account(who),
            emoji: emoji.into(),
            added: true,
        })
        .unwrap()
    }

    pub fn unreact(&mut self, who: &str, id: ProposalId, emoji: &str) -> Step {
        self.push(Inbound::Reaction {
            message: vote_message(id),
            voter: account(who),
            emoji: emoji.into(),
            added: false,
        })
        .unwrap()
    }

    pub fn vote(&mut self, who: &str, id: ProposalId, choice: &str) -> Result<Step, GovError> {
        self.push(Inbound::Vote { proposal: id, voter: account(who), choice: choice.into() })
    }

    pub fn wait(&mut self, d: TimeDelta) -> Step {
        self.now += d;
        self.push(Inbound::Tick).unwrap()
    }

    pub fn state(&self, id: ProposalId) -> ProposalState {
        self.engine.proposal(id).unwrap().state
    }
}

pub fn proposal_action(who: &str, text: &str) -> Action {
    Action::new(ActionType::new(PROPOSE).unwrap(), account(who), format!("cmd-{who}-{text}"))
        .at(general())
        .requested()
        .with("text", text)
}

pub fn hours(h: i64) -> TimeDelta {
    TimeDelta::hours(h)
}

pub fn posts(step: &Step) -> Vec<String> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Post { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

pub fn has<F: Fn(&Effect) -> bool>(step: &Step, f: F) -> bool {
    step.effects.iter().any(f)
}

/// A vote that decides only at its deadline, for the role `voter`.
pub const LATE: &str = r#"
name = "Decide at the deadline"
kind = "platform"
[vote]
voters = "role:voter"
quorum = 1
early = false
closes = "1h"
"#;

pub const MEMBERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// [`MEMBERS`], of whom alice, bob and carol hold the voter role (dave and erin do not), and
/// one proposal open under [`LATE`].
pub fn voters_world() -> (World, ProposalId) {
    let mut w = World::new(&MEMBERS);
    w.engine.community.create_role("voter", "").unwrap();
    for m in ["alice", "bob", "carol"] {
        let id = w.member(m);
        w.engine.community.grant_role(id, "voter").unwrap();
    }
    w.install(LATE);
    let id = w.propose("admin", "x");
    (w, id)
}
