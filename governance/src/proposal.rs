//! Proposals: one run of a policy on one action, from proposed to passed, failed,
//! cancelled or expired, with its frozen vote, its ballots and how it reads on a platform.

use crate::action::{Action, PROPOSE};
use crate::ids::{AccountRef, MemberId, MessageRef, Place, PolicyId, ProposalId};
use crate::vote::{Choice, Decision, Tally, VoteSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Proposed,
    Passed,
    Failed,
    Cancelled,
    /// The deadline came before enough ballots did.
    Expired,
}

impl ProposalState {
    pub fn is_open(self) -> bool {
        self == Self::Proposed
    }
}

impl fmt::Display for ProposalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Proposed => "proposed",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        })
    }
}

/// Where a ballot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "via")]
pub enum BallotSource {
    /// A reaction on a vote message.
    Reaction { message: MessageRef },
    /// A typed `/vote` or a button.
    Command,
}

/// One voter's ballot: what, when, from which account and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub choice: Choice,
    pub account: AccountRef,
    pub cast_at: DateTime<Utc>,
    pub source: BallotSource,
}

/// A vote as it was frozen when the proposal opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenVote {
    pub spec: VoteSpec,
    pub place: Place,
    pub eligible: Eligible,
    pub ballots: Ballots,
    /// The vote messages posted for it, as platforms reported them.
    pub messages: Vec<MessageRef>,
    /// What the vote message says besides the vote (a revert that Discord holds back, a
    /// file too big to keep), each under a key; a newer note with the same key replaces it.
    pub notes: Vec<VoteNote>,
    /// Where people can open the vote messages (`https://discord.com/channels/...`), as
    /// their platforms said when they were posted: `proposal.link` in templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Its voters could not be known when it opened (`cred >= N` while SourceCred could not
    /// be read): they are read again every minute, and nothing is decided before the
    /// deadline until they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// A line of a vote message that is not about the vote itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteNote {
    pub key: String,
    pub text: String,
}

/// At most this many notes are kept on one vote, the newest.
pub const MAX_NOTES: usize = 5;

impl OpenVote {
    /// Adds a note, replacing one with the same key; whether the notes changed.
    pub fn note(&mut self, key: &str, text: &str) -> bool {
        let text: String = text.chars().take(300).collect();
        if let Some(n) = self.notes.iter_mut().find(|n| n.key == key) {
            if n.text == text {
                return false;
            }
            n.text = text;
            return true;
        }
        self.notes.push(VoteNote { key: key.to_string(), text });
        if self.notes.len() > MAX_NOTES {
            self.notes.remove(0);
        }
        true
    }
}

impl OpenVote {
    /// Counts the ballots of eligible voters. Both collections are sorted by member, so
    /// they are walked together once rather than looked up ballot by ballot.
    pub fn tally(&self) -> Tally {
        let mut eligible = self.eligible.iter().peekable();
        let counted = self.ballots.iter().filter(move |(m, _)| {
            while eligible.next_if(|e| *e < *m).is_some() {}
            eligible.peek() == Some(m)
        });
        Tally::new(&self.spec, self.eligible.len(), counted.map(|(_, b)| &b.choice))
    }
}

/// Who may vote on a proposal, frozen when it opened. Proposals opened under the same
/// rules in one community usually have the same voters: they share one set (see
/// `Engine`'s interning), since thousands of open proposals each holding a copy of the
/// member list was most of what a restart held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eligible(Arc<EligibleSet>);

/// The members, with their fingerprint worked out once: a frozen set never changes, and the
/// store compares fingerprints at every write of its proposal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EligibleSet {
    pub(crate) members: BTreeSet<MemberId>,
    fingerprint: u64,
}

impl Default for EligibleSet {
    fn default() -> Self {
        Self::from(BTreeSet::new())
    }
}

impl From<BTreeSet<MemberId>> for EligibleSet {
    fn from(members: BTreeSet<MemberId>) -> Self {
        let fingerprint =
            members.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, m| (h ^ m.0 as u64).wrapping_mul(0x0100_0000_01b3));
        Self { members, fingerprint }
    }
}

