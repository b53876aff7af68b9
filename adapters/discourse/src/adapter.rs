//! Discourse on the platform host: a community's connection to one forum, and the test call
//! behind `/integration test`.

use crate::api::{Api, ApiError};
use crate::config::{DiscourseConfig, SPEC};
use crate::platform::DiscoursePlatform;
use crate::webhook::DiscourseWebhooks;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformSpec};
use polity_port::webhook::WebhookPlatform;
use polity_port::{Adapter, AdapterError, BoxFuture, Connection, Incoming, Scopes, SpaceInfo, Start, TestFailure};
use reqwest::Method;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Discourse, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscourseAdapter;

fn client(config: &DiscourseConfig) -> Result<Api, String> {
    Api::new(&config.url, &config.api_key, &config.username, config.timeout())
}

/// The user Polity acts as, and whether they are staff (who may delete and recover).
async fn whoami(api: &Api) -> Result<(String, bool), ApiError> {
    let user = api.call(Method::GET, &format!("/u/{}.json", api.username()), None).await?;
    let flag = |k: &str| user.pointer(&format!("/user/{k}")).and_then(Value::as_bool) == Some(true);
    let name = user.pointer("/user/username").and_then(Value::as_str).unwrap_or(api.username()).to_string();
    Ok((name, flag("admin") || flag("moderator")))
}

impl Adapter for DiscourseAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        DiscourseConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = DiscourseConfig::read(&config)?;
            let api = client(&config).map_err(AdapterError::Start)?;
            let (name, _) = whoami(&api)
                .await
                .map_err(|e| AdapterError::Start(format!("reading {} on Discourse: {e}", config.url)))?;
            let space = SpaceInfo {
                space: config.url.clone(),
                name: config.url.clone(),
                owner: (AccountRef::new("discourse", name.as_str()), name),
                members: Vec::new(),
            };
            how.events
                .send(Incoming::Space(space))
                .await
                .map_err(|_| AdapterError::Start("the host stopped listening while the connection started".into()))?;
            let platform =
                DiscoursePlatform::new(&how.connection, api, std::time::Duration::from_secs(config.poll_secs));
            Ok(Box::new(DiscourseConnection { platform, forum: config.url }) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        _bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        DiscourseConfig::for_connection(settings, secret)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = DiscourseConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let api = client(&config).map_err(TestFailure::Other)?;
            match whoami(&api).await {
                Ok((name, true)) => {
                    Ok(format!("Discourse accepts the key: Polity acts as {name}, a moderator of {}.", config.url))
                }
                Ok((name, false)) => Err(TestFailure::MissingPermission(format!(
                    "{name} is no moderator or admin of {}: Polity cannot delete and recover topics as them",
                    config.url
                ))),
                Err(ApiError::Refused(why)) => Err(TestFailure::BadCredentials(why)),
                Err(e @ (ApiError::Transient(_) | ApiError::RateLimited(_))) => {
                    Err(TestFailure::Unreachable(e.to_string()))
                }
                Err(e) => Err(TestFailure::Other(e.to_string())),
            }
        })
    }

    fn webhooks(&self) -> Option<Arc<dyn WebhookPlatform>> {
        Some(Arc::new(DiscourseWebhooks))
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

struct DiscourseConnection {
    platform: DiscoursePlatform,
    forum: String,
}

struct ForumScopes {
    platform: DiscoursePlatform,
    forum: String,
}

impl Scopes for ForumScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        if spaces.contains(&self.forum) {
            Arc::new(self.platform.clone())
        } else {
            Arc::new(self.platform.refusing(&self.forum))
        }
    }
}

impl Connection for DiscourseConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(ForumScopes { platform: self.platform.clone(), forum: self.forum.clone() })
    }

    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::pending())
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}
