//! `polity export`: the governance record of every community (or one), as one JSON document
//! or one flat CSV table, on standard output.
//!
//! The record is what the store keeps about governance: proposals (with their current
//! ballots and, once decided, their decision) and the audit log, oldest line first. Nothing
//! from the platform connections is read, so no token or key can appear. On votes a policy
//! declares `secret`, who voted what is left out: a ballot shows its voter and time but not
//! its choice, and audit lines about it do not name the choice (the tally stays public).
//!
//! The CSV table has one row per record, with the columns
//! `community,record,proposal,at,who,what,detail`:
//!
//! | record | at | who | what | detail |
//! |---|---|---|---|---|
//! | `proposal` | opened | proposer | action kind | `policy "NAME": SUMMARY` |
//! | `ballot` | cast | voter | choice | `ACCOUNT via reaction` or `via command` |
//! | `decision` | decided | policy | outcome | the winner and the tally |
//! | `audit` | logged | the account the line is about | event kind | the line |

use crate::store::{AuditRow, Store};
use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use polity_governance::proposal::BallotSource;
use polity_governance::vote::Tally;
use polity_governance::{AccountRef, Community, CommunityId, Proposal};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::{self, Write};

/// How the record is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One pretty-printed JSON document.
    #[default]
    Json,
    /// One flat table with a header row.
    Csv,
}

