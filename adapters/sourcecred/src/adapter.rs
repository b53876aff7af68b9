//! SourceCred on the platform host: its connections (one instance each, read on a schedule),
//! the test call behind `/integration test`, and the platform it hands out, which acts on
//! nothing.

use crate::config::{SPEC, SourceCredConfig};
use crate::instance::{Clock, FetchError, Fetched, Instance, Read, SystemClock, client, fetch};
use polity_governance::ids::AccountRef;
use polity_governance::platform::{Capabilities, Performed, Platform, PlatformError, PlatformSpec, Request};
use polity_port::{
    Adapter, AdapterError, BoxFuture, Connection, CredSource, Incoming, Scopes, SpaceInfo, Start, TestFailure,
};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The account that owns an instance's space: the instance itself.
pub const OWNER_ACCOUNT: &str = "instance";

/// SourceCred, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceCredAdapter;

impl Adapter for SourceCredAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        SourceCredConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, start: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = SourceCredConfig::read(&config)?;
            let connection = SourceCredConnection::start(&config, start, Arc::new(SystemClock)).await?;
            Ok(Box::new(connection) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        _secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        SourceCredConfig::of_connection(bot, settings)
    }

    fn test(&self, config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = SourceCredConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            test_call(&config).await
        })
    }
}

/// A real GET of `accounts.json`: how many identities it holds and their cred together.
async fn test_call(config: &SourceCredConfig) -> Result<String, TestFailure> {
    let client = client(config).map_err(TestFailure::Other)?;
    let site = config.site_name();
    match fetch(&client, &config.accounts, config.timeout, None).await {
        Ok(Fetched::Document { accounts, .. }) => Ok(format!(
            "SourceCred at {site} answers: {} {}, total cred {}",
            accounts.len(),
            if accounts.len() == 1 { "identity" } else { "identities" },
            show(accounts.total())
        )),
        // Asked for nothing conditionally, a 304 is a server's mistake.
        Ok(Fetched::NotModified) => {
            Err(TestFailure::Other(format!("{} answered 304 Not Modified to a plain GET", config.accounts)))
        }
        Err(FetchError::Unreachable(why)) => Err(TestFailure::Unreachable(format!("SourceCred at {site}: {why}"))),
        Err(e) => Err(TestFailure::Other(e.to_string())),
    }
}

/// Cred as replies show it: two decimals at most.
fn show(cred: f64) -> String {
    let text = format!("{cred:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.into() }
}

/// A running SourceCred connection: its instance, read at start and then every
/// `refresh_secs` by a task of its own.
#[derive(Debug)]
pub struct SourceCredConnection {
    connection: String,
    instance: Arc<Instance>,
    refreshing: JoinHandle<()>,
}

impl SourceCredConnection {
    /// Reads the instance once, announces it to the host on `start.events` (the space the
    /// connection serves, so the host knows whose it is), and reads it again every
    /// `config.refresh`, missed reads delayed rather than bunched. An instance that cannot be
    /// read does not stop the start: lookups answer why until a read succeeds.
    ///
    /// # Errors
    /// [`AdapterError::Start`] when the HTTP client cannot be built.
    pub async fn start(config: &SourceCredConfig, start: Start, clock: Arc<dyn Clock>) -> Result<Self, AdapterError> {
        let instance = Arc::new(Instance::new(config, &start.connection, clock).map_err(AdapterError::Start)?);
        let mut failing = log_read(&start.connection, false, instance.refresh().await);
        let space = SpaceInfo {
            space: config.site_name(),
            name: format!("SourceCred at {}", config.host()),
            owner: (AccountRef::new(start.connection.clone(), OWNER_ACCOUNT), "SourceCred".into()),
            members: Vec::new(),
        };
        if start.events.send(Incoming::Space(space)).await.is_err() {
            tracing::warn!(connection = %start.connection, "the host stopped listening before SourceCred's space was announced");
        }
        let period = config.refresh;
        let next = Instant::now() + period;
        let reader = Arc::clone(&instance);
        let name = start.connection.clone();
        let refreshing = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(next, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                failing = log_read(&name, failing, reader.refresh().await);
            }
        });
        Ok(Self { connection: start.connection, instance, refreshing })
    }

    /// Reads the instance now, outside the schedule.
    ///
    /// # Errors
    /// Why the read failed; the last good read is kept.
    pub async fn refresh_now(&self) -> Result<Read, String> {
        self.instance.refresh().await
    }

    /// The instance, as lookups read it.
    pub fn instance(&self) -> Arc<Instance> {
        Arc::clone(&self.instance)
    }
}

/// Logs a read: a failure when reads start failing (later ones quietly), a recovery once.
/// Whether reads are failing now.
fn log_read(connection: &str, failing: bool, read: Result<Read, String>) -> bool {
    match read {
        Ok(read) => {
            if failing {
                tracing::info!(connection, "SourceCred is read again");
            }
            tracing::debug!(connection, ?read, "SourceCred read");
            false
        }
        Err(why) => {
            if !failing {
                tracing::warn!(connection, "SourceCred could not be read: {why}");
            } else {
                tracing::debug!(connection, "SourceCred still cannot be read: {why}");
            }
            true
        }
    }
}

impl Connection for SourceCredConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(Nothing { name: self.connection.clone() })
    }

    fn cred(&self) -> Option<Arc<dyn CredSource>> {
        Some(Arc::clone(&self.instance) as Arc<dyn CredSource>)
    }

    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::pending())
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        Box::pin(async {})
    }
}

impl Drop for SourceCredConnection {
    /// Stops the reads, also when the host drops the connection without shutting it down.
    fn drop(&mut self) {
        self.refreshing.abort();
    }
}

/// The platform of a SourceCred connection: read, never acted on.
#[derive(Clone, Debug)]
struct Nothing {
    name: String,
}

impl Scopes for Nothing {
    fn platform(&self, _spaces: &[String]) -> Arc<dyn Platform> {
        Arc::new(self.clone())
    }
}

impl Platform for Nothing {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn perform<'a>(&'a self, _request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async { Err(PlatformError::Permanent("SourceCred takes no actions".into())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cred_as_shown() {
        assert_eq!(show(16.5), "16.5");
        assert_eq!(show(3.0), "3");
        assert_eq!(show(0.004), "0");
        assert_eq!(show(1234.567), "1234.57");
    }
}
