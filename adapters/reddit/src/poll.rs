//! Reddit has no webhooks: Polity reads the subreddit on a schedule. Three polls, each with a
//! cursor the host stores with what it recorded, so a restart neither misses nor repeats
//! anything:
//!
//! | poll | listing | each item is |
//! |---|---|---|
//! | `posts` | `GET /r/{sub}/new` | the governable action `reddit.post_submitted` by its author |
//! | `comments` | `GET /r/{sub}/comments` | the trigger `reddit.comment_created` |
//! | `modqueue` | `GET /r/{sub}/about/modqueue` | the trigger `reddit.modqueue_item` |
//!
//! A post removed already (by a moderator, AutoModerator, the spam filter) is not taken.
//!
//! The moderation queue's cursor is what was in it (fullname and number of reports): what
//! joins it, or comes back with more reports, is news. The other polls' cursor is the newest
//! item's time and the connection's baseline (`NEWEST BASELINE`, Unix seconds). The first poll only sets it (connecting does not replay the subreddit's past);
//! later ones read pages (100 an item, up to ten) back to a minute before the newest time
//! and hand over what is newer than the baseline. Items read twice have the same key (their
//! fullname), so the host records each once. Polity's own posts and comments are left out.

use crate::api::Api;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, Place};
use polity_governance::io::Inbound;
use polity_governance::platform::{BoxFuture, PlatformError};
use polity_port::{Event, PollSpec, Polled, Poller};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub const POSTS: &str = "posts";
pub const COMMENTS: &str = "comments";
pub const MODQUEUE: &str = "modqueue";

pub const POST_SUBMITTED: &str = "reddit.post_submitted";
pub const COMMENT_CREATED: &str = "reddit.comment_created";
pub const MODQUEUE_ITEM: &str = "reddit.modqueue_item";

/// How far before the newest item a poll reads again (an item can show in a listing a
/// little after a newer one).
pub const OVERLAP_SECS: i64 = 60;

const PAGE: &str = "100";
const PAGES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    newest: i64,
    baseline: i64,
}

impl Cursor {
    fn parse(text: &str) -> Option<Self> {
        let (newest, baseline) = text.split_once(' ')?;
        Some(Self { newest: newest.parse().ok()?, baseline: baseline.parse().ok()? })
    }

    fn text(self) -> String {
        format!("{} {}", self.newest, self.baseline)
    }
}

fn created(item: &Value) -> i64 {
    item.get("created_utc").and_then(Value::as_f64).map_or(0, |t| t as i64)
}

fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A connection's polls.
#[derive(Clone, Debug)]
pub struct RedditPoller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: Api,
    subreddit: String,
    me: String,
    every: Duration,
}

impl RedditPoller {
    pub fn new(api: Api, every: Duration) -> Self {
        let config = api.config().clone();
        Self { inner: Arc::new(Inner { subreddit: config.subreddit, me: config.username, api, every }) }
    }
}

impl Poller for RedditPoller {
    fn polls(&self) -> Vec<PollSpec> {
        [POSTS, COMMENTS, MODQUEUE].into_iter().map(|name| PollSpec { name, every: self.inner.every }).collect()
    }

    fn poll(&self, name: &str, cursor: Option<String>) -> BoxFuture<'static, Result<Polled, PlatformError>> {
        let inner = Arc::clone(&self.inner);
        let name = name.to_string();
        Box::pin(async move {
            let path = match name.as_str() {
                POSTS => format!("/r/{}/new", inner.subreddit),
                COMMENTS => format!("/r/{}/comments", inner.subreddit),
                MODQUEUE => format!("/r/{}/about/modqueue", inner.subreddit),
                _ => return Err(PlatformError::Permanent(format!("Reddit has no poll {name}"))),
            };
            if name == MODQUEUE {
                return inner.queue(&path, cursor).await;
            }
            let since = match cursor.as_deref().map(|c| (c, Cursor::parse(c))) {
                None => None,
                Some((_, Some(c))) => Some(c),
                Some((text, None)) => {
                    tracing::warn!(subreddit = %inner.subreddit, cursor = text, "an unreadable poll cursor: starting from now");
                    None
                }
            };
            let items = inner.read(&path, since).await?;
            let newest = items.iter().map(created).max().unwrap_or(0);
            let Some(since) = since else {
                // The first poll: where the subreddit is now is the baseline.
                let now = Cursor { newest, baseline: newest };
                return Ok(Polled { events: Vec::new(), cursor: Some(now.text()) });
            };
            let mut events: Vec<Event> = items
                .iter()
                .filter(|item| created(item) > since.baseline && created(item) >= since.newest - OVERLAP_SECS)
                .filter_map(|item| inner.event(&name, item))
                .collect();
            // Oldest first, as they happened.
            events.reverse();
            let next = Cursor { newest: since.newest.max(newest), baseline: since.baseline };
            Ok(Polled { events, cursor: Some(next.text()) })
        })
    }
}

