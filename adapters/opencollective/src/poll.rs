//! The `expenses` poll: the collective's expense activities since the last one seen, read
//! with the account's `activities` query, as the same events webhooks bring.
//!
//! Its cursor is the newest activity's time (`2024-05-01T12:00:01.001Z`), followed by the
//! connection's baseline, the newest activity's time when it was made
//! (`2024-05-01T12:00:01.001Z after 2024-05-01T12:00:00.000Z`), while the overlap reaches
//! back to it: nothing at or before the baseline is ever told.

use crate::api::{self, Api};
use crate::expense::{Facts, Happening, Trigger, format_time, parse_time};
use crate::webhook::deleted_facts;
use chrono::{DateTime, Utc};
use polity_governance::platform::{BoxFuture, PlatformError};
use polity_port::{Event, PollSpec, Polled, Poller};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The poll's name.
pub const EXPENSES: &str = "expenses";

/// How far before the cursor a poll reads again, for an activity written (committed) after
/// a later one was read: what was seen already comes again with the same dedup key.
pub const OVERLAP: Duration = Duration::from_secs(60);

/// Activities read per request, and the most requests one poll makes.
const PAGE: usize = 100;
const PAGES: usize = 10;

/// Between a cursor's newest time and its baseline.
const AFTER: &str = " after ";

/// Where a poll starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// The newest activity read: the next poll reads from it less [`OVERLAP`].
    newest: DateTime<Utc>,
    /// The newest activity when the connection was made (its baseline): nothing at or
    /// before it is told. Kept while the overlap reaches back to it.
    baseline: Option<DateTime<Utc>>,
}

impl Cursor {
    fn parse(text: &str) -> Option<Self> {
        match text.split_once(AFTER) {
            Some((newest, baseline)) => {
                Some(Self { newest: parse_time(newest)?, baseline: Some(parse_time(baseline)?) })
            }
            None => Some(Self { newest: parse_time(text)?, baseline: None }),
        }
    }

    fn text(self) -> String {
        match self.baseline {
            Some(baseline) => format!("{}{AFTER}{}", format_time(self.newest), format_time(baseline)),
            None => format_time(self.newest),
        }
    }
}

fn overlap() -> chrono::Duration {
    chrono::Duration::from_std(OVERLAP).unwrap_or_else(|_| chrono::Duration::zero())
}

/// A connection's poller.
#[derive(Clone, Debug)]
pub struct OcPoller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: Api,
    collective: String,
    /// The platform of the accounts it hands over (`opencollective`, as webhooks name them).
    connection: String,
    every: Duration,
}

impl OcPoller {
    pub(crate) fn new(api: Api, collective: &str, connection: &str, every: Duration) -> Self {
        Self { inner: Arc::new(Inner { api, collective: collective.into(), connection: connection.into(), every }) }
    }
}

impl Poller for OcPoller {
    fn polls(&self) -> Vec<PollSpec> {
        vec![PollSpec { name: EXPENSES, every: self.inner.every }]
    }

    fn poll(&self, name: &str, cursor: Option<String>) -> BoxFuture<'static, Result<Polled, PlatformError>> {
        let inner = Arc::clone(&self.inner);
        let known = name == EXPENSES;
        let name = name.to_string();
        Box::pin(async move {
            if !known {
                return Err(PlatformError::Permanent(format!("Open Collective has no poll named {name}")));
            }
            match cursor.as_deref().map(|c| (c, Cursor::parse(c))) {
                None => inner.baseline().await,
                Some((_, Some(since))) => inner.read_since(since).await,
                Some((text, None)) => {
                    tracing::warn!(collective = %inner.collective, cursor = text, "an unreadable poll cursor: starting from now");
                    inner.baseline().await
                }
            }
        })
    }
}

impl Inner {
    /// The first poll: the newest activity's time (the epoch when there is none) becomes
    /// the cursor and its baseline, and nothing is emitted, so connecting does not replay
    /// history, then or later.
    async fn baseline(&self) -> Result<Polled, PlatformError> {
        let (nodes, _) = self.page(None, 1, 0).await?;
        let newest = nodes.iter().filter_map(activity_time).max().unwrap_or(DateTime::UNIX_EPOCH);
        Ok(Polled { events: Vec::new(), cursor: Some(Cursor { newest, baseline: Some(newest) }.text()) })
    }

