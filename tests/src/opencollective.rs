//! A stateful fake of Open Collective's GraphQL API v2 (`POST /graphql/v2`, also
//! `/graphql`) on 127.0.0.1, for the Open Collective adapter's tests.
//!
//! It is no GraphQL executor: it answers Polity's named operations (`query PolityExpense`,
//! `mutation PolityProcessExpense`, ...; by `operationName`, else the name in the document)
//! with the fields those select, in the API's shapes. An operation it does not know is a
//! 400 `GRAPHQL_VALIDATION_FAILED`, so a query renamed in the adapter fails loudly here.
//!
//! As the real API answers (see the adapter's research notes):
//! - `Personal-Token` (or `Api-Key`): an unknown token is HTTP 401
//!   `{"error":{"code":401,"type":"unauthorized","message":"Invalid Personal Token (Api Key): TOKEN"}}`,
//!   echoing the token; no token is an anonymous caller (`me: null`).
//! - Resolver errors are HTTP 200 with `errors[{message, extensions{code}}]` and `data` with
//!   the field `null`: `Unauthorized`, `Forbidden`, `NotFound`, `ValidationFailed`.
//! - `processExpense`: the caller must be an admin of the collective or of its host
//!   (`Forbidden` otherwise, and for a move its status does not allow); APPROVE from
//!   PENDING, REJECTED or INCOMPLETE; UNAPPROVE from APPROVED; REJECT from PENDING,
//!   UNVERIFIED or INCOMPLETE; PAY from APPROVED by a host admin only ("You don't have
//!   permission to pay this expense"); a repeat (APPROVE of an APPROVED expense ...) is
//!   answered without a change or an activity; a `message` becomes a comment. A user with
//!   2FA on ([`FakeOpenCollective::require_2fa`]) needs a token with advanced privileges
//!   for anything but PAY.
//! - `activities` shows a collective's activities to its admins and its host's only
//!   (`{nodes: null, totalCount: 0}` otherwise), newest first; a deleted expense is `null`
//!   everywhere, its activities stay with their `data`.
//! - `expense(expense: ...)` of an expense that does not exist (or no longer does) is `null`,
//!   as the API's `ExpenseQuery` answers; [`FakeOpenCollective::missing_expense_not_found`]
//!   makes it a `NotFound` error ("Item not found") as well, as an API that looks expenses up
//!   with `throwIfMissing` answers: the field `null`, the rest of `data` as usual.
//!
//! Tests drive it as Open Collective's users would ([`FakeOpenCollective::submit_expense`],
//! [`FakeOpenCollective::approve`], ...): each adds the activity Open Collective would, at
//! the fake's clock ([`FakeOpenCollective::now`], moved by
//! [`FakeOpenCollective::advance`]; every activity moves it 1,001 ms), and
//! [`FakeOpenCollective::webhook_payload`] is the delivery Open Collective would send for
//! one. Every request is recorded ([`FakeOpenCollective::requests`]); failures are injected
//! with [`FakeOpenCollective::fail_next`] (429 with any `Retry-After`, 500, an answer too
//! large to read, or no answer).

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The collective most tests govern.
pub const COLLECTIVE: &str = "tidepool";
/// A collective of another community.
pub const OTHER_COLLECTIVE: &str = "driftwood";
/// The fiscal host of [`COLLECTIVE`].
pub const HOST: &str = "commons-host";
/// An admin of [`COLLECTIVE`] (`alice`, "Alice Admin").
pub const ADMIN: &str = "alice";
pub const ADMIN_TOKEN: &str = "tok-alice-7f3a";
/// A user who administers nothing (`bob`); he submits expenses.
pub const MEMBER: &str = "bob";
pub const MEMBER_TOKEN: &str = "tok-bob-91c2";
/// An admin of [`OTHER_COLLECTIVE`] (`carol`).
pub const OTHER_ADMIN: &str = "carol";
pub const OTHER_ADMIN_TOKEN: &str = "tok-carol-55d0";
/// An admin of [`HOST`] (`hana`).
pub const HOST_ADMIN: &str = "hana";
pub const HOST_ADMIN_TOKEN: &str = "tok-hana-0b1e";

/// Where the fake's clock starts.
pub const EPOCH: &str = "2024-05-01T12:00:00.000Z";

