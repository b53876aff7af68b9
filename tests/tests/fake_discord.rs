#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fake Discord itself: its REST API with plain HTTP, its gateway with a plain websocket,
//! every payload it produces against serenity's models, and finally the real serenity client
//! (Polity's Discord adapter) connected to it.

use futures_util::{SinkExt, StreamExt};
use polity_tests::discord::{APPLICATION_ID, BOT_ID, FakeDiscord, audit, codes};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const GENERAL: &str = "100000000000000001";
const BOTS: &str = "100000000000000002";
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const CAROL: &str = "300000000000000003";
const STEWARD: &str = "400000000000000001";
const MEMBER: &str = "400000000000000002";
const THUMBS: &str = "👍";
const THUMBS_PATH: &str = "%F0%9F%91%8D";

/// A guard against a hang: the tests never wait on time, only on events.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A fake with one guild: Alice (owner, a steward), Bob, Carol; channels `general`, `bots`.
async fn fake() -> FakeDiscord {
    let fake = FakeDiscord::start().await;
    fake.add_guild(GUILD, "Polity test", ALICE);
    fake.add_channel(GUILD, GENERAL, "general");
    fake.add_channel(GUILD, BOTS, "bots");
    fake.add_role(GUILD, STEWARD, "steward");
    fake.add_role(GUILD, MEMBER, "member");
    fake.add_member(GUILD, ALICE, "alice", Some("Alice A."), &[STEWARD]);
    fake.add_member(GUILD, BOB, "bob", None, &[MEMBER]);
    fake.add_member(GUILD, CAROL, "carol", None, &[]);
    fake
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(fake: &FakeDiscord) -> Self {
        Self { client: reqwest::Client::new(), base: format!("{}/api/v10", fake.url()) }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base)).header("Authorization", "Bot x");
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }, retry)
    }

    async fn multipart(&self, path: &str, payload: &Value, files: &[(&str, &str)]) -> u16 {
        let boundary = "fakeBoundary1234";
        let mut body = String::new();
        for (i, (name, content)) in files.iter().enumerate() {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files[{i}]\"; filename=\"{name}\"\r\n\
                 Content-Type: text/plain\r\n\r\n{content}\r\n"
            ));
        }
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{payload}\r\n--{boundary}--\r\n"
        ));
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }
}

#[tokio::test]
async fn a_message_posted_twice_with_the_same_enforced_nonce_is_created_once() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let body = json!({ "content": "Vote on #12", "nonce": "42", "enforce_nonce": true, "tts": false });
    let (status, first, _) = http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(body.clone())).await;
    assert_eq!(status, 200);
    assert_eq!((first["author"]["id"].as_str(), first["content"].as_str()), (Some(BOT_ID), Some("Vote on #12")));
    let (_, again, _) = http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(body)).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(fake.messages(GENERAL).len(), 1);
    let creates = fake.dispatched().iter().filter(|(t, _)| t == "MESSAGE_CREATE").count();
    assert_eq!(creates, 1);

    // Without enforcement the same nonce creates another message.
    let body = json!({ "content": "again", "nonce": "42" });
    let (_, other, _) = http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(body)).await;
    assert_ne!(other["id"], first["id"]);

    // Edits and deletes; then the message is gone.
    let id = first["id"].as_str().unwrap();
    let path = format!("/channels/{GENERAL}/messages/{id}");
    let (status, edited, _) = http.call("PATCH", &path, Some(json!({ "content": "closed", "components": [] }))).await;
    assert_eq!((status, edited["content"].as_str()), (200, Some("closed")));
    assert_eq!(http.call("DELETE", &path, None).await.0, 204);
    assert!(fake.message(GENERAL, id).unwrap().deleted);
    let (status, err, _) = http.call("PATCH", &path, Some(json!({ "content": "x" }))).await;
    assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_MESSAGE)));
    let (status, err, _) = http.call("DELETE", &path, None).await;
    assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_MESSAGE)));
    let (status, err, _) = http.call("POST", "/channels/1/messages", Some(json!({ "content": "x" }))).await;
    assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_CHANNEL)));
    let (status, err, _) = http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(json!({}))).await;
    assert_eq!((status, err["code"].as_u64()), (400, Some(codes::EMPTY_MESSAGE)));
    let long = "x".repeat(2001);
    let (status, _, _) =
        http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(json!({ "content": long }))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_message_pings_whom_its_text_mentions_unless_allowed_mentions_narrows_it() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let text = format!("<@{BOB}> <@!{CAROL}> <@&{STEWARD}> @everyone, look");
    let path = format!("/channels/{GENERAL}/messages");
    let post = |allowed: Value| {
        let mut body = json!({ "content": text });
        if !allowed.is_null() {
            body["allowed_mentions"] = allowed;
        }
        http.call("POST", &path, Some(body))
    };
    let pinged = |m: &Value| fake.message(GENERAL, m["id"].as_str().unwrap()).unwrap().pinged;
    // Discord's default: everything mentioned is pinged.
    let (_, m, _) = post(Value::Null).await;
    assert_eq!(pinged(&m), [BOB, CAROL, &format!("role:{STEWARD}"), "@everyone"]);
    let (_, m, _) = post(json!({ "parse": [] })).await;
    assert!(pinged(&m).is_empty());
    let (_, m, _) = post(json!({ "parse": [], "users": [CAROL] })).await;
    assert_eq!(pinged(&m), [CAROL]);
    // An edit is parsed afresh: without `allowed_mentions` it pings.
    let edit = format!("{path}/{}", m["id"].as_str().unwrap());
    http.call("PATCH", &edit, Some(json!({ "content": format!("<@{BOB}>") }))).await;
    assert_eq!(pinged(&m), [CAROL, BOB]);
}

#[tokio::test]
async fn reaction_holders_come_in_pages_sorted_by_id_after_the_last_one_read() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let vote = fake.add_message(GENERAL, BOT_ID, "Vote!");
    let base = format!("/channels/{GENERAL}/messages/{vote}/reactions");
    assert_eq!(http.call("PUT", &format!("{base}/{THUMBS_PATH}/@me"), None).await.0, 204);
    for user in [CAROL, ALICE, BOB] {
        fake.user_reacts(user, GENERAL, &vote, THUMBS);
    }
    assert_eq!(fake.reactions(GENERAL, &vote, THUMBS), [BOT_ID, CAROL, ALICE, BOB]);

    let ids = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
    };
    let (_, page, _) = http.call("GET", &format!("{base}/{THUMBS_PATH}?limit=2"), None).await;
    assert_eq!(ids(&page), [ALICE, BOB]);
    let (_, page, _) = http.call("GET", &format!("{base}/{THUMBS_PATH}?limit=2&after={BOB}"), None).await;
    assert_eq!(ids(&page), [CAROL, BOT_ID]);
    assert_eq!(page[1]["bot"], json!(true));
    let (_, page, _) = http.call("GET", &format!("{base}/{THUMBS_PATH}?limit=2&after={BOT_ID}"), None).await;
    assert_eq!(ids(&page), Vec::<String>::new());
    // An emoji nobody holds.
    let (status, page, _) = http.call("GET", &format!("{base}/%F0%9F%91%8E"), None).await;
    assert_eq!((status, page), (200, json!([])));
    let pages: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/reactions/"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(pages, ["limit=2", &format!("limit=2&after={BOB}"), &format!("limit=2&after={BOT_ID}"), ""]);

    // Removing someone's reaction, and the bot's own.
    assert_eq!(http.call("DELETE", &format!("{base}/{THUMBS_PATH}/{ALICE}"), None).await.0, 204);
    assert_eq!(http.call("DELETE", &format!("{base}/{THUMBS_PATH}/@me"), None).await.0, 204);
    assert_eq!(fake.reactions(GENERAL, &vote, THUMBS), [CAROL, BOB]);
    let removed: Vec<Value> = fake
        .dispatched()
        .into_iter()
        .filter(|(t, _)| t == "MESSAGE_REACTION_REMOVE")
        .map(|(_, d)| d["user_id"].clone())
        .collect();
    assert_eq!(removed, [json!(ALICE), json!(BOT_ID)]);

    // Custom emojis: `name:id`, known to the guild only.
    fake.add_emoji(GUILD, "500000000000000001", "aye");
    assert_eq!(http.call("PUT", &format!("{base}/aye:500000000000000001/@me"), None).await.0, 204);
    assert_eq!(fake.reactions(GENERAL, &vote, "aye:500000000000000001"), [BOT_ID]);
    let (status, err, _) = http.call("PUT", &format!("{base}/nay:500000000000000009/@me"), None).await;
    assert_eq!((status, err["code"].as_u64()), (400, Some(codes::UNKNOWN_EMOJI)));
    let (status, err, _) = http.call("PUT", &format!("{base}/yes/@me"), None).await;
    assert_eq!((status, err["code"].as_u64()), (400, Some(codes::UNKNOWN_EMOJI)));
}

