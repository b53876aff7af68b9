//! A community's relational rows (members, linked accounts, roles, permissions, member
//! roles): written to match the engine's `Community` exactly, and read back into one.
//!
//! Writing compares with what is stored and changes only the difference, so rows keep their
//! `created_at` / `linked_at`, and a step that changed nothing writes nothing.

use super::StoreError;
use super::codec::{enum_from_name, enum_name, ts};
use super::entities::{communities, linked_accounts, member_roles, members, role_permissions, roles};
use chrono::{DateTime, Utc};
use polity_governance::community::{LinkedAccount, Member, Role};
use polity_governance::{AccountRef, ActionPattern, Community, CommunityId, MemberId, Permission, PlatformRef};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use std::collections::{BTreeMap, BTreeSet};

/// Makes the stored members, accounts, roles, permissions and member roles of `c` match it.
pub(crate) async fn sync_community<C: ConnectionTrait>(
    db: &C,
    c: &Community,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let cid = c.id.0;
    let now = ts(now);

    // Members and roles first: the other rows refer to them.
    let stored_members: BTreeMap<i64, members::Model> = members::Entity::find()
        .filter(members::Column::CommunityId.eq(cid))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    for m in c.members.values() {
        match stored_members.get(&m.id.0) {
            None => {
                members::Entity::insert(members::ActiveModel {
                    community_id: Set(cid),
                    id: Set(m.id.0),
                    name: Set(m.name.to_string()),
                    admin: Set(m.admin),
                    created_at: Set(now),
                })
                .exec_without_returning(db)
                .await?;
            }
            Some(row) if row.name != m.name || row.admin != m.admin => {
                members::Entity::update_many()
                    .col_expr(members::Column::Name, Expr::value(m.name.to_string()))
                    .col_expr(members::Column::Admin, Expr::value(m.admin))
                    .filter(members::Column::CommunityId.eq(cid))
                    .filter(members::Column::Id.eq(m.id.0))
                    .exec(db)
                    .await?;
            }
            Some(_) => {}
        }
    }
    let stale_members: Vec<i64> =
        stored_members.keys().filter(|id| !c.members.contains_key(&MemberId(**id))).copied().collect();

    let stored_roles: BTreeMap<String, roles::Model> = roles::Entity::find()
        .filter(roles::Column::CommunityId.eq(cid))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    for r in c.roles.values() {
        match stored_roles.get(&r.name) {
            None => {
                roles::Entity::insert(roles::ActiveModel {
                    community_id: Set(cid),
                    name: Set(r.name.clone()),
                    description: Set(r.description.clone()),
                    bound: Set(bound_text(r)),
                })
                .exec_without_returning(db)
                .await?;
            }
            Some(row) if row.description != r.description || row.bound != bound_text(r) => {
                roles::Entity::update_many()
                    .col_expr(roles::Column::Description, Expr::value(r.description.clone()))
                    .col_expr(roles::Column::Bound, Expr::value(bound_text(r)))
                    .filter(roles::Column::CommunityId.eq(cid))
                    .filter(roles::Column::Name.eq(r.name.clone()))
                    .exec(db)
                    .await?;
            }
            Some(_) => {}
        }
    }
    let stale_roles: Vec<String> = stored_roles.keys().filter(|n| !c.roles.contains_key(*n)).cloned().collect();

    // Permissions: (role, permission, actions).
    let stored_grants: BTreeSet<(String, String, String)> = role_permissions::Entity::find()
        .filter(role_permissions::Column::CommunityId.eq(cid))
        .all(db)
        .await?
        .into_iter()
        .map(|g| (g.role, g.permission, g.actions))
        .collect();
    let wanted_grants: BTreeSet<(String, String, String)> = c
        .roles
        .values()
        .flat_map(|r| r.grants.iter().map(|(p, a)| (r.name.clone(), p.to_string(), a.as_str().to_string())))
        .collect();
    for (role, permission, actions) in stored_grants.difference(&wanted_grants) {
        role_permissions::Entity::delete_many()
            .filter(role_permissions::Column::CommunityId.eq(cid))
            .filter(role_permissions::Column::Role.eq(role.clone()))
            .filter(role_permissions::Column::Permission.eq(permission.clone()))
            .filter(role_permissions::Column::Actions.eq(actions.clone()))
            .exec(db)
            .await?;
    }
    let new_grants: Vec<role_permissions::ActiveModel> = wanted_grants
        .difference(&stored_grants)
        .map(|(role, permission, actions)| role_permissions::ActiveModel {
            community_id: Set(cid),
            role: Set(role.clone()),
            permission: Set(permission.clone()),
            actions: Set(actions.clone()),
        })
        .collect();
    if !new_grants.is_empty() {
        role_permissions::Entity::insert_many(new_grants).exec_without_returning(db).await?;
    }

    // Member roles: (member, role).
    let stored_held: BTreeSet<(i64, String)> = member_roles::Entity::find()
        .filter(member_roles::Column::CommunityId.eq(cid))
        .all(db)
        .await?
        .into_iter()
        .map(|h| (h.member_id, h.role))
        .collect();
    let wanted_held: BTreeSet<(i64, String)> =
        c.members.values().flat_map(|m| m.roles.iter().map(|r| (m.id.0, r.clone()))).collect();
    for (member, role) in stored_held.difference(&wanted_held) {
        member_roles::Entity::delete_many()
            .filter(member_roles::Column::CommunityId.eq(cid))
            .filter(member_roles::Column::MemberId.eq(*member))
            .filter(member_roles::Column::Role.eq(role.clone()))
            .exec(db)
            .await?;
    }
    let new_held: Vec<member_roles::ActiveModel> = wanted_held
        .difference(&stored_held)
        .map(|(member, role)| member_roles::ActiveModel {
            community_id: Set(cid),
            member_id: Set(*member),
            role: Set(role.clone()),
        })
        .collect();
    if !new_held.is_empty() {
        member_roles::Entity::insert_many(new_held).exec_without_returning(db).await?;
    }

    // Linked accounts, keyed by (platform, account): an account that moved to another member
    // is deleted and inserted again (it was linked anew).
    let mut wanted_accounts: BTreeMap<(String, String), (i64, String, i32)> = BTreeMap::new();
    let mut account_order: Vec<(String, String)> = Vec::new();
    for m in c.members.values() {
        for (i, l) in m.accounts.iter().enumerate() {
            let key = (l.account.platform.0.to_string(), l.account.account.to_string());
            let position = i32::try_from(i).unwrap_or(i32::MAX);
            let quality = enum_name(&l.quality, "link quality")?;
            if wanted_accounts.insert(key.clone(), (m.id.0, quality, position)).is_none() {
                account_order.push(key);
            }
        }
    }
    let stored_accounts =
        linked_accounts::Entity::find().filter(linked_accounts::Column::CommunityId.eq(cid)).all(db).await?;
    let mut kept: BTreeSet<(String, String)> = BTreeSet::new();
    for row in stored_accounts {
        let key = (row.platform.clone(), row.account.clone());
        match wanted_accounts.get(&key) {
            Some((member, quality, position)) if *member == row.member_id => {
                if *quality != row.quality || *position != row.position {
                    linked_accounts::Entity::update_many()
                        .col_expr(linked_accounts::Column::Quality, Expr::value(quality.clone()))
                        .col_expr(linked_accounts::Column::Position, Expr::value(*position))
                        .filter(linked_accounts::Column::Id.eq(row.id))
                        .exec(db)
                        .await?;
                }
                kept.insert(key);
            }
            _ => {
                linked_accounts::Entity::delete_by_id(row.id).exec(db).await?;
            }
        }
    }
    let new_accounts: Vec<linked_accounts::ActiveModel> = account_order
        .into_iter()
        .filter(|k| !kept.contains(k))
        .filter_map(|k| {
            let (member, quality, position) = wanted_accounts.get(&k)?.clone();
            Some(linked_accounts::ActiveModel {
                community_id: Set(cid),
                member_id: Set(member),
                platform: Set(k.0),
                account: Set(k.1),
                quality: Set(quality),
                position: Set(position),
                linked_at: Set(now),
                ..Default::default()
            })
        })
        .collect();
    if !new_accounts.is_empty() {
        linked_accounts::Entity::insert_many(new_accounts).exec_without_returning(db).await?;
    }

    // Members and roles that are gone, now that nothing refers to them. (Their accounts, member
    // roles and grants were removed above; the foreign keys would cascade anyway.)
    if !stale_members.is_empty() {
        members::Entity::delete_many()
            .filter(members::Column::CommunityId.eq(cid))
            .filter(members::Column::Id.is_in(stale_members))
            .exec(db)
            .await?;
    }
    if !stale_roles.is_empty() {
        roles::Entity::delete_many()
            .filter(roles::Column::CommunityId.eq(cid))
            .filter(roles::Column::Name.is_in(stale_roles))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The community as stored, rebuilt from its rows.
pub(crate) async fn load_community<C: ConnectionTrait>(db: &C, id: CommunityId) -> Result<Community, StoreError> {
    load_communities(db, &[id.0]).await?.pop().ok_or(StoreError::UnknownCommunity(id))
}

/// The communities whose ids are in `ids` (those that exist), by id, each with its members,
/// their accounts and roles, and the roles with their permissions: six queries for all of
/// them, so a start reads many communities in few round trips.
pub(crate) async fn load_communities<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<Vec<Community>, StoreError> {
    let ids = || ids.iter().copied();
    let mut by_id: BTreeMap<i64, Community> = BTreeMap::new();
    for row in communities::Entity::find().filter(communities::Column::Id.is_in(ids())).all(db).await? {
        let c = Community {
            id: CommunityId(row.id),
            name: row.name,
            members: BTreeMap::new(),
            roles: BTreeMap::new(),
            by_account: Default::default(),
        };
        by_id.insert(row.id, c);
    }
    let unknown = |what: String| StoreError::Corrupt(what);
    // Each community's members in id order, made a tree at once: built from sorted entries
    // a tree's nodes are full (inserted one by one in order, they were left half full: a
    // start with 50,000 members held 2 MiB more).
    let mut sorted: BTreeMap<i64, Vec<(MemberId, Member)>> = BTreeMap::new();
    for m in members::Entity::find()
        .filter(members::Column::CommunityId.is_in(ids()))
        .order_by_asc(members::Column::CommunityId)
        .order_by_asc(members::Column::Id)
        .all(db)
        .await?
    {
        if !by_id.contains_key(&m.community_id) {
            return Err(unknown(format!("member {} names unknown community {}", m.id, m.community_id)));
        }
        let member = Member {
            id: MemberId(m.id),
            name: m.name.into(),
            accounts: Vec::new(),
            roles: BTreeSet::new(),
            admin: m.admin,
        };
        sorted.entry(m.community_id).or_default().push((MemberId(m.id), member));
    }
    for (id, members) in sorted {
        if let Some(c) = by_id.get_mut(&id) {
            c.members = members.into_iter().collect();
        }
    }
    for a in linked_accounts::Entity::find()
        .filter(linked_accounts::Column::CommunityId.is_in(ids()))
        .order_by_asc(linked_accounts::Column::CommunityId)
        .order_by_asc(linked_accounts::Column::MemberId)
        .order_by_asc(linked_accounts::Column::Position)
        .order_by_asc(linked_accounts::Column::Id)
        .all(db)
        .await?
    {
        let quality = enum_from_name(&a.quality, &format!("link quality of {}:{}", a.platform, a.account))?;
        let member =
            by_id.get_mut(&a.community_id).and_then(|c| c.members.get_mut(&MemberId(a.member_id))).ok_or_else(
                || unknown(format!("linked account {}:{} names unknown member {}", a.platform, a.account, a.member_id)),
            )?;
        member.accounts.push(LinkedAccount {
            account: AccountRef { platform: PlatformRef(a.platform.into()), account: a.account.into() },
            quality,
        });
    }
    // Most members have one account: no room kept for more (it adds up over many communities).
    for member in by_id.values_mut().flat_map(|c| c.members.values_mut()) {
        member.accounts.shrink_to_fit();
    }
    for h in member_roles::Entity::find().filter(member_roles::Column::CommunityId.is_in(ids())).all(db).await? {
        let member = by_id
            .get_mut(&h.community_id)
            .and_then(|c| c.members.get_mut(&MemberId(h.member_id)))
            .ok_or_else(|| unknown(format!("member role {} names unknown member {}", h.role, h.member_id)))?;
        member.roles.insert(h.role);
    }
    for r in roles::Entity::find().filter(roles::Column::CommunityId.is_in(ids())).all(db).await? {
        if let Some(c) = by_id.get_mut(&r.community_id) {
            let bound = r.bound.split_whitespace().map(str::to_string).collect();
            c.roles.insert(
                r.name.clone(),
                Role { name: r.name, description: r.description, grants: BTreeSet::new(), bound },
            );
        }
    }
    for g in role_permissions::Entity::find().filter(role_permissions::Column::CommunityId.is_in(ids())).all(db).await?
    {
        let permission = Permission::parse(&g.permission).map_err(StoreError::Corrupt)?;
        let actions = ActionPattern::new(&g.actions).map_err(StoreError::Corrupt)?;
        let role = by_id.get_mut(&g.community_id).and_then(|c| c.roles.get_mut(&g.role)).ok_or_else(|| {
            unknown(format!("permission {} {} names unknown role {}", g.permission, g.actions, g.role))
        })?;
        role.grants.insert((permission, actions));
    }
    Ok(by_id.into_values().collect())
}

/// A role's platform roles as stored: space-separated (`discord:1 discord:2`).
fn bound_text(r: &Role) -> String {
    r.bound.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}
