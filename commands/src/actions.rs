//! `/actions`: what policy authors can use in this community, with parameters.

use crate::ports::Ports;
use crate::reply::Reply;
use polity_governance::platform::ActionKind;

pub fn run(ports: &dyn Ports) -> Reply {
    let mut all = ports.actions();
    all.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let mut lines = Vec::new();
    for (kind, title) in [
        (ActionKind::Governable, "Governable (platform policies revert and re-execute them)"),
        (ActionKind::Trigger, "Triggers (start trigger policies)"),
        (ActionKind::Action, "Actions (`do = [{ action = ... }]`, `polity.act`)"),
        (ActionKind::Process, "Processes (`polity.start_process`)"),
        (ActionKind::Change, "Changes to governance (constitution policies decide them)"),
    ] {
        let of_kind: Vec<_> = all.iter().filter(|a| a.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        lines.push(format!("{title}:"));
        for a in of_kind {
            let params: Vec<String> = a.params.iter().map(|(n, d)| format!("{n} ({d})")).collect();
            let params = if params.is_empty() { String::new() } else { format!(" — {}", params.join(", ")) };
            lines.push(format!("  {} — {}{params}", a.name, a.description));
        }
    }
    Reply::private(lines.join("\n"))
}
