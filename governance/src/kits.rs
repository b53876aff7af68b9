//! Starter kits: ready governance systems (roles, permissions and policies) installed in one
//! step. Each is a TOML file shipped in `governance/kits/`.

use crate::action::ActionPattern;
use crate::community::Permission;
use crate::engine::Engine;
use crate::error::GovError;
use crate::ids::{MemberId, PolicyId};
use crate::policy::{CompiledPolicy, PolicyError, PolicyErrors};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

const SOURCES: [&str; 6] = [
    include_str!("../kits/testing.toml"),
    include_str!("../kits/benevolent-dictator.toml"),
    include_str!("../kits/moderators.toml"),
    include_str!("../kits/direct-democracy.toml"),
    include_str!("../kits/consensus.toml"),
    include_str!("../kits/jury.toml"),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKit {
    name: String,
    description: String,
    #[serde(default)]
    installer_roles: Vec<String>,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    policies: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    description: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// A role a kit creates (or extends) and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitRole {
    pub name: String,
    pub description: String,
    pub permissions: Vec<(Permission, ActionPattern)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kit {
    pub name: String,
    pub description: String,
    /// Roles given to the member who installs the kit.
    pub installer_roles: Vec<String>,
    pub roles: Vec<KitRole>,
    /// Each policy as a TOML document.
    pub policies: Vec<String>,
}

impl Kit {
    /// Parses a kit file.
    ///
    /// # Errors
    /// Says what is wrong with the file.
    pub fn parse(source: &str) -> Result<Self, String> {
        let raw: RawKit = toml::from_str(source).map_err(|e| e.to_string())?;
        let mut roles = Vec::new();
        for (name, r) in raw.roles {
            let mut permissions = Vec::new();
            for p in &r.permissions {
                let (perm, pattern) =
                    p.split_once(' ').ok_or_else(|| format!("role {name}: `{p}` must be `PERMISSION ACTIONS`"))?;
                permissions.push((Permission::parse(perm)?, ActionPattern::new(pattern.trim())?));
            }
            roles.push(KitRole { name, description: r.description, permissions });
        }
        let policies = raw
            .policies
            .iter()
            .map(|t| toml::to_string(t).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { name: raw.name, description: raw.description, installer_roles: raw.installer_roles, roles, policies })
    }
}

/// The kits shipped with Polity.
pub fn starter_kits() -> Vec<Kit> {
    // The shipped files are checked by the tests, so a broken one cannot be released.
    SOURCES.iter().filter_map(|s| Kit::parse(s).ok()).collect()
}

/// The shipped kit of that name.
///
/// # Errors
/// When no kit has that name.
pub fn starter_kit(name: &str) -> Result<Kit, GovError> {
    starter_kits()
        .into_iter()
        .find(|k| k.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| GovError::UnknownKit(name.into()))
}

impl Engine {
    /// Installs a kit: its roles and permissions, its policies (replacing policies of the same
    /// names), and the installer's roles. Every policy is compiled first, so a kit is
    /// installed whole or not at all.
    ///
    /// # Errors
    /// When a policy of the kit does not compile, or the installer is unknown.
    pub fn install_kit(&mut self, kit: &Kit, installer: Option<MemberId>) -> Result<Vec<PolicyId>, GovError> {
        let mut errors = Vec::new();
        for (i, source) in kit.policies.iter().enumerate() {
            if let Err(e) = CompiledPolicy::compile(PolicyId(0), source, self.sandbox()) {
                errors.extend(
                    e.0.into_iter().map(|e| PolicyError {
                        line: None,
                        message: format!("kit {} policy {}: {e}", kit.name, i + 1),
                    }),
                );
            }
        }
        if let Some(m) = installer
            && self.community.member(m).is_none()
        {
            return Err(crate::community::CommunityError::UnknownMember(m).into());
        }
        if !errors.is_empty() {
            return Err(GovError::Policy(PolicyErrors(errors)));
        }
        for role in &kit.roles {
            if !self.community.roles.contains_key(&role.name) {
                self.community.create_role(&role.name, &role.description)?;
            }
            for (perm, pattern) in &role.permissions {
                self.community.grant_permission(&role.name, *perm, pattern.clone())?;
            }
        }
        if let Some(m) = installer {
            for r in &kit.installer_roles {
                self.community.grant_role(m, r)?;
            }
        }
        let mut ids = Vec::new();
        for source in &kit.policies {
            let installed: Arc<CompiledPolicy> = self.install_policy(source)?;
            ids.push(installed.id);
        }
        Ok(ids)
    }
}