impl Eligible {
    /// Whether two hold the very same set (not only equal ones).
    pub fn shares(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// A fingerprint of the members, the same for equal sets.
    pub fn fingerprint(&self) -> u64 {
        self.0.fingerprint
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<EligibleSet> {
        Arc::downgrade(&self.0)
    }

    pub(crate) fn from_shared(set: Arc<EligibleSet>) -> Self {
        Self(set)
    }
}

impl std::ops::Deref for Eligible {
    type Target = BTreeSet<MemberId>;
    fn deref(&self) -> &BTreeSet<MemberId> {
        &self.0.members
    }
}

impl From<BTreeSet<MemberId>> for Eligible {
    fn from(set: BTreeSet<MemberId>) -> Self {
        Self(Arc::new(EligibleSet::from(set)))
    }
}

impl FromIterator<MemberId> for Eligible {
    fn from_iter<I: IntoIterator<Item = MemberId>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<BTreeSet<_>>())
    }
}

impl Serialize for Eligible {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.members.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Eligible {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeSet::<MemberId>::deserialize(deserializer).map(Self::from)
    }
}

/// Each voter's current ballot, ordered by member: a sorted vector rather than a tree, as
/// most proposals hold a handful of ballots and a tree node holds room for eleven (thousands
/// of open proposals held their ballots in twice the memory).
///
/// Each ballot carries a stamp, new whenever a ballot is set and kept by copies (ballots
/// are never changed in place): a copy of the map (the store keeps one of what it last
/// wrote) tells an unchanged ballot by its stamp instead of comparing its strings (see
/// [`Ballots::iter_stamped`]). Stamps are not part of the value: equal maps compare equal
/// whatever their stamps.
#[derive(Clone, Debug, Default)]
pub struct Ballots(Vec<(MemberId, Ballot, u64)>);

/// A new ballot stamp, never handed out before in this process.
fn stamp() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl PartialEq for Ballots {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.iter().eq(other.iter())
    }
}

