//! Communities, members with their linked platform accounts, roles and permissions.
//!
//! Every member holds the implicit role `everyone`; admins may do anything without a vote.

use crate::action::{ActionPattern, ActionType};
use crate::ids::{AccountRef, CommunityId, CompactString, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The role every member holds without being granted it.
pub const EVERYONE: &str = "everyone";

/// What a role may do with an action type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Start a proposal for it (or have a governed action of theirs put to a vote).
    Propose,
    /// Do it at once, without a vote: such a member is never governed for it.
    Execute,
    /// Cast ballots on proposals about it.
    Vote,
}

impl Permission {
    /// # Errors
    /// Names the three permissions when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "propose" => Ok(Self::Propose),
            "execute" => Ok(Self::Execute),
            "vote" => Ok(Self::Vote),
            _ => Err(format!("`{text}` is not a permission: use propose, execute or vote")),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Propose => "propose",
            Self::Execute => "execute",
            Self::Vote => "vote",
        })
    }
}

/// How sure we are that a linked account belongs to the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkQuality {
    /// The account the member first appeared with.
    Origin,
    /// Proven by a one-time code shown on one platform and typed on the other.
    CodeConfirmed,
    /// Asserted by an admin.
    AdminAsserted,
}

impl fmt::Display for LinkQuality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Origin => "first seen",
            Self::CodeConfirmed => "confirmed by code",
            Self::AdminAsserted => "linked by an admin",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAccount {
    pub account: AccountRef,
    pub quality: LinkQuality,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: MemberId,
    pub name: CompactString,
    pub accounts: Vec<LinkedAccount>,
    pub roles: BTreeSet<String>,
    pub admin: bool,
}

impl Member {
    pub fn has_role(&self, role: &str) -> bool {
        role == EVERYONE || self.roles.contains(role)
    }

    pub fn account_on(&self, platform: &str) -> Option<&AccountRef> {
        self.accounts.iter().map(|l| &l.account).find(|a| a.platform.as_str() == platform)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub grants: BTreeSet<(Permission, ActionPattern)>,
    /// The platform roles it is bound to (`discord:ROLE_ID`): granting it grants them, and
    /// revoking it revokes them (`/role bind`).
    #[serde(default)]
    pub bound: BTreeSet<String>,
}

/// Whether `to` names a platform's role as a binding does: `PLATFORM:ROLE_ID`, each part
/// letters, digits, `-` and `_` (and `.` in the id), no more than 64 of them.
pub fn valid_binding(to: &str) -> bool {
    let word = |w: &str, extra: &str| {
        !w.is_empty() && w.len() <= 64 && w.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    to.split_once(':').is_some_and(|(p, id)| word(p, "_-") && word(id, "_-."))
}

/// One governed community: its members, roles and admins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Community {
    pub id: CommunityId,
    pub name: String,
    pub members: BTreeMap<MemberId, Member>,
    pub roles: BTreeMap<String, Role>,
    /// Which member holds an account, as last looked up.
    #[serde(skip)]
    pub by_account: AccountIndex,
}

/// Which member holds each account looked up so far: a hint, checked against the members on
/// every use (they are a map anyone may change), so it saves a scan of the members and can
/// never give another answer than the scan would. Not part of what a community is: a copy
/// starts empty and any two compare equal.
#[derive(Default)]
pub struct AccountIndex(std::sync::Mutex<std::collections::HashMap<AccountRef, MemberId>>);

impl AccountIndex {
    fn get(&self, account: &AccountRef) -> Option<MemberId> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(account).copied()
    }

    fn set(&self, account: &AccountRef, member: MemberId) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(account.clone(), member);
    }
}

impl Clone for AccountIndex {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for AccountIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AccountIndex {}

impl fmt::Debug for AccountIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountIndex")
    }
}

/// Mistakes in community management, each saying what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error("there is no role `{0}`: `/role list` shows the roles")]
    UnknownRole(String),
    #[error("the role `{0}` already exists")]
    RoleExists(String),
    #[error("`{0}` is not a platform's role: write PLATFORM:ROLE_ID (letters, digits, `-` and `_`)")]
    BadBinding(String),
    #[error("`{0}` is not a role name: use lowercase letters, digits, `-` and `_`")]
    BadRoleName(String),
    #[error("{0} is not a member of this community")]
    UnknownMember(MemberId),
    #[error("the account {0} is already linked to {1}")]
    AlreadyLinked(AccountRef, MemberId),
    #[error("{0} is an admin: an admin's account can be linked only to another admin")]
    AdminMerge(MemberId),
}

