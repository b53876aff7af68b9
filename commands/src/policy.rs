//! `/policy install|list|show|history|remove`.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports};
use crate::reply::Reply;
use polity_governance::PolicyId;
use polity_governance::change::Change;
use polity_governance::platform::ActionInfo;
use polity_governance::policy::CompiledPolicy;
use polity_governance::script::Sandbox;

pub async fn install(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    // On the console and in Slack text a policy arrives on one line, with `\n` between lines.
    let source = args.text("toml").replace("\\n", "\n");
    // `/policy install Two words name = "Two words" ...`: the name's other words were taken
    // for the start of the TOML.
    let named = polity_governance::change::policy_name(&source);
    // The full name is the typed one, a space, and what the TOML starts with.
    let split = |full: &String| {
        full.get(..name.len()).is_some_and(|head| head.eq_ignore_ascii_case(name))
            && full
                .get(name.len()..)
                .and_then(|rest| rest.strip_prefix(' '))
                .is_some_and(|rest| !rest.is_empty() && source.trim_start().starts_with(rest))
    };
    if let Some(full) = named.filter(split) {
        return Ok(Reply::private(format!(
            "A policy name with spaces goes in quotes when something follows it: `/policy install \"{full}\" name = ...`."
        )));
    }
    let compiled = match CompiledPolicy::compile(PolicyId(0), &source, &Sandbox::default()) {
        Ok(p) => p,
        Err(e) => return Ok(Reply::private(format!("The policy is not valid:\n{e}"))),
    };
    if !compiled.name().eq_ignore_ascii_case(name) {
        return Ok(Reply::private(format!(
            "The TOML names the policy \"{}\", not \"{name}\": use the same name in both.",
            compiled.name()
        )));
    }
    let found = check_names(&compiled, &ports.actions(), &ports.declared_actions());
    if !found.errors.is_empty() {
        return Ok(Reply::private(format!("The policy is not valid:\n{}", found.errors.join("\n"))));
    }
    // Voters by cred need a connection of a platform that tells cred (SourceCred).
    let by_cred =
        compiled.policy.vote.as_ref().is_some_and(|v| matches!(v.voters, polity_governance::vote::Voters::Cred(_)));
    let cred_platforms: Vec<_> = ports.platforms().into_iter().filter(|p| p.cred).collect();
    let no_cred =
        by_cred && !ports.connections().await?.iter().any(|c| cred_platforms.iter().any(|p| p.name == c.platform));
    let sourcecred_missing = no_cred.then(|| match cred_platforms.first() {
        Some(p) => format!(
            "this community has no {} connection, so nobody's cred is known: its votes wait for their voters until one is added (`/integration add {} NAME{}`)",
            p.title,
            p.name,
            p.settings.first().map(|s| format!(" {}=...", s.name)).unwrap_or_default()
        ),
        None => "this Polity has no platform that tells cred, so nobody's cred is known: its votes wait for their voters".to_string(),
    });
    let warnings: Vec<String> = found
        .warnings
        .into_iter()
        .chain(check_voters(&compiled, ports.community()))
        .chain(sourcecred_missing)
        .map(|w| format!("\nWarning: {w}"))
        .collect();
    let replaces = ports.policies().iter().any(|p| p.name().eq_ignore_ascii_case(name));
    let mut done = if replaces {
        format!("A new version of \"{}\" is installed (`/policy history` keeps the old ones).", compiled.name())
    } else {
        format!("\"{}\" is installed: a {} policy.", compiled.name(), compiled.policy.kind)
    };
    done.push_str(&warnings.concat());
    let what = format!("install the policy \"{}\"", compiled.name());
    governed::request(ports, inv, Change::PolicyInstall { source }, done, what).await
}

/// What a check of a policy's names against what exists found: mistakes that refuse it, and
/// warnings that do not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks the action names a policy governs or calls (`actions`, `do`) against the platforms'
/// declared actions: a name unknown to a platform `connected` here is an error; one unknown to
/// a platform only `declared` by this build (not connected here) is a warning, as is a
/// platform this build does not have. Patterns with `*` are checked for their platform only.
pub fn check_names(policy: &CompiledPolicy, connected: &[ActionInfo], declared: &[ActionInfo]) -> Findings {
    let mut found = Findings::default();
    let governed = policy.policy.actions.iter().map(|p| p.as_str().to_string());
    let called = policy.policy.on_pass.actions.iter().chain(&policy.policy.on_fail.actions).map(|d| d.action.clone());
    let mut seen = std::collections::BTreeSet::new();
    for name in governed.chain(called) {
        // `message` posts where the vote was held: no platform's action.
        if name == "message" || name == "*" || !seen.insert(name.clone()) {
            continue;
        }
        let platform = name.split_once('.').map_or(name.as_str(), |(p, _)| p);
        let of = |infos: &[ActionInfo]| -> Vec<String> {
            infos
                .iter()
                .filter(|a| a.name.split_once('.').is_some_and(|(p, _)| p == platform))
                .map(|a| a.name.clone())
                .collect()
        };
        let (here, known) = (of(connected), of(declared));
        let wildcard = name.ends_with(".*");
        if here.contains(&name) || (wildcard && !here.is_empty()) {
            continue;
        }
        if !here.is_empty() {
            found.errors.push(format!(
                "`{name}` is not an action of {platform}{}: it has {}",
                closest(&name, &here),
                here.join(", ")
            ));
        } else if known.is_empty() {
            found.warnings.push(format!("`{name}`: this build of Polity has no platform `{platform}`"));
        } else if !known.contains(&name) && !wildcard {
            found.warnings.push(format!(
                "`{name}` is not an action of {platform} ({platform} is not connected here){}: it has {}",
                closest(&name, &known),
                known.join(", ")
            ));
        }
    }
    found
}

