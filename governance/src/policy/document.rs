//! The policy document: a TOML file with the common cases declared (who votes, where,
//! quorum, threshold, deadline, what to do on pass and fail) and optional script blocks for
//! the rest. Parsing checks everything that can be checked offline and reports each mistake
//! with its line.

use crate::action::{ActionPattern, ActionType};
use crate::duration::parse_duration;
use crate::ids::Place;
use crate::template;
use crate::vote::{Quorum, Threshold, VoteKind, VoteSpec, Voters};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use toml::Spanned;

/// PolicyKit's three kinds of policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Governs actions members take on a platform: they are reverted, voted on, re-executed.
    Platform,
    /// Governs changes to governance itself: roles, permissions, policies, integrations.
    Constitution,
    /// Starts a proposal when an event happens; every matching trigger policy opens its own.
    Trigger,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Platform => "platform",
            Self::Constitution => "constitution",
            Self::Trigger => "trigger",
        })
    }
}

/// Script source with the line of the policy file its first line stands on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSource {
    pub code: String,
    pub line: usize,
}

/// An action a policy carries out on pass or fail. `message` posts `text` where the vote
/// was held (or at `on`); any other name is a platform action called with the parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoAction {
    pub action: String,
    pub params: Map<String, Value>,
}

/// What happens when a proposal passes, or fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub actions: Vec<DoAction>,
    pub script: Option<ScriptSource>,
}

/// A parsed, validated policy document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub kind: PolicyKind,
    pub description: String,
    /// Which actions it covers; empty covers every action of its kind.
    pub actions: Vec<ActionPattern>,
    /// Breaks ties between equally specific policies (higher wins).
    pub priority: i64,
    pub filter: Option<ScriptSource>,
    pub initialize: Option<ScriptSource>,
    pub check: Option<ScriptSource>,
    pub notify: Option<ScriptSource>,
    pub vote: Option<VoteSpec>,
    pub on_pass: Outcome,
    pub on_fail: Outcome,
    /// Announce the outcome where the vote was held (default true).
    pub announce: bool,
}

/// One mistake in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Every mistake found in a policy file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    description: String,
    actions: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    priority: i64,
    filter: Option<Spanned<String>>,
    initialize: Option<Spanned<String>>,
    check: Option<Spanned<String>>,
    notify: Option<Spanned<String>>,
    vote: Option<Spanned<RawVote>>,
    pass: Option<Spanned<RawOutcome>>,
    fail: Option<Spanned<RawOutcome>>,
    announce: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVote {
    on: Option<Spanned<RawOn>>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    options: Option<Vec<String>>,
    voters: Option<Spanned<RawVoters>>,
    jury: Option<Spanned<i64>>,
    exclude_proposer: Option<bool>,
    quorum: Option<Spanned<RawQuorum>>,
    pass: Option<Spanned<String>>,
    closes: Option<Spanned<String>>,
    early: Option<Spanned<bool>>,
    secret: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawOn {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVoters {
    One(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawQuorum {
    Count(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    #[serde(default, rename = "do")]
    actions: Vec<toml::Table>,
    script: Option<Spanned<String>>,
}

struct Lines<'a> {
    source: &'a str,
    /// Where each `\n` is, so a file with thousands of mistakes finds each one's line quickly.
    newlines: Vec<usize>,
    errors: Vec<PolicyError>,
}

impl Lines<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&at| at < offset) + 1
    }

    fn err<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let line = self.line_of(at.span().start);
        self.errors.push(PolicyError { line: Some(line), message: message.into() });
    }

    fn script(&self, s: &Spanned<String>) -> ScriptSource {
        let start = s.span().start;
        let mut line = self.line_of(start);
        let raw = &self.source[start.min(self.source.len())..];
        // A multi-line string that opens with a newline starts its text on the next line.
        if (raw.starts_with("\"\"\"") || raw.starts_with("'''"))
            && raw[3..].trim_start_matches([' ', '\t', '\r']).starts_with('\n')
        {
            line += 1;
        }
        ScriptSource { code: s.get_ref().clone(), line }
    }
}

