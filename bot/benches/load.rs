//! A load generator for the whole path: inputs through the inbox, the engine and one
//! transaction each, then the dispatcher. Prints one line per phase (how many, per second,
//! p50 and p99 latency from an input handed to the runtime to its step committed), then a
//! restart: a fresh process opens the runtime on the database and reports how long it took
//! and its resident memory. Asserts nothing.
//!
//! Run: `cargo bench -p polity --bench load` (a SQLite file of its own), or with
//! `POLITY_BENCH_DATABASE_URL=postgres://.../DB` for PostgreSQL (a database of its own: it
//! migrates it and leaves its rows there; every run uses a community of its own, so runs
//! after the first measure a database that earlier runs filled).
//!
//! `POLITY_BENCH_COMMUNITIES=1000` adds the restart scenario at scale: that many more
//! communities of 50 members, each with 10 open proposals (`POLITY_BENCH_PROPOSALS_EACH`)
//! holding 5 ballots each, written through the runtime before the restart is measured. They
//! stay open (for a year), so later runs on the same database load them too.

use chrono::{DateTime, TimeDelta, Utc};
use polity::runtime::{Handled, Runtime, request};
use polity::serve::Delivery;
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place, ProposalId};
use polity_governance::io::{Effect, Inbound};
use polity_governance::platform::{BoxFuture, Capabilities, Performed, Platform, PlatformError, Request};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in the process that measures the restart: the database to open.
const REOPEN: &str = "POLITY_BENCH_REOPEN_URL";

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
            Ok(Performed { message, ..Performed::default() })
        })
    }
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match std::env::var(REOPEN) {
        Ok(url) => rt.block_on(reopen(&url)),
        Err(_) => rt.block_on(run()),
    }
}

/// One phase's measurements.
struct Phase {
    name: String,
    count: usize,
    started: Instant,
    /// This process's CPU time when it started (the machine may be busy with others).
    cpu: f64,
    /// Per input: from handed to the runtime to its step committed.
    latencies: Vec<Duration>,
}

impl Phase {
    fn start(name: impl Into<String>) -> Self {
        Self { name: name.into(), count: 0, started: Instant::now(), cpu: cpu_seconds(), latencies: Vec::new() }
    }

    fn percentile(sorted: &[Duration], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    }

    fn report(mut self, label: &str) {
        let took = self.started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - self.cpu;
        self.latencies.sort_unstable();
        println!(
            "[{label}] {:<58} {:>6} in {:>7.2} s = {:>7.0}/s   latency p50 {:>7.2} ms  p99 {:>7.2} ms   cpu {:>6.2} s",
            self.name,
            self.count,
            took,
            self.count as f64 / took,
            Self::percentile(&self.latencies, 0.50),
            Self::percentile(&self.latencies, 0.99),
            cpu,
        );
    }
}

/// A `/propose` from `who`, as the command makes it.
fn proposal(who: &AccountRef, id: &str) -> anyhow::Result<Action> {
    Ok(Action::new(ActionType::new(PROPOSE).map_err(anyhow::Error::msg)?, who.clone(), id.to_string())
        .at(Place::new("chat", "#g"))
        .requested()
        .with("text", format!("proposal {id}")))
}

fn reaction(message: &MessageRef, voter: &str, yes: bool) -> Inbound {
    Inbound::Reaction {
        message: message.clone(),
        voter: AccountRef::new("chat", voter),
        emoji: if yes { "👍" } else { "👎" }.into(),
        added: true,
    }
}

/// Handles one input, expecting it recorded; returns how long that took.
async fn step(
    rt: &mut Runtime,
    c: CommunityId,
    key: &str,
    input: Inbound,
    now: DateTime<Utc>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    match rt.handle(c, "chat", key, input, now, false).await? {
        Handled::Done(_) => Ok(started.elapsed()),
        Handled::Duplicate => anyhow::bail!("{key} was taken for a duplicate: is another run using these names?"),
    }
}

