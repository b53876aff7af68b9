//! `/actions`: what policy authors can use in this community, with parameters.

use crate::ports::Ports;
use crate::reply::Reply;
use polity_governance::platform::ActionKind;

pub fn run(ports: &dyn Ports) -> Reply {
    let here = ports.actions();
    let mut all = here.clone();
    // What the build's other platforms offer, once they are connected here.
    for a in ports.declared_actions() {
        if !all.iter().any(|h| h.name == a.name) {
            all.push(a);
        }
    }
    Reply::private(render(all, |name| here.iter().any(|h| h.name == name)))
}

/// Every action by kind, sorted by name, with its parameters; one not connected here (per
/// `here`) says so.
pub fn render(mut all: Vec<polity_governance::platform::ActionInfo>, here: impl Fn(&str) -> bool) -> String {
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
            let away = if here(&a.name) { "" } else { " (not connected here)" };
            lines.push(format!("  {}{away} — {}{params}", a.name, a.description));
        }
    }
    lines.join("\n")
}