/// The whole export.
#[derive(Clone, Debug, Serialize)]
pub struct Export {
    pub communities: Vec<CommunityRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CommunityRecord {
    pub id: i64,
    pub name: String,
    pub proposals: Vec<ProposalRecord>,
    /// Oldest first.
    pub audit: Vec<AuditRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProposalRecord {
    pub id: i64,
    pub policy: String,
    pub state: String,
    pub proposer: String,
    pub action: ActionRecord,
    pub opened_at: DateTime<Utc>,
    pub closes_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub winner: Option<String>,
    /// The count as it stands (final once decided); `None` when the policy holds no vote.
    pub tally: Option<TallyRecord>,
    /// Whether who voted what is hidden.
    pub secret: bool,
    /// Once decided: when, how, and the announcement's text.
    pub decision: Option<DecisionRecord>,
    pub ballots: Vec<BallotRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    pub kind: String,
    pub summary: String,
    pub initiator: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TallyRecord {
    /// Per option, in the vote's order.
    pub options: Vec<OptionCount>,
    pub abstain: u64,
    /// Ballots cast, abstentions included.
    pub cast: u64,
    pub eligible: u64,
    /// As the vote message shows it: `yes 3 · no 0 · abstain 0 (3 of 4 voted)`.
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct OptionCount {
    pub option: String,
    pub votes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecisionRecord {
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BallotRecord {
    pub proposal: i64,
    /// The member's name.
    pub voter: String,
    pub member: i64,
    /// The account the ballot was cast from: `console:alice`.
    pub account: String,
    /// As people read it (`yes`, `Pizza, Tacos`, `Tacos > Pizza`); `secret` on secret votes.
    pub choice: String,
    pub cast_at: DateTime<Utc>,
    /// `reaction` or `command`.
    pub via: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The event's kind: `proposed`, `ballot_cast`, `decided` ...
    pub event: String,
    pub proposal: Option<i64>,
    /// The member (by name) or account the line is about, when it is about one.
    pub who: Option<String>,
    pub text: String,
    /// The event as the engine recorded it.
    pub detail: Value,
}

/// What a secret ballot's choice reads as.
const SECRET: &str = "secret";

/// `LIMIT` for "every audit line": the largest value both SQLite and PostgreSQL accept.
const ALL: u64 = i64::MAX as u64;

/// Reads the record of every community, or of the one named.
///
/// # Errors
/// An unknown community name (the message lists the known ones), or a store failure.
pub async fn collect(store: &Store, only: Option<&str>) -> Result<Export> {
    let all = store.communities().await?;
    let chosen: Vec<(CommunityId, String)> = match only {
        None => all,
        Some(name) => {
            let found: Vec<_> = all.iter().filter(|(_, n)| n == name).cloned().collect();
            if found.is_empty() {
                let known: Vec<String> = all.iter().map(|(_, n)| format!("`{n}`")).collect();
                let known = if known.is_empty() { "there are none yet".to_string() } else { known.join(", ") };
                anyhow::bail!("there is no community named `{name}` (the communities: {known})");
            }
            found
        }
    };
    let mut communities = Vec::with_capacity(chosen.len());
    for (id, name) in chosen {
        let community = store.load_community(id).await.with_context(|| format!("reading the community `{name}`"))?;
        let proposals = store.load_proposals(id, false).await.with_context(|| format!("reading {name}'s proposals"))?;
        let mut audit = store.audit(id, ALL).await.with_context(|| format!("reading {name}'s audit log"))?;
        audit.reverse();
        let secret: Vec<i64> =
            proposals.iter().filter(|p| p.vote.as_ref().is_some_and(|v| v.spec.secret)).map(|p| p.id.0).collect();
        communities.push(CommunityRecord {
            id: id.0,
            name,
            proposals: proposals.iter().map(|p| proposal_record(&community, p)).collect(),
            audit: audit.into_iter().map(|a| audit_record(&community, a, &secret)).collect(),
        });
    }
    Ok(Export { communities })
}

fn who(community: &Community, account: &AccountRef) -> String {
    community.member_by_account(account).map_or_else(|| account.to_string(), |m| m.name.to_string())
}

fn tally_record(p: &Proposal, t: &Tally) -> Option<TallyRecord> {
    let labels = p.vote.as_ref()?.spec.labels();
    let options: Vec<OptionCount> =
        labels.into_iter().zip(&t.counts).map(|(option, votes)| OptionCount { option, votes: *votes }).collect();
    let counts: Vec<String> = options
        .iter()
        .map(|o| format!("{} {}", o.option, o.votes))
        .chain(std::iter::once(format!("abstain {}", t.abstain)))
        .collect();
    let text = format!("{} ({} of {} voted)", counts.join(" · "), t.cast, t.eligible);
    Some(TallyRecord { options, abstain: t.abstain, cast: t.cast, eligible: t.eligible, text })
}

fn proposal_record(community: &Community, p: &Proposal) -> ProposalRecord {
    let secret = p.vote.as_ref().is_some_and(|v| v.spec.secret);
    let ballots = p
        .vote
        .iter()
        .flat_map(|v| v.ballots.iter().map(move |(member, b)| (v, member, b)))
        .map(|(v, member, b)| BallotRecord {
            proposal: p.id.0,
            voter: community.member(*member).map_or_else(|| b.account.to_string(), |m| m.name.to_string()),
            member: member.0,
            account: b.account.to_string(),
            choice: if secret { SECRET.to_string() } else { v.spec.describe(&b.choice) },
            cast_at: b.cast_at,
            via: match b.source {
                BallotSource::Reaction { .. } => "reaction".into(),
                BallotSource::Command => "command".into(),
            },
        })
        .collect();
    let decision = match (p.state.is_open(), p.decided_at) {
        (false, Some(at)) => Some(DecisionRecord { at, outcome: p.state.to_string(), text: p.outcome_text() }),
        _ => None,
    };
    ProposalRecord {
        id: p.id.0,
        policy: p.policy_name.clone(),
        state: p.state.to_string(),
        proposer: p.proposer_name.clone(),
        action: ActionRecord {
            kind: p.action.kind.to_string(),
            summary: p.action.summary(),
            initiator: p.action.initiator.to_string(),
        },
        opened_at: p.opened_at,
        closes_at: p.closes_at,
        decided_at: p.decided_at,
        winner: p.winner.clone(),
        tally: p.tally().and_then(|t| tally_record(p, &t)),
        secret,
        decision,
        ballots,
    }
}

/// Reads the parts of an audit event every kind shares: its kind, its proposal, its account.
/// Read from the JSON rather than the typed event, so lines of kinds added later still export.
fn audit_record(community: &Community, row: AuditRow, secret: &[i64]) -> AuditRecord {
    let mut detail = row.event;
    let event = detail.get("event").and_then(Value::as_str).unwrap_or("unknown").to_string();
    // Governance changes carried out by permission are logged against proposal 0: no proposal.
    let proposal = detail.get("proposal").and_then(Value::as_i64).filter(|p| *p > 0);
    let account = ["initiator", "voter", "by"]
        .iter()
        .find_map(|k| detail.get(*k).and_then(|a| serde_json::from_value::<AccountRef>(a.clone()).ok()));
    let mut text = row.text;
    if proposal.is_some_and(|p| secret.contains(&p))
        && let Some(choice) = detail.as_object_mut().and_then(|o| o.remove("choice"))
    {
        // "console:alice voted yes on #1" -> "console:alice voted on #1"
        if let Some(choice) = choice.as_str() {
            text = text.replacen(&format!(" voted {choice} on "), " voted on ", 1);
        }
    }
    AuditRecord { id: row.id, at: row.at, event, proposal, who: account.map(|a| who(community, &a)), text, detail }
}

/// Writes the export as one pretty JSON document.
///
/// # Errors
/// When writing fails.
pub fn write_json(export: &Export, mut out: impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut out, export)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The CSV table's header.
pub const CSV_HEADER: [&str; 7] = ["community", "record", "proposal", "at", "who", "what", "detail"];

/// The characters that make a spreadsheet read a cell as a formula when it starts with one
/// (OWASP's CSV injection list, with the full-width forms some spreadsheets also accept).
const FORMULA_STARTS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// One CSV field: quoted when it holds a comma, a quote or a line break, quotes doubled. A
/// field that a spreadsheet would run as a formula (a member named `-A1`, an option `=1+1`)
/// is neutralised as OWASP advises: a leading `'` makes it text, and it is quoted.
pub fn csv_field(field: &str) -> Cow<'_, str> {
    if field.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("\"'{}\"", field.replace('"', "\"\"")))
    } else if field.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

fn csv_row(out: &mut impl Write, fields: [&str; 7]) -> io::Result<()> {
    let line: Vec<Cow<'_, str>> = fields.iter().map(|f| csv_field(f)).collect();
    writeln!(out, "{}", line.join(","))
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Writes the export as one flat CSV table (see the module's documentation for the columns).
///
/// # Errors
/// When writing fails.
pub fn write_csv(export: &Export, mut out: impl Write) -> io::Result<()> {
    csv_row(&mut out, CSV_HEADER)?;
    for c in &export.communities {
        for p in &c.proposals {
            let id = p.id.to_string();
            let what = format!("policy \"{}\": {}", p.policy, p.action.summary);
            csv_row(&mut out, [&c.name, "proposal", &id, &time(&p.opened_at), &p.proposer, &p.action.kind, &what])?;
            for b in &p.ballots {
                let how = format!("{} via {}", b.account, b.via);
                csv_row(&mut out, [&c.name, "ballot", &id, &time(&b.cast_at), &b.voter, &b.choice, &how])?;
            }
            if let Some(d) = &p.decision {
                let mut detail = p.tally.as_ref().map(|t| t.text.clone()).unwrap_or_default();
                if let Some(w) = &p.winner {
                    detail = format!("winner {w}; {detail}");
                }
                let detail = detail.trim_end_matches("; ");
                csv_row(&mut out, [&c.name, "decision", &id, &time(&d.at), &p.policy, &d.outcome, detail])?;
            }
        }
        for a in &c.audit {
            let proposal = a.proposal.map(|p| p.to_string()).unwrap_or_default();
            let who = a.who.as_deref().unwrap_or_default();
            csv_row(&mut out, [&c.name, "audit", &proposal, &time(&a.at), who, &a.event, &a.text])?;
        }
    }
    out.flush()
}

/// `polity export`: writes the record to standard output. A reader that stops early (`| head`)
/// is not an error.
///
/// # Errors
/// An unknown community, a store failure, or standard output failing.
pub async fn run(store: &Store, format: Format, only: Option<&str>) -> Result<()> {
    let export = collect(store, only).await?;
    let out = io::BufWriter::new(io::stdout().lock());
    let written = match format {
        Format::Json => write_json(&export, out),
        Format::Csv => write_csv(&export, out),
    };
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing the export to standard output"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain text"), "plain text");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
        let mut out = Vec::new();
        csv_row(&mut out, ["c", "proposal", "1", "t", "alice", "polity.propose", "x, \"y\""]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "c,proposal,1,t,alice,polity.propose,\"x, \"\"y\"\"\"\n");
    }

    #[test]
    fn csv_fields_a_spreadsheet_would_run_are_made_text() {
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("-A1"), "\"'-A1\"");
        assert_eq!(csv_field("+cmd|' /C calc'!A0"), "\"'+cmd|' /C calc'!A0\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("\t=1"), "\"'\t=1\"");
        assert_eq!(csv_field("＝1+1"), "\"'＝1+1\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        // Inside a field the characters are harmless.
        assert_eq!(csv_field("a=b"), "a=b");
        assert_eq!(csv_field("2026-11-22T12:00:00Z"), "2026-11-22T12:00:00Z");
    }

    #[test]
    fn secret_votes_do_not_say_who_chose_what() {
        let community = Community::new(CommunityId(1), "c");
        let row = |proposal: i64| AuditRow {
            id: 7,
            at: Utc::now(),
            text: format!("console:alice voted yes on #{proposal}"),
            event: serde_json::json!({
                "event": "ballot_cast",
                "proposal": proposal,
                "voter": {"platform": "console", "account": "alice"},
                "choice": "yes",
            }),
        };
        let open = audit_record(&community, row(1), &[2]);
        assert_eq!(open.text, "console:alice voted yes on #1");
        assert_eq!(open.event, "ballot_cast");
        assert_eq!(open.proposal, Some(1));
        assert_eq!(open.who.as_deref(), Some("console:alice"));
        let hidden = audit_record(&community, row(2), &[2]);
        assert_eq!(hidden.text, "console:alice voted on #2");
        assert!(hidden.detail.get("choice").is_none(), "{}", hidden.detail);
    }
}
