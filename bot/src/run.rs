//! `polity run`: the configured platforms in the serving loop until shutdown.

use crate::discord::{self, CONNECTION};
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

/// Runs Discord (the one platform `polity run` serves so far) until `shutdown`, printing the
/// invite link once Discord has said who the bot is.
///
/// # Errors
/// When the store fails or the Discord client cannot be built.
pub async fn run(
    store: Store,
    gateway: GatewayConfig,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<Runtime> {
    let mut rt = Runtime::open(store).await?;
    rt.set_edit_interval(pacing.edit);
    rt.set_reconcile_interval(pacing.reconcile);
    rt.await_platform(CONNECTION);
    let (tx, rx) = mpsc::channel(1024);
    let bot = discord::start(gateway, tx).await?;
    let mut invite = bot.invite.clone();
    let printer = tokio::spawn(async move {
        if let Ok(link) = invite.wait_for(Option::is_some).await
            && let Some(link) = link.as_deref()
        {
            println!("Polity is on Discord. Add it to a server with:\n{link}");
        }
    });
    let served = serve(rt, rx, clock, shutdown).await;
    printer.abort();
    bot.shutdown().await;
    served
}