impl Community {
    /// A new community. Its members may propose and vote on anything; admins may do
    /// anything without a vote. Starter kits and `/permission` change that.
    pub fn new(id: CommunityId, name: impl Into<String>) -> Self {
        let mut roles = BTreeMap::new();
        let grants = [(Permission::Propose, ActionPattern::any()), (Permission::Vote, ActionPattern::any())];
        roles.insert(
            EVERYONE.to_string(),
            Role {
                name: EVERYONE.into(),
                description: "every member".into(),
                grants: grants.into_iter().collect(),
                bound: BTreeSet::new(),
            },
        );
        Self { id, name: name.into(), members: BTreeMap::new(), roles, by_account: AccountIndex::default() }
    }

    /// Adds a member whose first account is `origin`; returns their id.
    ///
    /// # Errors
    /// When `origin` already belongs to a member.
    pub fn add_member(&mut self, name: &str, origin: AccountRef, admin: bool) -> Result<MemberId, CommunityError> {
        if let Some(owner) = self.member_by_account(&origin) {
            return Err(CommunityError::AlreadyLinked(origin, owner.id));
        }
        let id = MemberId(self.members.keys().next_back().map_or(1, |m| m.0 + 1));
        self.members.insert(
            id,
            Member {
                id,
                name: name.into(),
                accounts: vec![LinkedAccount { account: origin, quality: LinkQuality::Origin }],
                roles: BTreeSet::new(),
                admin,
            },
        );
        Ok(id)
    }

    /// # Errors
    /// When the member is unknown or the account belongs to someone else.
    pub fn link_account(
        &mut self,
        member: MemberId,
        account: AccountRef,
        quality: LinkQuality,
    ) -> Result<(), CommunityError> {
        if let Some(owner) = self.member_by_account(&account) {
            if owner.id == member {
                return Ok(());
            }
            return Err(CommunityError::AlreadyLinked(account, owner.id));
        }
        let m = self.members.get_mut(&member).ok_or(CommunityError::UnknownMember(member))?;
        m.accounts.push(LinkedAccount { account, quality });
        Ok(())
    }