#[tokio::test]
async fn an_injected_failure_answers_once_and_changes_nothing() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let limited = json!({ "message": "You are being rate limited.", "retry_after": 1.5, "global": false });
    fake.fail_next("POST", &format!("/channels/{GENERAL}/messages"), 429, limited.clone(), Some("2"));
    let path = format!("/channels/{GENERAL}/messages");
    let (status, body, retry) = http.call("POST", &path, Some(json!({ "content": "hi" }))).await;
    assert_eq!((status, body, retry.as_deref()), (429, limited, Some("2")));
    assert!(fake.messages(GENERAL).is_empty());
    let (status, _, _) = http.call("POST", &path, Some(json!({ "content": "hi" }))).await;
    assert_eq!(status, 200);
    assert_eq!(fake.messages(GENERAL).len(), 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    // Unknown routes are answered 404 and recorded.
    let (status, body, _) = http.call("GET", "/nowhere", None).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("404: Not Found")));
    let request = fake.wait_for_request("GET", "/api/v10/nowhere").await;
    assert_eq!((request.path.as_str(), request.authorization.as_deref()), ("/api/v10/nowhere", Some("Bot x")));
}

#[tokio::test]
async fn renames_role_changes_kicks_and_dms_change_the_state_and_the_audit_log() {
    let fake = fake().await;
    let http = Http::new(&fake);
    // A user renames a channel, then the bot renames it back.
    fake.user_renames_channel(ALICE, GENERAL, "announcements");
    let (status, channel, _) =
        http.call("PATCH", &format!("/channels/{GENERAL}"), Some(json!({ "name": "general" }))).await;
    assert_eq!((status, channel["name"].as_str(), channel["guild_id"].as_str()), (200, Some("general"), Some(GUILD)));
    assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("general"));
    let (_, logs, _) = http.call("GET", &format!("/guilds/{GUILD}/audit-logs?action_type=11&limit=10"), None).await;
    let entries = logs["audit_log_entries"].as_array().unwrap();
    let who: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["user_id"].as_str().unwrap(), e["target_id"].as_str().unwrap())).collect();
    assert_eq!(who, [(BOT_ID, GENERAL), (ALICE, GENERAL)], "newest first");
    assert_eq!(entries[1]["changes"], json!([{ "key": "name", "old_value": "general", "new_value": "announcements" }]));

    // A user grants a role; the bot revokes it and grants another.
    fake.user_grants_role(ALICE, BOB, STEWARD);
    let role_path = format!("/guilds/{GUILD}/members/{BOB}/roles/{STEWARD}");
    assert_eq!(http.call("DELETE", &role_path, None).await.0, 204);
    assert_eq!(http.call("PUT", &format!("/guilds/{GUILD}/members/{CAROL}/roles/{MEMBER}"), None).await.0, 204);
    assert_eq!(fake.member_roles(GUILD, BOB), Some(vec![MEMBER.to_string()]));
    assert_eq!(fake.member_roles(GUILD, CAROL), Some(vec![MEMBER.to_string()]));
    let grants: Vec<(String, String, u64)> = fake
        .audit_log(GUILD)
        .into_iter()
        .filter(|e| e.action_type == audit::MEMBER_ROLE_UPDATE)
        .map(|e| (e.user_id, e.target_id, e.action_type))
        .collect();
    assert_eq!(grants.len(), 3);
    assert_eq!((grants[0].0.as_str(), grants[0].1.as_str()), (ALICE, BOB));
    let (status, err, _) = http.call("PUT", &format!("/guilds/{GUILD}/members/{BOB}/roles/1"), None).await;
    assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_ROLE)));
    let update = fake.dispatched().into_iter().rfind(|(t, _)| t == "GUILD_MEMBER_UPDATE").unwrap().1;
    assert_eq!((update["user"]["id"].as_str(), update["roles"].clone()), (Some(CAROL), json!([MEMBER])));

    // Kick, pin, DM.
    assert_eq!(http.call("DELETE", &format!("/guilds/{GUILD}/members/{CAROL}"), None).await.0, 204);
    assert_eq!(fake.member_roles(GUILD, CAROL), None);
    assert_eq!(http.call("DELETE", &format!("/guilds/{GUILD}/members/{ALICE}"), None).await.0, 403);
    let said = fake.user_says(BOB, GENERAL, "pin me", &[]);
    assert_eq!(http.call("PUT", &format!("/channels/{GENERAL}/pins/{said}"), None).await.0, 204);
    assert!(fake.message(GENERAL, &said).unwrap().pinned);
    let (_, dm, _) = http.call("POST", "/users/@me/channels", Some(json!({ "recipient_id": BOB }))).await;
    let (_, again, _) = http.call("POST", "/users/@me/channels", Some(json!({ "recipient_id": BOB }))).await;
    assert_eq!((dm["type"].clone(), dm["recipients"][0]["id"].clone()), (json!(1), json!(BOB)));
    assert_eq!(dm["id"], again["id"]);
    let dm = dm["id"].as_str().unwrap();
    http.call("POST", &format!("/channels/{dm}/messages"), Some(json!({ "content": "You were outvoted." }))).await;
    assert_eq!(fake.dms(BOB), ["You were outvoted."]);
    assert!(fake.dms(ALICE).is_empty());
}

#[tokio::test]
async fn interaction_answers_are_recorded_from_json_and_multipart_bodies() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let command = |fake: &FakeDiscord| fake.slash(ALICE, GUILD, GENERAL, &["export"], vec![]);

    // A multipart answer: the JSON in `payload_json`, files as parts.
    let id = command(&fake);
    let token = fake.interaction(&id).unwrap().token;
    let payload = json!({ "type": 4, "data": { "content": "Here it is", "flags": 64 } });
    let files = [("export.json", "{\"a\": 1}"), ("answer.txt", "line one\nline two")];
    assert_eq!(http.multipart(&format!("/interactions/{id}/{token}/callback"), &payload, &files).await, 204);
    let response = within("the answer", fake.response(&id)).await;
    assert_eq!((response.kind, response.data.clone()), (4, payload["data"].clone()));
    assert_eq!(
        response.files,
        [
            ("export.json".to_string(), "{\"a\": 1}".to_string()),
            ("answer.txt".to_string(), "line one\nline two".to_string())
        ]
    );
    assert!(fake.messages(GENERAL).is_empty(), "an ephemeral answer is no channel message");
    // A second answer is refused, as Discord refuses it.
    let (status, err, _) = http
        .call("POST", &format!("/interactions/{id}/{token}/callback"), Some(json!({ "type": 4, "data": {} })))
        .await;
    assert_eq!((status, err["code"].as_u64()), (400, Some(codes::ALREADY_ACKNOWLEDGED)));

    // Deferred, then the original edited (multipart too), then a followup.
    let id = command(&fake);
    let token = fake.interaction(&id).unwrap().token;
    let deferred = json!({ "type": 5, "data": { "flags": 64 } });
    http.call("POST", &format!("/interactions/{id}/{token}/callback"), Some(deferred)).await;
    assert_eq!(within("the acknowledgement", fake.response(&id)).await.kind, 5);
    let edit = format!("/webhooks/{APPLICATION_ID}/{token}/messages/@original");
    let (status, message, _) = http.call("PATCH", &edit, Some(json!({ "content": "done" }))).await;
    assert_eq!((status, message["content"].as_str(), message["flags"].as_u64()), (200, Some("done"), Some(64)));
    let request = http.client.patch(format!("{}{edit}", http.base));
    let boundary = "b0undary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"answer.txt\"\r\n\r\nall of it\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\n\r\n{{\"content\":\"see file\"}}\r\n--{boundary}--\r\n"
    );
    let response = request
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let edited = within("the edit", fake.edited_response(&id)).await;
    assert_eq!(edited.data, json!({ "content": "see file" }));
    assert_eq!(edited.files, [("answer.txt".to_string(), "all of it".to_string())]);
    let (status, _, _) =
        http.call("POST", &format!("/webhooks/{APPLICATION_ID}/{token}"), Some(json!({ "content": "more" }))).await;
    assert_eq!(status, 200);
    assert_eq!(fake.interaction(&id).unwrap().followups[0].data, json!({ "content": "more" }));

    // A public answer is a bot message in the channel.
    let id = command(&fake);
    let token = fake.interaction(&id).unwrap().token;
    let public = json!({ "type": 4, "data": { "content": "Everyone: hello" } });
    http.call("POST", &format!("/interactions/{id}/{token}/callback"), Some(public)).await;
    let message = within("the public answer", fake.wait_for_message(GENERAL, |c| c == "Everyone: hello")).await;
    assert_eq!(fake.interaction(&id).unwrap().message, Some(message));
    let (status, err, _) =
        http.call("POST", &format!("/interactions/1/{token}/callback"), Some(json!({ "type": 4 }))).await;
    assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_INTERACTION)));
}