/// ` (did you mean X?)` for the known name nearest `name`, if one is near (a typo or two).
fn closest(name: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (edits(name, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// The Levenshtein distance between two names.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Warnings about whom a policy's vote names that this community does not have: a role no
/// one holds would open votes with no voters.
pub fn check_voters(policy: &CompiledPolicy, community: &polity_governance::Community) -> Vec<String> {
    use polity_governance::vote::Voters;
    let Some(vote) = &policy.policy.vote else { return Vec::new() };
    match &vote.voters {
        Voters::Everyone => Vec::new(),
        Voters::Role(role) if role == polity_governance::community::EVERYONE => Vec::new(),
        Voters::Role(role) if !community.roles.contains_key(role.as_str()) => vec![format!(
            "there is no role `{role}` here: until it exists and someone holds it, nobody may vote under this policy (`/role create {role}`, `/role grant {role} NAME`)"
        )],
        Voters::Role(role) if !community.members.values().any(|m| m.has_role(role)) => {
            vec![format!("nobody holds the role `{role}` yet: until someone does, nobody may vote under this policy")]
        }
        Voters::Role(_) => Vec::new(),
        Voters::Cred(_) => Vec::new(),
        Voters::Members(names) => names
            .iter()
            .filter(|n| community.member_by_name(n).is_none())
            .map(|n| format!("`voters` names {n}, who is not a member here"))
            .collect(),
    }
}

pub fn list(ports: &dyn Ports) -> Reply {
    let policies = ports.policies();
    if policies.is_empty() {
        return Reply::private("No policy is installed: `/kit list` shows ready-made ones.");
    }
    let lines: Vec<String> = policies
        .iter()
        .map(|p| {
            let covers: Vec<String> = p.policy.actions.iter().map(ToString::to_string).collect();
            let covers = if covers.is_empty() { "all of its kind".to_string() } else { covers.join(", ") };
            format!("{} ({}; {covers})", p.name(), p.policy.kind)
        })
        .collect();
    Reply::private(lines.join("\n"))
}

pub fn show(ports: &dyn Ports, args: &Parsed) -> Reply {
    let name = args.text("name");
    match ports.policies().iter().find(|p| p.name().eq_ignore_ascii_case(name)) {
        Some(p) => Reply::private(format!("{} ({} policy):\n{}", p.name(), p.policy.kind, p.source.trim_end())),
        None => {
            Reply::private(format!("There is no policy named \"{name}\": `/policy list` shows the installed ones."))
        }
    }
}

pub async fn history(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    let versions = ports.policy_history(name).await?;
    if versions.is_empty() {
        return Ok(Reply::private(format!("No policy named \"{name}\" was ever installed.")));
    }
    let lines: Vec<String> = versions
        .iter()
        .map(|v| {
            let active = if v.active { " (active)" } else { "" };
            format!("version {}{active}, installed {}", v.version, v.installed_at.format("%Y-%m-%d %H:%M UTC"))
        })
        .collect();
    Ok(Reply::private(format!("\"{name}\":\n{}", lines.join("\n"))))
}

pub async fn remove(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    let Some(p) = ports.policies().into_iter().find(|p| p.name().eq_ignore_ascii_case(name)) else {
        return Ok(Reply::private(format!(
            "There is no policy named \"{name}\": `/policy list` shows the installed ones."
        )));
    };
    let done = format!("\"{}\" is removed; its versions are kept.", p.name());
    let what = format!("remove the policy \"{}\"", p.name());
    governed::request(ports, inv, Change::PolicyRemove { name: p.name().into() }, done, what).await
}

pub async fn dry_run(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    let since = match args.get("since").map(polity_governance::duration::parse_duration) {
        None => chrono::TimeDelta::days(7),
        Some(Ok(d)) => d,
        Some(Err(e)) => return Ok(Reply::private(format!("since: {e}"))),
    };
    let Some(policy) = ports.policies().into_iter().find(|p| p.name().eq_ignore_ascii_case(name)) else {
        return Ok(Reply::private(format!(
            "There is no policy named \"{name}\": `/policy list` shows the installed ones."
        )));
    };
    let name = policy.name();
    let lines = ports.dry_run(name, ports.now() - since).await?;
    let period = polity_governance::duration::format_duration(since);
    if lines.is_empty() {
        return Ok(Reply::private(format!("In the last {period}, \"{name}\" would have done nothing.")));
    }
    Ok(Reply::private(format!(
        "In the last {period}, \"{name}\" would have (nothing of this was done):\n{}",
        lines.join("\n")
    )))
}
