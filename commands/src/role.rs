//! `/role request|create|delete|list|grant|revoke|bind|unbind`.

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
    let who = me.map_or_else(|| inv.invoker.to_string(), |m| m.name.to_string());
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
    let name = m.name.to_string();
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

/// `/role bind ROLE PLATFORM:ROLE_ID` and `/role unbind`: a role bound to a platform's role
/// is granted and revoked there with it, through the platform's `grant_role` and
/// `revoke_role` actions, for each holder's linked account on that platform.
pub async fn bind(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed, bind: bool) -> Result<Reply, PortError> {
    let (role, to) = (args.text("role"), args.text("to"));
    let c = ports.community();
    if role == EVERYONE {
        return Ok(Reply::private(
            "Every member has the role everyone, so it is bound to nothing: bind a role of the community's own.",
        ));
    }
    let Some(r) = c.roles.get(role) else {
        return Ok(unknown_role(role));
    };
    let Some((platform, id)) = to.split_once(':').filter(|_| polity_governance::community::valid_binding(to) || !bind)
    else {
        return Ok(Reply::private(format!(
            "`{to}` is not a platform's role: write PLATFORM:ROLE_ID, the role's id as the platform shows it{}.",
            role_platforms(&ports.actions()).map(|p| format!(" (platforms with roles here: {p})")).unwrap_or_default()
        )));
    };
    let bound = r.bound.contains(to);
    if bind && bound {
        return Ok(Reply::private(format!("The role {role} is bound to {to} already.")));
    }
    if !bind && !bound {
        return Ok(Reply::private(format!("The role {role} is not bound to {to}.")));
    }
    if bind {
        let actions = ports.actions();
        let offers = |verb: &str| actions.iter().any(|a| a.name == format!("{platform}.{verb}"));
        if !(offers("grant_role") && offers("revoke_role")) {
            return Ok(Reply::private(format!(
                "{platform} has no roles Polity can grant here: bind to a platform of this community that has them{}.",
                role_platforms(&actions).map(|p| format!(" ({p})")).unwrap_or_default()
            )));
        }
    }
    let (role, to, id) = (role.to_string(), to.to_string(), id.to_string());
    if bind {
        let done = format!(
            "The role {role} is bound to {platform} role {id}: its holders get it there now, and lose it with {role}."
        );
        let change = Change::RoleBind { role: role.clone(), to: to.clone() };
        governed::request(ports, inv, change, done, format!("bind the role {role} to {to}")).await
    } else {
        let done = format!("The role {role} is no longer bound to {to} (who has that role there keeps it).");
        let change = Change::RoleUnbind { role: role.clone(), to: to.clone() };
        governed::request(ports, inv, change, done, format!("unbind the role {role} from {to}")).await
    }
}

/// The platforms whose roles Polity can grant and revoke here, as a list in words: those
/// that offer both actions.
fn role_platforms(actions: &[polity_governance::platform::ActionInfo]) -> Option<String> {
    let offers = |platform: &str, verb: &str| actions.iter().any(|a| a.name == format!("{platform}.{verb}"));
    let mut platforms: Vec<&str> = actions
        .iter()
        .filter_map(|a| a.name.strip_suffix(".grant_role"))
        .filter(|p| offers(p, "revoke_role"))
        .collect();
    platforms.sort_unstable();
    platforms.dedup();
    (!platforms.is_empty()).then(|| platforms.join(", "))
}