/// Parses and validates a policy file.
///
/// # Errors
/// Every mistake found, each with its line where it has one.
pub fn parse_policy(source: &str) -> Result<Policy, PolicyErrors> {
    let raw: RawPolicy = toml::from_str(source).map_err(|e| {
        let at = e.span().map(|s| s.start.min(source.len()));
        let line = at.map(|at| source[..at].matches('\n').count() + 1);
        PolicyErrors(vec![PolicyError { line, message: toml_message(source, at, e.message()) }])
    })?;
    let newlines = source.match_indices('\n').map(|(at, _)| at).collect();
    let mut l = Lines { source, newlines, errors: Vec::new() };

    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() || name.len() > 100 {
        l.err(&raw.name, "`name` must be between 1 and 100 characters");
    }
    let kind = match raw.kind.get_ref().as_str() {
        "platform" => PolicyKind::Platform,
        "constitution" => PolicyKind::Constitution,
        "trigger" => PolicyKind::Trigger,
        other => {
            l.err(&raw.kind, format!("`kind = \"{other}\"` is not a kind: use platform, constitution or trigger"));
            PolicyKind::Platform
        }
    };

    let mut actions = Vec::new();
    if let Some(list) = &raw.actions {
        for (i, a) in list.get_ref().iter().enumerate() {
            if a.trim().is_empty() {
                l.err(list, format!("`actions` item {} is blank: write PLATFORM.NAME, PLATFORM.* or *", i + 1));
                continue;
            }
            match ActionPattern::new(a) {
                Ok(p) => {
                    let explicit = ActionType::new(a).ok();
                    match (kind, explicit) {
                        (PolicyKind::Constitution, Some(t)) if !t.is_constitutional() => l.err(
                            list,
                            format!("a constitution policy governs polity.* changes (roles, permissions, policies), not `{a}`"),
                        ),
                        (PolicyKind::Platform, Some(t)) if t.is_constitutional() => l.err(
                            list,
                            format!("`{a}` changes governance itself: govern it with kind = \"constitution\""),
                        ),
                        _ => actions.push(p),
                    }
                }
                Err(e) => l.err(list, e),
            }
        }
    }

    let vote = raw.vote.as_ref().map(|v| parse_vote(&mut l, v, raw.check.is_some()));
    let on_pass = raw.pass.as_ref().map(|o| parse_outcome(&mut l, o, "pass")).unwrap_or_default();
    let on_fail = raw.fail.as_ref().map(|o| parse_outcome(&mut l, o, "fail")).unwrap_or_default();

    let policy = Policy {
        name,
        kind,
        description: raw.description,
        actions,
        priority: raw.priority,
        filter: raw.filter.as_ref().map(|s| l.script(s)),
        initialize: raw.initialize.as_ref().map(|s| l.script(s)),
        check: raw.check.as_ref().map(|s| l.script(s)),
        notify: raw.notify.as_ref().map(|s| l.script(s)),
        vote,
        on_pass,
        on_fail,
        announce: raw.announce.unwrap_or(true),
    };
    if l.errors.is_empty() { Ok(policy) } else { Err(PolicyErrors(l.errors)) }
}

/// Parses the `[vote]` table. `has_check`: the policy has a `check` block, which can decide a
/// proposal whatever its vote says.
fn parse_vote(l: &mut Lines<'_>, raw: &Spanned<RawVote>, has_check: bool) -> VoteSpec {
    let v = raw.get_ref();
    let mut spec = VoteSpec::default();
    if let Some(on) = &v.on {
        let texts: Vec<&String> = match on.get_ref() {
            RawOn::One(text) => vec![text],
            RawOn::Many(texts) => texts.iter().collect(),
        };
        if texts.is_empty() {
            l.err(
                on,
                "`on` is an empty list: name at least one place, e.g. [\"discord:#general\", \"slack:#general\"]",
            );
        } else if texts.len() > MAX_VOTE_PLACES {
            l.err(on, format!("`on` names {} places; a vote is held in at most {MAX_VOTE_PLACES}", texts.len()));
        }
        let mut places: Vec<Place> = Vec::new();
        for text in texts.into_iter().take(MAX_VOTE_PLACES) {
            match place(text) {
                Ok(p) if places.contains(&p) => l.err(on, format!("`on` names {p} twice")),
                Ok(p) => places.push(p),
                Err(e) => l.err(on, e),
            }
        }
        let mut places = places.into_iter();
        spec.on = places.next();
        spec.also = places.collect();
    }
    if let Some(k) = &v.kind {
        spec.kind = match k.get_ref().as_str() {
            "yes-no" => VoteKind::YesNo,
            "choice" => VoteKind::Choice,
            "approval" => VoteKind::Approval,
            "ranked" => VoteKind::Ranked,
            other => {
                l.err(k, format!("`type = \"{other}\"` is not a vote type: use yes-no, choice, approval or ranked"));
                VoteKind::YesNo
            }
        };
    }
    spec.options = v.options.clone().unwrap_or_default();
    if let Some(voters) = &v.voters {
        spec.voters = match voters.get_ref() {
            RawVoters::One(s) if s == "everyone" => Voters::Everyone,
            RawVoters::One(s) => match (s.strip_prefix("role:"), cred_at_least(s)) {
                (Some(role), _) if !role.trim().is_empty() => Voters::Role(role.trim().to_string()),
                (_, Some(Ok(n))) => Voters::Cred(n),
                (_, Some(Err(why))) => {
                    l.err(voters, format!("`voters = \"{s}\"`: {why}"));
                    Voters::Everyone
                }
                _ => {
                    l.err(
                        voters,
                        format!(
                            "`voters = \"{s}\"`: use \"everyone\", \"role:NAME\", \"cred >= N\" or a list of member names"
                        ),
                    );
                    Voters::Everyone
                }
            },
            RawVoters::List(names) if names.is_empty() => {
                l.err(voters, "`voters` is an empty list: nobody could vote");
                Voters::Everyone
            }
            RawVoters::List(names) => Voters::Members(voter_names(l, voters, names)),
        };
    }
    if let Some(j) = &v.jury {
        match u32::try_from(*j.get_ref()) {
            Ok(n) if n > 0 => spec.jury = Some(n),
            _ => l.err(j, "`jury` is the number of members drawn to decide: a whole number of at least 1"),
        }
    }
    spec.exclude_proposer = v.exclude_proposer.unwrap_or(false);
    if let Some(q) = &v.quorum {
        match q.get_ref() {
            RawQuorum::Count(n) => match u32::try_from(*n) {
                Ok(n) => spec.quorum = Quorum::Count(n),
                Err(_) => l.err(q, format!("`quorum = {n}` must be a count of at least 0, or a share like \"40%\"")),
            },
            RawQuorum::Text(s) => match s.strip_suffix('%').map(|p| p.trim().parse::<u32>()) {
                Some(Ok(p)) if p <= 100 => spec.quorum = Quorum::Percent(p),
                _ => l.err(q, format!("`quorum = \"{s}\"` must be a count like 3 or a share like \"40%\"")),
            },
        }
    }
    if let Some(p) = &v.pass {
        match parse_threshold(p.get_ref()) {
            Ok(t) => spec.pass = t,
            Err(e) => l.err(p, e),
        }
    } else if spec.kind != VoteKind::YesNo && spec.kind != VoteKind::Ranked {
        spec.pass = Threshold::Plurality;
    }
    if let Some(c) = &v.closes {
        match parse_duration(c.get_ref()) {
            Ok(d) if d.num_seconds() > 0 => spec.closes = Some(d),
            Ok(_) => l.err(c, "`closes` must be longer than zero"),
            Err(e) => l.err(c, e),
        }
    }
    spec.early = v.early.as_ref().is_none_or(|e| *e.get_ref());
    spec.secret = v.secret.unwrap_or(false);
    // A blank option is named here; the spec's own check would quote it as ``.
    let blank = spec.options.iter().position(|o| o.trim().is_empty()).filter(|_| spec.kind != VoteKind::YesNo);
    if let Some(i) = blank {
        l.err(raw, format!("[vote]: `options` item {} is blank: give each option a name", i + 1));
    } else if let Err(e) = spec.validate() {
        l.err(raw, format!("[vote]: {e}"));
    }
    check_decidable(l, v, &spec, has_check);
    spec
}

