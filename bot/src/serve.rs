//! The long-running loop behind `polity run`: deliveries from platform adapters, deadlines
//! fired to the second, effects performed as they come due, and a graceful shutdown.

use crate::runtime::{Runtime, until};
use anyhow::Result;
use chrono::{DateTime, Utc};
use polity_governance::GovError;
use polity_governance::ids::{AccountRef, CommunityId};
use polity_governance::io::Inbound;
use polity_governance::platform::BoxFuture;
use std::future::Future;
use tokio::sync::mpsc;

/// Where the time comes from; tests move it by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now()` has reached `at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The timer may fire a little early; never decide before the deadline.
            while Utc::now() < at {
                tokio::time::sleep(until(at, Utc::now()).max(std::time::Duration::from_millis(1))).await;
            }
        })
    }
}

/// One input from a platform adapter.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub community: CommunityId,
    /// The adapter (`discord:GUILD`), with `dedup_key`, identifies the delivery.
    pub source: String,
    pub dedup_key: String,
    pub input: Inbound,
    /// The account behind the input and its display name: a new account becomes a member.
    pub from: Option<(AccountRef, String)>,
}

/// Work that needs the runtime itself, run between deliveries: a command with its reply, a
/// new guild's community. It gets the time it runs at; an `Err` is a failure of the store
/// (a job answers its own mistakes through its reply).
pub type Job = Box<dyn for<'a> FnOnce(&'a mut Runtime, DateTime<Utc>) -> BoxFuture<'a, Result<()>> + Send>;

/// What adapters send the serving loop.
pub enum Input {
    Delivery(Box<Delivery>),
    Job(Job),
}

impl From<Delivery> for Input {
    fn from(d: Delivery) -> Self {
        Self::Delivery(Box::new(d))
    }
}

impl Input {
    /// A job from a closure.
    pub fn job<F>(f: F) -> Self
    where
        F: for<'a> FnOnce(&'a mut Runtime, DateTime<Utc>) -> BoxFuture<'a, Result<()>> + Send + 'static,
    {
        Self::Job(Box::new(f))
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Delivery(d) => f.debug_tuple("Delivery").field(d).finish(),
            Self::Job(_) => f.write_str("Job"),
        }
    }
}

/// Runs until `shutdown` resolves or every sender of `inputs` is gone. On shutdown it stops
/// taking input, handles what was already delivered, performs what is due and returns.
/// Whenever no input waits, vote messages whose reactions changed are read back and
/// reconciled.
///
/// # Errors
/// When the store fails.
pub async fn serve(
    mut rt: Runtime,
    mut inputs: mpsc::Receiver<Input>,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<Runtime> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let now = clock.now();
        rt.fire_deadlines(now).await?;
        // Effects run on tasks of their own: the loop only starts them and records their ends.
        rt.start_due(now).await?;
        if inputs.is_empty() {
            rt.reconcile_due(now).await?;
            rt.start_due(now).await?;
        }
        let wake = rt.next_wake().await?;
        let sleep = async {
            match wake {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(finished) = rt.next_finished() => rt.record_finished(finished?, clock.now()).await.map(|_| ())?,
            i = inputs.recv() => match i {
                Some(i) => take(&mut rt, i, clock.now()).await?,
                None => break,
            },
            () = sleep => {}
        }
    }
    tracing::info!("shutting down: taking no more input, finishing what was delivered");
    inputs.close();
    while let Some(i) = inputs.recv().await {
        take(&mut rt, i, clock.now()).await?;
    }
    let now = clock.now();
    rt.fire_deadlines(now).await?;
    rt.dispatch(now).await?;
    Ok(rt)
}

async fn take(rt: &mut Runtime, input: Input, now: DateTime<Utc>) -> Result<()> {
    match input {
        Input::Delivery(d) => deliver(rt, *d, now).await,
        Input::Job(job) => job(rt, now).await,
    }
}

/// Handles one delivery: a new account becomes a member, a member's mistake is logged.
///
/// # Errors
/// When the store fails.
pub async fn deliver(rt: &mut Runtime, d: Delivery, now: DateTime<Utc>) -> Result<()> {
    let changed = d.from.as_ref().is_some_and(|(account, name)| rt.admit(d.community, account, name));
    match rt.handle(d.community, &d.source, &d.dedup_key, d.input, now, changed).await {
        Ok(_) => Ok(()),
        // A member's mistake (a vote on a closed proposal) is theirs to hear about from the
        // adapter; the loop goes on.
        Err(e) if e.downcast_ref::<GovError>().is_some() => {
            tracing::info!(source = %d.source, "input refused: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            r = ctrl_c => if let Err(e) = r { tracing::error!("cannot listen for SIGINT: {e}") },
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    if let Err(e) = ctrl_c.await {
        tracing::error!("cannot listen for SIGINT: {e}");
    }
}
