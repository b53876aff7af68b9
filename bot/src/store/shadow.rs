//! What is stored of each open proposal this process wrote, so that the next step writes
//! only what it changed: a ballot writes its ballot row, not the proposal's row, its frozen
//! eligibility and every other ballot again.
//!
//! An entry is the proposal exactly as the last committed write left it in the database.
//! Writes inside a transaction take the entry out of the store's map (so nobody else sees a
//! state that is not committed) and keep it with the transaction; a commit puts it back, a
//! rollback drops it. A proposal without an entry is written whole, after reading what is
//! stored of its ballots, as before: a missing entry costs time, never correctness.
//!
//! The entries are right as long as this process is the only writer of its communities'
//! proposals, which the engine in memory assumes already; `Store::forget_written` drops a
//! community's entries when the runtime reloads it from the store. Being exact, an entry also
//! answers `Store::vote_messages` (the dispatcher asks for every tally edit it considers).

use super::codec::BallotColumns;
use super::entities::{audit_log, inbox, proposals};
use chrono::{DateTime, Utc};
use polity_governance::MessageRef;
use polity_governance::proposal::Ballots;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// `(community_id, proposal id)`.
pub(crate) type Key = (i64, i64);

/// A proposal as it is stored.
#[derive(Debug)]
pub(crate) struct Written {
    /// The `proposals` row, its `vote` column left out (see `vote`).
    pub row: proposals::Model,
    /// What the `vote` column holds, as a fingerprint: it is written when the proposal
    /// opens, and again only when its notes, its message links or its waiting voters change.
    pub vote: Option<VoteKey>,
    pub ballots: Ballots,
    /// Its rows in `vote_messages`, in order (as `Store::vote_messages` reads them).
    pub messages: Vec<MessageRef>,
    /// Its deadline job (there while it is open and has a deadline).
    pub deadline: Option<DateTime<Utc>>,
    /// The outbox row of the last tally edit this process wrote for it: while that row has
    /// not been started, a newer tally replaces its text instead of adding a row (the
    /// dispatcher would only supersede the older one).
    pub edit: Option<i64>,
}

/// The frozen vote of a proposal, without encoding its eligible voters again: its spec and
/// place as JSON, and its eligible voters counted and hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VoteKey {
    pub head: String,
    pub eligible: usize,
    pub hash: u64,
}