#[tokio::test]
async fn application_commands_are_stored_with_ids_and_slash_commands_nest_their_options() {
    let fake = fake().await;
    let http = Http::new(&fake);
    let commands = json!([
        { "name": "propose", "description": "Propose", "type": 1, "options": [] },
        { "name": "role", "description": "Roles", "type": 1, "options": [{ "type": 1, "name": "grant", "description": "Grant" }] }
    ]);
    let (status, answered, _) =
        http.call("PUT", &format!("/applications/{APPLICATION_ID}/commands"), Some(commands)).await;
    assert_eq!(status, 200);
    assert_eq!(answered, fake.registered_commands());
    assert!(
        answered
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"].is_string() && c["application_id"] == json!(APPLICATION_ID) && c["version"].is_string())
    );

    let id = fake.slash(BOB, GUILD, GENERAL, &["role", "grant"], vec![("user", json!(CAROL)), ("days", json!(3))]);
    let event = fake.dispatched().into_iter().rfind(|(t, _)| t == "INTERACTION_CREATE").unwrap().1;
    assert_eq!(event["id"], json!(id));
    assert_eq!(event["data"]["id"], answered[1]["id"]);
    assert_eq!(
        event["data"]["options"],
        json!([{ "name": "grant", "type": 1, "options": [
            { "name": "user", "type": 3, "value": CAROL }, { "name": "days", "type": 4, "value": 3 }
        ] }])
    );
    assert_eq!(event["member"]["user"]["id"], json!(BOB));
    let group = fake.slash(BOB, GUILD, GENERAL, &["policy", "rules", "show"], vec![]);
    let event = fake.dispatched().into_iter().rfind(|(t, _)| t == "INTERACTION_CREATE").unwrap().1;
    assert_eq!(event["id"], json!(group));
    assert_eq!(
        event["data"]["options"],
        json!([{ "name": "rules", "type": 2, "options": [{ "name": "show", "type": 1, "options": [] }] }])
    );
}

#[tokio::test]
async fn a_connection_that_sends_more_than_120_payloads_in_a_minute_is_closed_with_4008() {
    let fake = fake().await;
    let mut ws = open(&fake).await;
    assert_eq!(next(&mut ws).await["op"], json!(10));
    send(&mut ws, identify()).await;
    assert_eq!(next(&mut ws).await["t"], json!("READY"));
    assert_eq!(next(&mut ws).await["t"], json!("GUILD_CREATE"));
    // The identify and 119 heartbeats are 120: each is answered.
    for _ in 0..119 {
        send(&mut ws, json!({ "op": 1, "d": 2 })).await;
        assert_eq!(next(&mut ws).await["op"], json!(11));
    }
    // The 121st within the minute closes the connection, unanswered.
    send(&mut ws, json!({ "op": 1, "d": 2 })).await;
    assert_eq!(next(&mut ws).await, json!({ "close": 4008 }));
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(fake: &FakeDiscord) -> Socket {
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("{}/?v=10&encoding=json", fake.gateway_url())).await.unwrap();
    ws
}

/// The next frame: a JSON payload, or the close frame's code as `{"close": code}`.
async fn next(ws: &mut Socket) -> Value {
    loop {
        match within("a gateway frame", ws.next()).await.expect("the gateway closed").unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(frame) => return json!({ "close": frame.map(|f| u16::from(f.code)) }),
            _ => {}
        }
    }
}

async fn send(ws: &mut Socket, payload: Value) {
    ws.send(Message::Text(payload.to_string())).await.unwrap();
}

fn identify() -> Value {
    json!({ "op": 2, "d": { "token": format!("Bot {TOKEN}"), "intents": 34307, "properties": { "os": "linux" } } })
}

#[tokio::test]
async fn the_gateway_says_hello_readies_a_session_and_sends_each_guild() {
    let fake = fake().await;
    let mut ws = open(&fake).await;
    let hello = next(&mut ws).await;
    assert_eq!((hello["op"].clone(), hello["d"]["heartbeat_interval"].clone()), (json!(10), json!(41250)));
    send(&mut ws, identify()).await;
    let ready = next(&mut ws).await;
    assert_eq!((ready["op"].clone(), ready["t"].clone(), ready["s"].clone()), (json!(0), json!("READY"), json!(1)));
    assert_eq!(ready["d"]["user"]["id"], json!(BOT_ID));
    assert_eq!(ready["d"]["guilds"], json!([{ "id": GUILD, "unavailable": true }]));
    assert_eq!(ready["d"]["resume_gateway_url"], json!(fake.gateway_url()));
    assert_eq!(ready["d"]["application"]["id"], json!(APPLICATION_ID));
    let guild = next(&mut ws).await;
    assert_eq!((guild["t"].clone(), guild["s"].clone()), (json!("GUILD_CREATE"), json!(2)));
    let channels: Vec<&str> =
        guild["d"]["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(channels, ["general", "bots"]);
    let members: Vec<&str> =
        guild["d"]["members"].as_array().unwrap().iter().map(|m| m["user"]["id"].as_str().unwrap()).collect();
    assert_eq!(members, [BOT_ID, ALICE, BOB, CAROL]);
    assert_eq!(guild["d"]["roles"][0]["name"], json!("@everyone"));
    assert_eq!(within("IDENTIFY", fake.wait_identify()).await["token"], json!(format!("Bot {TOKEN}")));
    assert!(fake.connected());

    send(&mut ws, json!({ "op": 1, "d": 2 })).await;
    assert_eq!(next(&mut ws).await["op"], json!(11));
    send(&mut ws, json!({ "op": 8, "d": { "guild_id": GUILD, "query": "", "limit": 0 } })).await;
    let chunk = next(&mut ws).await;
    assert_eq!((chunk["t"].clone(), chunk["s"].clone()), (json!("GUILD_MEMBERS_CHUNK"), json!(3)));
    assert_eq!((chunk["d"]["chunk_index"].clone(), chunk["d"]["chunk_count"].clone()), (json!(0), json!(1)));
    assert_eq!(chunk["d"]["members"].as_array().unwrap().len(), 4);

    // What users do reaches the connection as it happens.
    let said = fake.user_says(BOB, GENERAL, "hello", &["https://cdn.discordapp.com/attachments/1/2/plan.png"]);
    let created = next(&mut ws).await;
    assert_eq!((created["t"].clone(), created["s"].clone()), (json!("MESSAGE_CREATE"), json!(4)));
    assert_eq!(created["d"]["id"], json!(said));
    assert_eq!(created["d"]["guild_id"], json!(GUILD));
    assert_eq!(created["d"]["attachments"][0]["filename"], json!("plan.png"));
}

#[tokio::test]
async fn after_a_disconnect_a_resume_gets_what_was_missed_then_resumed_and_a_new_session_does_not() {
    let fake = fake().await;
    let vote = fake.add_message(GENERAL, BOT_ID, "Vote!");
    let mut ws = open(&fake).await;
    next(&mut ws).await;
    send(&mut ws, identify()).await;
    let session = next(&mut ws).await["d"]["session_id"].as_str().unwrap().to_string();
    next(&mut ws).await;

    assert!(fake.disconnect());
    assert_eq!(next(&mut ws).await, json!({ "close": 4000 }));
    assert!(!fake.connected());
    // Users keep acting while nobody is connected.
    fake.user_reacts(ALICE, GENERAL, &vote, THUMBS);
    fake.user_renames_channel(BOB, BOTS, "robots");

    let mut ws = open(&fake).await;
    assert_eq!(next(&mut ws).await["op"], json!(10));
    send(&mut ws, json!({ "op": 6, "d": { "token": format!("Bot {TOKEN}"), "session_id": session, "seq": 2 } })).await;
    let replayed: Vec<(Value, Value)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let p = next(&mut ws).await;
            v.push((p["t"].clone(), p["s"].clone()));
        }
        v
    };
    // The rename's audit log entry follows its CHANNEL_UPDATE, as Discord sends it.
    assert_eq!(
        replayed,
        [
            (json!("MESSAGE_REACTION_ADD"), json!(3)),
            (json!("CHANNEL_UPDATE"), json!(4)),
            (json!("GUILD_AUDIT_LOG_ENTRY_CREATE"), json!(5)),
            (json!("RESUMED"), json!(6))
        ]
    );
    assert_eq!(within("RESUME", fake.wait_resume()).await["session_id"], json!(session));
    assert!(fake.connected());

    // A RESUME of a session that is not the current one is refused.
    let mut stale = open(&fake).await;
    next(&mut stale).await;
    send(&mut stale, json!({ "op": 6, "d": { "token": "x", "session_id": "nope", "seq": 1 } })).await;
    assert_eq!(next(&mut stale).await, json!({ "op": 9, "d": false, "s": null, "t": null }));

    // Events while disconnected, then a new IDENTIFY: a new session starts from scratch.
    assert!(fake.disconnect());
    fake.user_unreacts(ALICE, GENERAL, &vote, THUMBS);
    let mut ws = open(&fake).await;
    next(&mut ws).await;
    send(&mut ws, identify()).await;
    let ready = next(&mut ws).await;
    assert_eq!((ready["t"].clone(), ready["s"].clone()), (json!("READY"), json!(1)));
    assert_ne!(ready["d"]["session_id"], json!(session));
    assert_eq!(next(&mut ws).await["t"], json!("GUILD_CREATE"));
    fake.user_joins(GUILD, "300000000000000009", "dave");
    let joined = next(&mut ws).await;
    assert_eq!((joined["t"].clone(), joined["s"].clone()), (json!("GUILD_MEMBER_ADD"), json!(3)));
    assert_eq!(fake.identify_count(), 2);
}

/// The next frame, read as serenity's shard reads it; answers its `t`.
async fn read_as_serenity(ws: &mut Socket) -> String {
    use serenity::model::event::GatewayEvent;
    let frame = next(ws).await;
    let t = frame["t"].as_str().unwrap_or_default().to_string();
    let parsed: GatewayEvent =
        serde_json::from_value(frame.clone()).unwrap_or_else(|e| panic!("serenity cannot read {t}: {e}\n{frame:#}"));
    match parsed {
        GatewayEvent::Dispatch(_, serenity::all::Event::Unknown(u)) => panic!("serenity does not know {}", u.kind),
        GatewayEvent::Dispatch(..) => t,
        other => panic!("not a dispatch: {other:?}"),
    }
}