/// The names of a `voters` list, trimmed. A blank name, or a name listed twice (compared as
/// the engine compares a list with members' names: ignoring ASCII case), is a mistake.
fn voter_names(l: &mut Lines<'_>, at: &Spanned<RawVoters>, raw: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(raw.len());
    // Where each name (ASCII-lowercased) is first listed: one look-up per name, so a list of
    // thousands is checked at once rather than in quadratic time.
    let mut first_at: HashMap<String, usize> = HashMap::with_capacity(raw.len());
    for (i, name) in raw.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            l.err(at, format!("`voters` item {} is blank: list members by name, e.g. [\"alice\", \"bob\"]", i + 1));
            continue;
        }
        let first = *first_at.entry(name.to_ascii_lowercase()).or_insert(i);
        if first < i {
            let earlier = raw[first].trim();
            let spelling = if earlier == name {
                String::new()
            } else {
                format!(", as `{earlier}` and `{name}`: names are compared ignoring case")
            };
            l.err(
                at,
                format!(
                    "`voters` lists `{earlier}` twice (items {} and {}{spelling}): list each voter once",
                    first + 1,
                    i + 1
                ),
            );
            continue;
        }
        names.push(name.to_string());
    }
    names
}

/// Refuses the combinations that could never be decided: a vote that may only end at a
/// deadline it does not have, a quorum more ballots than the listed voters or the jury can
/// cast, a jury bigger than the list it is drawn from.
fn check_decidable(l: &mut Lines<'_>, v: &RawVote, spec: &VoteSpec, has_check: bool) {
    // Without `closes` a vote ends only early (once its outcome is certain, at the latest when
    // every voter has voted) or by its check block; `early = false` leaves only the check.
    // A no-objection vote without `closes` is already refused for that.
    if let Some(early) = &v.early
        && !*early.get_ref()
        && v.closes.is_none()
        && !has_check
        && spec.pass != Threshold::NoObjection
    {
        l.err(
            early,
            "`early = false` with no `closes`: the vote may only be decided at a deadline it does not have, so it could never end; give it `closes` (e.g. \"72h\") or remove `early = false`",
        );
    }
    let listed = match &spec.voters {
        Voters::Members(names) => Some(names.len()),
        Voters::Everyone | Voters::Role(_) | Voters::Cred(_) => None,
    };
    if let (Some(listed), Some(jury), Some(j)) = (listed, spec.jury, &v.jury)
        && jury as usize > listed
    {
        l.err(
            j,
            format!("`jury = {jury}` draws more members than `voters` lists ({listed}): draw at most {listed}, or list more voters"),
        );
    }
    if let (Quorum::Count(needed), Some(q)) = (spec.quorum, &v.quorum) {
        let needed = needed as usize;
        let jury = spec.jury.map(|j| j as usize);
        let why = match (listed, jury) {
            (Some(n), j) if needed > n && j.is_none_or(|j| n <= j) => {
                Some(format!("`voters` lists only {n} {}", plural(n, "member", "members")))
            }
            (_, Some(j)) if needed > j => {
                Some(format!("a jury of {j} casts at most {j} {}", plural(j, "ballot", "ballots")))
            }
            _ => None,
        };
        if let Some(why) = why {
            let most = listed.into_iter().chain(jury).min().unwrap_or(0);
            l.err(
                q,
                format!(
                    "`quorum = {needed}` can never be met: {why}, so the vote could never be decided; lower it to at most {most}, or use a share like \"50%\""
                ),
            );
        }
    }
    if let (Threshold::Yeses(n), Some(p)) = (spec.pass, &v.pass) {
        let needed = n as usize;
        let most = listed.into_iter().chain(spec.jury.map(|j| j as usize)).min();
        if let Some(most) = most.filter(|most| needed > *most) {
            l.err(
                p,
                format!(
                    "`pass = \"{n} yes\"` can never be met: at most {most} {} may vote, so it could never pass; ask for at most {most} yes",
                    plural(most, "member", "members")
                ),
            );
        }
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Parses a threshold: `majority`, `plurality`, `unanimous`, `no-objection`, a fraction such
/// as `2/3`, a share such as `60%`, or a number of yes ballots such as `2 yes`.
///
/// # Errors
/// Lists the accepted forms.
pub fn parse_threshold(text: &str) -> Result<Threshold, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "`pass = \"{t}\"` is not a threshold: use majority, plurality, unanimous, no-objection, a fraction like 2/3, a share like 60%, or a number of yes ballots like \"2 yes\""
        )
    };
    match t {
        "majority" => return Ok(Threshold::Majority),
        "plurality" => return Ok(Threshold::Plurality),
        "unanimous" => return Ok(Threshold::Unanimous),
        "no-objection" | "consensus" => return Ok(Threshold::NoObjection),
        _ => {}
    }
    // "2 yes", "at least 2 yes".
    let words: Vec<&str> = t.split_whitespace().collect();
    if let [n, "yes"] | ["at", "least", n, "yes"] = words.as_slice() {
        return n.parse::<u32>().map(Threshold::Yeses).map_err(|_| bad());
    }
    let (num, den) = if let Some(p) = t.strip_suffix('%') {
        (p.trim().parse::<u32>().map_err(|_| bad())?, 100)
    } else {
        let (n, d) = t.split_once('/').ok_or_else(bad)?;
        (n.trim().parse::<u32>().map_err(|_| bad())?, d.trim().parse::<u32>().map_err(|_| bad())?)
    };
    if num == 0 || den == 0 || num > den {
        return Err(format!("`pass = \"{t}\"` must be a share between 0 and 1 (e.g. 2/3)"));
    }
    Ok(Threshold::Fraction { num, den })
}

