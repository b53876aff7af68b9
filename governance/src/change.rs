//! Changes to governance itself, as one typed value: a command requests one (as a `polity.*`
//! action, so the same rules decide it as any other action), and the runtime carries it out
//! once it is allowed or passed. The action's type and data are this value's encoding, read
//! back by [`Change::from_action`]; nothing else matches on the names.

use crate::action::{Action, ActionType};
use crate::platform::{ActionInfo, ActionKind};
use serde_json::Value;

/// A change to governance, with what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The requester takes a role (`/role request`).
    RoleRequest {
        role: String,
    },
    RoleCreate {
        role: String,
        description: String,
    },
    RoleDelete {
        role: String,
    },
    RoleGrant {
        role: String,
        member: String,
    },
    RoleRevoke {
        role: String,
        member: String,
    },
    /// Bind a role to a platform role (`discord:ROLE_ID`): its holders get that role there.
    RoleBind {
        role: String,
        to: String,
    },
    RoleUnbind {
        role: String,
        to: String,
    },
    /// Let a role propose, execute or vote on actions matching a pattern.
    PermissionGrant {
        role: String,
        permission: String,
        actions: String,
    },
    PermissionRevoke {
        role: String,
        permission: String,
        actions: String,
    },
    PolicyInstall {
        source: String,
    },
    PolicyRemove {
        name: String,
    },
    KitInstall {
        kit: String,
        /// Its options, `key=value` words (empty for none).
        options: String,
    },
    /// Enable a connection staged with its secret.
    IntegrationAdd {
        name: String,
        platform: String,
    },
    IntegrationRemove {
        name: String,
    },
}

/// Which change, without its data: its action type, its description and its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    RoleRequest,
    RoleCreate,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    RoleBind,
    RoleUnbind,
    PermissionGrant,
    PermissionRevoke,
    PolicyInstall,
    PolicyRemove,
    KitInstall,
    IntegrationAdd,
    IntegrationRemove,
}

impl ChangeKind {
    /// Every kind, in the order `/actions` lists them.
    pub const ALL: [ChangeKind; 14] = [
        Self::RoleRequest,
        Self::RoleGrant,
        Self::RoleRevoke,
        Self::RoleCreate,
        Self::RoleDelete,
        Self::RoleBind,
        Self::RoleUnbind,
        Self::PermissionGrant,
        Self::PermissionRevoke,
        Self::PolicyInstall,
        Self::PolicyRemove,
        Self::KitInstall,
        Self::IntegrationAdd,
        Self::IntegrationRemove,
    ];

