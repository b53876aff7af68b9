//! The workspaces one Slack connection acts in: one for a bot token configured by hand, or
//! every workspace Polity's app was installed in through OAuth. Each has its own bot token
//! (and budget), its installing admin's user token if there is one, and what is known there;
//! every frame and request Slack sends names its workspace (`team_id`), and is read with that
//! workspace's.

use crate::api::{Api, Client, Failure};
use crate::events::display_name;
use crate::known::{Known, Member};
use crate::platform::SlackPlatform;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{Platform, PlatformError};
use polity_port::{AdapterError, Scopes, SpaceInfo};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// One workspace Polity acts in.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub team: String,
    pub api: Api,
    pub known: Arc<Known>,
    pub platform: SlackPlatform,
}

/// Where a connection's workspaces are: its client, the Web API's address and timeout.
#[derive(Clone)]
pub struct Opener {
    pub connection: String,
    pub client: Arc<Client>,
    pub api_url: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").field("connection", &self.connection).field("api_url", &self.api_url).finish()
    }
}

/// Why a workspace could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Slack refused the token: the app was removed, or the token revoked.
    Revoked(String),
    /// Anything else (Slack unreachable, a workspace without an admin, the wrong workspace).
    Other(String),
}

impl From<OpenError> for AdapterError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Revoked(e) | OpenError::Other(e) => AdapterError::Start(e),
        }
    }
}

impl Opener {
    /// The Web API as `token`.
    pub fn api(&self, token: &str) -> Api {
        Api::with_client(Arc::clone(&self.client), token, self.timeout, &self.api_url)
    }

    /// Opens the workspace of `bot_token` (`auth.test`, then its members): the workspace, and
    /// the space to hand the host. `wanted` is the workspace the token must be of.
    ///
    /// # Errors
    /// [`OpenError::Revoked`] when Slack refuses the token, else [`OpenError::Other`].
    pub async fn open(
        &self,
        bot_token: &str,
        user_token: Option<&str>,
        wanted: Option<&str>,
    ) -> Result<(Workspace, SpaceInfo), OpenError> {
        let api = self.api(bot_token);
        let known = Arc::new(Known::default());
        let me =
            api.post("auth.test", &Value::Object(Map::new()), None).await.map_err(|f| match f.code.as_deref() {
                Some(code @ ("invalid_auth" | "not_authed" | "token_revoked" | "account_inactive")) => {
                    OpenError::Revoked(format!(
                        "Slack refused the bot token ({code}): reinstall the app and use its new Bot User OAuth Token"
                    ))
                }
                _ => OpenError::Other(format!("cannot reach Slack to start: {}", f.error)),
            })?;
        let text = |k: &str| me.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let (team, bot_user) = (text("team_id"), text("user_id"));
        if team.is_empty() || bot_user.is_empty() {
            return Err(OpenError::Other("Slack's auth.test did not say which workspace and bot the token is".into()));
        }
        if let Some(wanted) = wanted
            && wanted != team
        {
            return Err(OpenError::Other(format!("the bot token is of the workspace {team}, not {wanted}")));
        }
        known.set_identity(&bot_user, &team);
        let space = read_space(&api, &known, &self.connection, &team, &text("team"))
            .await
            .map_err(|e| OpenError::Other(e.to_string()))?;
        let admin = user_token.map(|token| self.api(token));
        let platform = SlackPlatform::new(self.connection.clone(), api.clone(), Arc::clone(&known)).with_admin(admin);
        Ok((Workspace { team, api, known, platform }, space))
    }
}

/// A connection's workspaces, by id. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Workspaces {
    map: Arc<RwLock<HashMap<String, Workspace>>>,
    /// What acts where this connection has no workspace: it refuses.
    nowhere: SlackPlatform,
}

impl Workspaces {
    pub fn new(opener: &Opener) -> Self {
        let nowhere = SlackPlatform::new(opener.connection.clone(), opener.api(""), Arc::new(Known::default()));
        Self { map: Arc::default(), nowhere }
    }

