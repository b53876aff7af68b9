//! A load generator for the whole path: inputs through the inbox, the engine and one
//! transaction each, then the dispatcher. Prints throughput; asserts nothing.
//! Run: `cargo bench -p polity --bench load` (SQLite file), or with
//! `POLITY_BENCH_DATABASE_URL=postgres://.../DB` for PostgreSQL (a database of its own: it
//! migrates it and leaves its rows there).

use chrono::{TimeDelta, Utc};
use polity::runtime::{Runtime, request};
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::{Effect, Inbound};
use polity_governance::platform::{BoxFuture, Capabilities, Performed, Platform, PlatformError, Request};
use std::sync::Arc;
use std::time::Instant;

/// A platform that answers at once, as a fast local server would.
struct Instant0;

impl Platform for Instant0 {
    fn name(&self) -> &str {
        "chat"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn perform<'a>(&'a self, r: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move {
            let message = matches!(r.effect, Effect::PostVote { .. })
                .then(|| MessageRef::new("chat", "#g", format!("m{}", r.key)));
            Ok(Performed { message })
        })
    }
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let file = std::env::temp_dir().join(format!("polity-load-{}.db", std::process::id()));
    let url =
        std::env::var("POLITY_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", file.display()));
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let mut rt = Runtime::open(store).await?;
    rt.add_platform(Arc::new(Instant0));
    let name = format!("load-{}", std::process::id());
    let admin = AccountRef::new("chat", "admin");
    let c = rt.ensure_community(&name, "admin", admin.clone()).await?;
    let now = Utc::now();
    let policy = "name = \"p\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"72h\"\n";
    let install =
        request("polity.policy_install", admin.clone(), Place::new("chat", "#g"), "i")?.with("source", policy);
    rt.handle(c, "chat", &format!("{name}:i"), Inbound::Action { action: install }, now, false).await?;
    const VOTERS: usize = 1000;
    for i in 0..VOTERS {
        rt.admit(c, &AccountRef::new("chat", format!("v{i}")), &format!("v{i}"));
    }
    rt.save_community(c, now).await?;

    // Proposals: each a step with its vote message posted and fed back.
    const PROPOSALS: usize = 200;
    let started = Instant::now();
    for i in 0..PROPOSALS {
        let a = Action::new(ActionType::new(PROPOSE).map_err(anyhow::Error::msg)?, admin.clone(), format!("p{i}"))
            .at(Place::new("chat", "#g"))
            .requested()
            .with("text", format!("proposal {i}"));
        rt.handle(c, "chat", &format!("{name}:p{i}"), Inbound::Action { action: a }, now, false).await?;
        rt.dispatch(now).await?;
    }
    let took = started.elapsed();
    println!(
        "{PROPOSALS} proposals opened and posted: {:.1} ms each, {:.0}/s ({})",
        took.as_secs_f64() * 1000.0 / PROPOSALS as f64,
        PROPOSALS as f64 / took.as_secs_f64(),
        rt.store().backend_name()
    );

    // Ballots: reactions from distinct voters on one proposal, each a step, then its tally edit.
    let vote = rt.store().vote_messages(c, polity_governance::ProposalId(1)).await?.remove(0);
    let started = Instant::now();
    for i in 0..VOTERS {
        let input = Inbound::Reaction {
            message: vote.clone(),
            voter: AccountRef::new("chat", format!("v{i}")),
            emoji: if i % 3 == 0 { "👎" } else { "👍" }.into(),
            added: true,
        };
        rt.handle(c, "chat", &format!("{name}:r{i}"), input, now + TimeDelta::seconds(1), false).await?;
        rt.dispatch(now + TimeDelta::seconds(1)).await?;
    }
    let took = started.elapsed();
    println!(
        "{VOTERS} ballots by reaction, each recorded and its tally edit performed: {:.2} ms each, {:.0}/s",
        took.as_secs_f64() * 1000.0 / VOTERS as f64,
        VOTERS as f64 / took.as_secs_f64()
    );

    // Duplicates: a replayed delivery is dropped before the engine.
    let started = Instant::now();
    for i in 0..VOTERS {
        let input = Inbound::Reaction {
            message: vote.clone(),
            voter: AccountRef::new("chat", format!("v{i}")),
            emoji: "👍".into(),
            added: true,
        };
        rt.handle(c, "chat", &format!("{name}:r{i}"), input, now, false).await?;
    }
    let took = started.elapsed();
    println!("{VOTERS} duplicate deliveries dropped: {:.3} ms each", took.as_secs_f64() * 1000.0 / VOTERS as f64);
    // The whole path as `polity run` takes it: ballots from the 1,000 voters on 100 open
    // proposals, delivered as fast as they come, recorded in batches (group commit), tally
    // edits paced as in production (one per proposal per 3 s) and performed at once.
    rt.set_edit_interval(TimeDelta::seconds(3));
    let mut messages = Vec::new();
    for p in 1..=100 {
        messages.push(rt.store().vote_messages(c, polity_governance::ProposalId(p)).await?.remove(0));
    }
    const BALLOTS: usize = 20_000;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(polity::serve::BATCH);
    let at = now + TimeDelta::seconds(2);
    for i in 0..BALLOTS {
        let (voter, message) = (i % VOTERS, &messages[(i / VOTERS + i * 7) % messages.len()]);
        batch.push(polity::serve::Delivery {
            community: c,
            source: "chat".into(),
            dedup_key: format!("{name}:b{i}"),
            input: Inbound::Reaction {
                message: message.clone(),
                voter: AccountRef::new("chat", format!("v{voter}")),
                emoji: if i % 5 == 0 { "👎" } else { "👍" }.into(),
                added: true,
            },
            from: None,
        });
        if batch.len() == polity::serve::BATCH || i + 1 == BALLOTS {
            rt.handle_batch(std::mem::take(&mut batch), at).await?;
            rt.dispatch(at).await?;
        }
    }
    let took = started.elapsed();
    println!(
        "{BALLOTS} ballots on 100 proposals in batches of {}, tally edits paced: {:.3} ms each, {:.0}/s",
        polity::serve::BATCH,
        took.as_secs_f64() * 1000.0 / BALLOTS as f64,
        BALLOTS as f64 / took.as_secs_f64()
    );
    drop(rt);
    for suffix in ["", "-wal", "-shm"] {
        // The file is this run's own; a leftover is harmless.
        if std::fs::remove_file(format!("{}{suffix}", file.display())).is_err() {
            continue;
        }
    }
    Ok(())
}
