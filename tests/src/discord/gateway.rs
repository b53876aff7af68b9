//! The fake gateway: a websocket server speaking Discord's gateway protocol v10 in plain JSON
//! text frames (no compression).
//!
//! - On connect: HELLO (op 10).
//! - Heartbeat (op 1): answered with op 11.
//! - IDENTIFY (op 2): recorded; starts a new session (the previous one, and what it missed, is
//!   gone, as on Discord) and sends READY, then one GUILD_CREATE per guild.
//! - RESUME (op 6) with the current session's id: every dispatch of the session after the
//!   client's `seq` again (including those produced while no client was connected), then
//!   RESUMED; with another session id: INVALID SESSION (op 9, not resumable).
//! - REQUEST_GUILD_MEMBERS (op 8): one GUILD_MEMBERS_CHUNK per guild asked for.
//! - More than 120 payloads from one connection in 60 s (Discord's send limit, on tokio's
//!   clock): closed with 4008, the payload over the limit unheard.
//!
//! One session exists at a time, and the connection that last identified or resumed receives
//! its dispatches. Every dispatch has the next sequence number of the session.

use super::Shared;
use super::state::{Live, Outgoing, Session, State};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Discord's close code for a token it refuses.
pub(crate) const AUTHENTICATION_FAILED: u16 = 4004;
/// Discord's close code for a session that must be sharded (more shards than asked for).
pub(crate) const SHARDING_REQUIRED: u16 = 4011;
/// Discord's close code for privileged intents the application may not use.
pub(crate) const DISALLOWED_INTENTS: u16 = 4014;
/// The privileged intents: GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT.
pub(crate) const PRIVILEGED_INTENTS: u64 = (1 << 1) | (1 << 8) | (1 << 15);

/// Discord's close code for a client that sent more than its gateway limit allows.
pub(crate) const RATE_LIMITED: u16 = 4008;
/// Discord's gateway send limit: 120 payloads per connection per 60 s.
pub const SENDS_PER_WINDOW: usize = 120;
pub const SEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The close code [`super::FakeDiscord::disconnect`] uses: Discord's "unknown error, reconnect".
pub const CLOSE_RECONNECT: u16 = 4000;

/// A gateway payload that is not a dispatch.
fn op(op: u64, d: Value) -> String {
    json!({ "op": op, "d": d, "s": null, "t": null }).to_string()
}

impl State {
    /// Produces dispatch `t` with data `d`: recorded, added to the session's buffer with the
    /// next sequence number and sent to the live connection. Without a session it is recorded
    /// only (a new session does not get what happened before it).
    pub(crate) fn dispatch(&mut self, t: &str, d: Value) {
        self.gateway.dispatched.push((t.to_string(), d.clone()));
        let Some(session) = self.gateway.session.as_mut() else { return };
        session.seq += 1;
        let payload = json!({ "op": 0, "t": t, "s": session.seq, "d": d });
        let text = payload.to_string();
        session.log.push(payload);
        let gone = match &self.gateway.live {
            Some(live) => live.tx.send(Outgoing::Frame(text)).is_err(),
            None => false,
        };
        if gone {
            self.gateway.live = None;
        }
    }

    /// Starts a new session on connection `conn`: READY and the GUILD_CREATEs.
    fn identify(&mut self, conn: u64, tx: &mpsc::UnboundedSender<Outgoing>, d: Value) {
        let token = d["token"].as_str().unwrap_or_default().to_string();
        self.gateway.identifies.push(d);
        if let Some(t) = &self.token
            && token != *t
            && token != format!("Bot {t}")
        {
            // Discord's "Authentication failed": not to be retried.
            let _ = tx.send(Outgoing::Close(AUTHENTICATION_FAILED));
            return;
        }
        let intents = self.gateway.identifies.last().and_then(|d| d["intents"].as_u64()).unwrap_or(0);
        if !self.privileged_intents && intents & PRIVILEGED_INTENTS != 0 {
            // Not enabled in the Developer Portal (or not verified for them).
            let _ = tx.send(Outgoing::Close(DISALLOWED_INTENTS));
            return;
        }
        let shards = self.gateway.identifies.last().and_then(|d| d["shard"][1].as_u64()).unwrap_or(1);
        if shards < u64::from(self.shards) {
            let _ = tx.send(Outgoing::Close(SHARDING_REQUIRED));
            return;
        }
        self.gateway.sessions += 1;
        let id = format!("fake-session-{}", self.gateway.sessions);
        self.gateway.session = Some(Session { id: id.clone(), seq: 0, log: Vec::new() });
        self.gateway.live = Some(Live { id: conn, tx: tx.clone() });
        let ready = self.ready(&id);
        self.dispatch("READY", ready);
        let guilds: Vec<Value> = self.guilds.iter().filter(|g| g.has_bot()).map(|g| self.guild_create(g)).collect();
        for g in guilds {
            self.dispatch("GUILD_CREATE", g);
        }
    }