    pub fn get(&self, team: &str) -> Option<Workspace> {
        self.map.read().unwrap_or_else(PoisonError::into_inner).get(team).cloned()
    }

    /// Adds (or replaces, after a new install) a workspace.
    pub fn insert(&self, workspace: Workspace) {
        self.map.write().unwrap_or_else(PoisonError::into_inner).insert(workspace.team.clone(), workspace);
    }

    /// Forgets a workspace; whether there was one.
    pub fn remove(&self, team: &str) -> bool {
        self.map.write().unwrap_or_else(PoisonError::into_inner).remove(team).is_some()
    }

    pub fn teams(&self) -> Vec<String> {
        self.map.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }
}

impl Scopes for Workspaces {
    /// The platform of the first of `spaces` this connection acts in; a community governs one
    /// workspace per Slack connection (Slack's channel ids do not say their workspace).
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        match spaces.iter().find_map(|space| self.get(space)) {
            Some(workspace) => Arc::new(workspace.platform),
            None => {
                let named = spaces.first().map_or("of this connection", String::as_str);
                Arc::new(self.nowhere.refusing(named))
            }
        }
    }
}

/// The workspace, its members (bots, deleted accounts and Slackbot left out) and who controls
/// it: the primary owner, else an owner, else an admin.
async fn read_space(
    api: &Api,
    known: &Known,
    connection: &str,
    team: &str,
    team_name: &str,
) -> Result<SpaceInfo, AdapterError> {
    let mut members: Vec<(AccountRef, String)> = Vec::new();
    let mut controller: Option<(u8, AccountRef, String)> = None;
    let mut cursor = String::new();
    // A workspace of many thousands is read 200 at a time; 500 pages is 100,000 members.
    for _ in 0..500 {
        let mut query = vec![("limit", "200".to_string())];
        if !cursor.is_empty() {
            query.push(("cursor", cursor.clone()));
        }
        let page = users_page(api, &query).await?;
        for user in page.get("members").and_then(Value::as_array).into_iter().flatten() {
            let flag = |k: &str| user.get(k).and_then(Value::as_bool) == Some(true);
            let Some(id) = user.get("id").and_then(Value::as_str) else { continue };
            if flag("is_bot") || flag("deleted") || id == "USLACKBOT" || flag("is_app_user") {
                continue;
            }
            let name = display_name(user).unwrap_or_else(|| id.to_string());
            let admin = crate::events::controls_workspace(user);
            let rank = if flag("is_primary_owner") {
                3
            } else if flag("is_owner") {
                2
            } else {
                u8::from(admin)
            };
            let account = AccountRef::new(connection, id);
            if rank > 0 && controller.as_ref().is_none_or(|(r, ..)| rank > *r) {
                controller = Some((rank, account.clone(), name.clone()));
            }
            known.set_members([(id.to_string(), Member { name: name.clone(), admin })]);
            members.push((account, name));
        }
        cursor = page.pointer("/response_metadata/next_cursor").and_then(Value::as_str).unwrap_or_default().to_string();
        if cursor.is_empty() {
            break;
        }
    }
    let Some((_, owner, owner_name)) = controller else {
        return Err(AdapterError::Start(format!("Slack listed no admin or owner of the workspace {team}")));
    };
    let name = if team_name.is_empty() { team.to_string() } else { team_name.to_string() };
    Ok(SpaceInfo { space: team.to_string(), name, owner: (owner, owner_name), members })
}

/// One page of `users.list`, waiting out Slack's limit (Tier 2) if it says so: this is a
/// start, not an effect, and nothing else waits on it.
async fn users_page(api: &Api, query: &[(&str, String)]) -> Result<Value, AdapterError> {
    for _ in 0..5 {
        match api.get("users.list", query, None).await {
            Ok(page) => return Ok(page),
            Err(Failure { error: PlatformError::RateLimited { retry_after }, .. }) => {
                tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(60))).await;
            }
            Err(f) => return Err(AdapterError::Start(format!("cannot list the workspace's members: {}", f.error))),
        }
    }
    Err(AdapterError::Start("Slack kept refusing users.list as rate limited".into()))
}
