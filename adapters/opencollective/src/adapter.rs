//! Open Collective on the platform host: its connections (one collective and an admin's
//! personal token each) and the test call behind `/integration test`.

use crate::api::{self, Api, ApiError, BAD_TOKEN};
use crate::config::{OpenCollectiveConfig, SPEC};
use crate::platform::OcPlatform;
use crate::poll::OcPoller;
use crate::webhook::OcWebhooks;
use polity_governance::ids::AccountRef;
use polity_governance::platform::{ActionInfo, Platform, PlatformSpec};
use polity_port::webhook::WebhookPlatform;
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, Incoming, Poller, Scopes, SpaceInfo, Start, TestFailure,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Open Collective, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenCollectiveAdapter;

impl Adapter for OpenCollectiveAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        OpenCollectiveConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = OpenCollectiveConfig::read(&config)?;
            start(config, how).await
        })
    }

    fn connection_config(
        &self,
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        OpenCollectiveConfig::for_connection(bot, settings, secret)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = OpenCollectiveConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            test_call(&config).await
        })
    }

    fn webhooks(&self) -> Option<Arc<dyn WebhookPlatform>> {
        Some(Arc::new(OcWebhooks))
    }

    fn actions(&self) -> Vec<ActionInfo> {
        crate::platform::actions()
    }
}

fn client(config: &OpenCollectiveConfig) -> Result<Api, String> {
    Api::new(&config.api, &config.token, config.timeout())
}

/// Reads the token's owner and the collective, announces the collective as the
/// connection's space (its owner: the token's owner), and hands out the connection.
async fn start(config: OpenCollectiveConfig, how: Start) -> Result<Box<dyn Connection>, AdapterError> {
    let api = client(&config).map_err(AdapterError::Start)?;
    let slug = config.collective.clone();
    let data = api.run(api::START, json!({ "slug": slug })).await.map_err(|e| match e {
        ApiError::BadToken => AdapterError::Start(BAD_TOKEN.into()),
        e if e.is_not_found() => AdapterError::Start(no_collective(&slug)),
        e => AdapterError::Start(format!("reading the collective {slug} on Open Collective: {e}")),
    })?;
    let Some(me) = data.get("me").filter(|m| !m.is_null()) else {
        return Err(AdapterError::Start("Open Collective did not say whom the personal token belongs to".into()));
    };
    let Some(collective) = data.get("account").filter(|a| !a.is_null()) else {
        return Err(AdapterError::Start(no_collective(&slug)));
    };
    let owner_slug = me.get("slug").and_then(Value::as_str).unwrap_or_default().to_string();
    let owner_name = me.get("name").and_then(Value::as_str).unwrap_or(&owner_slug).to_string();
    let name = collective.get("name").and_then(Value::as_str).unwrap_or(&slug).to_string();
    let space = SpaceInfo {
        space: slug.clone(),
        name,
        owner: (AccountRef::new(&how.connection, owner_slug), owner_name),
        members: Vec::new(),
    };
    how.events
        .send(Incoming::Space(space))
        .await
        .map_err(|_| AdapterError::Start("the host stopped listening while the connection started".into()))?;
    // Accounts are named on the platform, as a webhook (which knows no connection) names them:
    // the same payee is the same member whichever way their expense came.
    let poller = OcPoller::new(api.clone(), &slug, SPEC.name, config.poll_every());
    Ok(Box::new(OcConnection { scopes: Arc::new(OcScopes { name: how.connection, api, collective: slug }), poller }))
}

fn no_collective(slug: &str) -> String {
    format!("Open Collective has no collective `{slug}` (the slug is in its address: opencollective.com/SLUG)")
}

/// `me` and whether they are an admin of the collective (or of its host, who may decide its
/// expenses too).
async fn test_call(config: &OpenCollectiveConfig) -> Result<String, TestFailure> {
    let api = client(config).map_err(TestFailure::Other)?;
    let slug = &config.collective;
    let data = api.run(api::ME, json!({ "slug": slug })).await.map_err(|e| failure(e, slug))?;
    let Some(me) = data.get("me").filter(|m| !m.is_null()) else {
        return Err(TestFailure::BadCredentials("Open Collective did not say whom the token belongs to".into()));
    };
    let Some(collective) = data.get("account").filter(|a| !a.is_null()) else {
        return Err(TestFailure::Other(no_collective(slug)));
    };
    let me_slug = me.get("slug").and_then(Value::as_str).unwrap_or_default();
    let me_name = me.get("name").and_then(Value::as_str).unwrap_or(me_slug);
    let title = collective.get("name").and_then(Value::as_str).unwrap_or(slug);
    let whose = format!("the token belongs to {me_name} (@{me_slug})");
    if admin_count(&data) > 0 {
        return Ok(format!("{whose}, an admin of {title}"));
    }
    if let Some(host) = collective.pointer("/host/slug").and_then(Value::as_str) {
        let data = api.run(api::ME, json!({ "slug": host })).await.map_err(|e| failure(e, slug))?;
        if admin_count(&data) > 0 {
            let host_name = collective.pointer("/host/name").and_then(Value::as_str).unwrap_or(host);
            return Ok(format!("{whose}, an admin of {host_name}, which hosts {title}"));
        }
    }
    Err(TestFailure::MissingPermission(format!(
        "the token's owner @{me_slug} is not an admin of {slug}: an admin's token can approve and reject expenses"
    )))
}

fn admin_count(data: &Value) -> u64 {
    data.pointer("/me/memberOf/totalCount").and_then(Value::as_u64).unwrap_or(0)
}

/// A failed test call, as the reply says it.
fn failure(error: ApiError, slug: &str) -> TestFailure {
    match error {
        ApiError::BadToken => TestFailure::BadCredentials(BAD_TOKEN.into()),
        ApiError::RateLimited(_) | ApiError::Unreachable(_) => TestFailure::Unreachable(error.to_string()),
        e if e.is_not_found() => TestFailure::Other(no_collective(slug)),
        ApiError::Graphql { code: Some(code), message } if code == "Forbidden" || code == "Unauthorized" => {
            TestFailure::MissingPermission(message)
        }
        e => TestFailure::Other(e.to_string()),
    }
}

/// A running connection: nothing stays open between requests.
struct OcConnection {
    scopes: Arc<OcScopes>,
    poller: OcPoller,
}

struct OcScopes {
    name: String,
    api: Api,
    collective: String,
}

impl Scopes for OcScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        Arc::new(OcPlatform::new(&self.name, self.api.clone(), &self.collective, spaces))
    }
}

impl Connection for OcConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::clone(&self.scopes) as Arc<dyn Scopes>
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
