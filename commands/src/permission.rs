//! `/permission grant|revoke ROLE propose|execute|vote ACTIONS`.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports};
use crate::reply::Reply;
use polity_governance::action::ActionPattern;
use polity_governance::change::Change;
use polity_governance::community::Permission;

pub async fn change(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed, grant: bool) -> Result<Reply, PortError> {
    let (role, permission, actions) = (args.text("role"), args.text("permission"), args.text("actions"));
    let Some(r) = ports.community().roles.get(role) else {
        return Ok(Reply::private(format!("There is no role {role}: `/role list` shows the roles.")));
    };
    let perm = match Permission::parse(permission) {
        Ok(p) => p,
        Err(e) => return Ok(Reply::private(e)),
    };
    let pattern = match ActionPattern::new(actions) {
        Ok(p) => p,
        Err(e) => return Ok(Reply::private(e)),
    };
    let has = r.grants.contains(&(perm, pattern.clone()));
    match (grant, has) {
        (true, true) => return Ok(Reply::private(format!("{role} may already {permission} {pattern}."))),
        (false, false) => {
            return Ok(Reply::private(format!(
                "{role} was never granted {permission} {pattern}: `/role list` shows its permissions."
            )));
        }
        _ => {}
    }
    let (role_name, permission_name, actions) = (role.to_string(), permission.to_string(), pattern.to_string());
    if grant {
        let done = format!("{role} may {permission} {pattern} now.");
        governed::request(
            ports,
            inv,
            Change::PermissionGrant { role: role_name, permission: permission_name, actions },
            done,
            format!("let {role} {permission} {pattern}"),
        )
        .await
    } else {
        let done = format!("{role} may no longer {permission} {pattern}.");
        governed::request(
            ports,
            inv,
            Change::PermissionRevoke { role: role_name, permission: permission_name, actions },
            done,
            format!("stop {role} from {permission} {pattern}"),
        )
        .await
    }
}