    /// Its action type (`polity.role_grant`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::RoleRequest => "polity.role_request",
            Self::RoleCreate => "polity.role_create",
            Self::RoleDelete => "polity.role_delete",
            Self::RoleGrant => "polity.role_grant",
            Self::RoleRevoke => "polity.role_revoke",
            Self::RoleBind => "polity.role_bind",
            Self::RoleUnbind => "polity.role_unbind",
            Self::PermissionGrant => "polity.permission_grant",
            Self::PermissionRevoke => "polity.permission_revoke",
            Self::PolicyInstall => "polity.policy_install",
            Self::PolicyRemove => "polity.policy_remove",
            Self::KitInstall => "polity.kit_install",
            Self::IntegrationAdd => "polity.integration_add",
            Self::IntegrationRemove => "polity.integration_remove",
        }
    }

    /// The kind whose action type is `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What it does, and its fields with what each holds.
    pub fn info(self) -> ActionInfo {
        let (description, params): (&str, &[(&str, &str)]) = match self {
            Self::RoleRequest => ("a member asks for a role (/role request)", &[("role", "the role")]),
            Self::RoleGrant => ("give a member a role", &[("role", "the role"), ("member", "the member's name")]),
            Self::RoleRevoke => ("take a role from a member", &[("role", "the role"), ("member", "the member's name")]),
            Self::RoleCreate => ("create a role", &[("role", "the role"), ("description", "optional")]),
            Self::RoleDelete => ("delete a role", &[("role", "the role")]),
            Self::RoleBind => (
                "bind a role to a platform's role: its holders get that role there, and lose it with the role",
                &[("role", "the role"), ("to", "PLATFORM:ROLE_ID (discord:123...)")],
            ),
            Self::RoleUnbind => {
                ("unbind a role from a platform's role", &[("role", "the role"), ("to", "PLATFORM:ROLE_ID")])
            }
            Self::PermissionGrant => (
                "let a role propose, execute or vote",
                &[
                    ("role", "the role"),
                    ("permission", "propose, execute or vote"),
                    ("actions", "an action type, PLATFORM.* or *"),
                ],
            ),
            Self::PermissionRevoke => (
                "take a permission from a role",
                &[("role", "the role"), ("permission", "propose, execute or vote"), ("actions", "as granted")],
            ),
            Self::PolicyInstall => ("install a policy or a new version", &[("source", "the policy's TOML")]),
            Self::PolicyRemove => ("remove a policy", &[("name", "the policy")]),
            Self::KitInstall => {
                ("install a starter kit", &[("kit", "the kit"), ("options", "its options, key=value (optional)")])
            }
            Self::IntegrationAdd => (
                "connect a platform (its secret was given privately and waits, encrypted)",
                &[("name", "the connection"), ("platform", "the platform")],
            ),
            Self::IntegrationRemove => ("disconnect a platform", &[("name", "the connection")]),
        };
        ActionInfo::new(self.name(), ActionKind::Change, description, params)
    }

    /// Its action type.
    pub fn action_type(self) -> ActionType {
        ActionType::new(self.name()).unwrap_or_else(|_| unreachable!("change names are valid action types"))
    }
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Self::RoleRequest { .. } => ChangeKind::RoleRequest,
            Self::RoleCreate { .. } => ChangeKind::RoleCreate,
            Self::RoleDelete { .. } => ChangeKind::RoleDelete,
            Self::RoleGrant { .. } => ChangeKind::RoleGrant,
            Self::RoleRevoke { .. } => ChangeKind::RoleRevoke,
            Self::RoleBind { .. } => ChangeKind::RoleBind,
            Self::RoleUnbind { .. } => ChangeKind::RoleUnbind,
            Self::PermissionGrant { .. } => ChangeKind::PermissionGrant,
            Self::PermissionRevoke { .. } => ChangeKind::PermissionRevoke,
            Self::PolicyInstall { .. } => ChangeKind::PolicyInstall,
            Self::PolicyRemove { .. } => ChangeKind::PolicyRemove,
            Self::KitInstall { .. } => ChangeKind::KitInstall,
            Self::IntegrationAdd { .. } => ChangeKind::IntegrationAdd,
            Self::IntegrationRemove { .. } => ChangeKind::IntegrationRemove,
        }
    }

    /// Its fields, as the action's data holds them.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::RoleRequest { role } | Self::RoleDelete { role } => vec![("role", role)],
            Self::RoleCreate { role, description } => vec![("role", role), ("description", description)],
            Self::RoleGrant { role, member } | Self::RoleRevoke { role, member } => {
                vec![("role", role), ("member", member)]
            }
            Self::RoleBind { role, to } | Self::RoleUnbind { role, to } => vec![("role", role), ("to", to)],
            Self::PermissionGrant { role, permission, actions }
            | Self::PermissionRevoke { role, permission, actions } => {
                vec![("role", role), ("permission", permission), ("actions", actions)]
            }
            Self::PolicyInstall { source } => vec![("source", source)],
            Self::PolicyRemove { name } | Self::IntegrationRemove { name } => vec![("name", name)],
            Self::KitInstall { kit, options } if options.is_empty() => vec![("kit", kit)],
            Self::KitInstall { kit, options } => vec![("kit", kit), ("options", options)],
            Self::IntegrationAdd { name, platform } => vec![("name", name), ("platform", platform)],
        }
    }

    /// What it does, as a person would ask for it: "give alice the role moderator".
    pub fn phrase(&self) -> String {
        match self {
            Self::RoleRequest { role } => format!("take the role {role}"),
            Self::RoleCreate { role, .. } => format!("create the role {role}"),
            Self::RoleDelete { role } => format!("delete the role {role}"),
            Self::RoleGrant { role, member } => format!("give {member} the role {role}"),
            Self::RoleRevoke { role, member } => format!("take the role {role} from {member}"),
            Self::RoleBind { role, to } => format!("bind the role {role} to {to}"),
            Self::RoleUnbind { role, to } => format!("unbind the role {role} from {to}"),
            Self::PermissionGrant { role, permission, actions } => format!("let {role} {permission} {actions}"),
            Self::PermissionRevoke { role, permission, actions } => {
                format!("no longer let {role} {permission} {actions}")
            }
            Self::PolicyInstall { source } => match policy_name(source) {
                Some(name) => format!("install the policy \"{name}\""),
                None => "install a policy".into(),
            },
            Self::PolicyRemove { name } => format!("remove the policy \"{name}\""),
            Self::KitInstall { kit, options } if options.is_empty() => format!("install the starter kit {kit}"),
            Self::KitInstall { kit, options } => format!("install the starter kit {kit} with {options}"),
            Self::IntegrationAdd { name, platform } => format!("connect {platform} as {name}"),
            Self::IntegrationRemove { name } => format!("remove the connection {name}"),
        }
    }

    /// Adds its fields to `action` (whose type is [`ChangeKind::action_type`]).
    pub fn write(&self, mut action: Action) -> Action {
        for (k, v) in self.fields() {
            action = action.with(k, v);
        }
        action
    }

    /// The change an action of a `polity.*` change type stands for.
    ///
    /// # Errors
    /// When the action is no change, or lacks a field the change needs.
    pub fn from_action(action: &Action) -> Result<Self, String> {
        let Some(kind) = ChangeKind::named(action.kind.as_str()) else {
            return Err(format!("{} is not a change to governance", action.kind));
        };
        let text = |key: &str| -> Result<String, String> {
            action
                .data
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("{} has no `{key}`", action.kind))
        };
        let optional = |key: &str| action.data.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(match kind {
            ChangeKind::RoleRequest => Self::RoleRequest { role: text("role")? },
            ChangeKind::RoleCreate => Self::RoleCreate { role: text("role")?, description: optional("description") },
            ChangeKind::RoleDelete => Self::RoleDelete { role: text("role")? },
            ChangeKind::RoleGrant => Self::RoleGrant { role: text("role")?, member: text("member")? },
            ChangeKind::RoleRevoke => Self::RoleRevoke { role: text("role")?, member: text("member")? },
            ChangeKind::RoleBind => Self::RoleBind { role: text("role")?, to: text("to")? },
            ChangeKind::RoleUnbind => Self::RoleUnbind { role: text("role")?, to: text("to")? },
            ChangeKind::PermissionGrant => Self::PermissionGrant {
                role: text("role")?,
                permission: text("permission")?,
                actions: text("actions")?,
            },
            ChangeKind::PermissionRevoke => Self::PermissionRevoke {
                role: text("role")?,
                permission: text("permission")?,
                actions: text("actions")?,
            },
            ChangeKind::PolicyInstall => Self::PolicyInstall { source: text("source")? },
            ChangeKind::PolicyRemove => Self::PolicyRemove { name: text("name")? },
            ChangeKind::KitInstall => Self::KitInstall { kit: text("kit")?, options: optional("options") },
            ChangeKind::IntegrationAdd => Self::IntegrationAdd { name: text("name")?, platform: optional("platform") },
            ChangeKind::IntegrationRemove => Self::IntegrationRemove { name: text("name")? },
        })
    }
}

