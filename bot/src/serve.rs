//! The long-running loop behind `polity run`: deliveries from platform adapters, deadlines
//! fired to the second, effects performed as they come due, and a graceful shutdown.

use crate::runtime::{HandleError, Runtime, until};
use anyhow::Result;
use chrono::{DateTime, Utc};
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

/// A delivery whose community is known only when the loop takes it (after the jobs sent
/// before it, which may have made the community); `None` drops it.
pub type Lazy = Box<dyn FnOnce() -> Option<Delivery> + Send>;

/// What adapters send the serving loop.
pub enum Input {
    Delivery(Box<Delivery>),
    /// A delivery resolved when taken; batched like a delivery.
    Lazy(Lazy),
    Job(Job),
}

impl From<Delivery> for Input {
    fn from(d: Delivery) -> Self {
        Self::Delivery(Box::new(d))
    }
}

impl Input {
    /// A delivery resolved when the loop takes it.
    pub fn lazy(f: impl FnOnce() -> Option<Delivery> + Send + 'static) -> Self {
        Self::Lazy(Box::new(f))
    }

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
            Self::Lazy(_) => f.write_str("Lazy"),
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
    let bound = batch_bound(rt.store().backend_name());
    loop {
        let now = clock.now();
        rt.fire_deadlines(now).await?;
        rt.fire_polls(now).await?;
        // Effects run on tasks of their own: the loop only starts them and records their ends.
        rt.start_due(now).await?;
        if inputs.is_empty() {
            // Counted when the loop is idle, not for every input.
            crate::metrics::open_proposals(rt.open_proposals());
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
                Some(i) => take_waiting(&mut rt, i, &mut inputs, bound, clock.now()).await?,
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

/// The most inputs recorded in one transaction on SQLite.
pub const BATCH: usize = 64;

/// The most inputs recorded in one transaction on PostgreSQL, whose commit waits for the
/// server (its round trips and its WAL flush) however few inputs it holds: a larger group
/// shares that wait. Measured in the load benchmark on a 2-core machine: 4,835–5,374
/// ballots/s in groups of 64, 5,705–6,306/s in groups of 128 with p99 latency 32–42 ms, and
/// 256 past the 50 ms latency goal. SQLite's commit is local and cheap: 128 only doubled its
/// latency.
pub const BATCH_POSTGRES: usize = 128;

/// The most inputs the serving loop records in one transaction on a store of `backend`
/// ([`crate::store::Store::backend_name`]).
pub fn batch_bound(backend: &str) -> usize {
    if backend == "postgres" { BATCH_POSTGRES } else { BATCH }
}

/// Takes `first` and the deliveries waiting behind it, up to `bound`, in one transaction;
/// a job that ends the run of deliveries runs after them.
async fn take_waiting(
    rt: &mut Runtime,
    first: Input,
    inputs: &mut mpsc::Receiver<Input>,
    bound: usize,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut batch = Vec::new();
    let mut next = Some(first);
    while let Some(input) = next.take() {
        match input {
            Input::Delivery(d) => batch.push(*d),
            Input::Lazy(resolve) => batch.extend(resolve()),
            job @ Input::Job(_) => {
                // A job sees every delivery sent before it.
                if !batch.is_empty() {
                    deliver_all(rt, std::mem::take(&mut batch), now).await?;
                }
                return take(rt, job, now).await;
            }
        }
        if batch.len() < bound {
            next = inputs.try_recv().ok();
        }
    }
    if batch.is_empty() { Ok(()) } else { deliver_all(rt, batch, now).await.map(|_| ()) }
}

/// Handles deliveries in one transaction; a member's mistake is logged and the others go on.
/// When the transaction cannot be written, each delivery is tried again in a transaction of
/// its own, so one input the store refuses (a value it cannot keep, say) is dropped alone,
/// logged, and never holds up or ends the loop. Returns whether every delivery was recorded
/// (a refused one counts as recorded: it was received and answered), so a platform that
/// redelivers can be told to try a dropped one again.
///
/// # Errors
/// When the store does not answer at all.
pub async fn deliver_all(rt: &mut Runtime, deliveries: Vec<Delivery>, now: DateTime<Utc>) -> Result<bool> {
    // Kept to be tried one by one if the batch cannot be written (a few small copies).
    let alone = (deliveries.len() > 1).then(|| deliveries.clone());
    let sources: Vec<String> = deliveries.iter().map(|d| d.source.clone()).collect();
    match rt.handle_batch(deliveries, now).await {
        Ok(outcomes) => {
            for (outcome, source) in outcomes.into_iter().zip(sources) {
                if let Err(e) = outcome {
                    tracing::info!(source = %source, "input refused: {e}");
                }
            }
            Ok(true)
        }
        Err(e) => {
            let Some(alone) = alone else {
                return dropped_unless_store_down(rt, &sources[0], e).await.map(|()| false);
            };
            tracing::warn!("{} inputs could not be written together ({e:#}); each is tried on its own", alone.len());
            let mut all = true;
            for d in alone {
                all &= deliver(rt, d, now).await?;
            }
            Ok(all)
        }
    }
}

/// How long the loop waits for the store to answer before it calls it down.
const STORE_ANSWER: std::time::Duration = std::time::Duration::from_secs(2);

/// After an input could not be written: when the store still answers, the input itself is at
/// fault and is dropped (logged with why); when it does not, the failure is the store's.
async fn dropped_unless_store_down(rt: &Runtime, source: &str, e: anyhow::Error) -> Result<()> {
    match tokio::time::timeout(STORE_ANSWER, rt.store().db().ping()).await {
        Ok(Ok(())) => {
            tracing::error!(source = %source, "an input could not be written and is dropped: {e:#}");
            crate::metrics::input_dropped(rt.source_platform(source));
            Ok(())
        }
        _ => Err(e),
    }
}

async fn take(rt: &mut Runtime, input: Input, now: DateTime<Utc>) -> Result<()> {
    match input {
        Input::Delivery(d) => deliver(rt, *d, now).await.map(|_| ()),
        Input::Lazy(resolve) => match resolve() {
            Some(d) => deliver(rt, d, now).await.map(|_| ()),
            None => Ok(()),
        },
        Input::Job(job) => job(rt, now).await,
    }
}

/// Handles one delivery: a new account becomes a member, a member's mistake is logged, and
/// an input the store refuses is dropped (logged) while the store still answers. Returns
/// whether it was recorded (or refused as a member's mistake).
///
/// # Errors
/// When the store does not answer at all.
pub async fn deliver(rt: &mut Runtime, d: Delivery, now: DateTime<Utc>) -> Result<bool> {
    let changed = d.from.as_ref().is_some_and(|(account, name)| rt.admit(d.community, account, name));
    match rt.handle(d.community, &d.source, &d.dedup_key, d.input, now, changed).await {
        Ok(_) => Ok(true),
        // A member's mistake (a vote on a closed proposal) is theirs to hear about from the
        // adapter; the loop goes on.
        Err(HandleError::Refused(e)) => {
            tracing::info!(source = %d.source, "input refused: {e}");
            Ok(true)
        }
        Err(HandleError::Failed(e)) => dropped_unless_store_down(rt, &d.source, e).await.map(|()| false),
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
