#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Open Collective adapter against a fake of the GraphQL API v2, through the traits the
//! host uses: `Adapter`, `Connection`, `Scopes`, `Platform`, `Poller`, `WebhookPlatform`.

mod adapter;
mod platform;
mod poll;
mod webhooks;

use polity_governance::action::ActionType;
use polity_governance::io::Effect;
use polity_governance::platform::{Performed, Platform, PlatformError, Request};
use polity_opencollective::OpenCollectiveAdapter;
use polity_port::{Adapter, Connection, Incoming, Start};
use polity_tests::opencollective::{COLLECTIVE, FakeOpenCollective};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The connection's name in every test.
pub const CONNECTION: &str = "oc-main";

/// A connection's stored settings: the collective, and the fake as its API.
pub fn settings(fake: &FakeOpenCollective) -> Map<String, Value> {
    object(json!({ "collective": COLLECTIVE, "api": fake.url() }))
}

pub fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

/// A community's connection's configuration with `token`, as the host builds it.
pub fn config(fake: &FakeOpenCollective, token: &str) -> Value {
    OpenCollectiveAdapter.connection_config(None, &settings(fake), Some(token)).expect("a configuration")
}

/// A started connection and what it sent the host.
pub struct Connected {
    pub connection: Box<dyn Connection>,
    pub incoming: mpsc::Receiver<Incoming>,
}

impl Connected {
    /// Its platform for a community whose spaces are the collective.
    pub fn platform(&self) -> Arc<dyn Platform> {
        self.connection.scopes().platform(&[COLLECTIVE.to_string()])
    }
}

pub async fn start_with(config: Value) -> Connected {
    let (events, incoming) = mpsc::channel(16);
    let connection =
        OpenCollectiveAdapter.start(config, Start::new(CONNECTION, events)).await.expect("the connection starts");
    Connected { connection, incoming }
}

pub async fn connect(fake: &FakeOpenCollective, token: &str) -> Connected {
    start_with(config(fake, token)).await
}

/// `Effect::Call` of `name` with `params`.
pub fn call(name: &str, params: Value) -> Effect {
    Effect::Call { proposal: None, name: ActionType::new(name).expect("an action name"), params: object(params) }
}

pub async fn perform(platform: &dyn Platform, key: i64, effect: &Effect) -> Result<Performed, PlatformError> {
    platform.perform(Request { key, retried: false, effect, vote_messages: &[] }).await
}