/// Every payload the fake produces deserializes into serenity's models, the way the client
/// under test reads them.
#[tokio::test]
async fn every_payload_deserializes_into_serenitys_models() {
    use serenity::all::{AuditLogs, Command, GuildChannel, Message as SMessage, PrivateChannel, User};
    let fake = fake().await;
    let http = Http::new(&fake);
    let mut ws = open(&fake).await;
    next(&mut ws).await;
    send(&mut ws, identify()).await;
    let mut kinds = Vec::new();
    for _ in 0..2 {
        kinds.push(read_as_serenity(&mut ws).await);
    }
    // Roles with their positions (the bot's managed one among them), and overwrites.
    let polity = fake.bot_role(GUILD);
    fake.set_role_position(GUILD, MEMBER, 1);
    fake.set_role_permissions(GUILD, &polity, polity_tests::discord::permissions::POLITY);
    fake.set_channel_overwrite(GENERAL, &polity, polity_tests::discord::permissions::EMBED_LINKS, 0);
    fake.set_channel_overwrite(GENERAL, CAROL, 0, polity_tests::discord::permissions::SEND_MESSAGES);
    let (_, roles, _) = http.call("GET", &format!("/guilds/{GUILD}/roles"), None).await;
    let roles = serde_json::from_value::<Vec<serenity::all::Role>>(roles).unwrap();
    assert!(roles.iter().any(|r| r.managed && r.tags.bot_id.is_some_and(|b| b.to_string() == BOT_ID)));
    let (_, channel, _) = http.call("GET", &format!("/channels/{GENERAL}"), None).await;
    assert_eq!(serde_json::from_value::<GuildChannel>(channel).unwrap().permission_overwrites.len(), 2);
    let (_, member, _) = http.call("GET", &format!("/guilds/{GUILD}/members/{BOT_ID}"), None).await;
    serde_json::from_value::<serenity::all::Member>(member).unwrap();

    let commands = json!([{ "name": "propose", "description": "Propose", "type": 1, "options": [
        { "type": 3, "name": "text", "description": "What", "required": true }
    ] }]);
    let (_, answered, _) = http.call("PUT", &format!("/applications/{APPLICATION_ID}/commands"), Some(commands)).await;
    serde_json::from_value::<Vec<Command>>(answered).unwrap();
    let buttons = json!([{ "type": 1, "components": [
        { "type": 2, "style": 3, "label": "Yes", "custom_id": "polity:vote:12:yes" }
    ] }]);
    let (_, vote, _) = http
        .call(
            "POST",
            &format!("/channels/{GENERAL}/messages"),
            Some(json!({ "content": "Vote", "components": buttons })),
        )
        .await;
    serde_json::from_value::<SMessage>(vote.clone()).unwrap();
    let vote = vote["id"].as_str().unwrap().to_string();
    fake.add_emoji(GUILD, "500000000000000001", "aye");
    http.call("PUT", &format!("/channels/{GENERAL}/messages/{vote}/reactions/{THUMBS_PATH}/@me"), None).await;
    fake.user_reacts(ALICE, GENERAL, &vote, "aye:500000000000000001");
    fake.user_unreacts(ALICE, GENERAL, &vote, "aye:500000000000000001");
    fake.user_reacts(BOB, GENERAL, &vote, THUMBS);
    let (_, got, _) = http.call("GET", &format!("/channels/{GENERAL}/messages/{vote}"), None).await;
    assert_eq!(got["reactions"][0]["count"], json!(2));
    serde_json::from_value::<SMessage>(got).unwrap();
    let (_, users, _) =
        http.call("GET", &format!("/channels/{GENERAL}/messages/{vote}/reactions/{THUMBS_PATH}"), None).await;
    serde_json::from_value::<Vec<User>>(users).unwrap();
    http.call("PATCH", &format!("/channels/{GENERAL}/messages/{vote}"), Some(json!({ "content": "Closed" }))).await;
    fake.user_says(BOB, GENERAL, "hello", &["https://cdn.discordapp.com/attachments/1/2/plan.png"]);
    fake.user_renames_channel(ALICE, GENERAL, "announcements");
    let (_, channel, _) = http.call("PATCH", &format!("/channels/{GENERAL}"), Some(json!({ "name": "general" }))).await;
    serde_json::from_value::<GuildChannel>(channel).unwrap();
    fake.user_grants_role(ALICE, BOB, STEWARD);
    http.call("DELETE", &format!("/guilds/{GUILD}/members/{BOB}/roles/{STEWARD}"), None).await;
    fake.user_joins(GUILD, "300000000000000009", "dave");
    http.call("PUT", &format!("/channels/{GENERAL}/pins/{vote}"), None).await;
    let said = fake.user_says(CAROL, GENERAL, "spam", &[]);
    http.call("DELETE", &format!("/channels/{GENERAL}/messages/{said}"), None).await;
    http.call("DELETE", &format!("/guilds/{GUILD}/members/{CAROL}"), None).await;
    let (_, logs, _) = http.call("GET", &format!("/guilds/{GUILD}/audit-logs"), None).await;
    assert!(logs["audit_log_entries"].as_array().unwrap().len() >= 6);
    serde_json::from_value::<AuditLogs>(logs).unwrap();
    let (_, dm, _) = http.call("POST", "/users/@me/channels", Some(json!({ "recipient_id": BOB }))).await;
    serde_json::from_value::<PrivateChannel>(dm).unwrap();
    let (_, me, _) = http.call("GET", "/users/@me", None).await;
    serde_json::from_value::<serenity::all::CurrentUser>(me).unwrap();
    fake.slash(BOB, GUILD, GENERAL, &["role", "grant"], vec![("user", json!(CAROL)), ("days", json!(3))]);
    fake.slash(BOB, GUILD, GENERAL, &["whoami"], vec![]);
    fake.press(BOB, GUILD, GENERAL, &vote, "polity:vote:12:yes");
    let form = fake.submit_form(BOB, GUILD, GENERAL, "polity:secret:1", "secret", "hunter2");
    let token = fake.interaction(&form).unwrap().token;
    let deferred = json!({ "type": 5, "data": { "flags": 64 } });
    http.call("POST", &format!("/interactions/{form}/{token}/callback"), Some(deferred)).await;
    let edit = format!("/webhooks/{APPLICATION_ID}/{token}/messages/@original");
    let (_, original, _) = http.call("PATCH", &edit, Some(json!({ "content": "done" }))).await;
    serde_json::from_value::<SMessage>(original).unwrap();
    send(&mut ws, json!({ "op": 8, "d": { "guild_id": [GUILD] } })).await;

    // Everything the session got, read as serenity reads it.
    let expected = fake.dispatched().len() + 1; // the members chunk
    for _ in 2..expected {
        kinds.push(read_as_serenity(&mut ws).await);
    }
    for t in [
        "READY",
        "GUILD_CREATE",
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "MESSAGE_REACTION_ADD",
        "MESSAGE_REACTION_REMOVE",
        "CHANNEL_UPDATE",
        "GUILD_ROLE_UPDATE",
        "GUILD_MEMBER_UPDATE",
        "GUILD_MEMBER_ADD",
        "GUILD_MEMBER_REMOVE",
        "CHANNEL_PINS_UPDATE",
        "INTERACTION_CREATE",
        "GUILD_MEMBERS_CHUNK",
    ] {
        assert!(kinds.iter().any(|k| k == t), "no {t} in {kinds:?}");
    }
}

mod real_client {
    //! Polity's Discord adapter (serenity 0.12.5 and poise 0.7.1) against the fake.
    use super::*;
    use polity_commands::Reply;
    use polity_discord::{GatewayConfig, start};
    use polity_governance::io::Inbound;
    use polity_port::Incoming;
    use tokio::sync::mpsc;

    /// The next input that `pick` takes, skipping the others.
    async fn next_matching<T>(
        events: &mut mpsc::Receiver<Incoming>,
        what: &str,
        pick: impl Fn(Incoming) -> Option<T>,
    ) -> T {
        within(what, async {
            loop {
                let incoming = events.recv().await.expect("the gateway stopped");
                if let Some(t) = pick(incoming) {
                    return t;
                }
            }
        })
        .await
    }

    #[tokio::test]
    async fn serenity_connects_registers_its_commands_hears_users_answers_a_command_and_resumes() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let fake = fake().await;
        let vote = fake.add_message(GENERAL, BOT_ID, "Vote on #1");
        let (tx, mut events) = mpsc::channel(64);
        let mut config = GatewayConfig::new("discord", TOKEN, fake.url());
        config.register_commands = true;
        let gateway = start(config, tx).await.unwrap();

        let identify = within("IDENTIFY", fake.wait_identify()).await;
        assert_eq!(identify["token"], json!(format!("Bot {TOKEN}")));
        assert!(fake.requests().iter().any(|r| r.method == "GET" && r.path == "/api/v10/gateway/bot"));
        next_matching(&mut events, "READY", |i| match i {
            Incoming::Connected { resumed: false } => Some(()),
            _ => None,
        })
        .await;
        let invite = next_matching(&mut events, "the invite link", |i| match i {
            Incoming::Invite(link) => Some(link),
            _ => None,
        })
        .await;
        assert!(invite.contains(&format!("client_id={APPLICATION_ID}")), "{invite}");
        let put = within(
            "the commands registered",
            fake.wait_for_request("PUT", &format!("/applications/{APPLICATION_ID}/commands")),
        )
        .await;
        assert_eq!(put.status, 200);
        let commands = fake.registered_commands();
        let names: Vec<&str> = commands.as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        assert!(names.contains(&"propose") && names.contains(&"whoami"), "{names:?}");