/// An account: a user, a collective or a host.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub legacy_id: i64,
    pub slug: String,
    pub name: String,
    /// `USER`, `COLLECTIVE`, `ORGANIZATION`.
    pub kind: String,
    /// Its admins' slugs (collectives and hosts).
    pub admins: Vec<String>,
    /// Its fiscal host's slug (collectives).
    pub host: Option<String>,
    /// Two-factor authentication on (users).
    pub two_factor: bool,
}

/// A personal token.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub token: String,
    pub user: String,
    /// "Advanced privileges": allowed past 2FA.
    pub pre_authorized_2fa: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expense {
    pub legacy_id: i64,
    pub id_v2: String,
    pub collective: String,
    pub payee: String,
    pub description: String,
    /// In cents.
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    pub id: String,
    pub html: String,
    pub from: String,
}

/// An activity, as Open Collective stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// The database id: what webhooks carry.
    pub id: i64,
    /// As webhooks name it: `collective.expense.approved`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub collective: String,
    pub expense: i64,
    /// Who acted.
    pub individual: Option<String>,
    /// `{expense, fromCollective, collective}` as they were then.
    pub data: Value,
}

impl Activity {
    /// The GraphQL id: a hashid no client can turn into [`Activity::id`].
    pub fn id_v2(&self) -> String {
        format!("act_{:x}", (self.id * 7_919) ^ 0x5a5a)
    }

    /// As GraphQL names the type: `COLLECTIVE_EXPENSE_APPROVED`.
    pub fn graphql_type(&self) -> String {
        self.kind.replace('.', "_").to_ascii_uppercase()
    }