impl Ballots {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, member: &MemberId) -> Result<usize, usize> {
        self.0.binary_search_by(|(m, _, _)| m.cmp(member))
    }

    pub fn get(&self, member: &MemberId) -> Option<&Ballot> {
        self.find(member).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, member: &MemberId) -> bool {
        self.find(member).is_ok()
    }

    /// Sets `member`'s ballot, with a new stamp; returns the one it replaces.
    pub fn insert(&mut self, member: MemberId, ballot: Ballot) -> Option<Ballot> {
        self.insert_stamped(member, ballot, stamp())
    }

    /// Sets `member`'s ballot to a copy of one another map holds under `stamp`; returns the
    /// one it replaces.
    pub fn insert_stamped(&mut self, member: MemberId, ballot: Ballot, stamp: u64) -> Option<Ballot> {
        match self.find(&member) {
            Ok(i) => {
                self.0[i].2 = stamp;
                Some(std::mem::replace(&mut self.0[i].1, ballot))
            }
            Err(i) => {
                self.0.insert(i, (member, ballot, stamp));
                None
            }
        }
    }

    pub fn remove(&mut self, member: &MemberId) -> Option<Ballot> {
        self.find(member).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(member, ballot)` in member order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&MemberId, &Ballot)> + ExactSizeIterator {
        self.0.iter().map(|(m, b, _)| (m, b))
    }

    /// `(member, ballot, stamp)` in member order: two ballots with the same stamp are the
    /// same ballot.
    pub fn iter_stamped(&self) -> impl DoubleEndedIterator<Item = (&MemberId, &Ballot, u64)> + ExactSizeIterator {
        self.0.iter().map(|(m, b, s)| (m, b, *s))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &MemberId> + ExactSizeIterator {
        self.0.iter().map(|(m, _, _)| m)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Ballot> + ExactSizeIterator {
        self.0.iter().map(|(_, b, _)| b)
    }
}

impl FromIterator<(MemberId, Ballot)> for Ballots {
    /// The last ballot of a member counts, as with repeated inserts.
    fn from_iter<I: IntoIterator<Item = (MemberId, Ballot)>>(iter: I) -> Self {
        let mut all: Vec<(MemberId, Ballot)> = iter.into_iter().collect();
        // Stable: of a member's ballots the last one stays last, and is kept.
        all.sort_by_key(|(m, _)| *m);
        let mut out: Vec<(MemberId, Ballot, u64)> = Vec::with_capacity(all.len());
        for (m, b) in all {
            match out.last_mut() {
                Some((last, kept, _)) if *last == m => *kept = b,
                _ => out.push((m, b, stamp())),
            }
        }
        out.shrink_to_fit();
        Self(out)
    }
}

impl<'a> IntoIterator for &'a Ballots {
    type Item = (&'a MemberId, &'a Ballot);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (MemberId, Ballot, u64)>, fn(&'a (MemberId, Ballot, u64)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(m, b, _)| (m, b))
    }
}

/// Written as a map from member to ballot, as it always was.
impl Serialize for Ballots {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Ballots {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<MemberId, Ballot>::deserialize(deserializer)?;
        Ok(map.into_iter().collect())
    }
}

/// The progress an external process reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub status: String,
    pub outcome: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub policy: PolicyId,
    pub policy_name: String,
    pub action: Action,
    pub proposer: Option<MemberId>,
    pub proposer_name: String,
    pub state: ProposalState,
    pub opened_at: DateTime<Utc>,
    pub closes_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub vote: Option<OpenVote>,
    /// The winning option's label once passed.
    pub winner: Option<String>,
    /// What the `initialize` block returned.
    pub data: Value,
    pub process: Option<ProcessState>,
    /// Whether the action was reverted when the proposal opened.
    pub reverted: bool,
}

impl Proposal {
    pub fn tally(&self) -> Option<Tally> {
        self.vote.as_ref().map(OpenVote::tally)
    }

    /// Where announcements about it go: the vote's place, else where the action happened.
    pub fn place(&self) -> Option<&Place> {
        self.vote.as_ref().map(|v| &v.place).or(self.action.place.as_ref())
    }

    /// One line saying what is proposed, as a person would say it: "dave posted in #rules:
    /// …", "bob asks to install the starter kit consensus".
    pub fn headline(&self) -> String {
        let who = &self.proposer_name;
        let a = &self.action;
        if a.kind.as_str() == PROPOSE {
            return format!("{who} proposes: {}", a.summary());
        }
        if a.kind.platform() == "polity"
            && let Ok(change) = crate::change::Change::from_action(a)
        {
            return format!("{who} asks to {}", change.phrase());
        }
        let field = |k: &str| a.data.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        let channel = field("channel").or_else(|| a.place.as_ref().map(|p| p.channel.to_string()));
        let verb = a.kind.as_str().split_once('.').map_or("", |(_, v)| v);
        match (verb, channel) {
            ("message", Some(c)) => match field("text").filter(|t| !t.is_empty()) {
                Some(text) => format!("{who} posted in {}: {text}", channel_ref(&c)),
                None => format!("{who} posted in {}", channel_ref(&c)),
            },
            ("rename_channel", Some(c)) => match field("name") {
                Some(name) => format!("{who} renamed {} to {name}", channel_ref(&c)),
                None => format!("{who} renamed {}", channel_ref(&c)),
            },
            ("role_grant", _) if field("role").is_some() => {
                let whom = field("member").or_else(|| field("user")).map(|u| mention(&u, "@")).unwrap_or_default();
                format!("{who} gave {whom} the role {}", mention(&field("role").unwrap_or_default(), "@&"))
            }
            _ => {
                let summary = a.summary();
                if summary == a.kind.as_str() {
                    format!("{who} wants {}", a.kind)
                } else {
                    format!("{who} wants {}: {summary}", a.kind)
                }
            }
        }
    }

    fn tally_line(&self, t: &Tally) -> Option<String> {
        let v = self.vote.as_ref()?;
        let counts: Vec<String> = v
            .spec
            .labels()
            .iter()
            .zip(&t.counts)
            .map(|(l, c)| format!("{l} {c}"))
            .chain(std::iter::once(format!("abstain {}", t.abstain)))
            .collect();
        Some(format!("{} ({} of {} voted)", counts.join(" · "), t.cast, t.eligible))
    }

    /// The vote message: what is proposed, how to vote, the rule, the deadline, the tally,
    /// and the outcome once decided. One line, so every platform shows it whole.
    pub fn vote_text(&self) -> String {
        self.vote_text_with(self.tally().as_ref())
    }

    /// [`Self::vote_text`] with the tally already counted.
    pub fn vote_text_with(&self, tally: Option<&Tally>) -> String {
        let Some(v) = &self.vote else {
            return format!("Proposal {}: {}", self.id, self.headline());
        };
        let how: Vec<String> = v.spec.reaction_options().iter().map(|(e, l)| format!("{e} {l}")).collect();
        let mut rule = format!("pass: {}, quorum {}", v.spec.pass, v.spec.quorum);
        if let Some(j) = v.spec.jury {
            rule.push_str(&format!(", jury of {j}"));
        }
        let mut parts =
            vec![format!("Proposal {}: {}", self.id, self.headline()), format!("vote {}", how.join(" · ")), rule];
        if let Some(c) = self.closes_at {
            parts.push(format!("closes {}", c.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        let places = 1 + v.spec.also.iter().filter(|a| **a != v.place).count();
        if places > 1 {
            parts.push(format!(
                "voted in {places} places at once: one ballot per member, the latest on any platform counts"
            ));
        }
        if let Some(t) = tally.and_then(|t| self.tally_line(t)) {
            parts.push(format!("tally: {t}"));
        }
        // A platform's decision process runs beside the vote: where it is.
        if let Some(url) = self
            .process
            .as_ref()
            .and_then(|p| p.outcome.get("url"))
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            let what = self.process.as_ref().and_then(|p| p.outcome.get("process")).and_then(Value::as_str);
            parts.push(format!("{}: {url}", what.unwrap_or("decided on")));
        }
        parts.extend(v.notes.iter().map(|n| n.text.clone()));
        if !self.state.is_open() {
            let mut outcome = self.state.to_string().to_uppercase();
            if let (ProposalState::Expired, Some(why)) = (self.state, self.nobody_may_vote()) {
                outcome.push_str(&format!(": {why}"));
            }
            if let (Some(w), true) = (&self.winner, v.spec.kind != crate::vote::VoteKind::YesNo) {
                outcome.push_str(&format!(": {w}"));
            }
            parts.push(outcome);
        }
        parts.join(" — ")
    }

    /// Why a vote could not be held, when nobody may vote on it (a role nobody holds, names
    /// that are no members, voters without the vote permission for the action).
    pub fn nobody_may_vote(&self) -> Option<String> {
        if self.state != ProposalState::Expired {
            return None;
        }
        let v = self.vote.as_ref().filter(|v| v.eligible.is_empty())?;
        let proposer = if v.spec.exclude_proposer { " other than the proposer" } else { "" };
        Some(format!(
            "nobody may vote on it: `voters = \"{}\"` matches no member{proposer} allowed to vote on {}",
            v.spec.voters, self.action.kind
        ))
    }

    /// The announcement of the outcome.
    pub fn outcome_text(&self) -> String {
        let what = match self.state {
            ProposalState::Passed => match &self.winner {
                Some(w) if self.vote.as_ref().is_some_and(|v| v.spec.kind != crate::vote::VoteKind::YesNo) => {
                    format!("passed with \"{w}\"")
                }
                _ => "passed".to_string(),
            },
            ProposalState::Failed => "failed".into(),
            ProposalState::Expired => match self.nobody_may_vote() {
                Some(why) => format!("ended at once, as {why}"),
                None => "expired without enough ballots".into(),
            },
            ProposalState::Cancelled => "was cancelled".into(),
            ProposalState::Proposed => "is open".into(),
        };
        match self.tally().and_then(|t| self.tally_line(&t)) {
            Some(t) => format!("Proposal {} {what}: {} ({t})", self.id, self.headline()),
            None => format!("Proposal {} {what}: {}", self.id, self.headline()),
        }
    }

    /// What scripts and templates see as `proposal`.
    pub fn to_json(&self) -> Value {
        self.to_json_with(self.tally().as_ref())
    }

    /// [`Self::to_json`] with the tally already counted.
    pub fn to_json_with(&self, tally: Option<&Tally>) -> Value {
        let tally = self.vote.as_ref().zip(tally).map(|(v, t)| {
            let mut m = serde_json::Map::new();
            for (l, c) in v.spec.labels().iter().zip(&t.counts) {
                m.insert(l.clone(), json!(c));
            }
            m.insert("abstain".into(), json!(t.abstain));
            m.insert("cast".into(), json!(t.cast));
            m.insert("eligible".into(), json!(t.eligible));
            m.insert("remaining".into(), json!(t.remaining()));
            Value::Object(m)
        });
        json!({
            "id": self.id.0,
            "policy": self.policy_name,
            "state": self.state.to_string(),
            "proposer": self.proposer_name,
            "opened_at": self.opened_at.to_rfc3339(),
            // Seconds since the Unix epoch, to compare with a script's `now`.
            "opened": self.opened_at.timestamp(),
            "closes": self.closes_at.map(|c| c.timestamp()),
            "closes_at": self.closes_at.map(|c| c.to_rfc3339()),
            "tally": tally,
            // Where the vote can be seen: its first message's address, else where it was held.
            "link": self.vote.as_ref().map(|v| match v.links.first() {
                Some(link) => link.clone(),
                None => format!("{}:{}", v.place.platform, v.place.channel),
            }),
            "winner": self.winner,
            "data": self.data,
            "process": self.process.as_ref().map(|p| json!({"status": p.status, "outcome": p.outcome})),
        })
    }
}