        // A user's reaction.
        fake.user_reacts(ALICE, GENERAL, &vote, THUMBS);
        let reaction = next_matching(&mut events, "the reaction", |i| match i {
            Incoming::Event(e) => match e.input {
                Inbound::Reaction { message, voter, emoji, added } => Some((message, voter, emoji, added)),
                _ => None,
            },
            _ => None,
        })
        .await;
        assert_eq!((reaction.0.message.as_str(), reaction.1.account.as_str()), (vote.as_str(), ALICE));
        assert_eq!((reaction.2.as_str(), reaction.3), (THUMBS, true));

        // A slash command, answered by the bot within the time Discord allows.
        let interaction = fake.slash(BOB, GUILD, GENERAL, &["whoami"], vec![]);
        let call = next_matching(&mut events, "the command", |i| match i {
            Incoming::Command(c) => Some(c),
            _ => None,
        })
        .await;
        assert_eq!((call.space.as_str(), call.invocation.invoker.account.as_str()), (GUILD, BOB));
        assert_eq!(call.invocation.id, interaction);
        call.answer.send(Reply::private("hi")).unwrap();
        let response = within("the answer", fake.response(&interaction)).await;
        assert_eq!(response.kind, 4);
        assert_eq!((response.data["content"].clone(), response.data["flags"].clone()), (json!("hi"), json!(64)));

        // A subcommand with options reaches the bot with its arguments.
        let grant = fake.slash(
            ALICE,
            GUILD,
            GENERAL,
            &["role", "grant"],
            vec![("role", json!("steward")), ("member", json!(BOB))],
        );
        let call = next_matching(&mut events, "the subcommand", |i| match i {
            Incoming::Command(c) => Some(c),
            _ => None,
        })
        .await;
        assert_eq!(call.parsed.spec.path, ["role", "grant"]);
        assert_eq!((call.parsed.get("role"), call.parsed.get("member")), (Some("steward"), Some(BOB)));
        assert_eq!(call.invocation.id, grant);
        call.answer.send(Reply::public("granted")).unwrap();
        within("the public answer", fake.wait_for_message(GENERAL, |c| c == "granted")).await;