fn parse_outcome(l: &mut Lines<'_>, raw: &Spanned<RawOutcome>, which: &str) -> Outcome {
    let mut out = Outcome { actions: Vec::new(), script: raw.get_ref().script.as_ref().map(|s| l.script(s)) };
    for (i, table) in raw.get_ref().actions.iter().enumerate() {
        let mut params: Map<String, Value> = match serde_json::to_value(table) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let name = match params.remove("action") {
            Some(Value::String(s)) => s,
            _ => {
                l.err(
                    raw,
                    format!(
                        "[{which}] do item {}: every item needs `action = \"PLATFORM.NAME\"` (or \"message\")",
                        i + 1
                    ),
                );
                continue;
            }
        };
        if name == "message" {
            if !matches!(params.get("text"), Some(Value::String(_))) {
                l.err(raw, format!("[{which}] do item {}: a message needs `text`", i + 1));
            }
            if let Some(on) = params.get("on")
                && let Err(e) = on.as_str().ok_or_else(|| "`on` must be text".to_string()).and_then(place)
            {
                l.err(raw, format!("[{which}] do item {}: {e}", i + 1));
            }
        } else if name.trim().is_empty() {
            l.err(raw, format!("[{which}] do item {}: `action` is blank: write PLATFORM.NAME or \"message\"", i + 1));
        } else if let Err(e) = ActionType::new(&name) {
            l.err(raw, format!("[{which}] do item {}: {e}", i + 1));
        }
        for v in params.values() {
            check_placeholders(v).unwrap_or_else(|e| l.err(raw, format!("[{which}] do item {}: {e}", i + 1)));
        }
        out.actions.push(DoAction { action: name, params });
    }
    out
}

/// Where a vote or message goes (`discord:#finance`).
/// The most places one vote is held in at once.
pub const MAX_VOTE_PLACES: usize = 5;

fn place(text: &str) -> Result<Place, String> {
    if text.trim().is_empty() {
        return Err("`on` is blank: write PLATFORM:CHANNEL, e.g. discord:#finance".into());
    }
    Place::parse(text)
}

