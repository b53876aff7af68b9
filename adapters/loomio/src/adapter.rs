//! Loomio on the platform host: a community's connection to one group, and the test call
//! behind `/integration test`.

use crate::api::{Api, ApiError};
use crate::config::{LoomioConfig, SPEC};
use crate::platform::{LoomioPlatform, members};
use crate::webhook::LoomioWebhooks;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformSpec};
use polity_port::webhook::WebhookPlatform;
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, Incoming, PollSpec, Polled, Poller, Scopes, SpaceInfo, Start,
    TestFailure,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Loomio, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoomioAdapter;

/// The poll that lists the group's members again.
pub const MEMBERS: &str = "members";

/// How often the group's members are listed again.
pub const MEMBERS_EVERY: Duration = Duration::from_secs(3600);

fn client(config: &LoomioConfig) -> Result<Api, String> {
    Api::new(&config.url, &config.api_key, config.api, config.timeout())
}

fn test_failure(e: ApiError, config: &LoomioConfig) -> TestFailure {
    match e {
        ApiError::Refused(_) => TestFailure::BadCredentials(format!(
            "Loomio at {} refused the key, or its user is no member of group {}: {e}",
            config.url, config.group_id
        )),
        ApiError::NotFound => {
            TestFailure::MissingPermission(format!("Loomio at {} shows no group {}", config.url, config.group_id))
        }
        ApiError::Transient(_) | ApiError::RateLimited(_) => TestFailure::Unreachable(e.to_string()),
        ApiError::Invalid(_) => TestFailure::Other(e.to_string()),
    }
}

impl Adapter for LoomioAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        LoomioConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = LoomioConfig::read(&config)?;
            let api = client(&config).map_err(AdapterError::Start)?;
            let listed = members(&api, config.group_id).await.map_err(|e| {
                AdapterError::Start(format!("reading group {} on Loomio at {}: {e}", config.group_id, config.url))
            })?;
            let space = config.space();
            let info = SpaceInfo {
                space: space.clone(),
                name: format!("Loomio group {}", config.group_id),
                owner: (AccountRef::new("loomio", "loomio"), "Loomio".into()),
                members: listed,
            };
            how.events
                .send(Incoming::Space(info))
                .await
                .map_err(|_| AdapterError::Start("the host stopped listening while the connection started".into()))?;
            let platform = LoomioPlatform::new(
                &how.connection,
                api.clone(),
                config.group_id,
                space.clone(),
                Duration::from_secs(config.poll_secs),
            )
            .with_members_to(how.events.clone());
            let poller = MembersPoll {
                api,
                group: config.group_id,
                space: space.clone(),
                events: how.events,
                every: Duration::from_secs(config.poll_secs),
            };
            Ok(Box::new(LoomioConnection { platform, space, poller }) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        _bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        LoomioConfig::for_connection(settings, secret)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = LoomioConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let api = client(&config).map_err(TestFailure::Other)?;
            let listed = members(&api, config.group_id).await.map_err(|e| test_failure(e, &config))?;
            if listed.is_empty() {
                // Loomio answers a non-member's question about a group with no one.
                return Err(TestFailure::MissingPermission(format!(
                    "the key's user sees no members of group {}: make them a member of it",
                    config.group_id
                )));
            }
            Ok(format!(
                "Loomio accepts the key: group {} at {} has {} members.",
                config.group_id,
                config.url,
                listed.len()
            ))
        })
    }

    fn webhooks(&self) -> Option<Arc<dyn WebhookPlatform>> {
        Some(Arc::new(LoomioWebhooks))
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

/// The connection's polls: the group's members listed again every hour (who joined becomes
/// a member), and its polls read every `poll_secs` ([`POLLS`]), so the triggers Loomio's
/// webhook would bring come without one (Loomio delivers a webhook once, never again).
#[derive(Clone)]
struct MembersPoll {
    api: Api,
    group: u64,
    space: String,
    events: tokio::sync::mpsc::Sender<Incoming>,
    every: Duration,
}

/// The poll that reads the group's newest polls: their states are the same triggers, under
/// the same keys, as a webhook's, so each is recorded once whichever brings it first. Its
/// cursor is the highest poll id the first reading saw: older polls are not news.
pub const POLLS: &str = "polls";

impl MembersPoll {
    async fn polls_since(&self, cursor: Option<String>) -> Result<Polled, polity_governance::platform::PlatformError> {
        let query = [("group_id", self.group.to_string()), ("status", "all".into()), ("limit", "50".into())];
        let listed = self.api.call(reqwest::Method::GET, "/polls", &query, None).await?;
        let Some(polls) = listed.get("polls").and_then(Value::as_array) else {
            return Err(polity_governance::platform::PlatformError::Transient("Loomio's answer holds no polls".into()));
        };
        let newest = polls.iter().filter_map(|p| p.get("id").and_then(Value::as_u64)).max().unwrap_or(0);
        let Some(baseline) = cursor.and_then(|c| c.parse::<u64>().ok()) else {
            return Ok(Polled { events: Vec::new(), cursor: Some(newest.to_string()) });
        };
        let mut events = Vec::new();
        for poll in polls.iter().rev() {
            let id = poll.get("id").and_then(Value::as_u64).unwrap_or(0);
            if id <= baseline || poll.get("group_id").and_then(Value::as_u64) != Some(self.group) {
                continue;
            }
            for hook in crate::webhook::events_of(poll, &self.space) {
                events.push(polity_port::Event {
                    space: Some(self.space.clone()),
                    dedup_key: hook.delivery_id,
                    input: hook.input,
                    from: hook.from,
                });
            }
        }
        // The baseline stays: a poll's later states (votes, its close) are news too.
        Ok(Polled { events, cursor: Some(baseline.to_string()) })
    }
}

impl Poller for MembersPoll {
    fn polls(&self) -> Vec<PollSpec> {
        vec![PollSpec { name: MEMBERS, every: MEMBERS_EVERY }, PollSpec { name: POLLS, every: self.every }]
    }

    fn poll(
        &self,
        name: &str,
        cursor: Option<String>,
    ) -> BoxFuture<'static, Result<Polled, polity_governance::platform::PlatformError>> {
        let this = self.clone();
        let name = name.to_string();
        Box::pin(async move {
            if name == POLLS {
                return this.polls_since(cursor).await;
            }
            if name != MEMBERS {
                return Err(polity_governance::platform::PlatformError::Permanent(format!(
                    "Loomio has no poll {name}"
                )));
            }
            let listed = members(&this.api, this.group).await?;
            this.events.send(Incoming::Members { space: this.space, members: listed }).await.map_err(|_| {
                polity_governance::platform::PlatformError::Permanent("the host stopped listening".into())
            })?;
            Ok(Polled::default())
        })
    }
}

struct LoomioConnection {
    platform: LoomioPlatform,
    space: String,
    poller: MembersPoll,
}

struct GroupScopes {
    platform: LoomioPlatform,
    space: String,
}

impl Scopes for GroupScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        if spaces.contains(&self.space) { Arc::new(self.platform.clone()) } else { Arc::new(self.platform.refusing()) }
    }
}

impl Connection for LoomioConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(GroupScopes { platform: self.platform.clone(), space: self.space.clone() })
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