async fn run() -> anyhow::Result<()> {
    // Names of this run's own, unique even when a process id comes again.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let run_id = format!("{}-{nanos}", std::process::id());
    let file = std::env::temp_dir().join(format!("polity-load-{run_id}.db"));
    let url =
        std::env::var("POLITY_BENCH_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", file.display()));
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let label = format!("{} run {run_id}", store.backend_name());
    let opening = Instant::now();
    let mut rt = Runtime::open(store).await?;
    println!("[{label}] runtime opened on what earlier runs left in {:.2} s", opening.elapsed().as_secs_f64());
    rt.add_platform(Arc::new(Instant0));
    let name = format!("load-{run_id}");
    let admin = AccountRef::new("chat", "admin");
    let c = rt.ensure_community(&name, "admin", admin.clone()).await?;
    let now = Utc::now();
    let policy = "name = \"p\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"72h\"\n";
    let install =
        request("polity.policy_install", admin.clone(), Place::new("chat", "#g"), "i")?.with("source", policy);
    step(&mut rt, c, &format!("{name}:i"), Inbound::Action { action: install }, now).await?;
    const VOTERS: usize = 1000;
    for i in 0..VOTERS {
        rt.admit(c, &AccountRef::new("chat", format!("v{i}")), &format!("v{i}"));
    }
    rt.save_community(c, now).await?;

    // Proposals: each a step with its vote message posted and fed back.
    const PROPOSALS: usize = 200;
    let mut phase = Phase::start("proposals opened, each vote posted and linked");
    for i in 0..PROPOSALS {
        let action = proposal(&admin, &format!("p{i}"))?;
        phase.latencies.push(step(&mut rt, c, &format!("{name}:p{i}"), Inbound::Action { action }, now).await?);
        rt.dispatch(now).await?;
        phase.count += 1;
    }
    phase.report(&label);

    // Ballots: reactions from distinct voters on one proposal, each a step, then its tally edit.
    let first = rt.store().load_proposals(c, true).await?.first().map(|p| p.id).unwrap_or(ProposalId(1));
    let vote = rt.store().vote_messages(c, first).await?.remove(0);
    let at = now + TimeDelta::seconds(1);
    let mut phase = Phase::start("ballots on one proposal, each recorded and edit performed");
    for i in 0..VOTERS {
        let input = reaction(&vote, &format!("v{i}"), i % 3 != 0);
        phase.latencies.push(step(&mut rt, c, &format!("{name}:r{i}"), input, at).await?);
        rt.dispatch(at).await?;
        phase.count += 1;
    }
    phase.report(&label);

    // Duplicates: a replayed delivery is dropped before the engine.
    let mut phase = Phase::start("duplicate deliveries dropped");
    for i in 0..VOTERS {
        let started = Instant::now();
        let key = format!("{name}:r{i}");
        let handled = rt.handle(c, "chat", &key, reaction(&vote, &format!("v{i}"), true), at, false).await?;
        if !matches!(handled, Handled::Duplicate) {
            anyhow::bail!("a replayed delivery was recorded again");
        }
        phase.latencies.push(started.elapsed());
        phase.count += 1;
    }
    phase.report(&label);

    // The whole path as `polity run` takes it: ballots from the 1,000 voters on 100 open
    // proposals, delivered as fast as they come, recorded in batches (group commit), tally
    // edits paced as in production (one per proposal per 3 s) and performed at once. An
    // input's latency is its batch's: all of a batch's inputs are there when it starts.
    rt.set_edit_interval(TimeDelta::seconds(3));
    let mut messages = Vec::new();
    for p in rt.store().load_proposals(c, true).await?.iter().take(100) {
        messages.push(rt.store().vote_messages(c, p.id).await?.remove(0));
    }
    const BALLOTS: usize = 20_000;
    let at = now + TimeDelta::seconds(2);
    // The serving loop's bound for this store; `POLITY_BENCH_BATCH` tries another.
    let bound = polity::serve::batch_bound(rt.store().backend_name());
    let size = std::env::var("POLITY_BENCH_BATCH").ok().and_then(|n| n.parse().ok()).unwrap_or(bound);
    let mut phase = Phase::start(format!("ballots on 100 proposals in batches of {size}, edits paced"));
    let mut batch = Vec::with_capacity(size);
    for i in 0..BALLOTS {
        let (voter, message) = (i % VOTERS, &messages[(i / VOTERS + i * 7) % messages.len()]);
        batch.push(Delivery {
            community: c,
            source: "chat".into(),
            dedup_key: format!("{name}:b{i}"),
            input: reaction(message, &format!("v{voter}"), i % 5 != 0),
            from: None,
        });
        if batch.len() == size || i + 1 == BALLOTS {
            let n = batch.len();
            let started = Instant::now();
            let outcomes = rt.handle_batch(std::mem::take(&mut batch), at).await?;
            let took = started.elapsed();
            if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
                anyhow::bail!("a ballot was refused: {e}");
            }
            phase.latencies.extend(std::iter::repeat_n(took, n));
            rt.dispatch(at).await?;
            phase.count += n;
        }
    }
    phase.report(&label);

    // Decisions: a policy whose votes decide early, among three named voters; each proposal
    // decided by its second 👍 (that step's latency is the decision's).
    let decisive =
        "name = \"p\"\nkind = \"platform\"\n[vote]\nvoters = [\"v0\", \"v1\", \"v2\"]\nquorum = 2\ncloses = \"72h\"\n";
    let install =
        request("polity.policy_install", admin.clone(), Place::new("chat", "#g"), "i2")?.with("source", decisive);
    let at = now + TimeDelta::seconds(3);
    step(&mut rt, c, &format!("{name}:i2"), Inbound::Action { action: install }, at).await?;
    const DECIDED: usize = 100;
    for i in 0..DECIDED {
        let action = proposal(&admin, &format!("d{i}"))?;
        step(&mut rt, c, &format!("{name}:d{i}"), Inbound::Action { action }, at).await?;
        rt.dispatch(at).await?;
    }
    let decided: Vec<_> = rt.store().load_proposals(c, true).await?.into_iter().rev().take(DECIDED).collect();
    let mut phase = Phase::start("proposals decided early by a ballot, each closing performed");
    for p in &decided {
        let message = rt.store().vote_messages(c, p.id).await?.remove(0);
        step(&mut rt, c, &format!("{name}:d{}:v0", p.id), reaction(&message, "v0", true), at).await?;
        let took = step(&mut rt, c, &format!("{name}:d{}:v1", p.id), reaction(&message, "v1", true), at).await?;
        rt.dispatch(at).await?;
        phase.latencies.push(took);
        phase.count += 1;
    }
    phase.report(&label);
    if rt.store().proposal(c, decided[0].id).await?.is_some_and(|p| p.state.is_open()) {
        anyhow::bail!("a proposal with two 👍 of three voters did not decide");
    }

    // Deadlines: every vote still open closes at once, in one tick.
    let at = now + TimeDelta::hours(73);
    let open = rt.store().load_proposals(c, true).await?.len();
    let mut phase = Phase::start("proposals decided at their deadline in one tick");
    let started = Instant::now();
    rt.fire_deadlines(at).await?;
    phase.latencies.push(started.elapsed());
    phase.count = open;
    phase.report(&label);
    let mut phase = Phase::start("effects of the tick performed (edits, announcements)");
    phase.count = rt.dispatch(at).await?;
    phase.report(&label);

    let communities: usize = std::env::var("POLITY_BENCH_COMMUNITIES").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    if communities > 0 {
        let each = std::env::var("POLITY_BENCH_PROPOSALS_EACH").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
        many_communities(&mut rt, &label, &run_id, communities, each).await?;
    }
    drop(rt);

    // The restart, in a process of its own so its memory is the restart's alone.
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe).env(REOPEN, &url).output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        anyhow::bail!("the restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    if std::env::var("POLITY_BENCH_DATABASE_URL").is_err() {
        for suffix in ["", "-wal", "-shm"] {
            // The file is this run's own; a leftover is harmless.
            if std::fs::remove_file(format!("{}{suffix}", file.display())).is_err() {
                continue;
            }
        }
    }
    Ok(())
}