        // Dropped by Discord: serenity resumes, and what happened meanwhile arrives.
        assert!(fake.disconnect());
        fake.user_unreacts(ALICE, GENERAL, &vote, THUMBS);
        let resume = within("RESUME", fake.wait_resume()).await;
        assert!(resume["session_id"].is_string());
        let mut resumed = false;
        let mut replayed = false;
        within("the session resumed and the reaction replayed", async {
            while !(resumed && replayed) {
                match events.recv().await.expect("the gateway stopped") {
                    Incoming::Connected { resumed: true, .. } => resumed = true,
                    Incoming::Event(e) if matches!(e.input, Inbound::Reaction { added: false, .. }) => replayed = true,
                    _ => {}
                }
            }
        })
        .await;
        assert_eq!(fake.identify_count(), 1);
        let unexpected: Vec<String> =
            fake.requests().iter().filter(|r| r.status == 404).map(|r| format!("{} {}", r.method, r.path)).collect();
        assert!(unexpected.is_empty(), "unexpected requests: {unexpected:?}");
        within("shutdown", gateway.shutdown()).await.unwrap();
    }

    #[tokio::test]
    async fn privileged_intents_refused_by_discord_stop_the_gateway_with_what_to_turn_on() {
        let fake = fake().await;
        fake.disallow_privileged_intents();
        let (tx, _events) = mpsc::channel(64);
        let mut config = GatewayConfig::new("discord", TOKEN, fake.url());
        config.register_commands = false;
        let mut gateway = start(config, tx).await.unwrap();
        // Fatal: serenity does not identify again (which would spend the daily budget).
        let error = within("the gateway to stop", gateway.stopped()).await.unwrap_err();
        let said = polity_discord::explain(&error);
        assert!(said.contains("close code 4014") && said.contains("Privileged Gateway Intents"), "{said}");
        assert_eq!(fake.identify_count(), 1);
    }

    #[tokio::test]
    async fn a_bot_discord_requires_to_shard_connects_with_the_shards_it_recommends() {
        let fake = fake().await;
        fake.require_shards(2);
        let (tx, mut events) = mpsc::channel(64);
        let mut config = GatewayConfig::new("discord", TOKEN, fake.url());
        config.register_commands = false;
        let gateway = start(config, tx).await.unwrap();
        for _ in 0..2 {
            next_matching(&mut events, "a shard's READY", |i| match i {
                Incoming::Connected { resumed: false } => Some(()),
                _ => None,
            })
            .await;
        }
        let shards: Vec<Value> = fake.identifies().iter().map(|d| d["shard"].clone()).collect();
        assert_eq!(shards, [json!([0, 2]), json!([1, 2])], "no IDENTIFY refused with 4011");
        within("shutdown", gateway.shutdown()).await.unwrap();
    }

    #[tokio::test]
    async fn a_shard_without_a_session_when_discord_wants_more_shards_stops_the_gateway_with_4011s_fix() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let fake = fake().await;
        let (tx, mut events) = mpsc::channel(64);
        let mut config = GatewayConfig::new("discord", TOKEN, fake.url());
        config.register_commands = false;
        config.identify_wait = Duration::from_secs(2);
        let mut gateway = start(config, tx).await.unwrap();
        next_matching(&mut events, "READY", |i| matches!(i, Incoming::Connected { resumed: false }).then_some(()))
            .await;
        // The bot grew past what one shard serves; its session ends and it must identify.
        fake.require_shards(2);
        assert!(fake.end_session());
        let error = within("the gateway to stop", gateway.stopped()).await.unwrap_err();
        let said = polity_discord::explain(&error);
        assert!(said.contains("close code 4011") && said.contains("shard count"), "{said}");
        // The identify that made the session, and at most a couple refused: not one at every
        // failed heartbeat until Discord resets the token.
        let identifies = fake.identify_count();
        assert!(identifies <= 3, "{identifies} identifies");
    }

    #[tokio::test]
    async fn a_command_that_arrives_while_polity_is_busy_is_acknowledged_within_discords_three_seconds() {
        let fake = fake().await;
        // A bot whose loop takes nothing (its queue of one is full with the session's first
        // notice): the command waits in the queue, not Discord.
        let (tx, mut events) = mpsc::channel(1);
        let mut config = GatewayConfig::new("discord", TOKEN, fake.url());
        config.register_commands = false;
        config.answer_within = Duration::from_millis(500);
        let gateway = start(config, tx).await.unwrap();
        within("IDENTIFY", fake.wait_identify()).await;
        within("the queue full", fake.wait_until(|s| !s.dispatched().is_empty())).await;
        let interaction = fake.slash(BOB, GUILD, GENERAL, &["whoami"], vec![]);
        // Discord refuses a first answer after three seconds (10062): it is acknowledged in time.
        let first = within("the acknowledgement", fake.response(&interaction)).await;
        assert_eq!((first.kind, &first.data["flags"]), (5, &json!(64)), "{first:?}");
        let call = next_matching(&mut events, "the command", |i| match i {
            Incoming::Command(c) => Some(c),
            _ => None,
        })
        .await;
        call.answer.send(Reply::private("You are bob.")).unwrap();
        let answer = within("the answer", fake.edited_response(&interaction)).await;
        assert_eq!(answer.data["content"], json!("You are bob."));

        // A public answer after a (private) acknowledgement stays public.
        let asked = fake.slash(
            BOB,
            GUILD,
            GENERAL,
            &["role", "grant"],
            vec![("role", json!("steward")), ("member", json!(BOB))],
        );
        let first = within("the acknowledgement", fake.response(&asked)).await;
        assert_eq!(first.kind, 5);
        let call = next_matching(&mut events, "the command", |i| match i {
            Incoming::Command(c) => Some(c),
            _ => None,
        })
        .await;
        call.answer.send(Reply::public("bob is a steward now.")).unwrap();
        within("the public answer", fake.wait_for_message(GENERAL, |c| c == "bob is a steward now.")).await;
        let note = within("the note", fake.edited_response(&asked)).await;
        assert_eq!(note.data["content"], json!("Answered in the channel."));
        let refused: Vec<String> =
            fake.requests().iter().filter(|r| r.status >= 400).map(|r| format!("{} {}", r.method, r.path)).collect();
        assert!(refused.is_empty(), "{refused:?}");
        within("shutdown", gateway.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn a_guild_the_bot_is_not_in_is_out_of_reach_until_a_user_invites_it() {
    const ELSEWHERE: &str = "700000000000000002";
    const LOBBY: &str = "100000000000000009";
    const DAVE: &str = "300000000000000004";
    let fake = fake().await;
    fake.add_guild_without_bot(ELSEWHERE, "Elsewhere", DAVE);
    fake.add_channel(ELSEWHERE, LOBBY, "lobby");
    fake.add_member(ELSEWHERE, DAVE, "dave", None, &[]);
    let http = Http::new(&fake);
    let hello = Some(json!({ "content": "hello" }));

    // Not announced, and out of reach: Discord's Missing Access.
    let mut ws = open(&fake).await;
    next(&mut ws).await;
    send(&mut ws, identify()).await;
    let ready = next(&mut ws).await;
    assert_eq!(ready["d"]["guilds"], json!([{ "id": GUILD, "unavailable": true }]));
    let (status, err, _) = http.call("GET", &format!("/guilds/{ELSEWHERE}/members/{DAVE}"), None).await;
    assert_eq!((status, err["code"].as_u64()), (403, Some(codes::MISSING_ACCESS)));
    assert_eq!(http.call("POST", &format!("/channels/{LOBBY}/messages"), hello.clone()).await.0, 403);
    // A user who shares no guild with the bot cannot be messaged directly, and is no member.
    let (_, dm, _) = http.call("POST", "/users/@me/channels", Some(json!({ "recipient_id": DAVE }))).await;
    let dm = dm["id"].as_str().unwrap().to_string();
    let (status, err, _) = http.call("POST", &format!("/channels/{dm}/messages"), hello.clone()).await;
    assert_eq!((status, err["code"].as_u64()), (403, Some(codes::CANNOT_MESSAGE_USER)));
    let (status, err, _) = http.call("GET", &format!("/guilds/{GUILD}/members/{DAVE}"), None).await;
    assert_eq!((status, err), (404, json!({ "code": codes::UNKNOWN_MEMBER, "message": "Unknown Member" })));

    // Dave adds the bot: GUILD_CREATE, the audit log says who, and the guild is in reach.
    fake.invite_bot(ELSEWHERE, DAVE);
    let created = loop {
        let frame = next(&mut ws).await;
        if frame["t"] == json!("GUILD_CREATE") && frame["d"]["id"] == json!(ELSEWHERE) {
            break frame["d"].clone();
        }
    };
    let members: Vec<&str> =
        created["members"].as_array().unwrap().iter().map(|m| m["user"]["id"].as_str().unwrap()).collect();
    assert_eq!(members, [DAVE, BOT_ID]);
    let added = fake.audit_log(ELSEWHERE);
    assert_eq!(
        (added[0].action_type, added[0].user_id.as_str(), added[0].target_id.as_str()),
        (audit::BOT_ADD, DAVE, BOT_ID)
    );
    assert_eq!(http.call("GET", &format!("/guilds/{ELSEWHERE}/members/{DAVE}"), None).await.0, 200);
    assert_eq!(http.call("POST", &format!("/channels/{dm}/messages"), hello).await.0, 200);
    assert_eq!(fake.dms(DAVE), ["hello"]);
}

#[tokio::test]
async fn an_interaction_carries_its_members_permissions_as_discord_computes_them() {
    use polity_tests::discord::permissions::{ADMINISTRATOR, ALL, EVERYONE, MANAGE_GUILD};
    const ADMIN: &str = "400000000000000009";
    const MANAGER: &str = "400000000000000010";
    let fake = fake().await;
    fake.add_role_with_permissions(GUILD, ADMIN, "admin", ADMINISTRATOR);
    fake.add_role_with_permissions(GUILD, MANAGER, "manager", MANAGE_GUILD);
    fake.user_grants_role(ALICE, BOB, ADMIN);
    fake.user_grants_role(ALICE, CAROL, MANAGER);
    let permissions = |user: &str| {
        let id = fake.slash(user, GUILD, GENERAL, &["whoami"], vec![]);
        let event =
            fake.dispatched().into_iter().rfind(|(t, d)| t == "INTERACTION_CREATE" && d["id"] == json!(id)).unwrap().1;
        event["member"]["permissions"].as_str().unwrap().parse::<u64>().unwrap()
    };
    // The owner and an administrator may do everything; anyone else what their roles allow.
    assert_eq!(permissions(ALICE), ALL);
    assert_eq!(permissions(BOB), ALL);
    assert_eq!(permissions(CAROL), EVERYONE | MANAGE_GUILD);
    fake.user_revokes_role(ALICE, CAROL, MANAGER);
    assert_eq!(permissions(CAROL), EVERYONE);
}

mod permissions {
    //! Discord's permission model, held to for every request of the bot: a role hierarchy
    //! with the bot's own managed role, channel overwrites, and 403 Missing Permissions
    //! (50013) for what the bot may not do, before anything changes.
    use super::*;
    use polity_tests::discord::permissions::{
        ADD_REACTIONS, ADMINISTRATOR, ATTACH_FILES, EVERYONE, KICK_MEMBERS, MANAGE_CHANNELS, MANAGE_MESSAGES,
        MANAGE_ROLES, PIN_MESSAGES, POLITY, READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_AUDIT_LOG, VIEW_CHANNEL,
    };

    const ELDER: &str = "400000000000000003";

    fn missing_permissions(answer: &(u16, Value, Option<String>)) {
        let expected = json!({ "code": codes::MISSING_PERMISSIONS, "message": "Missing Permissions" });
        assert_eq!((answer.0, &answer.1), (403, &expected), "not refused with Missing Permissions");
    }

    /// The guild's roles as `GET /guilds/{g}/roles` answers them: (name, position).
    async fn positions(http: &Http) -> Vec<(String, u64)> {
        let (status, roles, _) = http.call("GET", &format!("/guilds/{GUILD}/roles"), None).await;
        assert_eq!(status, 200);
        let mut roles: Vec<(String, u64)> = roles
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["position"].as_u64().unwrap()))
            .collect();
        roles.sort_by_key(|(_, p)| *p);
        roles
    }

    #[tokio::test]
    async fn the_bot_has_its_own_managed_role_at_the_top_and_new_roles_come_just_below_it() {
        let fake = fake().await;
        let http = Http::new(&fake);
        let polity = fake.bot_role(GUILD);
        let (_, roles, _) = http.call("GET", &format!("/guilds/{GUILD}/roles"), None).await;
        let own = roles.as_array().unwrap().iter().find(|r| r["id"] == json!(polity)).unwrap();
        assert_eq!(
            (own["name"].clone(), own["managed"].clone(), own["tags"].clone(), own["permissions"].clone()),
            (json!("Polity"), json!(true), json!({ "bot_id": BOT_ID }), json!(POLITY.to_string()))
        );
        assert_eq!(
            positions(&http).await,
            [("@everyone".into(), 0), ("steward".into(), 1), ("member".into(), 2), ("Polity".into(), 3)]
        );
        let (_, me, _) = http.call("GET", &format!("/guilds/{GUILD}/members/{BOT_ID}"), None).await;
        assert_eq!(me["roles"], json!([polity]));
        // The bot's permissions: Polity's and `@everyone`'s, everywhere without overwrites.
        assert_eq!(fake.with(|s| s.channel_permissions(GENERAL, BOT_ID)), Some(POLITY | EVERYONE));
        let id = fake.slash(BOB, GUILD, GENERAL, &["whoami"], vec![]);
        let event = fake.dispatched().into_iter().rfind(|(t, d)| t == "INTERACTION_CREATE" && d["id"] == json!(id));
        assert_eq!(event.unwrap().1["app_permissions"], json!((POLITY | EVERYONE).to_string()));

        // A role moved to the top: the others are numbered around it, distinct.
        fake.add_role(GUILD, ELDER, "elder");
        fake.set_role_position(GUILD, ELDER, 99);
        assert_eq!(
            positions(&http).await,
            [
                ("@everyone".into(), 0),
                ("steward".into(), 1),
                ("member".into(), 2),
                ("Polity".into(), 3),
                ("elder".into(), 4)
            ]
        );
        let updated = fake.dispatched().into_iter().filter(|(t, _)| t == "GUILD_ROLE_UPDATE").count();
        assert_eq!(updated, 2, "the elder and the bot's role moved");
    }

    #[tokio::test]
    async fn a_role_above_the_bots_is_refused_until_the_bots_role_is_moved_above_it() {
        let fake = fake().await;
        let http = Http::new(&fake);
        fake.add_role(GUILD, ELDER, "elder");
        fake.set_role_position(GUILD, ELDER, 99);
        let grant = format!("/guilds/{GUILD}/members/{BOB}/roles/{ELDER}");
        missing_permissions(&http.call("PUT", &grant, None).await);
        assert_eq!(fake.member_roles(GUILD, BOB), Some(vec![MEMBER.to_string()]));
        assert!(fake.audit_log(GUILD).is_empty(), "refused: nothing changed");
        assert!(fake.dispatched().iter().all(|(t, _)| t != "GUILD_MEMBER_UPDATE"));
        // An unknown role is still Unknown Role, first.
        let (status, err, _) = http.call("PUT", &format!("/guilds/{GUILD}/members/{BOB}/roles/1"), None).await;
        assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_ROLE)));

        // The server's admin drags Polity's role above it.
        let polity = fake.bot_role(GUILD);
        fake.set_role_position(GUILD, &polity, 99);
        assert_eq!(http.call("PUT", &grant, None).await.0, 204);
        assert_eq!(http.call("DELETE", &grant, None).await.0, 204);
        // The bot's own role is an integration's: nobody is given it.
        missing_permissions(&http.call("PUT", &format!("/guilds/{GUILD}/members/{BOB}/roles/{polity}"), None).await);
        // Without Manage Roles, not even a role below.
        fake.set_role_permissions(GUILD, &polity, POLITY & !MANAGE_ROLES);
        missing_permissions(&http.call("PUT", &grant, None).await);
        assert_eq!(fake.member_roles(GUILD, BOB), Some(vec![MEMBER.to_string()]));
    }

    #[tokio::test]
    async fn an_overwrite_denying_manage_messages_refuses_deleting_a_members_message_but_not_the_bots_own() {
        let fake = fake().await;
        let http = Http::new(&fake);
        let polity = fake.bot_role(GUILD);
        fake.set_channel_overwrite(GENERAL, &polity, 0, MANAGE_MESSAGES);
        let (_, channel, _) = http.call("GET", &format!("/channels/{GENERAL}"), None).await;
        assert_eq!(
            channel["permission_overwrites"],
            json!([{ "id": polity, "type": 0, "allow": "0", "deny": MANAGE_MESSAGES.to_string() }])
        );
        let said = fake.user_says(BOB, GENERAL, "spam", &[]);
        missing_permissions(&http.call("DELETE", &format!("/channels/{GENERAL}/messages/{said}"), None).await);
        assert!(!fake.message(GENERAL, &said).unwrap().deleted);
        assert!(fake.audit_log(GUILD).is_empty());
        // Nor someone else's reaction; its own it may take back.
        fake.user_reacts(BOB, GENERAL, &said, THUMBS);
        let reactions = format!("/channels/{GENERAL}/messages/{said}/reactions/{THUMBS_PATH}");
        assert_eq!(http.call("PUT", &format!("{reactions}/@me"), None).await.0, 204);
        missing_permissions(&http.call("DELETE", &format!("{reactions}/{BOB}"), None).await);
        assert_eq!(http.call("DELETE", &format!("{reactions}/@me"), None).await.0, 204);
        assert_eq!(fake.reactions(GENERAL, &said, THUMBS), [BOB]);
        // Its own message it may delete; in another channel anyone's.
        let (_, own, _) =
            http.call("POST", &format!("/channels/{GENERAL}/messages"), Some(json!({ "content": "x" }))).await;
        let own = own["id"].as_str().unwrap();
        assert_eq!(http.call("DELETE", &format!("/channels/{GENERAL}/messages/{own}"), None).await.0, 204);
        let elsewhere = fake.user_says(BOB, BOTS, "spam", &[]);
        assert_eq!(http.call("DELETE", &format!("/channels/{BOTS}/messages/{elsewhere}"), None).await.0, 204);
        // Pinning: Pin Messages is enough; without it either, refused.
        assert_eq!(http.call("PUT", &format!("/channels/{GENERAL}/pins/{said}"), None).await.0, 204);
        fake.set_channel_overwrite(GENERAL, &polity, 0, MANAGE_MESSAGES | PIN_MESSAGES);
        missing_permissions(&http.call("DELETE", &format!("/channels/{GENERAL}/pins/{said}"), None).await);
        assert!(fake.message(GENERAL, &said).unwrap().pinned);
        // The bot's own overwrite as a member comes last and wins.
        fake.set_channel_overwrite(GENERAL, BOT_ID, MANAGE_MESSAGES, 0);
        assert_eq!(http.call("DELETE", &format!("/channels/{GENERAL}/messages/{said}"), None).await.0, 204);
        let (_, channel, _) = http.call("GET", &format!("/channels/{GENERAL}"), None).await;
        assert_eq!(channel["permission_overwrites"][1]["type"], json!(1));
    }

    #[tokio::test]
    async fn manage_channels_denied_to_everyone_in_a_channel_refuses_a_rename_until_a_role_overwrite_allows_it() {
        let fake = fake().await;
        let http = Http::new(&fake);
        // `@everyone`'s overwrite takes the bit even from what the bot's role grants.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, MANAGE_CHANNELS);
        let rename = format!("/channels/{GENERAL}");
        missing_permissions(&http.call("PATCH", &rename, Some(json!({ "name": "renamed" }))).await);
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("general"));
        assert!(fake.audit_log(GUILD).is_empty());
        assert_eq!(http.call("PATCH", &format!("/channels/{BOTS}"), Some(json!({ "name": "robots" }))).await.0, 200);
        // A role's overwrite comes after `@everyone`'s.
        fake.set_channel_overwrite(GENERAL, &fake.bot_role(GUILD), MANAGE_CHANNELS, 0);
        assert_eq!(http.call("PATCH", &rename, Some(json!({ "name": "renamed" }))).await.0, 200);
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("renamed"));
        // An unknown channel is still Unknown Channel.
        let (status, err, _) = http.call("PATCH", "/channels/1", Some(json!({ "name": "x" }))).await;
        assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_CHANNEL)));
    }

    #[tokio::test]
    async fn posting_reading_and_reacting_need_their_permissions_in_the_channel() {
        let fake = fake().await;
        let http = Http::new(&fake);
        let posts = format!("/channels/{GENERAL}/messages");
        let said = fake.user_says(BOB, GENERAL, "hello", &[]);
        fake.user_reacts(BOB, GENERAL, &said, THUMBS);
        let reactions = format!("{posts}/{said}/reactions");

        // Without Attach Files (`@everyone`'s overwrite takes it from every role): text yes,
        // files no.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, ATTACH_FILES);
        assert_eq!(http.multipart(&posts, &json!({ "content": "see file" }), &[("a.txt", "a")]).await, 403);
        assert_eq!(http.call("POST", &posts, Some(json!({ "content": "text" }))).await.0, 200);
        // Without Send Messages: nothing.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, SEND_MESSAGES);
        missing_permissions(&http.call("POST", &posts, Some(json!({ "content": "text" }))).await);
        assert_eq!(fake.messages(GENERAL).len(), 2);

        // Without Add Reactions: only onto a reaction someone holds already.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, ADD_REACTIONS);
        assert_eq!(http.call("PUT", &format!("{reactions}/{THUMBS_PATH}/@me"), None).await.0, 204);
        missing_permissions(&http.call("PUT", &format!("{reactions}/%F0%9F%91%8E/@me"), None).await);
        assert_eq!(fake.reactions(GENERAL, &said, "👎"), Vec::<String>::new());

        // Without Read Message History: no message, no reactions read back, no reacting.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, READ_MESSAGE_HISTORY);
        missing_permissions(&http.call("GET", &format!("{posts}/{said}"), None).await);
        missing_permissions(&http.call("GET", &format!("{reactions}/{THUMBS_PATH}"), None).await);
        missing_permissions(&http.call("PUT", &format!("{reactions}/{THUMBS_PATH}/@me"), None).await);
        let (status, err, _) = http.call("GET", &format!("{posts}/1"), None).await;
        assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_MESSAGE)), "a 404 first");

        // A channel the bot cannot see is out of reach: Missing Access.
        fake.set_channel_overwrite(GENERAL, GUILD, 0, VIEW_CHANNEL);
        let (status, err, _) = http.call("POST", &posts, Some(json!({ "content": "text" }))).await;
        assert_eq!((status, err["code"].as_u64()), (403, Some(codes::MISSING_ACCESS)));
        assert_eq!(fake.with(|s| s.channel_permissions(GENERAL, BOT_ID)), Some(0));
        // An administrator is above every overwrite.
        fake.set_role_permissions(GUILD, &fake.bot_role(GUILD), ADMINISTRATOR);
        assert_eq!(http.call("GET", &format!("{posts}/{said}"), None).await.0, 200);
        assert_eq!(http.call("POST", &posts, Some(json!({ "content": "text" }))).await.0, 200);
    }

    #[tokio::test]
    async fn a_kick_of_a_member_whose_highest_role_is_not_below_the_bots_is_refused() {
        let fake = fake().await;
        let http = Http::new(&fake);
        fake.add_role(GUILD, ELDER, "elder");
        fake.set_role_position(GUILD, ELDER, 99);
        fake.user_grants_role(ALICE, BOB, ELDER);
        missing_permissions(&http.call("DELETE", &format!("/guilds/{GUILD}/members/{BOB}"), None).await);
        assert!(fake.member_roles(GUILD, BOB).is_some());
        assert!(fake.audit_log(GUILD).iter().all(|e| e.action_type != audit::MEMBER_KICK));
        // The owner, never.
        missing_permissions(&http.call("DELETE", &format!("/guilds/{GUILD}/members/{ALICE}"), None).await);
        // Without Kick Members, not even a member without roles.
        let polity = fake.bot_role(GUILD);
        fake.set_role_permissions(GUILD, &polity, POLITY & !KICK_MEMBERS);
        missing_permissions(&http.call("DELETE", &format!("/guilds/{GUILD}/members/{CAROL}"), None).await);
        fake.set_role_permissions(GUILD, &polity, POLITY);
        assert_eq!(http.call("DELETE", &format!("/guilds/{GUILD}/members/{CAROL}"), None).await.0, 204);
        // Above the elder, the bot may kick Bob.
        fake.set_role_position(GUILD, &polity, 99);
        assert_eq!(http.call("DELETE", &format!("/guilds/{GUILD}/members/{BOB}"), None).await.0, 204);
        // An unknown member is still Unknown Member.
        let (status, err, _) = http.call("DELETE", &format!("/guilds/{GUILD}/members/{BOB}"), None).await;
        assert_eq!((status, err["code"].as_u64()), (404, Some(codes::UNKNOWN_MEMBER)));
    }

    #[tokio::test]
    async fn the_audit_log_is_refused_without_view_audit_log() {
        let fake = fake().await;
        let http = Http::new(&fake);
        let logs = format!("/guilds/{GUILD}/audit-logs");
        fake.set_role_permissions(GUILD, &fake.bot_role(GUILD), POLITY & !VIEW_AUDIT_LOG);
        missing_permissions(&http.call("GET", &logs, None).await);
        fake.set_role_permissions(GUILD, GUILD, EVERYONE | VIEW_AUDIT_LOG);
        assert_eq!(http.call("GET", &logs, None).await.0, 200, "`@everyone`'s permissions are the bot's too");
    }
}

