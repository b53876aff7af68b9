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

const SOURCES: [&str; 8] = [
    include_str!("../kits/testing.toml"),
    include_str!("../kits/benevolent-dictator.toml"),
    include_str!("../kits/moderators.toml"),
    include_str!("../kits/direct-democracy.toml"),
    include_str!("../kits/consensus.toml"),
    include_str!("../kits/jury.toml"),
    include_str!("../kits/cred-voters.toml"),
    include_str!("../kits/expense-votes.toml"),
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
    #[serde(default)]
    options: BTreeMap<String, RawOption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    help: String,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    whole_number: bool,
}

/// A setting a kit is installed with (`/kit install expense-votes on=discord:123`), written
/// into its policies where they say `${NAME}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KitOption {
    pub name: String,
    pub help: String,
    /// Without one, the option must be given.
    pub default: Option<String>,
    /// Its value must be a whole number (it is written into a script as one).
    pub whole_number: bool,
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
    pub options: Vec<KitOption>,
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
        let options = raw
            .options
            .into_iter()
            .map(|(name, o)| KitOption { name, help: o.help, default: o.default, whole_number: o.whole_number })
            .collect();
        Ok(Self {
            name: raw.name,
            description: raw.description,
            installer_roles: raw.installer_roles,
            roles,
            policies,
            options,
        })
    }

    /// The kit with its options set: `given` as `key=value` words (`on=discord:123
    /// threshold=100`), the defaults for the rest, written into its policies.
    ///
    /// # Errors
    /// An option the kit does not have, one it needs that is not given, a word that is not
    /// `key=value`, or a value with characters other than letters, digits and `:#._-`
    /// (values go into policies as they are, so nothing else may).
    pub fn configured(&self, given: &str) -> Result<Self, String> {
        let mut values: BTreeMap<&str, &str> = BTreeMap::new();
        for word in given.split_whitespace() {
            let Some((key, value)) = word.split_once('=').filter(|(k, v)| !k.is_empty() && !v.is_empty()) else {
                return Err(format!("`{word}` is not an option: write key=value"));
            };
            if !self.options.iter().any(|o| o.name == key) {
                return Err(match self.options.is_empty() {
                    true => format!("the kit {} has no options", self.name),
                    false => format!("the kit {} has no option `{key}`: {}", self.name, self.usage()),
                });
            }
            if !value.chars().all(|c| c.is_ascii_alphanumeric() || ":#._-".contains(c)) || value.len() > 100 {
                return Err(format!("`{value}` is not a value for {key}: use letters, digits and :#._- only"));
            }
            if self.options.iter().any(|o| o.name == key && o.whole_number)
                && !(value.len() <= 15 && value.chars().all(|c| c.is_ascii_digit()))
            {
                return Err(format!("`{value}` is not a value for {key}: write a whole number, such as 100"));
            }
            values.insert(key, value);
        }
        let mut kit = self.clone();
        for o in &self.options {
            let value = match (values.get(o.name.as_str()), &o.default) {
                (Some(v), _) => (*v).to_string(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(format!("the kit {} needs {}=... ({})", self.name, o.name, o.help));
                }
            };
            let mark = format!("${{{}}}", o.name);
            for p in &mut kit.policies {
                *p = p.replace(&mark, &value);
            }
        }
        Ok(kit)
    }

    /// Its options as `/kit install` takes them.
    pub fn usage(&self) -> String {
        self.options
            .iter()
            .map(|o| match &o.default {
                Some(d) => format!("{}=... ({}; {d} unless given)", o.name, o.help),
                None => format!("{}=... ({})", o.name, o.help),
            })
            .collect::<Vec<_>>()
            .join(", ")
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
