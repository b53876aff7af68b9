//! Between governance values and rows: JSON text columns, enums as their serde names,
//! timestamps to the microsecond, proposals split into a row, ballots and vote messages.

use super::StoreError;
use super::entities::{ballots, proposals, vote_messages};
use super::shadow::VoteKey;
use chrono::{DateTime, SubsecRound, Utc};
use polity_governance::proposal::{Ballot, BallotSource, OpenVote, ProcessState, VoteNote};
use polity_governance::vote::VoteSpec;
use polity_governance::{AccountRef, MemberId, MessageRef, Place, PlatformRef, PolicyId, Proposal, ProposalId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Timestamps are kept to the microsecond (what PostgreSQL keeps), on both backends alike.
pub(crate) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// JSON text of a value. Governance types always encode; the error is for completeness.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what} does not encode as JSON: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what} does not decode: {e}")))
}

/// The serde name of a unit enum variant (`origin`, `proposed`).
pub(crate) fn enum_name<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(StoreError::Corrupt(format!("{what} is not a name: {other}"))),
        Err(e) => Err(StoreError::Corrupt(format!("{what} does not encode: {e}"))),
    }
}

pub(crate) fn enum_from_name<T: DeserializeOwned>(name: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|e| StoreError::Corrupt(format!("{what} `{name}` is unknown: {e}")))
}

/// What the `vote` column holds: the frozen vote without its ballots and messages, which
/// have their own tables.
#[derive(Serialize)]
struct VoteColumn<'a> {
    spec: &'a VoteSpec,
    place: &'a Place,
    eligible: &'a BTreeSet<MemberId>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    notes: &'a [VoteNote],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    links: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
}

#[derive(Deserialize)]
struct StoredVote {
    spec: VoteSpec,
    place: Place,
    /// Read as a list and collected: a set built at once packs its nodes full, one built
    /// element by element leaves them half empty (it adds up over many open proposals).
    eligible: Vec<MemberId>,
    #[serde(default)]
    notes: Vec<VoteNote>,
    #[serde(default)]
    links: Vec<String>,
    #[serde(default)]
    pending: bool,
}

/// The `vote` column of a proposal: its frozen vote (spec, place, eligible voters).
pub(crate) fn vote_column(p: &Proposal) -> Result<Option<String>, StoreError> {
    match &p.vote {
        Some(v) => Ok(Some(to_json(
            &VoteColumn {
                spec: &v.spec,
                place: &v.place,
                eligible: &v.eligible,
                notes: &v.notes,
                links: &v.links,
                pending: v.pending,
            },
            &format!("proposal {} vote", p.id),
        )?)),
        None => Ok(None),
    }
}

/// What the `vote` column of a proposal holds, without encoding its eligible voters (see
/// [`VoteKey`]).
pub(crate) fn vote_key(p: &Proposal) -> Result<Option<VoteKey>, StoreError> {
    #[derive(Serialize)]
    struct Head<'a> {
        spec: &'a VoteSpec,
        place: &'a Place,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        notes: &'a [VoteNote],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        links: &'a [String],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pending: bool,
    }
    match &p.vote {
        Some(v) => {
            let head = Head { spec: &v.spec, place: &v.place, notes: &v.notes, links: &v.links, pending: v.pending };
            let head = to_json(&head, &format!("proposal {} vote", p.id))?;
            Ok(Some(VoteKey::of(head, &v.eligible)))
        }
        None => Ok(None),
    }
}

/// The `proposals` row of a proposal, its `vote` column left empty (see [`vote_column`]).
pub(crate) fn proposal_row(community: i64, p: &Proposal) -> Result<proposals::Model, StoreError> {
    let what = |col: &str| format!("proposal {} {col}", p.id);
    let process = match &p.process {
        Some(pr) => Some(to_json(pr, &what("process"))?),
        None => None,
    };
    Ok(proposals::Model {
        community_id: community,
        id: p.id.0,
        policy_id: p.policy.0,
        policy_name: p.policy_name.clone(),
        state: enum_name(&p.state, &what("state"))?,
        proposer_id: p.proposer.map(|m| m.0),
        proposer_name: p.proposer_name.clone(),
        action: to_json(&p.action, &what("action"))?,
        vote: None,
        winner: p.winner.clone(),
        data: to_json(&p.data, &what("data"))?,
        process,
        reverted: p.reverted,
        opened_at: ts(p.opened_at),
        closes_at: p.closes_at.map(ts),
        decided_at: p.decided_at.map(ts),
    })
}