    pub fn created_at_text(&self) -> String {
        time(self.created_at)
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub operation: String,
    pub variables: Value,
    pub token: Option<String>,
}

/// What the next request gets instead of its answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// 429 with `Retry-After` as given: seconds (`"1.5"`), an HTTP date, or anything else.
    RateLimited { retry_after: String },
    /// 500.
    ServerError,
    /// 200 with a JSON answer of `bytes` bytes (a `data` object padded out), with its
    /// `Content-Length`, or `chunked` without one.
    Oversized { bytes: usize, chunked: bool },
    /// No answer at all.
    Hang,
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct State {
    pub accounts: Vec<Account>,
    pub tokens: Vec<Token>,
    pub expenses: Vec<Expense>,
    pub activities: Vec<Activity>,
    pub requests: Vec<Recorded>,
    pub now: DateTime<Utc>,
    /// A missing expense is also a `NotFound` error (not only `null`).
    pub missing_expense_not_found: bool,
    failures: VecDeque<Failure>,
    down: Option<Failure>,
    next_id: i64,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// A GraphQL error as Open Collective answers it.
fn error(code: &str, message: &str) -> Value {
    json!({ "message": message, "extensions": { "code": code } })
}

impl State {
    fn new() -> Self {
        let mut s = State {
            accounts: Vec::new(),
            tokens: Vec::new(),
            expenses: Vec::new(),
            activities: Vec::new(),
            requests: Vec::new(),
            now: parse_time(EPOCH).expect("the fake's epoch"),
            missing_expense_not_found: false,
            failures: VecDeque::new(),
            down: None,
            next_id: 1000,
        };
        for (slug, name, token) in [
            (ADMIN, "Alice Admin", ADMIN_TOKEN),
            (MEMBER, "Bob Builder", MEMBER_TOKEN),
            (OTHER_ADMIN, "Carol Other", OTHER_ADMIN_TOKEN),
            (HOST_ADMIN, "Hana Host", HOST_ADMIN_TOKEN),
        ] {
            s.add_user(slug, name, Some(token));
        }
        s.add_account(HOST, "Commons Host", "ORGANIZATION", &[HOST_ADMIN], None);
        s.add_account(COLLECTIVE, "Tide Pool", "COLLECTIVE", &[ADMIN], Some(HOST));
        s.add_account(OTHER_COLLECTIVE, "Driftwood", "COLLECTIVE", &[OTHER_ADMIN], Some(HOST));
        s
    }

    fn next(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_user(&mut self, slug: &str, name: &str, token: Option<&str>) {
        self.add_account(slug, name, "USER", &[], None);
        if let Some(token) = token {
            self.tokens.push(Token { token: token.into(), user: slug.into(), pre_authorized_2fa: false });
        }
    }

    pub fn add_account(&mut self, slug: &str, name: &str, kind: &str, admins: &[&str], host: Option<&str>) {
        let legacy_id = self.next();
        self.accounts.retain(|a| a.slug != slug);
        self.accounts.push(Account {
            legacy_id,
            slug: slug.into(),
            name: name.into(),
            kind: kind.into(),
            admins: admins.iter().map(|a| (*a).to_string()).collect(),
            host: host.map(str::to_string),
            two_factor: false,
        });
    }

    pub fn account(&self, slug: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.slug == slug)
    }

    pub fn expense(&self, id: i64) -> Option<&Expense> {
        self.expenses.iter().find(|e| e.legacy_id == id)
    }

    fn expense_mut(&mut self, id: i64) -> Option<&mut Expense> {
        self.expenses.iter_mut().find(|e| e.legacy_id == id)
    }

    /// Whether `user` is an admin of `slug` itself.
    fn admin_of(&self, user: &str, slug: &str) -> bool {
        self.account(slug).is_some_and(|a| a.admins.iter().any(|u| u == user))
    }

    /// Whether `user` is an admin of `slug` or of its host.
    fn can_manage(&self, user: &str, slug: &str) -> bool {
        self.admin_of(user, slug)
            || self.account(slug).and_then(|a| a.host.as_deref()).is_some_and(|h| self.admin_of(user, h))
    }

    fn host_admin(&self, user: &str, slug: &str) -> bool {
        self.account(slug).and_then(|a| a.host.as_deref()).is_some_and(|h| self.admin_of(user, h))
    }

    /// An account's public fields, as webhooks carry `fromCollective` and `collective`.
    fn account_data(&self, slug: &str) -> Value {
        let Some(a) = self.account(slug) else { return Value::Null };
        json!({
            "idV2": format!("acc_{:x}", a.legacy_id * 104_729), "publicId": format!("pub_{}", a.legacy_id),
            "id": a.legacy_id, "type": a.kind, "slug": a.slug, "name": a.name,
            "company": null, "website": null, "twitterHandle": null, "githubHandle": null,
            "repositoryUrl": null, "description": null, "previewImage": null, "image": null,
        })
    }

    /// An expense's `data` as activities keep it.
    fn expense_data(&self, e: &Expense) -> Value {
        let formatted = formatted(e.amount, &e.currency);
        json!({
            "expense": {
                "idV2": e.id_v2, "id": e.legacy_id, "description": e.description, "amount": e.amount,
                "currency": e.currency, "publicId": format!("exp_{}", e.legacy_id),
                "formattedAmount": formatted, "formattedAmountWithInterval": formatted,
            },
            "fromCollective": self.account_data(&e.payee),
            "collective": self.account_data(&e.collective),
        })
    }

    /// Adds the activity `kind` (`collective.expense.approved`) of expense `id` by `by`, at
    /// the clock, and moves the clock 1,001 ms.
    fn add_activity(&mut self, id: i64, kind: &str, by: Option<&str>) -> i64 {
        let Some(e) = self.expense(id).cloned() else { panic!("no expense {id}") };
        let data = self.expense_data(&e);
        let activity = self.next();
        let created_at = self.now;
        self.now += Duration::milliseconds(1001);
        self.activities.push(Activity {
            id: activity,
            kind: kind.into(),
            created_at,
            collective: e.collective,
            expense: id,
            individual: by.map(str::to_string),
            data,
        });
        activity
    }

    fn user_of(&self, token: Option<&str>) -> Option<&Token> {
        token.and_then(|t| self.tokens.iter().find(|k| k.token == t))
    }

    fn me(&self, user: Option<&str>) -> Value {
        match user.and_then(|u| self.account(u)) {
            Some(a) => json!({ "id": format!("acc_{:x}", a.legacy_id * 104_729), "slug": a.slug, "name": a.name }),
            None => Value::Null,
        }
    }

    /// A GraphQL `Expense` with every field Polity selects.
    fn expense_node(&self, e: &Expense, user: Option<&str>) -> Value {
        let short = |slug: &str| match self.account(slug) {
            Some(a) => json!({ "slug": a.slug, "name": a.name }),
            None => Value::Null,
        };
        let mut activities: Vec<&Activity> = self.activities.iter().filter(|a| a.expense == e.legacy_id).collect();
        activities.sort_by_key(|a| a.created_at);
        let manage = user.is_some_and(|u| self.can_manage(u, &e.collective));
        let mut comments: Vec<&Comment> = e.comments.iter().collect();
        comments.reverse();
        json!({
            "id": e.id_v2, "legacyId": e.legacy_id, "description": e.description, "amount": e.amount,
            "currency": e.currency, "status": e.status, "createdAt": time(e.created_at),
            "account": short(&e.collective), "payee": short(&e.payee),
            "activities": activities.iter().map(|a| json!({
                "id": a.id_v2(), "type": a.graphql_type(), "createdAt": a.created_at_text(),
            })).collect::<Vec<_>>(),
            "permissions": {
                "canApprove": manage && ["PENDING", "REJECTED", "INCOMPLETE"].contains(&e.status.as_str()),
                "canUnapprove": manage && e.status == "APPROVED",
                "canReject": manage && ["PENDING", "UNVERIFIED", "INCOMPLETE"].contains(&e.status.as_str()),
                "canPay": user.is_some_and(|u| self.host_admin(u, &e.collective)) && e.status == "APPROVED",
                "canComment": manage || user == Some(e.payee.as_str()),
            },
            "comments": {
                "totalCount": comments.len(),
                "nodes": comments.iter().take(100).map(|c| json!({"id": c.id, "html": c.html})).collect::<Vec<_>>(),
            },
        })
    }

    /// The expense a `ref` names (`legacyId` or `id`), deleted ones left out.
    fn find(&self, reference: &Value) -> Option<&Expense> {
        let by_legacy = reference.get("legacyId").and_then(Value::as_i64);
        let by_id = reference.get("id").and_then(Value::as_str);
        self.expenses
            .iter()
            .filter(|e| !e.deleted)
            .find(|e| Some(e.legacy_id) == by_legacy || by_id.is_some_and(|i| i == e.id_v2))
    }

    fn activity_node(&self, a: &Activity, user: Option<&str>) -> Value {
        let expense =
            self.expense(a.expense).filter(|e| !e.deleted).map_or(Value::Null, |e| self.expense_node(e, user));
        json!({
            "id": a.id_v2(), "type": a.graphql_type(), "createdAt": a.created_at_text(), "data": a.data,
            "individual": a.individual.as_deref().map(|u| self.me(Some(u))),
            "expense": expense,
        })
    }

    /// `activities(account: [{slug}], type, dateFrom, dateTo, limit, offset)`.
    fn activities_of(&self, v: &Value, types: &[&str], user: Option<&str>) -> Value {
        let slug = v.get("slug").and_then(Value::as_str).unwrap_or_default();
        if !user.is_some_and(|u| self.can_manage(u, slug)) {
            return json!({ "totalCount": 0, "nodes": null });
        }
        let from = v.get("from").and_then(Value::as_str).and_then(parse_time);
        let to = v.get("to").and_then(Value::as_str).and_then(parse_time);
        let mut all: Vec<&Activity> = self
            .activities
            .iter()
            .filter(|a| a.collective == slug && types.contains(&a.graphql_type().as_str()))
            .filter(|a| from.is_none_or(|f| a.created_at >= f) && to.is_none_or(|t| a.created_at <= t))
            .collect();
        all.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        let offset = v.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = v.get("limit").and_then(Value::as_u64).unwrap_or(100) as usize;
        let nodes: Vec<Value> = all.iter().skip(offset).take(limit).map(|a| self.activity_node(a, user)).collect();
        json!({ "totalCount": all.len(), "nodes": nodes })
    }

    /// Answers one operation: `(data, errors)`.
    fn answer(&mut self, operation: &str, v: &Value, token: Option<&Token>) -> Result<(Value, Vec<Value>), String> {
        let user = token.map(|t| t.user.clone());
        let user = user.as_deref();
        let reference = v.get("ref").cloned().unwrap_or(Value::Null);
        let slug = v.get("slug").and_then(Value::as_str).unwrap_or_default().to_string();
        let missing_account = || error("NotFound", "Account Not Found");
        Ok(match operation {
            "PolityStart" => {
                let account = self.account(&slug).map(|a| json!({
                    "id": format!("acc_{:x}", a.legacy_id * 104_729), "legacyId": a.legacy_id, "slug": a.slug, "name": a.name,
                }));
                let errors = if account.is_none() { vec![missing_account()] } else { vec![] };
                (json!({ "me": self.me(user), "account": account }), errors)
            }
            "PolityMe" => {
                let me = match user {
                    Some(u) => {
                        let mut me = self.me(Some(u));
                        let count = usize::from(self.admin_of(u, &slug));
                        me["memberOf"] = json!({ "totalCount": count });
                        me
                    }
                    None => Value::Null,
                };
                let account = self.account(&slug).map(|a| {
                    let mut node = json!({ "id": format!("acc_{:x}", a.legacy_id), "slug": a.slug, "name": a.name });
                    if let Some(h) = a.host.as_deref().and_then(|h| self.account(h)) {
                        node["host"] = json!({ "slug": h.slug, "name": h.name });
                    }
                    node
                });
                let errors = if account.is_none() { vec![missing_account()] } else { vec![] };
                (json!({ "me": me, "account": account }), errors)
            }
            "PolityExpense" | "PolityExpenseComments" => {
                let node = self.find(&reference).map(|e| self.expense_node(e, user));
                let errors = self.missing_expense(node.as_ref());
                (json!({ "expense": node }), errors)
            }
            "PolityDeletedExpense" => {
                let node = self.find(&reference).map(|e| self.expense_node(e, user));
                let errors = self.missing_expense(node.as_ref());
                let activities = self.activities_of(v, &["COLLECTIVE_EXPENSE_DELETED"], user);
                (json!({ "expense": node, "activities": activities }), errors)
            }
            "PolityDeletions" => {
                let activities = self.activities_of(v, &["COLLECTIVE_EXPENSE_DELETED"], user);
                (json!({ "activities": activities }), vec![])
            }
            "PolityActivities" => {
                let types = [
                    "COLLECTIVE_EXPENSE_CREATED",
                    "COLLECTIVE_EXPENSE_APPROVED",
                    "COLLECTIVE_EXPENSE_REJECTED",
                    "COLLECTIVE_EXPENSE_PAID",
                    "COLLECTIVE_EXPENSE_DELETED",
                ];
                (json!({ "activities": self.activities_of(v, &types, user) }), vec![])
            }
            "PolityProcessExpense" => match self.process(&reference, v, token) {
                Ok(node) => (json!({ "processExpense": node }), vec![]),
                Err(e) => (json!({ "processExpense": null }), vec![e]),
            },
            "PolityComment" => match self.comment(&reference, v, user) {
                Ok(node) => (json!({ "createComment": node }), vec![]),
                Err(e) => (json!({ "createComment": null }), vec![e]),
            },
            other => return Err(format!("the fake knows no operation `{other}`")),
        })
    }

    /// The errors of an `expense` field that found nothing: none (it is `null`), or
    /// `NotFound` when [`State::missing_expense_not_found`].
    fn missing_expense(&self, node: Option<&Value>) -> Vec<Value> {
        if node.is_none() && self.missing_expense_not_found {
            let mut e = error("NotFound", "Item not found");
            e["path"] = json!(["expense"]);
            vec![e]
        } else {
            vec![]
        }
    }

    fn process(&mut self, reference: &Value, v: &Value, token: Option<&Token>) -> Result<Value, Value> {
        let Some(token) = token.cloned() else {
            return Err(error("Unauthorized", "You need to be logged in to manage expenses"));
        };
        let user = token.user.as_str();
        let Some(e) = self.find(reference).cloned() else { return Err(error("NotFound", "Item not found")) };
        let action = v.get("action").and_then(Value::as_str).unwrap_or_default();
        let forbidden = || error("Forbidden", "You are authenticated but forbidden to perform this action");
        if action != "PAY"
            && self.account(user).is_some_and(|a| a.two_factor)
            && !token.pre_authorized_2fa
            && self.can_manage(user, &e.collective)
        {
            return Err(error("INTERNAL_SERVER_ERROR", "This personal token is not pre-authorized for 2FA"));
        }
        let status = e.status.as_str();
        let (target, activity) = match action {
            "APPROVE" => ("APPROVED", "collective.expense.approved"),
            "UNAPPROVE" => ("PENDING", "collective.expense.unapproved"),
            "REJECT" => ("REJECTED", "collective.expense.rejected"),
            "PAY" => ("PAID", "collective.expense.paid"),
            _ => return Err(error("BadRequest", &format!("Unknown action {action}"))),
        };
        if action == "PAY" && !self.host_admin(user, &e.collective) {
            return Err(error("Forbidden", "You don't have permission to pay this expense"));
        }
        if !self.can_manage(user, &e.collective) {
            return Err(forbidden());
        }
        if status != target {
            let allowed = match action {
                "APPROVE" => ["PENDING", "REJECTED", "INCOMPLETE"].contains(&status),
                "UNAPPROVE" => status == "APPROVED",
                "REJECT" => ["PENDING", "UNVERIFIED", "INCOMPLETE"].contains(&status),
                _ => status == "APPROVED",
            };
            if !allowed {
                return Err(forbidden());
            }
            if let Some(e) = self.expense_mut(e.legacy_id) {
                e.status = target.into();
            }
            self.add_activity(e.legacy_id, activity, Some(user));
        }
        if let Some(message) = v.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
            self.add_comment(e.legacy_id, message, user);
        }
        Ok(json!({ "id": e.id_v2, "legacyId": e.legacy_id, "status": target }))
    }

    fn add_comment(&mut self, id: i64, html: &str, from: &str) -> String {
        let comment = format!("com_{:x}", self.next() * 31);
        if let Some(e) = self.expense_mut(id) {
            e.comments.push(Comment { id: comment.clone(), html: html.into(), from: from.into() });
        }
        comment
    }

    fn comment(&mut self, reference: &Value, v: &Value, user: Option<&str>) -> Result<Value, Value> {
        let Some(user) = user else {
            return Err(error("Unauthorized", "You need to be authenticated to perform this action"));
        };
        let Some(e) = self.find(reference).cloned() else {
            return Err(error("NotFound", "The item you're trying to comment doesn't exist or has been deleted."));
        };
        let html = v.get("html").and_then(Value::as_str).unwrap_or_default();
        if html.trim().is_empty() {
            return Err(error("ValidationFailed", "Comment is empty"));
        }
        if !(self.can_manage(user, &e.collective) || e.payee == user) {
            return Err(error("ValidationFailed", "You are not allowed to comment on this expense"));
        }
        let id = self.add_comment(e.legacy_id, html, user);
        Ok(json!({ "id": id }))
    }
}

/// `$50.00`, as Open Collective formats amounts in webhooks.
fn formatted(cents: i64, currency: &str) -> String {
    let symbol = match currency {
        "USD" => "$".to_string(),
        "EUR" => "€".to_string(),
        other => format!("{other} "),
    };
    format!("{symbol}{}.{:02}", cents / 100, cents % 100)
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Told after every request the fake answered (or began to hang on).
    answered: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeOpenCollective {
    shared: Arc<Shared>,
    url: String,
    server: JoinHandle<()>,
}

impl Drop for FakeOpenCollective {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeOpenCollective {
    /// Starts the fake on a free port of 127.0.0.1, with [`COLLECTIVE`] (hosted by [`HOST`],
    /// administered by [`ADMIN`]), [`OTHER_COLLECTIVE`] ([`OTHER_ADMIN`]), and [`MEMBER`].
    pub async fn start() -> FakeOpenCollective {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Open Collective");
        let url = format!("http://{}/graphql/v2", listener.local_addr().expect("the fake's address"));
        let shared = Arc::new(Shared { state: Mutex::new(State::new()), answered: tokio::sync::Notify::new() });
        let app = axum::Router::new()
            .route("/graphql/v2", axum::routing::post(graphql))
            .route("/graphql", axum::routing::post(graphql))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenCollective { shared, url, server }
    }

    /// The GraphQL endpoint, `http://127.0.0.1:PORT/graphql/v2`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.lock())
    }

    /// Changes the state.
    pub fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.shared.lock())
    }

