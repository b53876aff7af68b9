//! Reddit on the platform host: a community's connection to one subreddit, and the test
//! call behind `/integration test`.

use crate::api::{Api, ApiError};
use crate::config::{RedditConfig, SPEC};
use crate::platform::RedditPlatform;
use crate::poll::RedditPoller;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformSpec};
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, Incoming, Poller, Scopes, SpaceInfo, Start, TestFailure,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Reddit, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedditAdapter;

/// Who the account is, and whether it moderates the subreddit.
async fn whoami(api: &Api) -> Result<(String, bool), ApiError> {
    let me = api.get("/api/v1/me", &[]).await?;
    let name = me.get("name").and_then(Value::as_str).unwrap_or(&api.config().username).to_string();
    let about = api.get(&format!("/r/{}/about", api.config().subreddit), &[]).await?;
    Ok((name, about.pointer("/data/user_is_moderator").and_then(Value::as_bool) == Some(true)))
}

/// The subreddit's moderators and approved users: its members (as far as the account may
/// list them).
async fn members(api: &Api) -> Vec<(AccountRef, String)> {
    let mut all: Vec<(AccountRef, String)> = Vec::new();
    let me = api.config().username.to_ascii_lowercase();
    for list in ["moderators", "contributors"] {
        match api.get(&format!("/r/{}/about/{list}", api.config().subreddit), &[("limit", "100".into())]).await {
            Ok(answer) => {
                for user in answer.pointer("/data/children").and_then(Value::as_array).into_iter().flatten() {
                    let Some(name) = user.get("name").and_then(Value::as_str) else { continue };
                    if name.to_ascii_lowercase() != me && !all.iter().any(|(_, n)| n == name) {
                        all.push((AccountRef::new("reddit", name), name.to_string()));
                    }
                }
            }
            Err(e) => tracing::warn!(subreddit = %api.config().subreddit, "cannot list the subreddit's {list}: {e}"),
        }
    }
    all
}

impl Adapter for RedditAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        RedditConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = RedditConfig::read(&config)?;
            let api = Api::for_connection(&config, how.events.clone()).map_err(AdapterError::Start)?;
            let (name, moderator) = whoami(&api)
                .await
                .map_err(|e| AdapterError::Start(format!("reading r/{} on Reddit: {e}", config.subreddit)))?;
            if !moderator {
                tracing::warn!(subreddit = %config.subreddit, "{name} is no moderator: Polity cannot remove or approve posts");
            }
            let space = SpaceInfo {
                space: config.subreddit.clone(),
                name: format!("r/{}", config.subreddit),
                owner: (AccountRef::new("reddit", name.as_str()), name),
                members: members(&api).await,
            };
            how.events
                .send(Incoming::Space(space))
                .await
                .map_err(|_| AdapterError::Start("the host stopped listening while the connection started".into()))?;
            let every = Duration::from_secs(config.poll_secs);
            let platform = RedditPlatform::new(&how.connection, api.clone(), every);
            let poller = RedditPoller::new(api, every);
            Ok(Box::new(RedditConnection { platform, subreddit: config.subreddit, poller }) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        _bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        RedditConfig::for_connection(settings, secret)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = RedditConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let api = Api::new(&config).map_err(TestFailure::Other)?;
            match whoami(&api).await {
                Ok((name, true)) => {
                    Ok(format!("Reddit accepts the app and the account: {name} moderates r/{}.", config.subreddit))
                }
                Ok((name, false)) => Err(TestFailure::MissingPermission(format!(
                    "{name} is no moderator of r/{}: Polity could not remove or approve posts there",
                    config.subreddit
                ))),
                Err(ApiError::Refused(why)) => Err(TestFailure::BadCredentials(why)),
                Err(ApiError::NotFound) => {
                    Err(TestFailure::MissingPermission(format!("Reddit shows the account no r/{}", config.subreddit)))
                }
                Err(e @ (ApiError::Transient(_) | ApiError::RateLimited(_))) => {
                    Err(TestFailure::Unreachable(e.to_string()))
                }
                Err(e) => Err(TestFailure::Other(e.to_string())),
            }
        })
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

struct RedditConnection {
    platform: RedditPlatform,
    subreddit: String,
    poller: RedditPoller,
}

struct SubredditScopes {
    platform: RedditPlatform,
    subreddit: String,
}

impl Scopes for SubredditScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        if spaces.contains(&self.subreddit) {
            Arc::new(self.platform.clone())
        } else {
            Arc::new(self.platform.refusing())
        }
    }
}

impl Connection for RedditConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(SubredditScopes { platform: self.platform.clone(), subreddit: self.subreddit.clone() })
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
