//! Installing Polity's own Slack app in a workspace through Slack's OAuth v2, so one Polity
//! serves many workspaces, each with its own tokens.
//!
//! | page | what happens |
//! |---|---|
//! | `GET /slack/install` | a new `state` (a random nonce, when it expires, and an HMAC of both under a key derived from the client secret), the nonce also in a cookie for `/slack`; 302 to Slack's approval page with the app's bot and user scopes (read from `manifest.yaml`) |
//! | `GET /slack/oauth?code=...&state=...` | the state checked (its HMAC in constant time, not expired, the browser's cookie holding its nonce, never used before), else 400 and nothing exchanged; the code exchanged (`oauth.v2.access`, the client id and secret as HTTP Basic auth, through slack-morphism); the installer asked about (`users.info`): a workspace admin or owner is required, anyone else's install is undone (`apps.uninstall`) and answered 403; the tokens stored by the host (encrypted) before the workspace is opened and handed to the host, which decides which community governs it, as for any space; 200 saying so |
//! | `GET /slack/oauth?error=access_denied&state=...` | the admin cancelled: 200 saying nothing was installed |
//!
//! Reinstalling (for new scopes) replaces the workspace's tokens.

use crate::workspaces::{OpenError, Opener, Workspaces};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_port::webhook::{constant_time_eq, hmac_sha256};
use polity_port::{EndpointAnswer, Incoming, Install, Installed};
use serde_json::Value;
use slack_morphism::api::SlackOAuthV2AccessTokenRequest;
use slack_morphism::{SlackClientId, SlackClientSecret};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// How long an install link's state is good for.
pub const STATE_LIFETIME_SECS: i64 = 10 * 60;

/// The cookie that ties a state to the browser that asked for it.
pub const STATE_COOKIE: &str = "polity_slack_state";

/// The app's manifest: its scopes are what the install link asks for.
pub const MANIFEST: &str = include_str!("../manifest.yaml");

/// The scopes `manifest.yaml` lists under `oauth_config.scopes.{kind}` (`bot` or `user`).
pub fn manifest_scopes(kind: &str) -> Vec<&'static str> {
    let mut scopes = Vec::new();
    let mut inside = false;
    for line in MANIFEST.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 4 && trimmed.ends_with(':') {
            inside = trimmed.trim_end_matches(':') == kind;
        } else if indent < 4 {
            inside = false;
        } else if inside && let Some(scope) = trimmed.strip_prefix("- ") {
            scopes.push(scope.trim());
        }
    }
    scopes
}

/// Polity's side of Slack's OAuth.
pub struct Installer {
    client_id: String,
    client_secret: String,
    /// The key states are signed with (derived from the client secret, so a state outlives a
    /// restart of Polity and means nothing to another app).
    state_key: Vec<u8>,
    redirect_url: Option<String>,
    authorize_url: String,
    opener: Opener,
    workspaces: Workspaces,
    events: mpsc::Sender<Incoming>,
    /// States used, until they expire: each is good once.
    used: Mutex<HashMap<String, i64>>,
    /// For the form-encoded calls (`apps.uninstall`, `auth.revoke`).
    http: reqwest::Client,
}

impl std::fmt::Debug for Installer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installer").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An HTML page saying `text` (escaped).
fn page(status: u16, title: &str, text: &str) -> EndpointAnswer {
    let escape = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1><p>{}</p></body></html>\n",
        escape(title),
        escape(title),
        escape(text)
    );
    EndpointAnswer { content_type: "text/html; charset=utf-8", ..EndpointAnswer::text(status, body) }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