    /// The clock activities are stamped with.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|s| s.now)
    }

    /// Moves the clock.
    pub fn advance(&self, by: Duration) {
        self.change(|s| s.now += by);
    }

    /// A user, with a personal token if given.
    pub fn add_user(&self, slug: &str, name: &str, token: Option<&str>) {
        self.change(|s| s.add_user(slug, name, token));
    }

    /// A collective administered by `admins`, hosted by `host`.
    pub fn add_collective(&self, slug: &str, name: &str, admins: &[&str], host: Option<&str>) {
        self.change(|s| s.add_account(slug, name, "COLLECTIVE", admins, host));
    }

    /// Turns 2FA on for `user`: their tokens without advanced privileges may no longer
    /// decide expenses (`pre_authorized`: this token has them).
    pub fn require_2fa(&self, user: &str, token_pre_authorized: bool) {
        self.change(|s| {
            for a in s.accounts.iter_mut().filter(|a| a.slug == user) {
                a.two_factor = true;
            }
            for t in s.tokens.iter_mut().filter(|t| t.user == user) {
                t.pre_authorized_2fa = token_pre_authorized;
            }
        });
    }

    /// `payee` submits an expense of `amount` cents to `collective`: PENDING, with its
    /// `collective.expense.created` activity. Its number.
    pub fn submit_expense(&self, collective: &str, payee: &str, description: &str, amount: i64, currency: &str) -> i64 {
        self.change(|s| {
            assert!(s.account(collective).is_some(), "submit_expense: no collective {collective}");
            let legacy_id = s.next();
            let created_at = s.now;
            s.expenses.push(Expense {
                legacy_id,
                id_v2: format!("{:08x}-exp", legacy_id * 2_654_435),
                collective: collective.into(),
                payee: payee.into(),
                description: description.into(),
                amount,
                currency: currency.into(),
                status: "PENDING".into(),
                created_at,
                deleted: false,
                comments: Vec::new(),
            });
            s.add_activity(legacy_id, "collective.expense.created", Some(payee));
            legacy_id
        })
    }

    /// `by` moves expense `id` to `status` on the website, with activity `kind`
    /// (`collective.expense.approved`), whatever the rules. The activity's id.
    pub fn set_status(&self, id: i64, status: &str, kind: &str, by: &str) -> i64 {
        self.change(|s| {
            let e = s.expense_mut(id).unwrap_or_else(|| panic!("no expense {id}"));
            e.status = status.into();
            s.add_activity(id, kind, Some(by))
        })
    }

    pub fn approve(&self, id: i64, by: &str) -> i64 {
        self.set_status(id, "APPROVED", "collective.expense.approved", by)
    }

    pub fn reject(&self, id: i64, by: &str) -> i64 {
        self.set_status(id, "REJECTED", "collective.expense.rejected", by)
    }

    pub fn pay(&self, id: i64, by: &str) -> i64 {
        self.set_status(id, "PAID", "collective.expense.paid", by)
    }

    /// `by` deletes expense `id`: it is gone from the API, its activities stay.
    pub fn delete_expense(&self, id: i64, by: &str) -> i64 {
        self.change(|s| {
            let activity = s.add_activity(id, "collective.expense.deleted", Some(by));
            if let Some(e) = s.expense_mut(id) {
                e.deleted = true;
            }
            activity
        })
    }

    /// Changes what an expense says now (its activities keep what it said then).
    pub fn edit_expense(&self, id: i64, f: impl FnOnce(&mut Expense)) {
        self.change(|s| f(s.expense_mut(id).unwrap_or_else(|| panic!("no expense {id}"))));
    }

    pub fn expense(&self, id: i64) -> Expense {
        self.with(|s| s.expense(id).cloned()).unwrap_or_else(|| panic!("no expense {id}"))
    }

    pub fn status(&self, id: i64) -> String {
        self.expense(id).status
    }

    pub fn comments(&self, id: i64) -> Vec<Comment> {
        self.expense(id).comments
    }

    pub fn activity(&self, activity: i64) -> Activity {
        self.with(|s| s.activities.iter().find(|a| a.id == activity).cloned())
            .unwrap_or_else(|| panic!("no activity {activity}"))
    }

    /// Expense `id`'s activities, oldest first.
    pub fn activities(&self, id: i64) -> Vec<Activity> {
        self.with(|s| s.activities.iter().filter(|a| a.expense == id).cloned().collect())
    }

    /// The body Open Collective posts to a webhook for `activity`: `createdAt`, `id`,
    /// `type`, `CollectiveId` and `data` (`expense`, `fromCollective`, `collective`).
    pub fn webhook_payload(&self, activity: i64) -> Value {
        let a = self.activity(activity);
        let collective = self.with(|s| s.account(&a.collective).map(|c| c.legacy_id));
        json!({
            "createdAt": a.created_at_text(),
            "id": a.id,
            "type": a.kind,
            "CollectiveId": collective,
            "data": a.data,
        })
    }

    /// Waits until `f` holds of the state, looking again after every request (wrap it in a
    /// timeout of your own).
    pub async fn until(&self, f: impl Fn(&State) -> bool) {
        loop {
            let answered = self.shared.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.with(&f) {
                return;
            }
            answered.await;
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    /// How many requests named `operation` came.
    pub fn count(&self, operation: &str) -> usize {
        self.with(|s| s.requests.iter().filter(|r| r.operation == operation).count())
    }

    /// The next request gets `failure` instead of its answer (several queue up).
    pub fn fail_next(&self, failure: Failure) {
        self.change(|s| s.failures.push_back(failure));
    }

    /// Whether the `expense` query answers an expense that does not exist (or was deleted)
    /// with a `NotFound` error besides `null`.
    pub fn missing_expense_not_found(&self, on: bool) {
        self.change(|s| s.missing_expense_not_found = on);
    }

    /// Every request gets `failure` until this is called with `None`.
    pub fn set_down(&self, failure: Option<Failure>) {
        self.change(|s| s.down = failure);
    }
}

/// The operation a request names: `operationName`, else the name in its document.
fn operation_of(body: &Value) -> String {
    if let Some(name) = body.get("operationName").and_then(Value::as_str) {
        return name.to_string();
    }
    let query = body.get("query").and_then(Value::as_str).unwrap_or_default().trim_start();
    let rest = query.strip_prefix("query").or_else(|| query.strip_prefix("mutation")).unwrap_or_default();
    rest.trim_start().split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default().to_string()
}

async fn graphql(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"errors": [error("BAD_REQUEST", "not JSON")]})))
            .into_response();
    };
    let operation = operation_of(&request);
    let variables = request.get("variables").cloned().unwrap_or(Value::Null);
    let token = headers
        .get("personal-token")
        .or_else(|| headers.get("api-key"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let outcome = {
        let mut s = shared.lock();
        s.requests.push(Recorded { operation: operation.clone(), variables: variables.clone(), token: token.clone() });
        match s.failures.pop_front().or_else(|| s.down.clone()) {
            Some(failure) => Err(failure),
            None => Ok(answer(&mut s, &operation, &variables, token.as_deref())),
        }
    };
    shared.answered.notify_waiters();
    match outcome {
        Ok(response) => response,
        Err(Failure::RateLimited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", retry_after)],
            axum::Json(json!({"error": {"message": "Rate limit exceeded. Contact-us to get higher limits."}})),
        )
            .into_response(),
        Err(Failure::ServerError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"code": 500, "type": "server_error", "message": "Internal server error"}})),
        )
            .into_response(),
        Err(Failure::Oversized { bytes, chunked }) => oversized(bytes, chunked),
        Err(Failure::Hang) => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// A 200 answer of `bytes` bytes of JSON: `{"data":{"padding":"xxx..."}}`.