/// toml's message in a policy author's words. A value of the wrong type names its key (when
/// the error points at `key = value`), what it must be and what it is; no Rust type names,
/// and no escaped copy of the value: the line number shows it.
fn toml_message(source: &str, at: Option<usize>, message: &str) -> String {
    let message = message.trim();
    if message.contains("enum RawVoters") {
        return "`voters` must be \"everyone\", \"role:NAME\" or a list of member names".into();
    }
    if message.contains("enum RawQuorum") {
        return "`quorum` must be a count like 3 or a share like \"40%\"".into();
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid length "))
        .and_then(|m| m.rsplit_once(", expected "));
    let Some((found, expected)) = mismatch else {
        return message.to_string();
    };
    if let Some((number, _)) = found.strip_prefix("integer `").and_then(|n| n.split_once("` as i128")) {
        return format!("{number} is out of range: whole numbers go from {} to {}", i64::MIN, i64::MAX);
    }
    let expected = match expected {
        "a string" => "text in quotes",
        "a boolean" => "true or false",
        "i64" => "a whole number",
        "a sequence" => "a list, like [\"a\", \"b\"]",
        "a map" => "a table",
        e if e.starts_with("struct RawVote") => "a table: [vote]",
        e if e.starts_with("struct RawOutcome") => "a table: [pass] or [fail], with `do` or `script`",
        e if e.starts_with("struct ") => "a table",
        other => other,
    };
    let found = match found.split([' ', ',']).next().unwrap_or_default() {
        "string" => "text",
        "integer" => "a whole number",
        "floating" => "a decimal number",
        "boolean" => "true or false",
        "sequence" => "a list",
        "map" => "a table",
        n if n.starts_with(|c: char| c.is_ascii_digit()) => "a list",
        _ => "another kind of value",
    };
    let before = at.map_or("", |at| source[..at].trim_end());
    if before.ends_with(['[', ',']) {
        return format!("each item must be {expected}, not {found}");
    }
    match key_before(before) {
        Some(key) => format!("`{key}` must be {expected}, not {found}"),
        None => format!("this must be {expected}, not {found}"),
    }
}

/// The key of `key =` at the end of `before`.
fn key_before(before: &str) -> Option<&str> {
    let key = before.strip_suffix('=')?.trim_end().rsplit(['{', ',', '[', ' ', '\t', '\n']).next()?;
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

fn check_placeholders(v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) => template::placeholders(s).map(|_| ()),
        Value::Array(items) => items.iter().try_for_each(check_placeholders),
        Value::Object(m) => m.values().try_for_each(check_placeholders),
        _ => Ok(()),
    }
}

