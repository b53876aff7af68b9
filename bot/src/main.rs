//! The `polity` command line: parses arguments and calls into the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use polity::config::{Config, redact_url};
use polity::http::Webhooks;
use polity::run::{Bot, Host, HttpHost, Pacing, serve_host};
use polity::serve::SystemClock;
use polity::store::Store;
use polity::{console, export, policy_cli};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Polity: a governance bot for online communities.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file (default: polity.toml, if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot on every configured platform.
    Run,
    /// Try Polity on the console: lines from standard input, the bot's posts on standard output.
    Console {
        /// Number the input's lines and remember, under this name, the last one handled: run
        /// the same input again after a crash and each line is handled exactly once.
        #[arg(long)]
        session: Option<String>,
    },
    /// Bring the database schema up to date.
    Migrate,
    /// Export the governance record (proposals, ballots, decisions, audit log) to standard output.
    Export {
        /// How to write the record.
        #[arg(long, value_enum, default_value = "json")]
        format: export::Format,
        /// Only this community (by name).
        #[arg(long)]
        community: Option<String>,
    },
    /// Work with policy files offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Write a first, commented polity.toml (or the --config file) with a new secret key.
    Init {
        /// Replace the file if it exists (its secret key is lost).
        #[arg(long)]
        force: bool,
    },
    /// Every action, event and process policies can name, with its fields, as this build's
    /// platforms declare them.
    Actions {
        /// As the Markdown of docs/actions.md.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file: syntax, names, scripts; errors with line numbers.
    Check { file: PathBuf },
    /// Play a scenario (console lines, `event` and `expect` lines) against a policy.
    Test { file: PathBuf, scenario: PathBuf },
}

/// What the log shows unless `RUST_LOG` says otherwise, below `default`: sea-orm's migrator
/// at warn (some 40 lines on a new database; the store says in one line what it applied),
/// and each platform library's info lines only when asked for (Polity says itself how
/// connecting goes; [`polity_port::LogLines::quiet`]).
fn quieter(adapters: &[std::sync::Arc<dyn polity_port::Adapter>]) -> String {
    let quiet = adapters.iter().flat_map(|a| a.log_lines().quiet.iter()).map(|t| format!(",{t}=warn"));
    std::iter::once("sea_orm_migration=warn".to_string()).chain(quiet).collect()
}

/// Whether a line may be logged whatever `RUST_LOG` says: the debug and trace lines of the
/// libraries whose detail carries secrets ([`polity_port::LogLines::secret_detail`], such as
/// raw websocket frames) never are.
fn never_secret(secret: &[&'static str], meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    !(*meta.level() > tracing::Level::INFO && secret.iter().any(|t| target.starts_with(t)))
}

/// Logs to standard error, filtered by `RUST_LOG`, else by `default` and [`quieter`].
fn init_tracing(default: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let adapters = polity::platforms::adapters();
    let quiet = quieter(&adapters);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default},{quiet}")));
    let secret: Vec<&'static str> = adapters.iter().flat_map(|a| a.log_lines().secret_detail.iter().copied()).collect();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .with_filter(tracing_subscriber::filter::filter_fn(move |meta| never_secret(&secret, meta))),
        )
        // Reads the failed attempts to connect that `polity run` tells of, whatever the filter.
        .with(polity::run::connect_attempts_layer(&adapters))
        .init();
}

async fn open_store(config: &Config) -> Result<Store> {
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?
        .with_secret_key(config.secret_key.as_deref());
    store.migrate().await.context("bringing the database schema up to date")?;
    store.check_secret_key().await?;
    Ok(store)
}

/// SIGINT or SIGTERM, listened for from this call on rather than from the first poll (a
/// signal sent as soon as the server answers stops Polity cleanly instead of killing it):
/// the first future resolves on the first signal, which asks Polity to stop cleanly; the
/// second on another, which stops it at once.
#[cfg(unix)]
fn shutdown_signals() -> Result<(impl Future<Output = ()>, impl Future<Output = ()>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let (first, first_heard) = tokio::sync::oneshot::channel::<()>();
    let (second, second_heard) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        for heard in [first, second] {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _told = heard.send(());
        }
    });
    Ok((
        async move {
            let _heard = first_heard.await;
        },
        async move {
            let _heard = second_heard.await;
        },
    ))
}

