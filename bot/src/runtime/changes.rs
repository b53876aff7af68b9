//! Changes to governance itself, carried out on the engine's state once they are allowed or
//! passed (the caller records them in the same transaction), and what Polity offers policies.

use super::*;

/// The actions Polity itself offers policies: posting, and the changes to governance it
/// carries out (see [`apply_governance_change`]).
pub fn polity_actions() -> Vec<ActionInfo> {
    use polity_governance::platform::ActionKind::{Action as Act, Governable};
    let mut all = vec![
        ActionInfo::new(
            "message",
            Act,
            "post where the vote was held",
            &[("text", "what to say"), ("on", "PLATFORM:CHANNEL, optional")],
        ),
        ActionInfo::new(
            "polity.propose",
            Governable,
            "a plain proposal (/propose)",
            &[("text", "the proposal"), ("policy", "optional")],
        ),
    ];
    all.extend(ChangeKind::ALL.into_iter().map(ChangeKind::info));
    all
}

/// Carries out a change to governance itself (a `polity.*` action that was allowed or
/// passed), on the engine's state; the caller records it in the same transaction.
///
/// `kinds` names the platform of each of the community's connections whose name is not its
/// platform's, so a role bound to `discord:ROLE` reaches accounts a connection named `guild`
/// brought.
pub(super) fn apply_governance_change(
    engine: &mut Engine,
    action: &Action,
    kinds: &HashMap<String, String>,
) -> Result<Changes> {
    let mut changes = Changes::default();
    let initiator = engine.community.member_by_account(&action.initiator).map(|m| m.id);
    let member_named = |engine: &Engine, name: &str| -> Result<MemberId> {
        engine.community.member_by_name(name).map(|m| m.id).ok_or_else(|| anyhow!("there is no member named {name}"))
    };
    match GovernanceChange::from_action(action).map_err(|e| anyhow!(e))? {
        GovernanceChange::RoleCreate { role, description } => {
            engine.community.create_role(&role, &description)?;
            changes.community = true;
        }
        GovernanceChange::RoleDelete { role } => {
            let holders: Vec<MemberId> =
                engine.community.members.values().filter(|m| m.roles.contains(&role)).map(|m| m.id).collect();
            for m in holders {
                changes.effects.extend(platform_roles(&engine.community, kinds, m, &role, None, false));
            }
            engine.community.roles.remove(&role).ok_or_else(|| anyhow!("there is no role {role}"))?;
            for m in engine.community.members.values_mut() {
                m.roles.remove(&role);
            }
            changes.community = true;
        }
        GovernanceChange::RoleGrant { role, member } => {
            let member = member_named(engine, &member)?;
            engine.community.grant_role(member, &role)?;
            changes.effects.extend(platform_roles(&engine.community, kinds, member, &role, None, true));
            changes.community = true;
        }
        GovernanceChange::RoleRevoke { role, member } => {
            let member = member_named(engine, &member)?;
            engine.community.revoke_role(member, &role)?;
            changes.effects.extend(platform_roles(&engine.community, kinds, member, &role, None, false));
            changes.community = true;
        }
        GovernanceChange::RoleRequest { role } => {
            let member = initiator.ok_or_else(|| anyhow!("the requester is not a member"))?;
            engine.community.grant_role(member, &role)?;
            changes.effects.extend(platform_roles(&engine.community, kinds, member, &role, None, true));
            changes.community = true;
        }
        GovernanceChange::RoleBind { role, to } => {
            engine.community.bind_role(&role, &to, true)?;
            // Who holds the role now gets the platform's role too.
            let holders: Vec<MemberId> =
                engine.community.members.values().filter(|m| m.roles.contains(&role)).map(|m| m.id).collect();
            for m in holders {
                changes.effects.extend(platform_roles(&engine.community, kinds, m, &role, Some(&to), true));
            }
            changes.community = true;
        }
        GovernanceChange::RoleUnbind { role, to } => {
            engine.community.bind_role(&role, &to, false)?;
            changes.community = true;
        }
        GovernanceChange::PermissionGrant { role, permission, actions } => {
            let permission = Permission::parse(&permission).map_err(|e| anyhow!(e))?;
            let pattern = ActionPattern::new(&actions).map_err(|e| anyhow!(e))?;
            engine.community.grant_permission(&role, permission, pattern)?;
            changes.community = true;
        }
        GovernanceChange::PermissionRevoke { role, permission, actions } => {
            let permission = Permission::parse(&permission).map_err(|e| anyhow!(e))?;
            let pattern = ActionPattern::new(&actions).map_err(|e| anyhow!(e))?;
            engine.community.revoke_permission(&role, permission, &pattern)?;
            changes.community = true;
        }
        GovernanceChange::PolicyInstall { source } => {
            let installed = engine.install_policy(&source).map_err(GovError::from)?;
            changes.installed.push(installed.id);
        }
        GovernanceChange::PolicyRemove { name } => {
            changes.removed.push(engine.remove_policy(&name)?);
        }
        GovernanceChange::IntegrationAdd { name, .. } => changes.connections.push(ConnectionChange::Enable(name)),
        GovernanceChange::IntegrationRemove { name } => changes.connections.push(ConnectionChange::Remove(name)),
        GovernanceChange::KitInstall { kit, options } => {
            let kit = kits::starter_kit(&kit)?.configured(&options).map_err(|e| anyhow!(e))?;
            changes.installed = engine.install_kit(&kit, initiator)?;
            if let Some(m) = initiator {
                for role in &kit.installer_roles {
                    changes.effects.extend(platform_roles(&engine.community, kinds, m, role, None, true));
                }
            }
            changes.community = true;
        }
    }
    Ok(changes)
}