/// The `name = "..."` of a policy's TOML, read without parsing the rest (a line whose key
/// ends in the word `name`, so `/policy install`'s TOML that took the start of a spaced name
/// is read too).
pub fn policy_name(source: &str) -> Option<String> {
    source.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.split_whitespace().last() == Some("name"))
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|n| !n.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountRef;

    #[test]
    fn a_change_reads_back_from_its_action() {
        let changes = [
            Change::RoleGrant { role: "mod".into(), member: "ann".into() },
            Change::RoleCreate { role: "mod".into(), description: String::new() },
            Change::PermissionRevoke { role: "mod".into(), permission: "vote".into(), actions: "discord.*".into() },
            Change::IntegrationAdd { name: "gh".into(), platform: "github".into() },
            Change::KitInstall { kit: "direct-democracy".into(), options: String::new() },
            Change::KitInstall { kit: "expense-votes".into(), options: "on=discord:1 big=100".into() },
        ];
        for change in changes {
            let action =
                change.write(Action::new(change.kind().action_type(), AccountRef::new("chat", "ann"), "1").requested());
            assert_eq!(Change::from_action(&action).as_ref(), Ok(&change));
        }
        let bare = Action::new(ChangeKind::RoleGrant.action_type(), AccountRef::new("chat", "ann"), "1");
        assert_eq!(Change::from_action(&bare), Err("polity.role_grant has no `role`".into()));
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::named(kind.name()), Some(kind));
            assert!(kind.action_type().is_constitutional(), "{}", kind.name());
        }
    }
}