/// The columns of a ballot that say what it is (everything but its row id and keys).
#[derive(PartialEq, Eq)]
pub(crate) struct BallotColumns {
    pub choice: String,
    pub platform: String,
    pub account: String,
    pub source: String,
    pub cast_at: DateTime<Utc>,
}

impl BallotColumns {
    pub(crate) fn of(b: &Ballot, what: &str) -> Result<Self, StoreError> {
        Ok(Self {
            choice: to_json(&b.choice, what)?,
            platform: b.account.platform.0.to_string(),
            account: b.account.account.to_string(),
            source: to_json(&b.source, what)?,
            cast_at: ts(b.cast_at),
        })
    }

    pub(crate) fn of_row(row: &ballots::Model) -> Self {
        Self {
            choice: row.choice.clone(),
            platform: row.platform.clone(),
            account: row.account.clone(),
            source: row.source.clone(),
            cast_at: row.cast_at,
        }
    }
}

pub(crate) fn message_ref(row: &vote_messages::Model) -> MessageRef {
    MessageRef {
        platform: PlatformRef(row.platform.as_str().into()),
        channel: row.channel.as_str().into(),
        message: row.message.as_str().into(),
    }
}

/// A proposal from its row, its ballot rows and its vote message rows (in order).
pub(crate) fn decode_proposal(
    row: proposals::Model,
    ballot_rows: Vec<ballots::Model>,
    message_rows: Vec<vote_messages::Model>,
) -> Result<Proposal, StoreError> {
    let what = |col: &str| format!("proposals row (community {}, #{}) column {col}", row.community_id, row.id);
    let vote = match &row.vote {
        None => None,
        Some(text) => {
            let stored: StoredVote = from_json(text, &what("vote"))?;
            // Collected at once (see `StoredVote::eligible`).
            let mut ballots = Vec::with_capacity(ballot_rows.len());
            for b in ballot_rows {
                let bw = |col: &str| format!("ballot of member {} on #{} ({col})", b.member_id, b.proposal_id);
                let choice = from_json(&b.choice, &bw("choice"))?;
                let source = from_json::<BallotSource>(&b.source, &bw("source"))?;
                ballots.push((
                    MemberId(b.member_id),
                    Ballot {
                        choice,
                        account: AccountRef { platform: PlatformRef(b.platform.into()), account: b.account.into() },
                        cast_at: b.cast_at,
                        source,
                    },
                ));
            }
            Some(OpenVote {
                spec: stored.spec,
                place: stored.place,
                eligible: stored.eligible.into_iter().collect(),
                ballots: ballots.into_iter().collect(),
                messages: message_rows.iter().map(message_ref).collect(),
                notes: stored.notes,
                links: stored.links,
                pending: stored.pending,
            })
        }
    };
    let process = match &row.process {
        Some(text) => Some(from_json::<ProcessState>(text, &what("process"))?),
        None => None,
    };
    Ok(Proposal {
        id: ProposalId(row.id),
        policy: PolicyId(row.policy_id),
        action: from_json(&row.action, &what("action"))?,
        proposer: row.proposer_id.map(MemberId),
        state: enum_from_name(&row.state, &what("state"))?,
        opened_at: row.opened_at,
        closes_at: row.closes_at,
        decided_at: row.decided_at,
        vote,
        data: from_json(&row.data, &what("data"))?,
        process,
        reverted: row.reverted,
        winner: row.winner,
        policy_name: row.policy_name,
        proposer_name: row.proposer_name,
    })
}

/// `text` with every NUL character replaced by U+FFFD, for text columns: valid UTF-8, but
/// PostgreSQL refuses it in text.
pub fn text_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}