/// `communities` more communities of 50 members, each with `each` open proposals holding 5
/// ballots each.
async fn many_communities(
    rt: &mut Runtime,
    label: &str,
    run_id: &str,
    communities: usize,
    each: usize,
) -> anyhow::Result<()> {
    const MEMBERS: usize = 50;
    const BALLOTS_EACH: usize = 5;
    let now = Utc::now();
    let admin = AccountRef::new("chat", "admin");
    let policy = "name = \"p\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"8760h\"\n";
    let mut phase = Phase::start(format!("communities of {MEMBERS} with {each} open proposals each"));
    let mut deliveries = Vec::new();
    for k in 0..communities {
        let name = format!("many-{run_id}-{k}");
        let c = rt.ensure_community(&name, "admin", admin.clone()).await?;
        let install =
            request("polity.policy_install", admin.clone(), Place::new("chat", "#g"), "i")?.with("source", policy);
        step(rt, c, &format!("{name}:i"), Inbound::Action { action: install }, now).await?;
        for i in 0..MEMBERS {
            rt.admit(c, &AccountRef::new("chat", format!("v{i}")), &format!("v{i}"));
        }
        rt.save_community(c, now).await?;
        for i in 0..each {
            let action = proposal(&admin, &format!("p{i}"))?;
            phase.latencies.push(step(rt, c, &format!("{name}:p{i}"), Inbound::Action { action }, now).await?);
        }
        rt.dispatch(now).await?;
        for p in rt.store().load_proposals(c, true).await? {
            let message = rt.store().vote_messages(c, p.id).await?.remove(0);
            for v in 0..BALLOTS_EACH {
                deliveries.push(Delivery {
                    community: c,
                    source: "chat".into(),
                    dedup_key: format!("{name}:{}:v{v}", p.id),
                    input: reaction(&message, &format!("v{v}"), v % 2 == 0),
                    from: None,
                });
            }
        }
        phase.count += 1;
    }
    phase.report(label);
    let bound = polity::serve::batch_bound(rt.store().backend_name());
    let mut phase = Phase::start(format!("ballots on them in batches of {bound}"));
    let mut rest = deliveries.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<Delivery> = rest.by_ref().take(bound).collect();
        let n = batch.len();
        let started = Instant::now();
        rt.handle_batch(batch, now).await?;
        phase.latencies.extend(std::iter::repeat_n(started.elapsed(), n));
        rt.dispatch(now).await?;
        phase.count += n;
    }
    phase.report(label);
    Ok(())
}