    /// Resumes the session on connection `conn`: what the client missed, then RESUMED.
    fn resume(&mut self, conn: u64, tx: &mpsc::UnboundedSender<Outgoing>, d: Value) {
        let session_id = d["session_id"].as_str().unwrap_or_default().to_string();
        let after = d["seq"].as_u64().unwrap_or(0);
        self.gateway.resumes.push(d);
        let Some(session) = self.gateway.session.as_ref().filter(|s| s.id == session_id) else {
            let _ = tx.send(Outgoing::Frame(op(9, json!(false))));
            return;
        };
        for payload in session.log.iter().filter(|p| p["s"].as_u64().is_some_and(|s| s > after)) {
            let _ = tx.send(Outgoing::Frame(payload.to_string()));
        }
        self.gateway.live = Some(Live { id: conn, tx: tx.clone() });
        self.dispatch("RESUMED", json!({}));
    }

    /// Answers REQUEST_GUILD_MEMBERS: every member of each guild asked for, in one chunk.
    fn request_members(&mut self, conn: u64, d: &Value) {
        if self.gateway.live.as_ref().is_none_or(|l| l.id != conn) {
            return;
        }
        let guilds: Vec<String> = match &d["guild_id"] {
            Value::Array(ids) => ids.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
            Value::String(g) => vec![g.clone()],
            _ => Vec::new(),
        };
        for g in guilds {
            let Some(guild) = self.guild(&g) else { continue };
            let members: Vec<Value> = guild.members.iter().map(|m| self.member_json(&g, &m.user)).collect();
            let mut chunk =
                json!({ "guild_id": g, "members": members, "chunk_index": 0, "chunk_count": 1, "not_found": [] });
            if !d["nonce"].is_null() {
                chunk["nonce"] = d["nonce"].clone();
            }
            self.dispatch("GUILD_MEMBERS_CHUNK", chunk);
        }
    }

    /// Closes the live connection (serenity then resumes); false when none was live.
    pub(crate) fn disconnect(&mut self) -> bool {
        match self.gateway.live.take() {
            Some(live) => {
                let _ = live.tx.send(Outgoing::Close(CLOSE_RECONNECT));
                true
            }
            None => false,
        }
    }
}

/// Accepts gateway connections on `listener` until the task is aborted (which ends every
/// connection with it).
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(connection(Arc::clone(&shared), stream));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One websocket connection, from HELLO until either side closes it.
async fn connection(shared: Arc<Shared>, stream: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn = shared.change(|s| {
        s.gateway.next_conn += 1;
        s.gateway.next_conn
    });
    let _ = tx.send(Outgoing::Frame(op(10, json!({ "heartbeat_interval": super::payloads::HEARTBEAT_INTERVAL }))));
    let mut closing = false;
    // When this connection's recent payloads arrived, for Discord's send limit.
    let mut sent = std::collections::VecDeque::new();
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { break };
                if closing {
                    continue;
                }
                // A close frame is answered by tungstenite on the next read, which then ends.
                let Message::Text(text) = frame else { continue };
                let now = tokio::time::Instant::now();
                while sent.front().is_some_and(|t| now.duration_since(*t) >= SEND_WINDOW) {
                    sent.pop_front();
                }
                sent.push_back(now);
                if sent.len() > SENDS_PER_WINDOW {
                    // Over Discord's limit: the connection is closed, the payload unheard.
                    let _ = tx.send(Outgoing::Close(RATE_LIMITED));
                    continue;
                }
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                let d = payload["d"].clone();
                match payload["op"].as_u64() {
                    Some(1) => {
                        let _ = tx.send(Outgoing::Frame(op(11, Value::Null)));
                    }
                    Some(2) => shared.change(|s| s.identify(conn, &tx, d)),
                    Some(6) => shared.change(|s| s.resume(conn, &tx, d)),
                    Some(8) => shared.change(|s| s.request_members(conn, &d)),
                    _ => {}
                }
            }
            out = rx.recv(), if !closing => {
                match out {
                    Some(Outgoing::Frame(text)) => {
                        if ws.send(Message::Text(text)).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Close(code)) => {
                        closing = true;
                        let frame = CloseFrame { code: CloseCode::from(code), reason: "reconnect".into() };
                        if ws.send(Message::Close(Some(frame))).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
    }
    shared.change(|s| {
        if s.gateway.live.as_ref().is_some_and(|l| l.id == conn) {
            s.gateway.live = None;
        }
    });
}
