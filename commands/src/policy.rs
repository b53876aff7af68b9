//! `/policy install|list|show|history|remove`.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports};
use crate::reply::Reply;
use polity_governance::PolicyId;
use polity_governance::change::Change;
use polity_governance::policy::CompiledPolicy;
use polity_governance::script::Sandbox;

pub async fn install(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    // On the console and in Slack text a policy arrives on one line, with `\n` between lines.
    let source = args.text("toml").replace("\\n", "\n");
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
    let replaces = ports.policies().iter().any(|p| p.name().eq_ignore_ascii_case(name));
    let done = if replaces {
        format!("A new version of \"{}\" is installed (`/policy history` keeps the old ones).", compiled.name())
    } else {
        format!("\"{}\" is installed: a {} policy.", compiled.name(), compiled.policy.kind)
    };
    let what = format!("install the policy \"{}\"", compiled.name());
    governed::request(ports, inv, Change::PolicyInstall { source }, done, what).await
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