impl VoteKey {
    pub(crate) fn of(head: String, eligible: &polity_governance::proposal::Eligible) -> Self {
        // The same for equal sets in any process. (It tells a set that changed from the one
        // written, which a frozen set never does.)
        Self { head, eligible: eligible.len(), hash: eligible.fingerprint() }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps are only read and replaced whole under the lock: a panic elsewhere leaves
    // them consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The committed entries, shared by every clone of the store.
#[derive(Clone, Default)]
pub(crate) struct Shadow(Arc<Mutex<HashMap<Key, Written>>>);

impl Shadow {
    /// Forgets every entry of a community.
    pub(crate) fn forget_community(&self, community: i64) {
        lock(&self.0).retain(|k, _| k.0 != community);
    }

    /// Forgets one proposal's entry.
    pub(crate) fn forget(&self, key: Key) {
        lock(&self.0).remove(&key);
    }

    /// The vote messages of a proposal, if it has an entry.
    pub(crate) fn messages(&self, key: Key) -> Option<Vec<MessageRef>> {
        lock(&self.0).get(&key).map(|w| w.messages.clone())
    }

    /// How many proposals have an entry.
    pub(crate) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// Where a transaction's entries go when it commits.
enum Parent {
    Store(Shadow),
    /// A savepoint's go to the transaction around it.
    Batch(Arc<Pending>),
}

/// What a transaction (or savepoint) keeps until it commits: the entries it wrote (`None` for
/// a proposal whose entry it took and did not put back, written whole next time), and the
/// rows it holds back ([`Held`]), written in a few statements at the commit (inside the
/// transaction, so with everything else of each step).
pub(crate) struct Pending {
    changes: Mutex<HashMap<Key, Option<Written>>>,
    held: Mutex<Held>,
    parent: Parent,
}

/// `(community_id, proposal id, member id)`.
pub(crate) type BallotKey = (i64, i64, i64);

/// Rows a transaction writes at its commit, each kind in as few statements as it can (a
/// batch of ballots is then a handful of statements, not several per ballot).
#[derive(Default)]
pub(crate) struct Held {
    /// The steps' audit lines, in order.
    pub audit: Vec<audit_log::ActiveModel>,
    /// Inbox rows of inputs checked to be new, and their keys.
    pub inbox: Vec<inbox::ActiveModel>,
    pub inbox_keys: HashSet<(String, String)>,
    /// Each voter's ballot as it is to be stored (`None`: withdrawn).
    pub ballots: BTreeMap<BallotKey, Option<BallotColumns>>,
    /// Tally edits waiting in the outbox whose text is replaced, by row id.
    pub edits: BTreeMap<i64, HeldEdit>,
    /// Proposals whose closing edit this transaction wrote: a held tally whose row was
    /// started meanwhile gets no row of its own then (it would come after the closing edit
    /// and put the old tally and its buttons back).
    pub closed: HashSet<Key>,
}

/// A waiting tally edit's new text: its proposal's key, the effect as JSON, when.
pub(crate) type HeldEdit = (Key, String, DateTime<Utc>);

impl Held {
    fn absorb(&mut self, inner: Held) {
        self.audit.extend(inner.audit);
        self.inbox.extend(inner.inbox);
        self.inbox_keys.extend(inner.inbox_keys);
        self.ballots.extend(inner.ballots);
        self.edits.extend(inner.edits);
        self.closed.extend(inner.closed);
    }
}

impl Pending {
    /// A top-level transaction's.
    pub(crate) fn new(shadow: &Shadow) -> Arc<Self> {
        Arc::new(Self { changes: Mutex::default(), held: Mutex::default(), parent: Parent::Store(shadow.clone()) })
    }

    /// A savepoint's inside `parent`.
    pub(crate) fn nested(parent: &Arc<Self>) -> Arc<Self> {
        Arc::new(Self { changes: Mutex::default(), held: Mutex::default(), parent: Parent::Batch(parent.clone()) })
    }

    /// Takes the entry of `key` out, from this transaction or the ones around it, leaving
    /// none behind.
    pub(crate) fn take(&self, key: Key) -> Option<Written> {
        let mut changes = lock(&self.changes);
        if let Some(entry) = changes.get_mut(&key) {
            return entry.take();
        }
        let taken = match &self.parent {
            Parent::Store(shadow) => lock(&shadow.0).remove(&key),
            Parent::Batch(outer) => outer.take(key),
        };
        // The outer entry is gone: should this savepoint be rolled back, the proposal is
        // written from scratch next time.
        changes.insert(key, None);
        taken
    }

    /// Keeps `entry` as what the transaction wrote of `key`.
    pub(crate) fn put(&self, key: Key, entry: Option<Written>) {
        lock(&self.changes).insert(key, entry);
    }

    /// The outbox row of the proposal's last tally edit, if this transaction wrote the
    /// proposal and knows it.
    pub(crate) fn edit_row(&self, key: Key) -> Option<i64> {
        lock(&self.changes).get(&key).and_then(|e| e.as_ref()).and_then(|w| w.edit)
    }

    /// Remembers the outbox row of the proposal's newest tally edit (when this transaction
    /// wrote the proposal: it is kept with the entry and committed with it).
    pub(crate) fn set_edit_row(&self, key: Key, id: i64) {
        if let Some(Some(w)) = lock(&self.changes).get_mut(&key) {
            w.edit = Some(id);
        }
    }

    /// Holds an inbox row back until the commit; `false` (holding nothing) when this
    /// transaction, or one around it, holds the same input already.
    pub(crate) fn hold_input(&self, row: inbox::ActiveModel, source: &str, dedup_key: &str) -> bool {
        if self.holds_input(source, dedup_key) {
            return false;
        }
        let mut held = lock(&self.held);
        held.inbox_keys.insert((source.to_string(), dedup_key.to_string()));
        held.inbox.push(row);
        true
    }

    /// Whether this transaction, or one around it, holds an inbox row for the input.
    pub(crate) fn holds_input(&self, source: &str, dedup_key: &str) -> bool {
        let key = (source.to_string(), dedup_key.to_string());
        let here = lock(&self.held).inbox_keys.contains(&key);
        here || matches!(&self.parent, Parent::Batch(outer) if outer.holds_input(source, dedup_key))
    }

    /// Holds ballot rows back until the commit: cast ones written, withdrawn ones deleted.
    pub(crate) fn hold_ballots(&self, ballots: impl IntoIterator<Item = (BallotKey, Option<BallotColumns>)>) {
        lock(&self.held).ballots.extend(ballots);
    }

    /// Holds a new text for a waiting tally edit's row back until the commit.
    pub(crate) fn hold_edit(&self, row: i64, proposal: Key, effect: String, now: DateTime<Utc>) {
        lock(&self.held).edits.insert(row, (proposal, effect, now));
    }

    /// Notes that the proposal's closing edit is written (see [`Held::closed`]).
    pub(crate) fn hold_closed(&self, proposal: Key) {
        lock(&self.held).closed.insert(proposal);
    }

    /// Takes the held ballots (to write them before ballots are read inside the transaction).
    pub(crate) fn take_held_ballots(&self) -> BTreeMap<BallotKey, Option<BallotColumns>> {
        std::mem::take(&mut lock(&self.held).ballots)
    }

    /// The rows to write before a top-level transaction commits (a savepoint's go to the
    /// transaction around it when it commits).
    pub(crate) fn held_to_write(&self) -> Held {
        match self.parent {
            Parent::Store(_) => std::mem::take(&mut *lock(&self.held)),
            Parent::Batch(_) => Held::default(),
        }
    }

    /// Holds a step's audit lines back until the commit.
    pub(crate) fn hold_audit(&self, rows: Vec<audit_log::ActiveModel>) {
        lock(&self.held).audit.extend(rows);
    }

    /// The transaction committed: its entries go to the one around it, or to the store.
    pub(crate) fn commit(&self) {
        let held = std::mem::take(&mut *lock(&self.held));
        if let Parent::Batch(outer) = &self.parent {
            lock(&outer.held).absorb(held);
        }
        let changes = std::mem::take(&mut *lock(&self.changes));
        match &self.parent {
            Parent::Store(shadow) => {
                let mut map = lock(&shadow.0);
                for (key, entry) in changes {
                    match entry {
                        Some(written) => map.insert(key, written),
                        None => map.remove(&key),
                    };
                }
            }
            Parent::Batch(outer) => lock(&outer.changes).extend(changes),
        }
    }
}
