//! `/role request|create|delete|list|grant|revoke`.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports};
use crate::reply::Reply;
use polity_governance::change::Change;
use polity_governance::community::EVERYONE;

fn unknown_role(role: &str) -> Reply {
    Reply::private(format!("There is no role {role}: `/role list` shows the roles."))
}

pub async fn request(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let role = args.text("role");
    let c = ports.community();
    if role == EVERYONE {
        return Ok(Reply::private("Every member has the role everyone already."));
    }
    if !c.roles.contains_key(role) {
        return Ok(unknown_role(role));
    }
    let me = c.member_by_account(&inv.invoker);
    if me.is_some_and(|m| m.roles.contains(role)) {
        return Ok(Reply::private(format!("You already have the role {role}.")));
    }
    // What the vote message says, so in the third person.
    let who = me.map_or_else(|| inv.invoker.to_string(), |m| m.name.clone());
    let done = format!("You have the role {role} now.");
    let what = format!("give {who} the role {role}");
    governed::request(ports, inv, Change::RoleRequest { role: role.into() }, done, what).await
}

pub async fn create(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let role = args.text("role");
    let description = args.get("description").unwrap_or_default();
    if ports.community().roles.contains_key(role) {
        return Ok(Reply::private(format!("The role {role} already exists.")));
    }
    let mut probe = ports.community().clone();
    if let Err(e) = probe.create_role(role, description) {
        return Ok(Reply::private(e.to_string()));
    }
    let change = Change::RoleCreate { role: role.into(), description: description.into() };
    governed::request(ports, inv, change, format!("The role {role} is created."), format!("create the role {role}"))
        .await
}

pub async fn delete(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let role = args.text("role");
    if role == EVERYONE {
        return Ok(Reply::private("The role everyone belongs to every member and cannot be deleted."));
    }
    if !ports.community().roles.contains_key(role) {
        return Ok(unknown_role(role));
    }
    governed::request(
        ports,
        inv,
        Change::RoleDelete { role: role.into() },
        format!("The role {role} is deleted."),
        format!("delete the role {role}"),
    )
    .await
}

pub fn list(ports: &dyn Ports) -> Reply {
    let c = ports.community();
    let mut lines = Vec::new();
    for r in c.roles.values() {
        let grants: Vec<String> = r.grants.iter().map(|(p, a)| format!("{p} {a}")).collect();
        let members: Vec<&str> = c.members.values().filter(|m| m.has_role(&r.name)).map(|m| m.name.as_str()).collect();
        let members = if r.name == EVERYONE { "every member".to_string() } else { members.join(", ") };
        lines.push(format!(
            "{} — may: {}; members: {}",
            r.name,
            if grants.is_empty() { "nothing".into() } else { grants.join(", ") },
            if members.is_empty() { "none".into() } else { members }
        ));
    }
    let admins: Vec<&str> = c.admins().map(|m| m.name.as_str()).collect();
    lines.push(format!("admins (may do everything): {}", admins.join(", ")));
    Reply::private(lines.join("\n"))
}

async fn change(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed, grant: bool) -> Result<Reply, PortError> {
    let (role, member) = (args.text("role"), args.text("member"));
    let c = ports.community();
    if !c.roles.contains_key(role) || role == EVERYONE {
        return Ok(unknown_role(role));
    }
    let Some(m) = c.member_by_name(member) else {
        return Ok(Reply::private(format!("There is no member named {member}.")));
    };
    let name = m.name.clone();
    match (grant, m.roles.contains(role)) {
        (true, true) => return Ok(Reply::private(format!("{name} already has the role {role}."))),
        (false, false) => return Ok(Reply::private(format!("{name} does not have the role {role}."))),
        _ => {}
    }
    let (role_name, member_name) = (role.to_string(), name.clone());
    if grant {
        governed::request(
            ports,
            inv,
            Change::RoleGrant { role: role_name, member: member_name },
            format!("{name} has the role {role} now."),
            format!("give {name} the role {role}"),
        )
        .await
    } else {
        governed::request(
            ports,
            inv,
            Change::RoleRevoke { role: role_name, member: member_name },
            format!("{name} no longer has the role {role}."),
            format!("take the role {role} from {name}"),
        )
        .await
    }
}

pub async fn grant(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    change(ports, inv, args, true).await
}

pub async fn revoke(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    change(ports, inv, args, false).await
}