#[cfg(not(unix))]
fn shutdown_signals() -> Result<(impl Future<Output = ()>, impl Future<Output = ()>)> {
    Ok((polity::serve::shutdown_signal(), std::future::pending()))
}

async fn main_inner(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Policy { command: PolicyCommand::Check { file } } => {
            init_tracing("warn");
            policy_cli::check(&file)
        }
        Command::Policy { command: PolicyCommand::Test { file, scenario } } => {
            init_tracing("warn");
            policy_cli::test(&file, &scenario).await
        }
        Command::Init { force } => {
            let path = cli.config.as_deref().unwrap_or(std::path::Path::new("polity.toml"));
            print!("{}", polity::init::init(path, force)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Actions { markdown } => {
            print!("{}", policy_cli::actions(markdown));
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            init_tracing("info");
            let config = Config::load(cli.config.as_deref())?;
            open_store(&config).await?;
            println!("The database {} is up to date.", redact_url(&config.database_url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { format, community } => {
            init_tracing("warn");
            let config = Config::load(cli.config.as_deref())?;
            let store = open_store(&config).await?;
            export::run(&store, format, community.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Console { session } => {
            init_tracing("warn");
            let config = Config::load(cli.config.as_deref())?;
            let store = open_store(&config).await?;
            let out: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(std::io::stdout()));
            console::run(store, std::io::stdin().lock(), out, session.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run => {
            init_tracing("info");
            let config = Config::load(cli.config.as_deref())?;
            if !config.has_something_to_run() {
                let bots: Vec<String> = polity::platforms::adapters()
                    .iter()
                    .map(|a| a.spec())
                    .filter_map(|s| {
                        s.env.first().map(|key| {
                            format!(
                                "`[platforms.{}]` with `{key} = \"...\"` (or POLITY_{}_{})",
                                s.name,
                                s.name.to_uppercase(),
                                key.to_uppercase()
                            )
                        })
                    })
                    .collect();
                eprintln!(
                    "Nothing is configured, so there is nothing to run.\n\
                     Configure a bot in polity.toml: {}; for webhook platforms alone, say where the HTTP \
                     server listens (`[http]` with `listen = \"127.0.0.1:8080\"`, or POLITY_HTTP_LISTEN). Or try \
                     Polity locally with `polity console`.",
                    bots.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            let store = open_store(&config).await?;
            let (shutdown, again) = shutdown_signals()?;
            let listen = config.http_listen();
            let listener = TcpListener::bind(listen).await.with_context(|| {
                format!(
                    "listening for HTTP on {listen} (health, metrics, webhooks): choose a free address with `[http] listen` or POLITY_HTTP_LISTEN"
                )
            })?;
            let bound = listener.local_addr().context("reading the HTTP server's address")?;
            println!("Serving HTTP on http://{bound}: /healthz, /metrics and /hooks/PLATFORM/COMMUNITY.CONNECTION.");
            let mut bots = Vec::new();
            let mut webhooks = Webhooks::new();
            for adapter in polity::platforms::adapters() {
                if let Some(hooks) = adapter.webhooks() {
                    webhooks.register(hooks);
                }
                if let Some(table) = config.platforms.get(adapter.spec().name) {
                    bots.push(Bot::new(adapter, table.clone()));
                }
            }
            let mut host = Host { bots, http: Some(HttpHost { listener, webhooks }), ..Host::default() };
            let public_url = match config.http.as_ref().and_then(|h| h.public_url.as_deref()) {
                Some(_) => config.http_public_url(),
                None => format!("http://{bound}"),
            };
            host.registry.set_public_url(&public_url);
            if config.http.as_ref().and_then(|h| h.public_url.as_deref()).is_none() {
                println!(
                    "Webhook addresses `/integration add` gives start with {public_url}: set `[http] public_url` (or POLITY_HTTP_PUBLIC_URL) to the address platforms reach Polity at."
                );
            }
            let (notices, mut heard) = tokio::sync::mpsc::unbounded_channel();
            let printer = tokio::spawn(async move {
                while let Some(notice) = heard.recv().await {
                    println!("{notice}");
                }
            });
            let serving = serve_host(store, host, Pacing::default(), &SystemClock, shutdown, notices);
            tokio::select! {
                served = serving => {
                    // Stopped before a configured bot ever connected: it did not do its job.
                    served?.connected()?;
                }
                () = again => anyhow::bail!("stopped at a second signal, without finishing what was under way"),
            }
            printer.abort();
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_inner(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
