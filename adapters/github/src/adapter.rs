//! GitHub on the platform host: a community's connection to one repository (a token, or a
//! GitHub App installed on it) and the test call behind `/integration test`.

use crate::api::{Api, ApiError};
use crate::config::{GitHubConfig, SPEC};
use crate::platform::GitHubPlatform;
use crate::poll::Redeliveries;
use crate::webhook::GitHubWebhooks;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformSpec};
use polity_port::webhook::WebhookPlatform;
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, Incoming, Poller, Scopes, SpaceInfo, Start, TestFailure,
};
use reqwest::Method;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// GitHub, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct GitHubAdapter;

impl Adapter for GitHubAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        GitHubConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = GitHubConfig::read(&config)?;
            start(config, how).await
        })
    }

    fn connection_config(
        &self,
        _bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        GitHubConfig::for_connection(settings, secret)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = GitHubConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let api = client(&config).map_err(TestFailure::Other)?;
            let (repo, who) = identify(&api).await.map_err(|e| test_failure(e, &config.repo))?;
            let allowed = |k: &str| repo.pointer(&format!("/permissions/{k}")).and_then(Value::as_bool) == Some(true);
            let name = repo.get("full_name").and_then(Value::as_str).unwrap_or(&config.repo);
            if repo.get("permissions").is_some() && !allowed("push") && !allowed("admin") {
                return Err(TestFailure::MissingPermission(format!(
                    "{who} can read {name} but not write to it: give the token Issues, Pull requests and Contents read and write"
                )));
            }
            Ok(format!("GitHub accepts the credentials: {who} can act on {name}."))
        })
    }

    fn webhooks(&self) -> Option<Arc<dyn WebhookPlatform>> {
        Some(Arc::new(GitHubWebhooks))
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

fn client(config: &GitHubConfig) -> Result<Api, String> {
    match (&config.token, config.app_id, &config.private_key) {
        (Some(token), _, _) => Api::with_token(&config.api_url, &config.repo, token, config.timeout()),
        (None, Some(app), Some(key)) => Api::with_app(&config.api_url, &config.repo, app, key, config.timeout()),
        _ => Err("a GitHub connection needs a token, or an App's id and private key".into()),
    }
}

/// The repository as GitHub shows it to these credentials, and who they are (a user's login,
/// or an App's bot, `SLUG[bot]`).
async fn identify(api: &Api) -> Result<(Value, String), ApiError> {
    let repo = api.call(Method::GET, &api.repo_path(""), None).await?.body;
    let who = if api.is_app() {
        let app = api.call_as_app(Method::GET, "/app", None).await?.body;
        format!("{}[bot]", app.get("slug").and_then(Value::as_str).unwrap_or("polity"))
    } else {
        let me = api.call(Method::GET, "/user", None).await?.body;
        me.get("login").and_then(Value::as_str).unwrap_or_default().to_string()
    };
    Ok((repo, who))
}

fn test_failure(e: ApiError, repo: &str) -> TestFailure {
    match e {
        ApiError::BadCredentials => TestFailure::BadCredentials(e.to_string()),
        ApiError::NotFound(_) => TestFailure::MissingPermission(format!(
            "GitHub shows no repository {repo} to these credentials: give the token (or install the App on) that repository"
        )),
        ApiError::RateLimited(_) | ApiError::Transient(_) => TestFailure::Unreachable(e.to_string()),
        ApiError::Refused { status: 403, .. } => TestFailure::MissingPermission(e.to_string()),
        other => TestFailure::Other(other.to_string()),
    }
}

/// Reads the repository and who Polity is there, announces the repository as the
/// connection's space, and hands out the connection.
async fn start(config: GitHubConfig, how: Start) -> Result<Box<dyn Connection>, AdapterError> {
    let api = client(&config).map_err(AdapterError::Start)?;
    let (repo, who) = identify(&api).await.map_err(|e| {
        AdapterError::Start(match e {
            ApiError::NotFound(_) => {
                format!("GitHub shows no repository {} to the connection's credentials", config.repo)
            }
            e => format!("reading {} on GitHub: {e}", config.repo),
        })
    })?;
    let name = repo.get("full_name").and_then(Value::as_str).unwrap_or(&config.repo).to_string();
    let space = SpaceInfo {
        space: config.repo.clone(),
        name,
        owner: (AccountRef::new("github", who.as_str()), who.clone()),
        members: collaborators(&api).await,
    };
    how.events
        .send(Incoming::Space(space))
        .await
        .map_err(|_| AdapterError::Start("the host stopped listening while the connection started".into()))?;
    let platform =
        GitHubPlatform::new(&how.connection, api.clone(), Some(who), Duration::from_secs(config.reactions_secs));
    let poller = Redeliveries::new(api, config.hook_id, Duration::from_secs(config.poll_secs))
        .with_members(how.events.clone(), config.repo.clone());
    // What GitHub failed to deliver while Polity was away, asked for again now.
    poller.check_now();
    Ok(Box::new(GitHubConnection { platform, repo: config.repo, poller }))
}

/// The repository's collaborators, its members (as far as the credentials may list them:
/// none, logged, when they may not).
pub(crate) async fn collaborators(api: &Api) -> Vec<(AccountRef, String)> {
    let mut members = Vec::new();
    let mut next = Some(api.repo_path("/collaborators?per_page=100"));
    for _ in 0..100 {
        let Some(page) = next.take() else { break };
        match api.call(Method::GET, &page, None).await {
            Ok(answer) => {
                for user in answer.body.as_array().into_iter().flatten() {
                    if let Some(login) = user.get("login").and_then(Value::as_str)
                        && user.get("type").and_then(Value::as_str) != Some("Bot")
                    {
                        members.push((AccountRef::new("github", login), login.to_string()));
                    }
                }
                next = answer.next;
            }
            Err(e) => {
                tracing::warn!(repo = api.repo(), "cannot list the repository's collaborators: {e}");
                break;
            }
        }
    }
    members
}

/// A running connection: nothing stays open between requests.
struct GitHubConnection {
    platform: GitHubPlatform,
    repo: String,
    poller: Redeliveries,
}

struct RepoScopes {
    platform: GitHubPlatform,
    repo: String,
}

impl Scopes for RepoScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        if spaces.iter().any(|s| s.eq_ignore_ascii_case(&self.repo)) {
            Arc::new(self.platform.clone())
        } else {
            Arc::new(self.platform.refusing())
        }
    }
}

impl Connection for GitHubConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(RepoScopes { platform: self.platform.clone(), repo: self.repo.clone() })
    }

    fn poller(&self) -> Option<Arc<dyn Poller>> {
        Some(Arc::new(self.poller.clone()))
    }

    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::pending())
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
