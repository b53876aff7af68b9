//! `polity run`: the configured platforms in the serving loop until shutdown.

use crate::discord::{self, CONNECTION, Notice};
use crate::runtime::Runtime;
use crate::serve::{Clock, serve};
use crate::store::Store;
use anyhow::Result;
use chrono::TimeDelta;
use polity_discord::GatewayConfig;
use std::future::Future;
use tokio::sync::mpsc;

/// How often platforms are bothered: tally edits and reads of a vote message's reactions.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// At most one edit of a vote message per this interval, with the newest tally.
    pub edit: TimeDelta,
    /// At most one read of a vote message's reactions per this interval.
    pub reconcile: TimeDelta,
}

impl Default for Pacing {
    fn default() -> Self {
        Self { edit: TimeDelta::seconds(3), reconcile: TimeDelta::seconds(5) }
    }
}

/// Runs Discord (the one platform `polity run` serves so far) until `shutdown`; what the bot
/// has to say (its invite link, the servers it governs) goes to `notices`.
///
/// # Errors
/// When the store fails or the Discord client cannot be built.
pub async fn run(
    store: Store,
    gateway: GatewayConfig,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Runtime> {
    let mut rt = Runtime::open(store).await?;
    rt.set_edit_interval(pacing.edit);
    rt.set_reconcile_interval(pacing.reconcile);
    rt.await_platform(CONNECTION);
    let (tx, rx) = mpsc::channel(1024);
    let mut bot = discord::start(gateway, tx, notices).await?;
    // The loop stops on `shutdown`, or when the gateway gives up (a refused token), which
    // is then the error `polity run` ends with.
    let mut gave_up = None;
    let served = {
        let stop = async {
            tokio::select! {
                () = shutdown => {}
                ended = bot.stopped() => gave_up = Some(ended),
            }
        };
        serve(rt, rx, clock, stop).await
    };
    bot.shutdown().await;
    match gave_up {
        Some(Err(e)) => Err(e),
        Some(Ok(())) => Err(anyhow::anyhow!("the Discord connection ended")),
        None => served,
    }
}