/// `cred >= N` (spaces optional, N a whole number): `None` for text that is not about cred.
fn cred_at_least(text: &str) -> Option<Result<u64, String>> {
    let rest = text.trim().strip_prefix("cred")?.trim_start();
    let Some(n) = rest.strip_prefix(">=") else {
        return Some(Err("write \"cred >= N\": members with at least N cred on SourceCred may vote".into()));
    };
    Some(
        n.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{}` is not a whole amount of cred: write \"cred >= 100\"", n.trim())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPENSE: &str = r#"
name = "Big expenses need a vote"
kind = "trigger"
actions = ["opencollective.expense_created"]
filter = "action.amount > 50000"
[vote]
on = "discord:#finance"
type = "yes-no"
voters = "role:member"
exclude_proposer = true
quorum = 3
pass = "2/3"
closes = "72h"
[pass]
do = [{ action = "opencollective.process_expense", expense_id = "{{action.id}}", decision = "APPROVE" }]
[fail]
do = [{ action = "message", text = "Rejected: {{action.description}}" }]
"#;

    #[test]
    fn a_vote_may_be_held_in_several_places() {
        let both = EXPENSE.replace(r#"on = "discord:#finance""#, r#"on = ["discord:#finance", "slack:#finance"]"#);
        let v = parse_policy(&both).unwrap().vote.unwrap();
        assert_eq!(v.on, Some(Place::new("discord", "#finance")));
        assert_eq!(v.also, [Place::new("slack", "#finance")]);
        for (on, says) in [
            ("[]", "empty list"),
            (r#"["discord:#a", "discord:#a"]"#, "twice"),
            (r#"["discord:#a", "nowhere"]"#, "PLATFORM:CHANNEL"),
            (r#"["a:#1", "b:#2", "c:#3", "d:#4", "e:#5", "f:#6"]"#, "at most 5"),
        ] {
            let bad = EXPENSE.replace(r#"on = "discord:#finance""#, &format!("on = {on}"));
            let errors = parse_policy(&bad).unwrap_err().to_string();
            assert!(errors.contains(says), "{on}: {errors}");
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let p = parse_policy(EXPENSE).unwrap();
        assert_eq!(p.kind, PolicyKind::Trigger);
        assert_eq!(p.filter.as_ref().unwrap().line, 5);
        let v = p.vote.unwrap();
        assert_eq!(v.on, Some(Place::new("discord", "#finance")));
        assert_eq!(v.voters, Voters::Role("member".into()));
        assert_eq!(v.quorum, Quorum::Count(3));
        assert_eq!(v.pass, Threshold::Fraction { num: 2, den: 3 });
        assert_eq!(v.closes.unwrap().num_hours(), 72);
        assert!(v.exclude_proposer);
        assert_eq!(p.on_pass.actions[0].action, "opencollective.process_expense");
        assert_eq!(p.on_pass.actions[0].params["decision"], "APPROVE");
        assert_eq!(p.on_fail.actions[0].action, "message");
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let src = "name = \"x\"\nkind = \"platfrom\"\nactions = [\"Discord\"]\n[vote]\nquorum = \"many\"\npass = \"3/2\"\nclosed = \"1h\"\n";
        let errs = parse_policy(src).unwrap_err();
        // Unknown keys are rejected by the TOML layer first.
        assert_eq!(errs.0.len(), 1);
        assert!(errs.0[0].message.contains("closed"), "{errs}");
        assert_eq!(errs.0[0].line, Some(7));

        let src =
            "name = \"x\"\nkind = \"platfrom\"\nactions = [\"Discord\"]\n[vote]\nquorum = \"many\"\npass = \"3/2\"\n";
        let errs = parse_policy(src).unwrap_err().to_string();
        assert!(errs.contains("line 2: `kind = \"platfrom\"` is not a kind"), "{errs}");
        assert!(errs.contains("line 3: `Discord` is not an action name"), "{errs}");
        assert!(errs.contains("line 5: `quorum = \"many\"`"), "{errs}");
        assert!(errs.contains("line 6: `pass = \"3/2\"` must be a share between 0 and 1"), "{errs}");
    }

    #[test]
    fn syntax_errors_have_lines() {
        let errs = parse_policy("name = \"x\"\nkind = \n").unwrap_err();
        assert_eq!(errs.0[0].line, Some(2));
    }

    #[test]
    fn vote_combinations_are_checked() {
        let src = "name = \"x\"\nkind = \"platform\"\n[vote]\ntype = \"choice\"\noptions = [\"a\"]\n";
        assert!(
            parse_policy(src)
                .unwrap_err()
                .to_string()
                .contains("line 3: [vote]: a choice vote needs at least two `options`")
        );
        let src = "name = \"x\"\nkind = \"platform\"\n[vote]\npass = \"no-objection\"\n";
        assert!(parse_policy(src).unwrap_err().to_string().contains("needs `closes`"));
        let src = "name = \"x\"\nkind = \"platform\"\n[vote]\nvoters = \"admins\"\n";
        assert!(parse_policy(src).unwrap_err().to_string().contains("role:NAME"));
    }

    #[test]
    fn kinds_and_actions_must_agree() {
        let src = "name = \"x\"\nkind = \"constitution\"\nactions = [\"discord.rename_channel\"]\n";
        assert!(parse_policy(src).unwrap_err().to_string().contains("constitution policy governs polity.*"));
        let src = "name = \"x\"\nkind = \"platform\"\nactions = [\"polity.role_grant\"]\n";
        assert!(parse_policy(src).unwrap_err().to_string().contains("changes governance itself"));
    }

    #[test]
    fn do_actions_are_checked() {
        let src = "name = \"x\"\nkind = \"trigger\"\n[pass]\ndo = [{ text = \"hi\" }, { action = \"message\" }, { action = \"Bad\" }, { action = \"message\", text = \"{{secret.x}}\" }]\n";
        let e = parse_policy(src).unwrap_err().to_string();
        assert!(e.contains("do item 1: every item needs `action"), "{e}");
        assert!(e.contains("do item 2: a message needs `text`"), "{e}");
        assert!(e.contains("do item 3: `Bad` is not an action name"), "{e}");
        assert!(e.contains("do item 4: `{{secret.x}}` is not a placeholder"), "{e}");
    }

    #[test]
    fn script_lines_point_into_the_file() {
        let src = "name = \"x\"\nkind = \"platform\"\ncheck = \"\"\"\nlet a = 1;\na\n\"\"\"\n";
        let p = parse_policy(src).unwrap();
        assert_eq!(p.check.unwrap().line, 4);
    }

    /// A platform policy with this `[vote]` table (its first key on line 4).
    fn with_vote(vote: &str) -> String {
        format!("name = \"x\"\nkind = \"platform\"\n[vote]\n{vote}")
    }

    /// The one mistake `source` has, as `policy check` shows it.
    fn only_error(source: &str) -> String {
        let errs = parse_policy(source).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        errs.to_string()
    }

    #[test]
    fn a_vote_that_may_only_end_at_a_deadline_it_lacks_is_refused() {
        let never = "`early = false` with no `closes`: the vote may only be decided at a deadline it does not have, so it could never end; give it `closes` (e.g. \"72h\") or remove `early = false`";
        for pass in ["unanimous", "majority", "2/3"] {
            let src = with_vote(&format!("pass = \"{pass}\"\nearly = false\n"));
            assert_eq!(only_error(&src), format!("line 5: {never}"));
        }
        let src = with_vote("type = \"ranked\"\noptions = [\"a\", \"b\"]\nearly = false\n");
        assert_eq!(only_error(&src), format!("line 6: {never}"));
        // A no-objection vote without `closes` is refused once, for that.
        let src = with_vote("pass = \"no-objection\"\nearly = false\n");
        assert!(only_error(&src).contains("needs `closes`"));
    }

    #[test]
    fn a_vote_with_a_deadline_an_early_decision_or_a_check_can_end() {
        let v =
            parse_policy(&with_vote("pass = \"unanimous\"\nearly = false\ncloses = \"72h\"\n")).unwrap().vote.unwrap();
        assert!(!v.early);
        let v = parse_policy(&with_vote("pass = \"unanimous\"\n")).unwrap().vote.unwrap();
        assert!(v.early && v.closes.is_none());
        // The check block decides; the vote is advice it reads.
        let src = "name = \"x\"\nkind = \"platform\"\ncheck = \"if proposal.tally.yes > 2 { \\\"passed\\\" }\"\n[vote]\nearly = false\n";
        assert!(!parse_policy(src).unwrap().vote.unwrap().early);
    }

    #[test]
    fn a_quorum_the_listed_voters_or_the_jury_cannot_reach_is_refused() {
        let src = with_vote("voters = [\"alice\", \"bob\"]\nquorum = 3\n");
        assert_eq!(
            only_error(&src),
            "line 5: `quorum = 3` can never be met: `voters` lists only 2 members, so the vote could never be decided; lower it to at most 2, or use a share like \"50%\""
        );
        let src = with_vote("voters = [\"alice\"]\nquorum = 2\n");
        assert!(only_error(&src).contains("`voters` lists only 1 member, so"), "{src}");
        let src = with_vote("jury = 3\nquorum = 4\n");
        assert_eq!(
            only_error(&src),
            "line 5: `quorum = 4` can never be met: a jury of 3 casts at most 3 ballots, so the vote could never be decided; lower it to at most 3, or use a share like \"50%\""
        );
        let src = with_vote("voters = [\"a\", \"b\", \"c\", \"d\"]\njury = 2\nquorum = 3\n");
        assert!(
            only_error(&src).starts_with("line 6: `quorum = 3` can never be met: a jury of 2 casts at most 2 ballots")
        );
    }

    #[test]
    fn n_yes_is_a_yes_no_threshold_the_voters_can_reach() {
        let v =
            parse_policy(&with_vote("voters = [\"ann\", \"bo\", \"cy\"]\npass = \"2 yes\"\n")).unwrap().vote.unwrap();
        assert_eq!(v.pass, Threshold::Yeses(2));
        let src = with_vote("voters = [\"ann\", \"bo\"]\npass = \"3 yes\"\n");
        assert_eq!(
            only_error(&src),
            "line 5: `pass = \"3 yes\"` can never be met: at most 2 members may vote, so it could never pass; ask for at most 2 yes"
        );
        assert!(only_error(&with_vote("pass = \"0 yes\"\n")).contains("at least 1 yes"));
        let src = with_vote("type = \"choice\"\noptions = [\"red\", \"blue\"]\npass = \"2 yes\"\n");
        assert!(only_error(&src).contains("`2 yes` applies to yes-no votes only"), "{}", only_error(&src));
    }

    #[test]
    fn a_quorum_every_listed_voter_or_a_share_can_reach_is_accepted() {
        let v = parse_policy(&with_vote("voters = [\"alice\", \"bob\"]\nquorum = 2\n")).unwrap().vote.unwrap();
        assert_eq!(v.quorum, Quorum::Count(2));
        let v = parse_policy(&with_vote("voters = [\"alice\", \"bob\"]\nquorum = \"100%\"\n")).unwrap().vote.unwrap();
        assert_eq!(v.quorum, Quorum::Percent(100));
        let v = parse_policy(&with_vote("jury = 3\nquorum = 3\n")).unwrap().vote.unwrap();
        assert_eq!((v.jury, v.quorum), (Some(3), Quorum::Count(3)));
        // Who else may vote on a role is not known offline.
        let v = parse_policy(&with_vote("voters = \"role:member\"\nquorum = 30\n")).unwrap().vote.unwrap();
        assert_eq!(v.quorum, Quorum::Count(30));
    }

    #[test]
    fn a_jury_bigger_than_the_list_it_is_drawn_from_is_refused() {
        let src = with_vote("voters = [\"alice\", \"bob\"]\njury = 3\n");
        assert_eq!(
            only_error(&src),
            "line 5: `jury = 3` draws more members than `voters` lists (2): draw at most 2, or list more voters"
        );
        let v = parse_policy(&with_vote("voters = [\"alice\", \"bob\"]\njury = 2\n")).unwrap().vote.unwrap();
        assert_eq!(v.jury, Some(2));
    }

    #[test]
    fn blank_voter_names_are_refused() {
        let src = with_vote("voters = [\"alice\", \"\"]\n");
        assert_eq!(
            only_error(&src),
            "line 4: `voters` item 2 is blank: list members by name, e.g. [\"alice\", \"bob\"]"
        );
        let src = with_vote("pass = \"majority\"\nvoters = [\"  \", \"bob\"]\n");
        assert_eq!(
            only_error(&src),
            "line 5: `voters` item 1 is blank: list members by name, e.g. [\"alice\", \"bob\"]"
        );
    }

    #[test]
    fn a_voter_listed_twice_is_refused_by_name() {
        let src = with_vote("voters = [\"alice\", \"bob\", \"alice\"]\n");
        assert_eq!(only_error(&src), "line 4: `voters` lists `alice` twice (items 1 and 3): list each voter once");
        // The engine matches names ignoring case (and the list's surrounding spaces).
        let src = with_vote("voters = [\"Alice\", \" alice \"]\n");
        assert_eq!(
            only_error(&src),
            "line 4: `voters` lists `Alice` twice (items 1 and 2, as `Alice` and `alice`: names are compared ignoring case): list each voter once"
        );
    }

    #[test]
    fn a_long_voters_list_is_checked_in_one_pass() {
        // Found while writing tests/fuzz.rs: each name was compared with every other, so 20 000
        // voters (a 280 KiB file) took 25 s to check.
        let mut names: Vec<String> = (0..20_000).map(|i| format!("\"member{i}\"")).collect();
        names.push("\"MEMBER7\"".into());
        let src = with_vote(&format!("voters = [{}]\n", names.join(", ")));
        assert_eq!(
            only_error(&src),
            "line 4: `voters` lists `member7` twice (items 8 and 20001, as `member7` and `MEMBER7`: names are compared ignoring case): list each voter once"
        );
    }

    #[test]
    fn voter_names_are_kept_trimmed_and_distinct() {
        let v = parse_policy(&with_vote("voters = [\" alice\", \"Bob\", \"carol\"]\n")).unwrap().vote.unwrap();
        assert_eq!(v.voters, Voters::Members(vec!["alice".into(), "Bob".into(), "carol".into()]));
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key_and_both_types() {
        // Found by tests/fuzz.rs: toml's messages named Rust types ("expected struct
        // RawOutcome", "untagged enum RawVoters") and showed strings escaped ("\u{16af0}").
        let err = |extra: &str| only_error(&format!("name = \"x\"\nkind = \"platform\"\n{extra}\n"));
        assert_eq!(
            err("pass = \"\u{16af0}\""),
            "line 3: `pass` must be a table: [pass] or [fail], with `do` or `script`, not text"
        );
        assert_eq!(err("priority = \"high\""), "line 3: `priority` must be a whole number, not text");
        assert_eq!(err("[vote]\njury = 1.5"), "line 4: `jury` must be a whole number, not a decimal number");
        assert_eq!(err("actions = [1]"), "line 3: each item must be text in quotes, not a whole number");
        assert_eq!(
            err("[vote]\nvoters = 3"),
            "line 4: `voters` must be \"everyone\", \"role:NAME\" or a list of member names"
        );
        assert_eq!(err("[vote]\nquorum = true"), "line 4: `quorum` must be a count like 3 or a share like \"40%\"");
        assert_eq!(
            err("[pass]\ndo = [{ action = \"x.y\", n = 99999999999999999999999 }]"),
            "line 4: 99999999999999999999999 is out of range: whole numbers go from -9223372036854775808 to 9223372036854775807"
        );
    }

    #[test]
    fn blank_names_are_called_blank() {
        // Found by tests/fuzz.rs: these were refused as "`` is not an action name" (or a place,
        // or an option).
        let err = |extra: &str| only_error(&format!("name = \"x\"\nkind = \"platform\"\n{extra}\n"));
        assert_eq!(err("actions = [\"\"]"), "line 3: `actions` item 1 is blank: write PLATFORM.NAME, PLATFORM.* or *");
        assert_eq!(err("[vote]\non = \" \""), "line 4: `on` is blank: write PLATFORM:CHANNEL, e.g. discord:#finance");
        assert_eq!(
            err("[vote]\ntype = \"choice\"\noptions = [\"a\", \"\"]"),
            "line 3: [vote]: `options` item 2 is blank: give each option a name"
        );
        assert_eq!(
            err("[pass]\ndo = [{ action = \"\" }]"),
            "line 3: [pass] do item 1: `action` is blank: write PLATFORM.NAME or \"message\""
        );
        assert_eq!(
            err("[fail]\ndo = [{ action = \"message\", text = \"no\", on = \"\" }]"),
            "line 3: [fail] do item 1: `on` is blank: write PLATFORM:CHANNEL, e.g. discord:#finance"
        );
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(parse_threshold("60%"), Ok(Threshold::Fraction { num: 60, den: 100 }));
        assert_eq!(parse_threshold("2 yes"), Ok(Threshold::Yeses(2)));
        assert_eq!(parse_threshold("at least 3 yes"), Ok(Threshold::Yeses(3)));
        assert!(parse_threshold("two yes").unwrap_err().contains("like \"2 yes\""));
        assert_eq!(parse_threshold("consensus"), Ok(Threshold::NoObjection));
        assert!(parse_threshold("most").is_err());
        assert!(parse_threshold("0/3").is_err());
    }
}