/// The CPU time this process has used (user and system, all threads), from `/proc`; 0 where
/// there is none.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name (in parentheses, which may hold spaces): utime and stime are the
    // 12th and 13th fields, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The resident memory of this process (`VmRSS`) and its peak (`VmHWM`), in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The resident memory of the C allocator's main heap and of its per-thread heaps (anonymous
/// mappings at 64 MiB-aligned addresses), in MiB, and how many of those there are; from
/// `/proc/self/smaps`, zeros where there is none.
fn heaps() -> (f64, f64, usize) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let (mut heap, mut threads, mut n) = (0.0, 0.0, 0);
    let mut kind = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, _)) = first.split_once('-')
            && !first.ends_with(':')
        {
            let anonymous = fields.nth(3) == Some("0") && fields.next().is_none();
            let aligned = u64::from_str_radix(start, 16).is_ok_and(|a| a % (64 << 20) == 0);
            kind = if line.ends_with("[heap]") {
                Some(true)
            } else if anonymous && aligned {
                Some(false)
            } else {
                None
            };
        } else if let (Some(main), Some(kb)) = (kind, line.strip_prefix("Rss:")) {
            let mib = kb.trim().trim_end_matches("kB").trim().parse::<f64>().unwrap_or(0.0) / 1024.0;
            if main {
                heap += mib;
            } else if mib > 0.0 {
                threads += mib;
                n += 1;
            }
        }
    }
    (heap, threads, n)
}

/// Opens the runtime on `url` as a restart would, and says how long it took and how much
/// memory it holds.
async fn reopen(url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    let label = format!("{} restart", store.backend_name());
    let (before, _) = memory();
    let started = Instant::now();
    let rt = Runtime::open(store).await?;
    let took = started.elapsed().as_secs_f64();
    let (rss, peak) = memory();
    let (heap, threads, n) = heaps();
    let communities = rt.store().communities().await?;
    let mut open = 0;
    for (c, _) in &communities {
        open += rt.store().load_proposals(*c, true).await?.len();
    }
    println!(
        "[{label}] {} communities, {open} open proposals: ready in {took:.2} s, resident {rss:.1} MiB (peak {peak:.1}, {before:.1} before opening)",
        communities.len()
    );
    println!(
        "[{label}] of which the main heap {heap:.1} MiB, {n} threads' heaps {threads:.1} MiB (each thread that allocates gets a heap of its own from the C allocator: the database's worker threads among them)"
    );
    Ok(())
}
