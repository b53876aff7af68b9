//! Deliveries GitHub failed to make, asked for again. GitHub never redelivers by itself: at
//! start and every `poll_secs` Polity lists the webhook's recent deliveries
//! (`GET /repos/{repo}/hooks/{hook_id}/deliveries`, or an App's `GET /app/hook/deliveries`)
//! and asks for another attempt (`POST .../deliveries/{id}/attempts`) of each event (by its
//! GUID) none of whose attempts got a 2xx, up to [`MAX_ATTEMPTS`] attempts an event. What
//! arrives is deduplicated by its GUID like any delivery, so asking twice changes nothing.
//!
//! The repository's collaborators are listed again as often ([`COLLABORATORS`]): someone
//! added since the connection started becomes a member of the community that governs it.

use crate::api::{Api, ApiError};
use polity_governance::platform::{BoxFuture, PlatformError};
use polity_port::{Incoming, PollSpec, Polled, Poller};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The polls' names.
pub const REDELIVERIES: &str = "redeliveries";
pub const COLLABORATORS: &str = "collaborators";

/// The most attempts of one event Polity lets there be before it stops asking.
pub const MAX_ATTEMPTS: usize = 5;

/// The webhook deliveries poll of one connection.
#[derive(Clone, Debug)]
pub struct Redeliveries {
    api: Api,
    hook_id: Option<u64>,
    every: Duration,
    /// Where newly listed collaborators go: the host's channel, and the repository.
    members: Option<(tokio::sync::mpsc::Sender<Incoming>, String)>,
}

impl Redeliveries {
    pub fn new(api: Api, hook_id: Option<u64>, every: Duration) -> Self {
        Self { api, hook_id, every, members: None }
    }

    /// Lists the repository's collaborators every interval too, for the host on `events`.
    #[must_use]
    pub fn with_members(mut self, events: tokio::sync::mpsc::Sender<Incoming>, repo: String) -> Self {
        self.members = Some((events, repo));
        self
    }

    /// Hands the repository's collaborators to the host (who is a member already stays one).
    async fn list_members(&self) -> Result<Polled, PlatformError> {
        let Some((events, repo)) = &self.members else {
            return Ok(Polled::default());
        };
        let members = crate::adapter::collaborators(&self.api).await;
        if !members.is_empty() {
            events
                .send(Incoming::Members { space: repo.clone(), members })
                .await
                .map_err(|_| PlatformError::Permanent("the host stopped listening".into()))?;
        }
        Ok(Polled::default())
    }

    /// Where the deliveries are listed, and whether it is the App's hook.
    fn base(&self) -> Option<(String, bool)> {
        if self.api.is_app() {
            Some(("/app/hook/deliveries".to_string(), true))
        } else {
            self.hook_id.map(|id| (self.api.repo_path(&format!("/hooks/{id}/deliveries")), false))
        }
    }

    async fn call(&self, app: bool, method: Method, path: &str) -> Result<Value, ApiError> {
        let answer = if app {
            self.api.call_as_app(method, path, None).await?
        } else {
            self.api.call(method, path, None).await?
        };
        Ok(answer.body)
    }

    /// Looks for missed deliveries once now, off the caller (a connection's start: what was
    /// missed while Polity was away is asked for at once).
    pub fn check_now(&self) {
        if self.base().is_none() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run().await {
                tracing::warn!(repo = this.api.repo(), "looking for missed deliveries failed: {e}");
            }
        });
    }

    async fn run(&self) -> Result<Polled, PlatformError> {
        let Some((base, app)) = self.base() else {
            return Ok(Polled::default());
        };
        let listed = self.call(app, Method::GET, &format!("{base}?per_page=100")).await?;
        // Each event's attempts: whether one got a 2xx, how many there were, the newest's id.
        let mut events: BTreeMap<String, (bool, usize, u64)> = BTreeMap::new();
        for delivery in listed.as_array().into_iter().flatten() {
            let (Some(guid), Some(id)) =
                (delivery.get("guid").and_then(Value::as_str), delivery.get("id").and_then(Value::as_u64))
            else {
                continue;
            };
            let code = delivery.get("status_code").and_then(Value::as_u64).unwrap_or(0);
            let entry = events.entry(guid.to_string()).or_insert((false, 0, id));
            entry.0 |= (200..300).contains(&code);
            entry.1 += 1;
            entry.2 = entry.2.max(id);
        }
        for (guid, (received, attempts, newest)) in events {
            if received || attempts >= MAX_ATTEMPTS {
                continue;
            }
            match self.call(app, Method::POST, &format!("{base}/{newest}/attempts")).await {
                Ok(_) => tracing::info!(delivery = guid, "asked GitHub to deliver a missed event again"),
                Err(ApiError::RateLimited(wait)) => return Err(PlatformError::RateLimited { retry_after: wait }),
                Err(e) => tracing::warn!(delivery = guid, "cannot ask GitHub to deliver an event again: {e}"),
            }
        }
        Ok(Polled::default())
    }
}

impl Poller for Redeliveries {
    fn polls(&self) -> Vec<PollSpec> {
        let mut polls = Vec::new();
        if self.base().is_some() {
            polls.push(PollSpec { name: REDELIVERIES, every: self.every });
        }
        if self.members.is_some() {
            polls.push(PollSpec { name: COLLABORATORS, every: self.every });
        }
        polls
    }

    fn poll(&self, name: &str, _cursor: Option<String>) -> BoxFuture<'static, Result<Polled, PlatformError>> {
        let this = self.clone();
        let name = name.to_string();
        Box::pin(async move {
            match name.as_str() {
                REDELIVERIES => this.run().await,
                COLLABORATORS => this.list_members().await,
                _ => Err(PlatformError::Permanent(format!("GitHub has no poll {name}"))),
            }
        })
    }
}