/// The platform calls that give `member` the platform roles `role` is bound to (or take them
/// away): `PLATFORM.grant_role` / `PLATFORM.revoke_role` with the member's account there and
/// the role's id, for each of their linked accounts on that platform; only the binding
/// `only`, if given. A member with no account there gets nothing there.
fn platform_roles(
    community: &Community,
    kinds: &HashMap<String, String>,
    member: MemberId,
    role: &str,
    only: Option<&str>,
    grant: bool,
) -> Vec<Effect> {
    let (Some(r), Some(m)) = (community.roles.get(role), community.member(member)) else {
        return Vec::new();
    };
    let verb = if grant { "grant_role" } else { "revoke_role" };
    // A platform role another of the member's roles is bound to stays theirs.
    let kept = |to: &str| {
        !grant
            && m.roles
                .iter()
                .filter(|other| other.as_str() != role)
                .any(|other| community.roles.get(other).is_some_and(|o| o.bound.contains(to)))
    };
    let kind_of = |platform: &str| kinds.get(platform).map_or(platform.to_string(), Clone::clone);
    let mut calls = Vec::new();
    for to in r.bound.iter().filter(|to| only.is_none_or(|o| o == to.as_str())).filter(|to| !kept(to)) {
        let Some((platform, id)) = to.split_once(':') else { continue };
        let Ok(name) = polity_governance::ActionType::new(&format!("{platform}.{verb}")) else { continue };
        for account in m.accounts.iter().map(|l| &l.account).filter(|a| kind_of(a.platform.as_str()) == platform) {
            let mut params = serde_json::Map::new();
            params.insert("user".into(), serde_json::Value::String(account.account.to_string()));
            params.insert("role".into(), serde_json::Value::String(id.to_string()));
            calls.push(Effect::Call { proposal: None, name: name.clone(), params });
        }
    }
    calls
}

/// A governance change requested by a member (a command that changes governance).
pub fn request(kind: &str, initiator: AccountRef, place: polity_governance::Place, id: &str) -> Result<Action> {
    let kind = polity_governance::ActionType::new(kind).map_err(|e| anyhow!(e))?;
    let mut a = Action::new(kind, initiator, id).at(place);
    a.status = ActionStatus::Requested;
    Ok(a)
}