impl Inner {
    /// The listing's items (their `data`, with `kind`), newest first, back to the cursor's
    /// overlap (one page on a first poll).
    async fn read(&self, path: &str, since: Option<Cursor>) -> Result<Vec<Value>, PlatformError> {
        let mut items: Vec<Value> = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..PAGES {
            let mut query = vec![("limit", PAGE.to_string())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let page = self.api.get(path, &query).await?;
            // Anything but a listing (an error page answered 200) is no news: it must not
            // read as an empty subreddit.
            if page.get("kind").and_then(Value::as_str) != Some("Listing") {
                return Err(PlatformError::Transient(format!(
                    "Reddit answered {path} with something other than a listing"
                )));
            }
            let children = page.pointer("/data/children").and_then(Value::as_array).cloned().unwrap_or_default();
            let count = children.len();
            for child in children {
                let kind = text(&child, "kind").to_string();
                if let Some(mut data) = child.get("data").cloned().filter(Value::is_object) {
                    data["kind"] = Value::String(kind);
                    items.push(data);
                }
            }
            after = page.pointer("/data/after").and_then(Value::as_str).map(str::to_string);
            let oldest = items.last().map_or(i64::MAX, created);
            let far_enough = since.is_none_or(|c| oldest < c.newest - OVERLAP_SECS);
            if count == 0 || after.is_none() || far_enough {
                break;
            }
        }
        Ok(items)
    }

    /// The moderation queue: what is in it now that was not at the last poll (its cursor: the
    /// fullnames that were, newest first). The first poll only notes what is there. An item
    /// that comes back with more reports is news again.
    async fn queue(&self, path: &str, cursor: Option<String>) -> Result<Polled, PlatformError> {
        let items = self.read(path, None).await?;
        let now: Vec<String> = items
            .iter()
            .map(|i| format!("{}:{}", text(i, "name"), i.get("num_reports").and_then(Value::as_u64).unwrap_or(0)))
            .collect();
        let next = Some(now.iter().take(100).cloned().collect::<Vec<_>>().join(" "));
        let Some(before) = cursor else {
            return Ok(Polled { events: Vec::new(), cursor: next });
        };
        let before: std::collections::HashSet<&str> = before.split(' ').collect();
        let mut events: Vec<Event> = items
            .iter()
            .zip(&now)
            .filter(|(_, seen)| !before.contains(seen.as_str()))
            .filter_map(|(item, seen)| {
                let mut event = self.event(MODQUEUE, item)?;
                event.dedup_key = format!("modqueue:{seen}");
                Some(event)
            })
            .collect();
        events.reverse();
        Ok(Polled { events, cursor: next })
    }

    /// The event one listing item is, unless it is Polity's own or unreadable.
    fn event(&self, poll: &str, item: &Value) -> Option<Event> {
        let fullname = text(item, "name");
        let author = text(item, "author");
        if fullname.is_empty() || author.is_empty() || author == "[deleted]" || author.eq_ignore_ascii_case(&self.me) {
            return None;
        }
        let account = AccountRef::new("reddit", author);
        let (kind, dedup_key) = match poll {
            POSTS => (POST_SUBMITTED, fullname.to_string()),
            COMMENTS => (COMMENT_CREATED, fullname.to_string()),
            _ => (MODQUEUE_ITEM, format!("modqueue:{fullname}")),
        };
        let mut action = Action::new(ActionType::new(kind).ok()?, account.clone(), fullname);
        if poll == POSTS {
            // Deleted by its author, or removed already (by a moderator, AutoModerator, the
            // spam filter, Reddit): not Polity's to hold, nor to approve on a vote.
            let removed =
                ["removed_by_category", "banned_by"].iter().any(|k| item.get(*k).is_some_and(|v| !v.is_null()))
                    || item.get("spam").and_then(Value::as_bool) == Some(true);
            if removed {
                return None;
            }
            action = action.at(Place::new("reddit", fullname));
        } else {
            action = action.event();
        }
        action = action.with("fullname", fullname).with("author", author).with("subreddit", self.subreddit.as_str());
        for (from, to) in [
            ("id", "id"),
            ("title", "title"),
            ("selftext", "text"),
            ("body", "text"),
            ("url", "url"),
            ("permalink", "permalink"),
            ("link_id", "link_id"),
            ("parent_id", "parent_id"),
            ("num_reports", "num_reports"),
            ("kind", "kind"),
            ("link_flair_text", "flair"),
        ] {
            if let Some(v) = item.get(from).filter(|v| !v.is_null()) {
                action = action.with(to, v.clone());
            }
        }
        action = action.with("created_utc", created(item));
        Some(Event {
            space: Some(self.subreddit.clone()),
            dedup_key,
            input: Inbound::Action { action },
            from: Some((account, author.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_is_its_newest_time_and_its_baseline() {
        let c = Cursor { newest: 1_764_000_100, baseline: 1_764_000_000 };
        assert_eq!(Cursor::parse(&c.text()), Some(c));
        assert_eq!(Cursor::parse("soon"), None);
        assert_eq!(Cursor::parse("1 two"), None);
    }
}
