//! What a connection knows of its workspace, shared by its event reading and its platforms:
//! who the bot is, members' names and whether they are admins, and the buttons of the vote
//! messages it posted (an edit sends them again).

use polity_governance::ids::MessageRef;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One workspace's members as the connection last read them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// A workspace admin or owner: they control the workspace.
    pub admin: bool,
}

#[derive(Debug, Default)]
pub struct Known {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bot_user: Option<String>,
    team: Option<String>,
    members: HashMap<String, Member>,
    /// A vote message's buttons block (`None`: it has none), by `channel ts`.
    buttons: HashMap<String, Option<Value>>,
    /// What Polity itself did with the admin's user token, which Slack reports as that
    /// admin's doing (`rename:{channel}:{name}`, `pin:{channel}:{ts}`), until its event
    /// has come back.
    own: HashMap<String, std::time::Instant>,
}

/// How long an action of Polity's own waits for its event.
const OWN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// How many vote messages' buttons are kept before the oldest are dropped (an edit then
/// reads them back from Slack).
const BUTTONS_KEPT: usize = 10_000;

fn message_key(message: &MessageRef) -> String {
    format!("{} {}", message.channel, message.message)
}

impl Known {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who the bot is (`auth.test`): its user and its workspace.
    pub fn set_identity(&self, bot_user: &str, team: &str) {
        let mut inner = self.lock();
        inner.bot_user = Some(bot_user.to_string());
        inner.team = Some(team.to_string());
    }

    pub fn bot_user(&self) -> Option<String> {
        self.lock().bot_user.clone()
    }

    pub fn team(&self) -> Option<String> {
        self.lock().team.clone()
    }

    /// Records members as read (`users.list`, `team_join`).
    pub fn set_members(&self, members: impl IntoIterator<Item = (String, Member)>) {
        let mut inner = self.lock();
        inner.members.extend(members);
    }

    pub fn member(&self, user: &str) -> Option<Member> {
        self.lock().members.get(user).cloned()
    }

    /// A member's display name; their id when not known.
    pub fn name(&self, user: &str) -> String {
        self.lock().members.get(user).map_or_else(|| user.to_string(), |m| m.name.clone())
    }

    pub fn buttons(&self, message: &MessageRef) -> Option<Option<Value>> {
        self.lock().buttons.get(&message_key(message)).cloned()
    }

    pub fn keep_buttons(&self, message: &MessageRef, buttons: Option<Value>) {
        let mut inner = self.lock();
        if inner.buttons.len() >= BUTTONS_KEPT {
            inner.buttons.clear();
        }
        inner.buttons.insert(message_key(message), buttons);
    }

    /// Notes an action Polity takes with the admin's user token, so its event is not
    /// governed as the admin's.
    pub fn expect_own(&self, key: String) {
        let mut inner = self.lock();
        inner.own.retain(|_, at| at.elapsed() < OWN_LIFETIME);
        inner.own.insert(key, std::time::Instant::now());
    }

    /// Whether an event is of an action Polity took itself. The mark stays until it expires,
    /// so an event Slack delivers again is known too.
    pub fn was_own(&self, key: &str) -> bool {
        self.lock().own.get(key).is_some_and(|at| at.elapsed() < OWN_LIFETIME)
    }

    /// Forgets a mark of an action Polity did not manage to take.
    pub fn forget_own(&self, key: &str) {
        self.lock().own.remove(key);
    }

    pub fn forget_buttons(&self, message: &MessageRef) {
        self.lock().buttons.remove(&message_key(message));
    }
}