mod rate_limits {
    //! Discord's rate limit on channel renames in the fake, with its headers, and Polity's
    //! Discord adapter keeping to it. On tokio's paused clock: the fake's windows move with it.
    use super::*;
    use polity_discord::DiscordPlatform;
    use polity_governance::action::ActionType;
    use polity_governance::io::Effect;
    use polity_governance::platform::{Performed, Platform, PlatformError, Request};
    use polity_tests::discord::limits::{RENAME_BUCKET, RENAME_WINDOW};

    /// A rename by the bot: the status, the rate limit headers (name, value), the body.
    async fn rename(http: &Http, channel: &str, name: &str) -> (u16, Vec<(String, String)>, Value) {
        let url = format!("{}/channels/{channel}", http.base);
        let response = http
            .client
            .patch(url)
            .header("Authorization", "Bot x")
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-ratelimit-") || k.as_str() == "retry-after")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        (status, headers, response.json().await.unwrap())
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[tokio::test(start_paused = true)]
    async fn the_bot_renames_a_channel_twice_in_ten_minutes_and_a_third_time_is_told_when_to_come_back() {
        let fake = fake().await;
        let http = Http::new(&fake);

        let (status, first, _) = rename(&http, GENERAL, "one").await;
        assert_eq!(status, 200);
        assert_eq!(header(&first, "x-ratelimit-limit"), Some("2"));
        assert_eq!(header(&first, "x-ratelimit-remaining"), Some("1"));
        assert_eq!(header(&first, "x-ratelimit-bucket"), Some(RENAME_BUCKET));
        let reset_after: f64 = header(&first, "x-ratelimit-reset-after").unwrap().parse().unwrap();
        assert!(reset_after > 0.0 && reset_after <= 600.0, "{reset_after}");
        assert!(header(&first, "x-ratelimit-reset").unwrap().parse::<f64>().unwrap() > 1.7e9);
        assert_eq!(header(&first, "x-ratelimit-scope"), None);
        let (status, second, _) = rename(&http, GENERAL, "two").await;
        assert_eq!((status, header(&second, "x-ratelimit-remaining")), (200, Some("0")));

        let (status, third, body) = rename(&http, GENERAL, "three").await;
        assert_eq!(status, 429);
        assert_eq!(body["global"], json!(false));
        assert_eq!(body["message"], json!("You are being rate limited."));
        let retry_after = body["retry_after"].as_f64().unwrap();
        assert!(retry_after > 0.0 && retry_after <= 600.0, "{retry_after}");
        let reset_after: f64 = header(&third, "x-ratelimit-reset-after").unwrap().parse().unwrap();
        assert!((reset_after - retry_after).abs() < 1e-9, "{third:?} {body}");
        assert_eq!(header(&third, "retry-after"), Some(retry_after.ceil().to_string().as_str()));
        assert_eq!(header(&third, "x-ratelimit-scope"), Some("user"));
        assert_eq!(header(&third, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&third, "x-ratelimit-bucket"), Some(RENAME_BUCKET));
        // Refused: nothing changed, nothing dispatched.
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("two"));
        let updates = fake.dispatched().iter().filter(|(t, _)| t == "CHANNEL_UPDATE").count();
        assert_eq!(updates, 2);

        // Another channel has a window of its own; a user's renames are no bot's.
        let (status, other, _) = rename(&http, BOTS, "robots").await;
        assert_eq!((status, header(&other, "x-ratelimit-remaining")), (200, Some("1")));
        fake.user_renames_channel(ALICE, GENERAL, "alice's");

        tokio::time::advance(RENAME_WINDOW).await;
        let (status, fresh, _) = rename(&http, GENERAL, "three").await;
        assert_eq!((status, header(&fresh, "x-ratelimit-remaining")), (200, Some("1")));
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("three"));
    }

    fn rename_call(channel: &str, name: &str) -> Effect {
        Effect::Call {
            proposal: None,
            name: ActionType::new("discord.rename_channel").unwrap(),
            params: json!({ "channel": channel, "name": name }).as_object().unwrap().clone(),
        }
    }

    async fn perform(d: &DiscordPlatform, effect: &Effect) -> Result<Performed, PlatformError> {
        d.perform(Request { key: 1, retried: false, effect, vote_messages: &[] }).await
    }

    fn wait_of(r: &Result<Performed, PlatformError>) -> Duration {
        match r {
            Err(PlatformError::RateLimited { retry_after: Some(wait) }) => *wait,
            other => panic!("not rate limited with a wait: {other:?}"),
        }
    }

    fn patches(fake: &FakeDiscord) -> Vec<(String, u16)> {
        fake.requests().into_iter().filter(|r| r.method == "PATCH").map(|r| (r.path, r.status)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn polity_keeps_to_the_rename_limit_from_the_headers_and_from_a_429_without_asking_again() {
        let fake = fake().await;
        let general = format!("/api/v10/channels/{GENERAL}");
        let d = DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap();
        perform(&d, &rename_call(GENERAL, "one")).await.unwrap();
        perform(&d, &rename_call(GENERAL, "two")).await.unwrap();
        // The second answer said the window is spent: the third is not even sent.
        let wait = wait_of(&perform(&d, &rename_call(GENERAL, "three")).await);
        assert!(wait > Duration::ZERO && wait <= RENAME_WINDOW, "{wait:?}");
        assert_eq!(patches(&fake), [(general.clone(), 200), (general.clone(), 200)]);
        perform(&d, &rename_call(BOTS, "robots")).await.unwrap();

        // A connection that has not heard the headers (a budget of its own) is told by a 429,
        // and asks no more until it is over.
        let other = DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap();
        let told = wait_of(&perform(&other, &rename_call(GENERAL, "three")).await);
        assert!(told > Duration::ZERO && told <= RENAME_WINDOW, "{told:?}");
        let again = wait_of(&perform(&other, &rename_call(GENERAL, "three")).await);
        assert!(again > Duration::ZERO && again <= told, "{again:?} {told:?}");
        let statuses: Vec<u16> = patches(&fake).into_iter().filter(|(p, _)| *p == general).map(|(_, s)| s).collect();
        assert_eq!(statuses, [200, 200, 429]);
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("two"));

        tokio::time::advance(RENAME_WINDOW).await;
        perform(&d, &rename_call(GENERAL, "three")).await.unwrap();
        assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("three"));
    }
}

