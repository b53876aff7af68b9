//! `/whoami`: my linked accounts, roles and what they let me do.

use crate::ports::{Invocation, Ports};
use crate::reply::Reply;

pub fn run(ports: &dyn Ports, inv: &Invocation) -> Reply {
    let c = ports.community();
    let Some(m) = c.member_by_account(&inv.invoker) else {
        return Reply::private(format!("{} is not a member of this community yet.", inv.invoker));
    };
    let mut first = format!("You are {}{}", m.name, if m.admin { ", an admin" } else { "" });
    // A name like "Alice A." ends the sentence itself.
    if !first.ends_with('.') {
        first.push('.');
    }
    let mut lines = vec![first];
    let accounts: Vec<String> = m.accounts.iter().map(|l| format!("{} ({})", l.account, l.quality)).collect();
    lines.push(format!("accounts: {}", accounts.join(", ")));
    let roles = c.roles_of(m.id);
    lines.push(format!("roles: {}", roles.join(", ")));
    let mut grants: Vec<String> = c
        .roles
        .values()
        .filter(|r| roles.contains(&r.name))
        .flat_map(|r| r.grants.iter().map(|(p, a)| format!("{p} {a}")))
        .collect();
    grants.sort();
    grants.dedup();
    if m.admin {
        lines.push("permissions: everything (admin)".into());
    } else if grants.is_empty() {
        lines.push("permissions: none".into());
    } else {
        lines.push(format!("permissions: {}", grants.join(", ")));
    }
    Reply::private(lines.join("\n"))
}
