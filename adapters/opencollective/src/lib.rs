//! The Open Collective platform: a collective's expenses as trigger events, and expense
//! decisions and comments as actions, over the GraphQL API v2 with an admin's personal
//! token (`Personal-Token` header).
//!
//! - [`OpenCollectiveAdapter`]: the host's adapter. A connection is one collective (its
//!   space, owned by the token's owner); `test` checks the token's owner is an admin of the
//!   collective or of its host.
//! - [`OcWebhooks`]: deliveries. Open Collective signs nothing, so the secret is in the
//!   URL (`secret_in_url`), a delivery's body is only a claim, and `confirm` rebuilds each
//!   event from the API's answer, leaving out (with a warning) what the API contradicts.
//! - [`OcPoller`]: the `expenses` poll, every `poll_secs` (300 s), for what webhooks missed
//!   (Open Collective never retries one).
//! - [`OcPlatform`]: `opencollective.process_expense` and `opencollective.comment`.
//!
//! | trigger | activity (webhook `type` / GraphQL `ActivityType`) |
//! |---|---|
//! | `opencollective.expense_created` | `collective.expense.created` / `COLLECTIVE_EXPENSE_CREATED` |
//! | `opencollective.expense_approved` | `collective.expense.approved` / `COLLECTIVE_EXPENSE_APPROVED` |
//! | `opencollective.expense_rejected` | `collective.expense.rejected` / `COLLECTIVE_EXPENSE_REJECTED` |
//! | `opencollective.expense_paid` | `collective.expense.paid` / `COLLECTIVE_EXPENSE_PAID` |
//! | `opencollective.expense_deleted` | `collective.expense.deleted` / `COLLECTIVE_EXPENSE_DELETED` |
//!
//! Each is an `Action` with status `Event`, its initiator the payee (`submitter`: who the
//! expense is from, Open Collective's `fromCollective`), its `source_id` the expense's
//! number, its data `id` and `expense_id` (that number, `legacyId`), `id_v2`, `amount`
//! (cents), `currency`, `description`, `status` (as the API has it now; `DELETED` once
//! deleted), `submitter`, `submitter_name`, `collective`, `link`, `at` (the activity's time).
//!
//! ## Dedup keys
//! `expense:{legacyId}:{verb}:{createdAt}`, `createdAt` the activity's, in UTC milliseconds:
//! the same for a webhook delivery and a poll of the same activity. Activity ids cannot be
//! used: a webhook carries the database's integer, GraphQL a hashid salted on the server,
//! and neither converts to the other.
//!
//! ## Confirming a delivery
//! Created, approved, rejected, paid: `expense(legacyId)` must exist, be the connection's
//! collective's, and list an activity of that type at that very millisecond; the event
//! carries the expense as the API returns it (an expense the API does not find, `null` or
//! `NotFound`, contradicts the claim). Deleted: the expense must be gone (`null`, or a
//! `NotFound` error, after which the deletions are asked for alone), and the collective's
//! `activities` must hold its deletion at that millisecond; the event carries that
//! activity's data. No answer (a timeout, a 5xx, a 429, a refused token, an answer over
//! 4 MiB) is `Unconfirmed`. The initiator of an event, from a webhook or a poll, is an
//! account on `opencollective` (a webhook knows no connection), so a payee is one member
//! however their expenses came.
//!
//! ## Polling
//! The collective's `activities` of the five types (newest first, 100 a page, 10 pages at
//! most), from the cursor less a minute (an activity committed late is still read; what was
//! read before comes again under the same key). The cursor is the newest activity's
//! `createdAt`. The first poll emits nothing and records the newest activity's time (the
//! epoch if there is none) as the cursor and as its baseline
//! (`2024-05-01T12:00:00.000Z after 2024-05-01T12:00:00.000Z`): no activity at or before the
//! baseline is ever emitted, by that poll or a later one (a restart's included), so
//! connecting does not replay the collective's history. The baseline stays in the cursor
//! (`{newest} after {baseline}`) while the overlap reaches back to it, then the cursor is a
//! time alone. An activity of an expense deleted since is left out (its deletion is told),
//! as `confirm` leaves out a delivery about it.
//! Open Collective shows activities to admins only (`nodes: null` otherwise): that is a
//! `Permanent` error naming the fix.
//!
//! ## Actions
//! | call | GraphQL |
//! |---|---|
//! | `opencollective.process_expense` (`expense_id` or `id`; `decision` or `action`: APPROVE, UNAPPROVE, REJECT, or PAY with `pay = true`; `message`) | `expense` (the collective's? its status already the outcome? then done), then `processExpense` |
//! | `opencollective.comment` (`expense_id`; `text`, escaped into paragraphs, or `html`) | `expense { comments }` (the collective's? a comment marked `polity:{request key}` already? then done), then `createComment` with that marker |
//!
//! The marker is visible text: Open Collective sanitises comments' HTML, which would drop an
//! HTML comment. Every other effect is refused (`Permanent`): Open Collective holds no
//! votes. A community's platform acts only if its spaces include the connection's collective.
//!
//! ## Errors
//! 401 is `Permanent` ("Open Collective refused the personal token"; the body, which repeats
//! the token, is never read); GraphQL `Forbidden`/`Unauthorized` and other refusals are
//! `Permanent` with the API's message (and how to make a token with advanced privileges when
//! it is about 2FA); 429 is `RateLimited` with `Retry-After` (seconds, fractional or not, or
//! an HTTP date; at most an hour; `None` when unreadable); 5xx, 408, timeouts, unreachable
//! hosts and answers cut short are `Transient`. The API's address is a community's setting,
//! so at most 4 MiB of an answer is read: a longer one is `Permanent` ("Open Collective's
//! answer is over 4 MiB"). The token is blotted out of every string of an answer before
//! anything is taken from it, so no message built from an answer carries it; the
//! configuration's and the client's `Debug` show `[redacted]`.

mod adapter;
mod api;
mod config;
mod expense;
mod platform;
mod poll;
mod webhook;

pub use adapter::OpenCollectiveAdapter;
pub use config::{API_URL, OpenCollectiveConfig, SPEC, WEBSITE};
pub use expense::{Trigger, dedup_key};
pub use platform::{COMMENT, OcPlatform, PROCESS_EXPENSE, actions, text_to_html};
pub use poll::{EXPENSES, OVERLAP, OcPoller};
pub use webhook::OcWebhooks;
