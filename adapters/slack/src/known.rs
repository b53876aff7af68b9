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
    /// admin's doing (`rename:{channel}:{name}`, `pin:{channel}:{ts}`): when it was done,
    /// and the `event_id` of the event that reported it once that has come.
    own: HashMap<String, (std::time::Instant, Option<String>)>,
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
        inner.own.retain(|_, (at, _)| at.elapsed() < OWN_LIFETIME);
        inner.own.insert(key, (std::time::Instant::now(), None));
    }

    /// Whether the event `event_id` is of an action Polity took itself. A mark is used by the
    /// first event that matches it, and by that event alone after (Slack may deliver it
    /// again): a member who does the same thing later (renames the channel to the same
    /// name, pins the same message again) is governed.
    pub fn was_own(&self, key: &str, event_id: &str) -> bool {
        let mut inner = self.lock();
        match inner.own.get_mut(key) {
            Some((at, _)) if at.elapsed() >= OWN_LIFETIME => false,
            Some((_, seen @ None)) => {
                *seen = Some(event_id.to_string());
                true
            }
            Some((_, Some(seen))) => seen == event_id,
            None => false,
        }
    }

    /// Forgets a mark of an action Polity did not manage to take.
    pub fn forget_own(&self, key: &str) {
        self.lock().own.remove(key);
    }

    pub fn forget_buttons(&self, message: &MessageRef) {
        self.lock().buttons.remove(&message_key(message));
    }
}

#[cfg(test)]
mod tests {
    use super::Known;

    #[test]
    fn a_mark_of_polity_s_own_action_is_used_by_one_event_and_its_redeliveries() {
        let known = Known::default();
        assert!(!known.was_own("rename:C1:general", "Ev1"), "nothing was marked yet");
        known.expect_own("rename:C1:general".into());
        assert!(known.was_own("rename:C1:general", "Ev1"), "the event of Polity's own rename");
        assert!(known.was_own("rename:C1:general", "Ev1"), "the same event delivered again");
        assert!(!known.was_own("rename:C1:general", "Ev2"), "a member's later rename to the same name is theirs");
        known.expect_own("pin:C1:1.2".into());
        known.forget_own("pin:C1:1.2");
        assert!(!known.was_own("pin:C1:1.2", "Ev3"), "a mark forgotten after a failed pin");
    }
}