    /// Makes `gone` part of `keep`: the same person, proven by a one-time code typed from
    /// one of `gone`'s accounts. `keep` gets `gone`'s accounts and roles (and is an admin if
    /// either was); `gone` is no more.
    ///
    /// # Errors
    /// When either is not a member, or they are the same.
    pub fn merge_members(&mut self, keep: MemberId, gone: MemberId) -> Result<(), CommunityError> {
        if keep == gone || !self.members.contains_key(&keep) {
            return Err(CommunityError::UnknownMember(keep));
        }
        // An admin's standing never passes to a member who is not one by a code: typed in
        // good faith, it would hand the community over.
        let keeper_admin = self.members.get(&keep).is_some_and(|m| m.admin);
        if self.members.get(&gone).is_some_and(|m| m.admin) && !keeper_admin {
            return Err(CommunityError::AdminMerge(gone));
        }
        let gone = self.members.remove(&gone).ok_or(CommunityError::UnknownMember(gone))?;
        if let Some(m) = self.members.get_mut(&keep) {
            m.accounts.extend(gone.accounts);
            m.roles.extend(gone.roles);
            m.admin |= gone.admin;
        }
        Ok(())
    }

    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(&id)
    }

    pub fn member_by_account(&self, account: &AccountRef) -> Option<&Member> {
        let holds = |m: &&Member| m.accounts.iter().any(|l| &l.account == account);
        if let Some(m) = self.by_account.get(account).and_then(|id| self.members.get(&id)).filter(holds) {
            return Some(m);
        }
        let found = self.members.values().find(holds);
        if let Some(m) = found {
            self.by_account.set(account, m.id);
        }
        found
    }

    pub fn member_by_name(&self, name: &str) -> Option<&Member> {
        self.members.values().find(|m| m.name.eq_ignore_ascii_case(name))
    }

    pub fn admins(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.admin)
    }

    /// # Errors
    /// When the name is malformed or taken.
    pub fn create_role(&mut self, name: &str, description: &str) -> Result<(), CommunityError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(CommunityError::BadRoleName(name.into()));
        }
        if self.roles.contains_key(name) {
            return Err(CommunityError::RoleExists(name.into()));
        }
        self.roles.insert(name.into(), Role { name: name.into(), description: description.into(), ..Role::default() });
        Ok(())
    }

    /// Binds `role` to the platform role `to` (`discord:ROLE_ID`), or unbinds it. Answers
    /// whether that changed anything.
    ///
    /// # Errors
    /// When the role does not exist, or is `everyone` (every member holds it, so its
    /// platform role would be everyone's too: the platform has that already).
    pub fn bind_role(&mut self, role: &str, to: &str, bind: bool) -> Result<bool, CommunityError> {
        if role == EVERYONE {
            return Err(CommunityError::UnknownRole(role.into()));
        }
        if bind && !valid_binding(to) {
            return Err(CommunityError::BadBinding(to.into()));
        }
        let r = self.roles.get_mut(role).ok_or_else(|| CommunityError::UnknownRole(role.into()))?;
        Ok(if bind { r.bound.insert(to.to_string()) } else { r.bound.remove(to) })
    }

    /// # Errors
    /// When the role or the member is unknown.
    pub fn grant_role(&mut self, member: MemberId, role: &str) -> Result<(), CommunityError> {
        if !self.roles.contains_key(role) {
            return Err(CommunityError::UnknownRole(role.into()));
        }
        let m = self.members.get_mut(&member).ok_or(CommunityError::UnknownMember(member))?;
        if role != EVERYONE {
            m.roles.insert(role.into());
        }
        Ok(())
    }

    /// # Errors
    /// When the member is unknown.
    pub fn revoke_role(&mut self, member: MemberId, role: &str) -> Result<(), CommunityError> {
        let m = self.members.get_mut(&member).ok_or(CommunityError::UnknownMember(member))?;
        m.roles.remove(role);
        Ok(())
    }

    /// # Errors
    /// When the role is unknown.
    pub fn grant_permission(
        &mut self,
        role: &str,
        permission: Permission,
        actions: ActionPattern,
    ) -> Result<(), CommunityError> {
        let r = self.roles.get_mut(role).ok_or_else(|| CommunityError::UnknownRole(role.into()))?;
        r.grants.insert((permission, actions));
        Ok(())
    }

    /// # Errors
    /// When the role is unknown.
    pub fn revoke_permission(
        &mut self,
        role: &str,
        permission: Permission,
        actions: &ActionPattern,
    ) -> Result<(), CommunityError> {
        let r = self.roles.get_mut(role).ok_or_else(|| CommunityError::UnknownRole(role.into()))?;
        r.grants.remove(&(permission, actions.clone()));
        Ok(())
    }

    /// Whether `member` may do `permission` with `action`. Admins may do everything; an
    /// unknown member (`None`) nothing.
    pub fn can(&self, member: Option<MemberId>, permission: Permission, action: &ActionType) -> bool {
        let Some(m) = member.and_then(|id| self.members.get(&id)) else {
            return false;
        };
        if m.admin {
            return true;
        }
        self.roles
            .values()
            .filter(|r| m.has_role(&r.name))
            .flat_map(|r| r.grants.iter())
            .any(|(p, pattern)| *p == permission && pattern.matches(action))
    }

    /// The member's roles, `everyone` first.
    pub fn roles_of(&self, member: MemberId) -> Vec<String> {
        let mut out = vec![EVERYONE.to_string()];
        if let Some(m) = self.members.get(&member) {
            out.extend(m.roles.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_bound_to_platform_roles_written_as_platform_colon_id() {
        let (mut c, _, _) = community();
        c.create_role("voter", "").unwrap();
        assert_eq!(c.bind_role("voter", "discord:400000000000000007", true), Ok(true));
        assert_eq!(c.bind_role("voter", "discord:400000000000000007", true), Ok(false));
        for bad in ["discord", "discord:", ":1", "discord:1 2", "dis cord:1", "discord:<@&1>", "a:b:c"] {
            assert_eq!(c.bind_role("voter", bad, true), Err(CommunityError::BadBinding(bad.into())), "{bad}");
        }
        assert_eq!(c.bind_role(EVERYONE, "discord:1", true), Err(CommunityError::UnknownRole(EVERYONE.into())));
        assert_eq!(c.bind_role("nope", "discord:1", true), Err(CommunityError::UnknownRole("nope".into())));
        assert_eq!(c.bind_role("voter", "discord:400000000000000007", false), Ok(true));
        assert!(c.roles["voter"].bound.is_empty());
    }

    fn community() -> (Community, MemberId, MemberId) {
        let mut c = Community::new(CommunityId(1), "test");
        let admin = c.add_member("admin", AccountRef::new("console", "admin"), true).unwrap();
        let alice = c.add_member("alice", AccountRef::new("console", "alice"), false).unwrap();
        (c, admin, alice)
    }

    #[test]
    fn admins_may_do_anything_members_only_what_roles_grant() {
        let (mut c, admin, alice) = community();
        let rename = ActionType::new("discord.rename_channel").unwrap();
        assert!(c.can(Some(admin), Permission::Execute, &rename));
        assert!(!c.can(Some(alice), Permission::Execute, &rename));
        assert!(!c.can(None, Permission::Propose, &rename));

        c.create_role("mod", "moderators").unwrap();
        c.grant_permission("mod", Permission::Execute, ActionPattern::new("discord.*").unwrap()).unwrap();
        assert!(!c.can(Some(alice), Permission::Execute, &rename));
        c.grant_role(alice, "mod").unwrap();
        assert!(c.can(Some(alice), Permission::Execute, &rename));
        // New communities let every member propose and vote.
        assert!(c.can(Some(alice), Permission::Vote, &rename));
        assert!(c.can(Some(alice), Permission::Propose, &rename));
        c.revoke_role(alice, "mod").unwrap();
        assert!(!c.can(Some(alice), Permission::Execute, &rename));

        c.revoke_permission(EVERYONE, Permission::Vote, &ActionPattern::any()).unwrap();
        assert!(!c.can(Some(alice), Permission::Vote, &rename));
    }

    #[test]
    fn linked_accounts_resolve_to_one_member_and_cannot_be_shared() {
        let (mut c, admin, alice) = community();
        let discord = AccountRef::new("discord", "1234");
        c.link_account(alice, discord.clone(), LinkQuality::CodeConfirmed).unwrap();
        assert_eq!(c.member_by_account(&discord).unwrap().id, alice);
        assert_eq!(c.member(alice).unwrap().account_on("discord"), Some(&discord));
        assert_eq!(
            c.link_account(admin, discord.clone(), LinkQuality::AdminAsserted),
            Err(CommunityError::AlreadyLinked(discord, alice))
        );
    }

    #[test]
    fn role_mistakes_are_specific() {
        let (mut c, _, alice) = community();
        assert_eq!(c.grant_role(alice, "voter"), Err(CommunityError::UnknownRole("voter".into())));
        assert_eq!(c.create_role("Bad Name", ""), Err(CommunityError::BadRoleName("Bad Name".into())));
        c.create_role("voter", "").unwrap();
        assert_eq!(c.create_role("voter", ""), Err(CommunityError::RoleExists("voter".into())));
        assert_eq!(c.roles_of(alice), vec!["everyone".to_string()]);
        c.grant_role(alice, "voter").unwrap();
        assert_eq!(c.roles_of(alice), vec!["everyone".to_string(), "voter".to_string()]);
    }

    #[test]
    fn an_account_is_found_by_its_member_even_after_the_members_changed_behind_the_hint() {
        let (mut c, _, alice) = community();
        let account = AccountRef::new("console", "alice");
        assert_eq!(c.member_by_account(&account).map(|m| m.id), Some(alice));
        // Moved to another member by writing the map directly: the hint is stale.
        let bob = c.add_member("bob", AccountRef::new("console", "bob"), false).unwrap();
        c.members.get_mut(&alice).unwrap().accounts.clear();
        c.members
            .get_mut(&bob)
            .unwrap()
            .accounts
            .push(LinkedAccount { account: account.clone(), quality: LinkQuality::AdminAsserted });
        assert_eq!(c.member_by_account(&account).map(|m| m.id), Some(bob));
        c.members.remove(&bob);
        assert_eq!(c.member_by_account(&account).map(|m| m.id), None);
        // A copy starts without hints and still answers, and equals the original.
        let copy = c.clone();
        assert_eq!(copy, c);
        assert_eq!(
            copy.member_by_account(&AccountRef::new("console", "admin")).map(|m| m.name.as_str()),
            Some("admin")
        );
    }
}