/// A channel as its platform writes one in a message: `#general`, or Discord's `<#id>` for a
/// numeric id (shown as the channel's name, and never a ping).
fn channel_ref(channel: &str) -> String {
    mention(channel.trim_start_matches('#'), "#")
}

/// A numeric id as Discord's mention syntax (`<@id>`, `<@&id>`, `<#id>`), which its clients
/// show as the name; a name as it is, with `#` for channels.
fn mention(value: &str, sigil: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        format!("<{sigil}{value}>")
    } else if sigil == "#" {
        format!("#{value}")
    } else {
        value.to_string()
    }
}

/// How a decided proposal ends, from a tally decision.
pub fn state_of(decision: Decision) -> ProposalState {
    match decision {
        Decision::Passed { .. } => ProposalState::Passed,
        Decision::Failed => ProposalState::Failed,
        Decision::NoQuorum => ProposalState::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(c: Choice) -> Ballot {
        Ballot {
            choice: c,
            account: AccountRef::new("console", "x"),
            cast_at: Utc::now(),
            source: BallotSource::Command,
        }
    }

    #[test]
    fn only_eligible_voters_ballots_are_counted() {
        let mut v = OpenVote {
            spec: VoteSpec::default(),
            place: Place::new("console", "#general"),
            eligible: [2, 4, 6].into_iter().map(MemberId).collect(),
            ballots: Ballots::new(),
            messages: Vec::new(),
            notes: Vec::new(),
            links: Vec::new(),
            pending: false,
        };
        for (m, c) in [(1, Choice::No), (2, Choice::Yes), (3, Choice::No), (4, Choice::Yes), (7, Choice::No)] {
            v.ballots.insert(MemberId(m), ballot(c));
        }
        let t = v.tally();
        assert_eq!((t.counts[0], t.counts[1], t.cast, t.eligible), (2, 0, 2, 3));
    }

    #[test]
    fn ballots_are_kept_one_per_member_in_order_and_written_as_a_map() {
        let mut b = Ballots::new();
        assert_eq!(b.insert(MemberId(5), ballot(Choice::Yes)), None);
        assert_eq!(b.insert(MemberId(2), ballot(Choice::No)), None);
        assert_eq!(b.insert(MemberId(9), ballot(Choice::Abstain)), None);
        assert_eq!(b.insert(MemberId(5), ballot(Choice::No)).map(|o| o.choice), Some(Choice::Yes));
        assert_eq!(b.keys().map(|m| m.0).collect::<Vec<_>>(), [2, 5, 9]);
        assert_eq!(b.get(&MemberId(5)).map(|o| &o.choice), Some(&Choice::No));
        assert_eq!(b.remove(&MemberId(2)).map(|o| o.choice), Some(Choice::No));
        assert_eq!(b.remove(&MemberId(2)), None);
        assert!(!b.contains_key(&MemberId(2)) && b.contains_key(&MemberId(9)));
        assert_eq!(b.len(), 2);

        // Collected, the last ballot of a member counts, as with inserts.
        let c: Ballots =
            [(MemberId(3), ballot(Choice::Yes)), (MemberId(1), ballot(Choice::No)), (MemberId(3), ballot(Choice::No))]
                .into_iter()
                .collect();
        assert_eq!(
            c.iter().map(|(m, o)| (m.0, o.choice.clone())).collect::<Vec<_>>(),
            [(1, Choice::No), (3, Choice::No)]
        );

        // The same JSON as a map from member to ballot, both ways.
        let json = serde_json::to_value(&c).unwrap();
        let as_map: BTreeMap<MemberId, Ballot> = c.iter().map(|(m, o)| (*m, o.clone())).collect();
        assert_eq!(json, serde_json::to_value(&as_map).unwrap());
        assert_eq!(serde_json::from_value::<Ballots>(json).unwrap(), c);
    }

    #[test]
    fn a_ballot_set_again_gets_a_new_stamp_and_copies_keep_theirs() {
        let mut a = Ballots::new();
        a.insert(MemberId(1), ballot(Choice::Yes));
        a.insert(MemberId(2), ballot(Choice::No));
        let copy = a.clone();
        let stamps = |b: &Ballots| b.iter_stamped().map(|(_, _, s)| s).collect::<Vec<_>>();
        assert_eq!(stamps(&copy), stamps(&a));
        let same = a.get(&MemberId(2)).unwrap().clone();
        a.insert(MemberId(2), same);
        assert_eq!(stamps(&copy)[0], stamps(&a)[0]);
        assert_ne!(stamps(&copy)[1], stamps(&a)[1]);
        // Stamps are not part of the value.
        assert_eq!(a, copy);
        let read: Ballots = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(read, a);
        assert!(stamps(&read).iter().all(|s| !stamps(&a).contains(s)));
    }
}
