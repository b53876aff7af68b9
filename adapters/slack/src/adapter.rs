//! Slack on the platform host: its connections (Polity's own app from `[platforms.slack]`, or
//! a community's own bot token) and the test call behind `/integration test`.

use crate::api::{Api, Failure};
use crate::config::{SPEC, SlackConfig};
use crate::endpoint::SlackEndpoint;
use crate::events::display_name;
use crate::known::{Known, Member};
use crate::platform::SlackPlatform;
use crate::socket::{Listener, Socket};
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformError, PlatformSpec};
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, Endpoint, Incoming, Scopes, SpaceInfo, Start, TestFailure,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Slack, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlackAdapter;

impl Adapter for SlackAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        SlackConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = SlackConfig::read(&config)?;
            let connection = start(&config, how).await?;
            Ok(Box::new(connection) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        SlackConfig::for_connection(bot, settings, secret)
    }

    fn test(&self, config: Value, settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = SlackConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let api = Api::new(&config).map_err(TestFailure::Other)?;
            let me = api.post("auth.test", &Value::Object(Map::new()), None).await.map_err(test_failure)?;
            let team = me.get("team_id").and_then(Value::as_str).unwrap_or_default().to_string();
            let who = me.get("user").and_then(Value::as_str).unwrap_or("the bot").to_string();
            let team_name = me.get("team").and_then(Value::as_str).unwrap_or(&team).to_string();
            let wanted = settings.get("workspace").and_then(Value::as_str).or(config.workspace.as_deref());
            if let Some(wanted) = wanted
                && wanted != team
            {
                return Err(TestFailure::MissingPermission(format!(
                    "the token is the bot {who} of the workspace {team_name} ({team}), not of {wanted}: install Polity's app in {wanted} and use that workspace's bot token"
                )));
            }
            // Reading the members is what a start does first (users:read).
            api.get("users.list", &[("limit", "1".to_string())], None).await.map_err(test_failure)?;
            Ok(format!(
                "Slack accepts the token: it is the bot {who} of the workspace {team_name} ({team}), and it can read the workspace's members."
            ))
        })
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

/// A failed test call, as the reply says it.
fn test_failure(failure: Failure) -> TestFailure {
    let text = failure.error.to_string();
    match (failure.code.as_deref(), &failure.error) {
        (Some("invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive"), _) => {
            TestFailure::BadCredentials(text)
        }
        (Some("missing_scope" | "not_allowed_token_type" | "no_permission"), _) => {
            TestFailure::MissingPermission(format!(
                "{text}: add the scopes in adapters/slack/manifest.yaml to the app (OAuth & Permissions) and reinstall it"
            ))
        }
        (_, PlatformError::Transient(_) | PlatformError::RateLimited { .. }) => TestFailure::Unreachable(text),
        _ => TestFailure::Other(text),
    }
}

/// Reads who the bot is and its workspace, hands the workspace to the host, and opens
/// Socket Mode if there is an app-level token.
async fn start(config: &SlackConfig, how: Start) -> Result<SlackConnection, AdapterError> {
    let api = Api::new(config).map_err(AdapterError::Start)?;
    let known = Arc::new(Known::default());
    let me = api.post("auth.test", &Value::Object(Map::new()), None).await.map_err(|f| {
        AdapterError::Start(match f.code.as_deref() {
            Some("invalid_auth" | "not_authed" | "token_revoked" | "account_inactive") => {
                format!(
                    "Slack refused the bot token ({}): reinstall the app and configure its new Bot User OAuth Token",
                    f.code.unwrap_or_default()
                )
            }
            _ => format!("cannot reach Slack to start: {}", f.error),
        })
    })?;
    let text = |k: &str| me.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (team, bot_user) = (text("team_id"), text("user_id"));
    if team.is_empty() || bot_user.is_empty() {
        return Err(AdapterError::Start("Slack's auth.test did not say which workspace and bot the token is".into()));
    }
    if let Some(wanted) = &config.workspace
        && *wanted != team
    {
        return Err(AdapterError::Start(format!("the bot token is of the workspace {team}, not {wanted}")));
    }
    known.set_identity(&bot_user, &team);
    let space = read_space(&api, &known, &how.connection, &team, &text("team")).await?;
    if how.events.send(Incoming::Space(space)).await.is_err() {
        return Err(AdapterError::Start("the host stopped before Slack started".into()));
    }
    let admin = match &config.user_token {
        Some(token) => Some(Api::with_client(
            crate::api::client(&config.api_url).map_err(AdapterError::Start)?,
            token,
            Duration::from_millis(config.timeout_ms),
            &config.api_url,
        )),
        None => None,
    };
    let platform = SlackPlatform::new(how.connection.clone(), api.clone(), Arc::clone(&known)).with_admin(admin);
    let listener = Arc::new(Listener::new(how.connection.clone(), how.events.clone(), Arc::clone(&known), api.clone()));
    let endpoint = config.signing_secret.as_ref().map(|secret| {
        Arc::new(SlackEndpoint::new(Arc::clone(&listener), secret.trim().to_string())) as Arc<dyn Endpoint>
    });
    let socket = match &config.app_token {
        Some(app_token) => {
            let connector = crate::api::connector(&config.api_url).map_err(AdapterError::Start)?;
            Some(Socket::open(&connector, app_token, listener).await.map_err(AdapterError::Start)?)
        }
        None => {
            // Without Socket Mode nothing says hello: the votes are read back now.
            if how.events.send(Incoming::Connected { resumed: false }).await.is_err() {
                return Err(AdapterError::Start("the host stopped before Slack started".into()));
            }
            None
        }
    };
    Ok(SlackConnection { socket, platform, team, endpoint })
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
            let admin = flag("is_admin") || flag("is_owner") || flag("is_primary_owner");
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

/// A running Slack connection.
struct SlackConnection {
    socket: Option<Socket>,
    endpoint: Option<Arc<dyn Endpoint>>,
    platform: SlackPlatform,
    team: String,
}

struct WorkspaceScopes {
    platform: SlackPlatform,
    team: String,
}

impl Scopes for WorkspaceScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        if spaces.contains(&self.team) {
            Arc::new(self.platform.clone())
        } else {
            Arc::new(self.platform.refusing(&self.team))
        }
    }
}

impl Connection for SlackConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(WorkspaceScopes { platform: self.platform.clone(), team: self.team.clone() })
    }

    fn endpoint(&self) -> Option<Arc<dyn Endpoint>> {
        self.endpoint.clone()
    }

    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        // slack-morphism reconnects by itself; a revoked token shows in the effects' errors.
        Box::pin(std::future::pending())
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Some(socket) = self.socket {
                socket.shutdown().await;
            }
        })
    }
}