impl Installer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client_id: &str,
        client_secret: &str,
        redirect_url: Option<String>,
        authorize_url: String,
        opener: Opener,
        workspaces: Workspaces,
        events: mpsc::Sender<Incoming>,
    ) -> Self {
        let http = reqwest::Client::builder().timeout(opener.timeout).build().unwrap_or_default();
        Self {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            state_key: hmac_sha256(client_secret.as_bytes(), &[b"polity slack oauth state"]),
            redirect_url,
            authorize_url,
            opener,
            workspaces,
            events,
            used: Mutex::new(HashMap::new()),
            http,
        }
    }

    fn sign(&self, nonce: &str, expires: i64) -> String {
        hex(&hmac_sha256(&self.state_key, &[nonce.as_bytes(), b".", expires.to_string().as_bytes()]))
    }

    /// `GET /slack/install`: off to Slack's approval page with a new state.
    pub fn install_page(&self, now: DateTime<Utc>) -> EndpointAnswer {
        let mut random = [0u8; 16];
        if getrandom::getrandom(&mut random).is_err() {
            return page(500, "Polity cannot start an install", "This machine gave no random numbers; try again.");
        }
        let nonce = hex(&random);
        let expires = now.timestamp() + STATE_LIFETIME_SECS;
        let state = format!("{nonce}.{expires}.{}", self.sign(&nonce, expires));
        let Ok(mut to) = url::Url::parse(&self.authorize_url) else {
            return page(500, "Polity cannot start an install", "Its authorize_url is not a URL.");
        };
        {
            let mut query = to.query_pairs_mut();
            query.append_pair("client_id", &self.client_id);
            query.append_pair("scope", &manifest_scopes("bot").join(","));
            query.append_pair("user_scope", &manifest_scopes("user").join(","));
            query.append_pair("state", &state);
            if let Some(redirect) = &self.redirect_url {
                query.append_pair("redirect_uri", redirect);
            }
        }
        let secure =
            if self.redirect_url.as_deref().is_some_and(|u| u.starts_with("https:")) { "; Secure" } else { "" };
        EndpointAnswer::redirect(to.to_string()).with_header(
            "set-cookie",
            format!(
                "{STATE_COOKIE}={nonce}; Path=/slack; Max-Age={STATE_LIFETIME_SECS}; HttpOnly; SameSite=Lax{secure}"
            ),
        )
    }

    /// Whether `state` is one of Polity's, unexpired, from this browser and unused; it is used
    /// from now on.
    fn take_state(&self, state: &str, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), &'static str> {
        let mut parts = state.splitn(3, '.');
        let (Some(nonce), Some(expires), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("the install link's state is malformed");
        };
        let expires: i64 = expires.parse().map_err(|_| "the install link's state is malformed")?;
        if !constant_time_eq(self.sign(nonce, expires).as_bytes(), signature.as_bytes()) {
            return Err("the install link's state is not Polity's");
        }
        if now.timestamp() > expires {
            return Err("the install link expired");
        }
        if !cookie(headers, STATE_COOKIE).is_some_and(|c| constant_time_eq(c.as_bytes(), nonce.as_bytes())) {
            return Err("the install was started in another browser");
        }
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.retain(|_, until| *until >= now.timestamp());
        if used.insert(nonce.to_string(), expires).is_some() {
            return Err("the install link was used already");
        }
        Ok(())
    }

    /// `GET /slack/oauth`: Slack sent the admin back.
    pub async fn redirected(&self, query: &str, headers: &HeaderMap, now: DateTime<Utc>) -> EndpointAnswer {
        let fields: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        if let Err(why) = self.take_state(field("state"), headers, now) {
            tracing::warn!("a Slack OAuth redirect refused: {why}");
            return page(400, "Polity was not installed", &format!("{why}: start again from the install link."));
        }
        if !field("error").is_empty() {
            return page(200, "Polity was not installed", "The install was cancelled in Slack; nothing changed.");
        }
        if field("code").is_empty() {
            return page(400, "Polity was not installed", "Slack sent no code: start again from the install link.");
        }
        match self.install(field("code")).await {
            Ok(workspace) => page(
                200,
                "Polity is installed",
                &format!("Polity is installed in {workspace}. Type /polity help in Slack to begin."),
            ),
            Err((status, why)) => page(status, "Polity was not installed", &why),
        }
    }

    /// Exchanges `code` for the workspace's tokens and installs Polity there if the installer
    /// is an admin; the workspace's name, or the status and why not.
    async fn install(&self, code: &str) -> Result<String, (u16, String)> {
        let request = SlackOAuthV2AccessTokenRequest {
            client_id: SlackClientId(self.client_id.clone()),
            client_secret: SlackClientSecret(self.client_secret.clone()),
            code: code.to_string().into(),
            redirect_uri: self.redirect_url.as_deref().and_then(|u| url::Url::parse(u).ok()),
        };
        let exchanged = tokio::time::timeout(self.opener.timeout, self.opener.client.oauth2_access(&request)).await;
        let access = match exchanged {
            Ok(Ok(access)) => access,
            Ok(Err(e)) => {
                // Never the error itself: a protocol error repeats Slack's whole answer, tokens
                // and all.
                tracing::warn!("Slack refused to exchange an OAuth code: {}", error_kind(&e));
                return Err((400, "Slack did not accept the install's code (it works once, for ten minutes): start again from the install link.".into()));
            }
            Err(_) => return Err((502, "Slack did not answer in time: start again from the install link.".into())),
        };
        let team = access.team.id.0.clone();
        let team_name = access.team.name.clone().unwrap_or_else(|| team.clone());
        let bot_token = access.access_token.0.clone();
        let installer = access.authed_user.id.0.clone();
        let user_token = access.authed_user.access_token.as_ref().map(|t| t.0.clone());
        let bot = self.opener.api(&bot_token);
        // A workspace Polity serves already stays installed whatever this attempt comes to:
        // only what this attempt added is taken back.
        let existing = self.workspaces.get(&team).is_some();
        let admin = match bot.get("users.info", &[("user", installer.clone())], None).await {
            Ok(info) => crate::events::controls_workspace(info.get("user").unwrap_or(&Value::Null)),
            Err(f) => {
                tracing::warn!(workspace = team, "cannot ask Slack whether the installer is an admin: {}", f.error);
                if !existing {
                    self.undo(&bot_token, &team).await;
                }
                return Err((
                    502,
                    "Slack did not say whether you are a workspace admin: start again from the install link.".into(),
                ));
            }
        };
        if !admin {
            if existing {
                if let Some(user) = &user_token {
                    self.form(user, "auth.revoke", &[], &team).await;
                }
                return Err((
                    403,
                    format!(
                        "Only a workspace admin or owner of {team_name} can install Polity there; Polity stays as it was."
                    ),
                ));
            }
            self.undo(&bot_token, &team).await;
            return Err((
                403,
                format!(
                    "Only a workspace admin or owner of {team_name} can install Polity there; the install was undone."
                ),
            ));
        }
        let secret = user_token.as_ref().map_or_else(|| bot_token.clone(), |user| format!("{bot_token} {user}"));
        let (answer, stored) = oneshot::channel();
        let installed = Installed { install: Install { space: team.clone(), secret }, answer };
        let stored = match self.events.send(Incoming::Installed(installed)).await {
            Ok(()) => stored.await.unwrap_or_else(|_| Err("Polity is shutting down".into())),
            Err(_) => Err("Polity is shutting down".into()),
        };
        if let Err(why) = stored {
            tracing::error!(workspace = team, "an install could not be stored: {why}");
            if existing {
                return Err((500, "Polity could not record the new install; it goes on with the one it had.".into()));
            }
            self.undo(&bot_token, &team).await;
            return Err((500, "Polity could not record the install, so it was undone: try again.".into()));
        }
        match self.opener.open(&bot_token, user_token.as_deref(), Some(&team)).await {
            Ok((workspace, space)) => {
                self.workspaces.insert(workspace);
                if self.events.send(Incoming::Space(space)).await.is_err() {
                    return Err((503, "Polity is shutting down; it starts in the workspace when it is back.".into()));
                }
                tracing::info!(workspace = team, "Polity's app was installed by {installer}");
                Ok(team_name)
            }
            Err(OpenError::Revoked(why) | OpenError::Other(why)) => {
                tracing::error!(workspace = team, "an installed workspace could not be opened: {why}");
                Err((
                    502,
                    format!(
                        "Polity is installed in {team_name} but could not start there yet: {why}. It tries again when Polity restarts."
                    ),
                ))
            }
        }
    }

    /// Takes the app out of a workspace it should not be in.
    async fn undo(&self, bot_token: &str, team: &str) {
        let credentials = [("client_id", self.client_id.as_str()), ("client_secret", self.client_secret.as_str())];
        if !self.form(bot_token, "apps.uninstall", &credentials, team).await {
            tracing::error!(workspace = team, "undoing an install failed; remove the app from the workspace by hand");
        }
    }

    /// Calls `method` as `token` with `fields` as a form body (never in the address: they
    /// include the client secret); whether Slack said `ok`.
    async fn form(&self, token: &str, method: &str, fields: &[(&str, &str)], team: &str) -> bool {
        let url = format!("{}/{method}", self.opener.api_url.trim_end_matches('/'));
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let sent = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer.json::<Value>().await.ok(),
            Err(e) => {
                tracing::warn!(workspace = team, method, "Slack did not answer: {}", e.without_url());
                None
            }
        };
        let ok = answer.as_ref().and_then(|a| a.get("ok")).and_then(Value::as_bool) == Some(true);
        if !ok {
            let error = answer.as_ref().and_then(|a| a.get("error")).and_then(Value::as_str).unwrap_or("no answer");
            tracing::warn!(workspace = team, method, "Slack refused: {error}");
        }
        ok
    }
}

/// What kind of failure a slack-morphism error is, without the answer it may repeat.
fn error_kind(e: &slack_morphism::errors::SlackClientError) -> String {
    use slack_morphism::errors::SlackClientError as E;
    match e {
        E::ApiError(api) => format!("Slack said {}", api.code),
        E::HttpError(http) => format!("HTTP {}", http.status_code),
        E::RateLimitError(_) => "rate limited".into(),
        E::ProtocolError(_) | E::HttpProtocolError(_) => "an answer Polity cannot read".into(),
        _ => "no answer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_link_asks_for_the_manifests_scopes() {
        let bot = manifest_scopes("bot");
        for scope in ["chat:write", "commands", "reactions:read", "users:read", "pins:write", "channels:manage"] {
            assert!(bot.contains(&scope), "{bot:?}");
        }
        assert_eq!(manifest_scopes("user"), ["chat:write", "channels:write", "groups:write", "pins:write"]);
        assert!(manifest_scopes("nothing").is_empty());
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; polity_slack_state=abc; b=2".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers, STATE_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