/// `/integration test` as Discord's adapter makes it: a real call with the token, then the
/// bot's membership of the server; each failure is told apart.
#[tokio::test]
async fn the_adapters_test_call_tells_bad_tokens_missing_access_and_silence_apart() {
    use polity_discord::DiscordAdapter;
    use polity_port::{Adapter, TestFailure};
    const GUILD: &str = "700000000000000001";
    const ELSEWHERE: &str = "700000000000000077";
    let fake = fake().await;
    fake.require_token(TOKEN);
    fake.add_guild_without_bot(ELSEWHERE, "Elsewhere", "300000000000000004");
    let settings = |guild: &str| {
        let mut m = serde_json::Map::new();
        m.insert("guild".into(), json!(guild));
        m
    };
    let config = |token: &str, url: &str| json!({ "token": token, "base_url": url });

    let works = DiscordAdapter.test(config(TOKEN, &fake.url()), settings(GUILD)).await.unwrap();
    assert!(works.contains(&format!("the bot is in the server {GUILD}")), "{works}");
    let alone = DiscordAdapter.test(config(TOKEN, &fake.url()), serde_json::Map::new()).await.unwrap();
    assert!(alone.starts_with("Discord accepts the token"), "{alone}");

    let bad = DiscordAdapter.test(config("not-the-token", &fake.url()), settings(GUILD)).await.unwrap_err();
    assert!(matches!(&bad, TestFailure::BadCredentials(why) if why.contains("HTTP 401")), "{bad:?}");

    let missing = DiscordAdapter.test(config(TOKEN, &fake.url()), settings(ELSEWHERE)).await.unwrap_err();
    assert!(matches!(&missing, TestFailure::MissingPermission(why) if why.contains(ELSEWHERE)), "{missing:?}");

    // Nothing listens on the discard port.
    let silent = DiscordAdapter.test(config(TOKEN, "http://127.0.0.1:9"), settings(GUILD)).await.unwrap_err();
    assert!(matches!(silent, TestFailure::Unreachable(_)), "{silent:?}");

    let typo = DiscordAdapter.test(config(TOKEN, &fake.url()), settings("general")).await.unwrap_err();
    assert_eq!(typo, TestFailure::Other("the server id `general` is not a Discord id".into()));
    // The token is in no answer.
    for failure in [bad, missing, typo] {
        assert!(!failure.to_string().contains(TOKEN), "{failure}");
    }
}
