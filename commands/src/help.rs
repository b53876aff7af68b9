//! `/help [COMMAND]`: generated from the catalogue, never written twice.

use crate::catalogue::{ArgKind, CATALOGUE};
use crate::parse::Parsed;
use crate::reply::Reply;

pub fn run(args: &Parsed) -> Reply {
    let Some(wanted) = args.get("command") else {
        let lines: Vec<String> = CATALOGUE.iter().map(|s| format!("{} — {}", s.usage(), s.help)).collect();
        return Reply::private(format!("Commands:\n{}", lines.join("\n")));
    };
    let wanted = wanted.trim_start_matches('/').trim();
    let matching: Vec<_> = CATALOGUE.iter().filter(|s| s.name() == wanted || s.path[0] == wanted).collect();
    if matching.is_empty() {
        return Reply::private(format!("There is no command /{wanted}: /help lists the commands."));
    }
    let mut lines = Vec::new();
    for s in matching {
        lines.push(format!("{} — {}", s.usage(), s.help));
        for a in s.args {
            let shown = if a.kind == ArgKind::Keyword {
                format!("{}:{}", a.name, a.name.to_uppercase())
            } else {
                a.name.to_uppercase()
            };
            lines.push(format!("  {shown}: {}{}", a.help, if a.required { "" } else { " (optional)" }));
        }
        if s.governs.is_some() {
            lines.push("  Changes governance: done at once if you may execute it, otherwise put to a vote.".into());
        }
    }
    Reply::private(lines.join("\n"))
}
