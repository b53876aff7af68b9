//! `/integration add|list|test|remove|confirm`: platform connections. A secret (a token, an
//! API key) is typed where nobody else sees it, stored encrypted, and never shown again; the
//! connection is enabled by the same rule as every change to governance.
//!
//! A server that Polity's own bot serves (a Discord server) joins a community only with
//! proof of control given inside it: `/integration add` stores a one-time code with the
//! connection and shows it to whoever asked, and the server's owner or an admin types
//! `/integration confirm CODE` in that server. The bot checks that, since the server may not
//! be governed by any community yet; here, `/integration confirm` only says where it works.

use crate::governed;
use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports, StagedConnection};
use crate::reply::{Reply, SecretPrompt};
use polity_governance::change::Change;
use serde_json::{Map, Value};

/// The key of a connection's config that holds the one-time code its server confirms it with
/// (`/integration confirm CODE`). Not a setting: only `/integration add` writes it.
pub const JOIN_CODE: &str = "join_code";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub async fn add(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let (platform, name) = (args.text("platform").to_lowercase(), args.text("name"));
    let platforms = ports.platforms();
    let Some(spec) = platforms.iter().find(|p| p.name == platform) else {
        let known: Vec<&str> = platforms.iter().map(|p| p.name).collect();
        return Ok(Reply::private(format!("Polity does not connect to `{platform}`: choose {}.", known.join(", "))));
    };
    let secret = spec.secret;
    if !valid_name(name) {
        return Ok(Reply::private(format!(
            "`{name}` is not a connection name: use up to 32 lowercase letters, digits, `-` and `_`."
        )));
    }
    // Before asking for a secret, say at once if the name is taken. (Without a secret the
    // request goes straight on, and the runtime tells a retry from a clash.)
    if secret.is_some() && ports.connections().await?.iter().any(|c| c.name == name) {
        return Ok(Reply::private(format!(
            "A connection named {name} exists already: `/integration list` shows them."
        )));
    }
    let mut config = Map::new();
    for pair in args.get("settings").unwrap_or_default().split_whitespace() {
        let Some((k, v)) = pair.split_once('=').filter(|(k, v)| !k.is_empty() && !v.is_empty()) else {
            return Ok(Reply::private(format!("`{pair}` is not a setting: write key=value.")));
        };
        if spec.setting(k).is_none() {
            let known: Vec<&str> = spec.settings.iter().map(|s| s.name).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Ok(Reply::private(format!("`{k}` is not a setting of {}: use {known}.", spec.title)));
        }
        config.insert(k.to_string(), Value::String(v.to_string()));
    }
    // Polity's own bot for this platform runs here: the server joins by the bot's invite,
    // and no secret of its own is needed.
    if let Some(invite) = ports.bot_invite(&platform) {
        if let Some(setting) = spec.space_setting()
            && !config.contains_key(setting.name)
        {
            return Ok(Reply::private(format!(
                "Say which {} joins this community: `/integration add {platform} {name} {}=ID` ({}).",
                spec.space, setting.name, setting.help
            )));
        }
        // The server joins only when someone who controls it says so, inside it, with this code.
        let code = ports.one_time_code();
        config.insert(JOIN_CODE.to_string(), Value::String(code.clone()));
        let mut reply = connect(ports, inv, &platform, name, config, None).await?;
        reply.text.push_str(&format!(
            "\nAdd Polity's bot to the {space} with {invite}\nThe {space} joins this community once its owner or an admin types `/integration confirm {code}` there: keep the code for them alone.",
            space = spec.space
        ));
        return Ok(reply);
    }
    match secret {
        Some(label) => {
            // Polity's own bot for the platform does not run here: the connection needs a
            // credential of the community's own.
            let text = if ports.can_store_secrets() {
                format!(
                    "Polity's own {title} bot does not run here, so {name} needs {label} of the community's own. Type it where only you see it (on the console: the next line). It is stored encrypted and never shown again.",
                    title = spec.title
                )
            } else {
                // Said before the secret is typed, not after; what is typed is still read
                // privately (and dropped), so a token pasted anyway is never shown.
                "Polity cannot store secrets without a secret key: run `polity init` (or set POLITY_SECRET_KEY to 32 random bytes in base64, e.g. from `openssl rand -base64 32`) and start Polity again. Anything typed next is read where only you see it and dropped.".to_string()
            };
            let mut reply = Reply::private(text);
            reply.secret_prompt = Some(SecretPrompt {
                platform: platform.clone(),
                name: name.to_string(),
                config,
                label: label.to_string(),
            });
            Ok(reply)
        }
        None => connect(ports, inv, &platform, name, config, None).await,
    }
}