fn oversized(bytes: usize, chunked: bool) -> Response {
    let (head, tail) = (br#"{"data":{"padding":""#.as_slice(), br#""}}"#.as_slice());
    let padding = bytes.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(bytes);
    body.extend_from_slice(head);
    body.resize(head.len() + padding, b'x');
    body.extend_from_slice(tail);
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    if !chunked {
        return (StatusCode::OK, json, body).into_response();
    }
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    (StatusCode::OK, json, axum::body::Body::from_stream(futures_util::stream::iter(chunks))).into_response()
}

fn answer(s: &mut State, operation: &str, variables: &Value, token: Option<&str>) -> Response {
    let found = s.user_of(token).cloned();
    if let (Some(token), None) = (token, &found) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {
                "code": 401, "type": "unauthorized", "message": format!("Invalid Personal Token (Api Key): {token}"),
            }})),
        )
            .into_response();
    }
    match s.answer(operation, variables, found.as_ref()) {
        Ok((data, errors)) => {
            let mut body = Map::new();
            if !errors.is_empty() {
                body.insert("errors".into(), Value::Array(errors));
            }
            body.insert("data".into(), data);
            (StatusCode::OK, axum::Json(Value::Object(body))).into_response()
        }
        Err(why) => {
            (StatusCode::BAD_REQUEST, axum::Json(json!({"errors": [error("GRAPHQL_VALIDATION_FAILED", &why)]})))
                .into_response()
        }
    }
}
