//! Slack on the platform host: its connections (Polity's own app from `[platforms.slack]`, or
//! a community's own bot token) and the test call behind `/integration test`.

use crate::api::{Api, Failure};
use crate::config::{SPEC, SlackConfig};
use crate::endpoint::SlackEndpoint;
use crate::oauth::Installer;
use crate::socket::{Listener, Socket};
use crate::workspaces::{OpenError, Opener, Workspaces};
use polity_governance::platform::{ActionInfo, PlatformError, PlatformSpec};
use polity_port::{Adapter, AdapterError, BoxFuture, Connection, Endpoint, Incoming, Scopes, Start, TestFailure};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Slack, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlackAdapter;

impl Adapter for SlackAdapter {
    /// slack-morphism's debug and trace lines, and those of the websocket library under it,
    /// carry the raw Socket Mode frames (a secret typed into Polity's form among them) and
    /// `response_url`s; its info lines are left out unless asked for.
    fn log_lines(&self) -> polity_port::LogLines {
        polity_port::LogLines {
            secret_detail: &["slack_morphism", "tungstenite", "tokio_tungstenite"],
            quiet: &["slack_morphism"],
            connect_attempts: None,
        }
    }

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
            let Some(token) = config.bot_token.as_deref() else {
                return Err(TestFailure::Other("a Slack connection needs the workspace's bot token (xoxb-...)".into()));
            };
            let api = Api::new(&config, token).map_err(TestFailure::Other)?;
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

/// Opens the workspaces (the configured bot token's, and every stored install's), hands each
/// to the host, and opens Socket Mode if there is an app-level token.
async fn start(config: &SlackConfig, how: Start) -> Result<SlackConnection, AdapterError> {
    let opener = Opener {
        connection: how.connection.clone(),
        client: crate::api::client(&config.api_url).map_err(AdapterError::Start)?,
        api_url: config.api_url.clone(),
        timeout: Duration::from_millis(config.timeout_ms),
    };
    let workspaces = Workspaces::new(&opener);
    let gone = || AdapterError::Start("the host stopped before Slack started".into());
    if let Some(token) = &config.bot_token {
        let (workspace, space) = opener.open(token, config.user_token.as_deref(), config.workspace.as_deref()).await?;
        workspaces.insert(workspace);
        how.events.send(Incoming::Space(space)).await.map_err(|_| gone())?;
    }
    for install in &how.installs {
        let mut tokens = install.secret.split_whitespace();
        let (Some(bot), user) = (tokens.next(), tokens.find(|t| t.starts_with("xoxp-"))) else { continue };
        match opener.open(bot, user, Some(&install.space)).await {
            Ok((workspace, space)) => {
                workspaces.insert(workspace);
                how.events.send(Incoming::Space(space)).await.map_err(|_| gone())?;
            }
            Err(OpenError::Revoked(why)) => {
                tracing::info!(workspace = install.space, "Polity's app is no longer installed there: {why}");
                how.events.send(Incoming::Uninstalled { space: install.space.clone() }).await.map_err(|_| gone())?;
            }
            Err(OpenError::Other(why)) => {
                tracing::error!(workspace = install.space, "cannot open an installed workspace: {why}");
            }
        }
    }
    let listener = Arc::new(Listener::new(how.connection.clone(), how.events.clone(), workspaces.clone(), &opener));
    let installer = match (&config.client_id, &config.client_secret) {
        (Some(id), Some(secret)) => Some(Arc::new(Installer::new(
            id.trim(),
            secret.trim(),
            config.redirect_url.clone(),
            config.authorize_url.clone(),
            opener.clone(),
            workspaces.clone(),
            how.events.clone(),
        ))),
        _ => None,
    };
    let signing = config.signing_secret.as_ref().map(|s| s.trim().to_string());
    let endpoint = (signing.is_some() || installer.is_some())
        .then(|| Arc::new(SlackEndpoint::new(Arc::clone(&listener), signing, installer)) as Arc<dyn Endpoint>);
    let socket = match &config.app_token {
        Some(app_token) => {
            let connector = crate::api::connector(&config.api_url).map_err(AdapterError::Start)?;
            Some(Socket::open(&connector, app_token, listener).await.map_err(AdapterError::Start)?)
        }
        None => {
            // Without Socket Mode nothing says hello: the votes are read back now.
            how.events.send(Incoming::Connected { resumed: false }).await.map_err(|_| gone())?;
            None
        }
    };
    Ok(SlackConnection { socket, workspaces, endpoint })
}

/// A running Slack connection.
struct SlackConnection {
    socket: Option<Socket>,
    endpoint: Option<Arc<dyn Endpoint>>,
    workspaces: Workspaces,
}

impl Connection for SlackConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(self.workspaces.clone())
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