    /// Every activity from the cursor less [`OVERLAP`] and after its baseline, oldest first.
    async fn read_since(&self, since: Cursor) -> Result<Polled, PlatformError> {
        let from = since.baseline.map_or(since.newest - overlap(), |b| b.max(since.newest - overlap()));
        let after_baseline = |at: &DateTime<Utc>| since.baseline.is_none_or(|b| *at > b);
        let mut read = Vec::new();
        for page in 0..PAGES {
            let (nodes, total) = self.page(Some(from), PAGE, read.len()).await?;
            let got = nodes.len();
            read.extend(nodes);
            if got == 0 || read.len() >= total {
                break;
            }
            if page + 1 == PAGES {
                tracing::warn!(collective = %self.collective, total, "more expense activities than one poll reads: the oldest are skipped");
            }
        }
        let mut happenings: Vec<(DateTime<Utc>, Happening)> =
            read.iter().filter_map(|a| self.happening(a)).filter(|(at, _)| *at >= from && after_baseline(at)).collect();
        happenings.sort_by_key(|(at, _)| *at);
        // The baseline stays while the next poll's overlap reaches back to it.
        let next = read
            .iter()
            .filter_map(activity_time)
            .max()
            .filter(|n| *n > since.newest)
            .map(|newest| Cursor { newest, baseline: since.baseline.filter(|b| *b >= newest - overlap()) });
        let events = happenings
            .into_iter()
            .map(|(_, h)| Event {
                space: Some(self.collective.clone()),
                dedup_key: h.key,
                input: h.input,
                from: Some(h.from),
            })
            .collect();
        Ok(Polled { events, cursor: next.map(Cursor::text) })
    }

    /// One page of activities, newest first, and how many there are in all.
    async fn page(
        &self,
        from: Option<DateTime<Utc>>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Value>, usize), PlatformError> {
        let variables = json!({
            "slug": self.collective,
            "from": from.map(format_time),
            "limit": limit,
            "offset": offset,
        });
        let data = self.api.run(api::ACTIVITIES, variables).await.map_err(api::ApiError::into_platform)?;
        let Some(nodes) = data.pointer("/activities/nodes").and_then(Value::as_array) else {
            return Err(PlatformError::Permanent(format!(
                "Open Collective shows {}'s activities to its admins only, and the token's owner is not one",
                self.collective
            )));
        };
        let total = data
            .pointer("/activities/totalCount")
            .and_then(Value::as_u64)
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(nodes.len());
        Ok((nodes.clone(), total))
    }

    /// The event of one activity, if it is one of the five and this collective's.
    fn happening(&self, activity: &Value) -> Option<(DateTime<Utc>, Happening)> {
        let trigger = Trigger::from_graphql(activity.get("type")?.as_str()?)?;
        let at = activity_time(activity)?;
        let expense = activity.get("expense").filter(|e| !e.is_null());
        let data = activity.get("data").cloned().unwrap_or(Value::Null);
        let facts = match (trigger, expense) {
            (Trigger::Deleted, _) => Facts::from_data(&data, crate::expense::DELETED, &self.collective).or_else(|| {
                let id = activity.pointer("/expense/legacyId").and_then(Value::as_i64)?;
                Some(deleted_facts(id, &self.collective))
            }),
            (_, Some(expense)) => Facts::from_expense(expense),
            // An expense deleted since: its earlier activities are told by its deletion.
            (_, None) => None,
        };
        let Some(facts) = facts.filter(|f| f.collective == self.collective) else {
            tracing::debug!(collective = %self.collective, "an expense activity without its expense, or another collective's, is skipped");
            return None;
        };
        Some((at, facts.event(trigger, at, &self.connection)))
    }
}

fn activity_time(activity: &Value) -> Option<DateTime<Utc>> {
    activity.get("createdAt").and_then(Value::as_str).and_then(parse_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_a_time_with_its_baseline_after_it_while_it_counts() {
        let t = |text: &str| parse_time(text).unwrap();
        let plain = "2024-05-01T12:00:01.001Z";
        assert_eq!(Cursor::parse(plain), Some(Cursor { newest: t(plain), baseline: None }));
        assert_eq!(Cursor::parse(plain).unwrap().text(), plain);
        let with = "2024-05-01T12:00:11.011Z after 2024-05-01T12:00:01.001Z";
        let cursor = Cursor { newest: t("2024-05-01T12:00:11.011Z"), baseline: Some(t(plain)) };
        assert_eq!(Cursor::parse(with), Some(cursor));
        assert_eq!(cursor.text(), with);
        for bad in ["", "soon", "2024-05-01T12:00:11.011Z after", "2024-05-01T12:00:11.011Z after soon"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