/// The second half of `/integration add`, once the secret was typed privately.
///
/// # Errors
/// Internal failures only.
pub async fn add_with_secret(
    ports: &mut dyn Ports,
    inv: &Invocation,
    prompt: SecretPrompt,
    secret: &str,
) -> Result<Reply, PortError> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Ok(Reply::private(format!(
            "Nothing was typed, so {} is not connected: run /integration add again.",
            prompt.name
        )));
    }
    connect(ports, inv, &prompt.platform, &prompt.name, prompt.config, Some(secret.to_string())).await
}

async fn connect(
    ports: &mut dyn Ports,
    inv: &Invocation,
    platform: &str,
    name: &str,
    config: Map<String, Value>,
    secret: Option<String>,
) -> Result<Reply, PortError> {
    let webhook = ports.new_webhook(platform, name);
    let hook_secret = webhook.as_ref().map(|w| w.secret.clone());
    let staged = StagedConnection { name: name.into(), platform: platform.into(), config, secret, hook_secret };
    let change = Change::IntegrationAdd { name: name.into(), platform: platform.into() };
    let done = format!("{name} ({platform}) is connected. `/integration test {name}` checks it.");
    let what = format!("connect {platform} as {name}");
    let (mut reply, recorded) = governed::request_with(ports, inv, change, done, what, Some(staged)).await?;
    // Shown once, to whoever added it, and only when it was kept with the connection.
    if let Some(w) = webhook.filter(|_| recorded) {
        reply.text.push_str(&if w.secret_in_url {
            format!(
                "\nIts webhook: paste this address into the platform's webhook settings (it is shown only now, and holds the secret that proves a delivery comes from there):\n{}",
                w.url
            )
        } else {
            format!(
                "\nIts webhook: in the platform's webhook settings, paste the address {} and the secret {} (shown only now).",
                w.url, w.secret
            )
        });
    }
    Ok(reply)
}

/// `/integration confirm` where no bot answers it itself (Polity's Discord bot does, before
/// any community's handlers run): it only says where it works.
pub fn confirm() -> Reply {
    Reply::private(
        "`/integration confirm CODE` is typed inside a server that waits to join a community, by its owner or an admin, with the code `/integration add` gave the community.",
    )
}

pub async fn list(ports: &mut dyn Ports) -> Result<Reply, PortError> {
    let all = ports.connections().await?;
    if all.is_empty() {
        return Ok(Reply::private("No platform is connected: `/integration add PLATFORM NAME` connects one."));
    }
    let lines: Vec<String> = all
        .iter()
        .map(|c| {
            let state = if c.enabled { "enabled" } else { "waiting for its proposal to pass" };
            let secret = if c.has_secret { "secret stored" } else { "no secret" };
            format!("{} — {}, {state}, {secret}", c.name, c.platform)
        })
        .collect();
    Ok(Reply::private(lines.join("\n")))
}

pub async fn test(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    if !ports.connections().await?.iter().any(|c| c.name == name) {
        return Ok(Reply::private(format!("There is no connection named {name}: `/integration list` shows them.")));
    }
    Ok(Reply::private(ports.test_connection(name).await?))
}

pub async fn remove(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let name = args.text("name");
    let Some(c) = ports.connections().await?.into_iter().find(|c| c.name == name) else {
        return Ok(Reply::private(format!("There is no connection named {name}: `/integration list` shows them.")));
    };
    let done = format!("{name} ({}) is disconnected and its settings and secret deleted.", c.platform);
    governed::request(ports, inv, Change::IntegrationRemove { name: name.into() }, done, format!("disconnect {name}"))
        .await
}
