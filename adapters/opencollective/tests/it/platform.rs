//! Expense decisions and comments through a community's `Platform`.

use crate::{call, config, connect, perform, start_with};
use polity_governance::ids::{AccountRef, Place, ProposalId};
use polity_governance::io::Effect;
use polity_governance::platform::{Performed, PlatformError};
use polity_port::Adapter;
use polity_tests::opencollective::{
    ADMIN, ADMIN_TOKEN, COLLECTIVE, Failure, FakeOpenCollective, HOST_ADMIN_TOKEN, MEMBER, MEMBER_TOKEN,
    OTHER_COLLECTIVE,
};
use serde_json::json;
use std::time::Duration;

const PROCESS: &str = "opencollective.process_expense";
const COMMENT: &str = "opencollective.comment";

fn mutations(fake: &FakeOpenCollective) -> Vec<serde_json::Value> {
    fake.requests().into_iter().filter(|r| r.operation == "PolityProcessExpense").map(|r| r.variables).collect()
}

#[tokio::test]
async fn a_policy_approves_unapproves_and_rejects_its_collectives_expenses() {
    let fake = FakeOpenCollective::start().await;
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");

    let approve = call(PROCESS, json!({"expense_id": id, "decision": "APPROVE", "message": "Approved by vote #3"}));
    assert_eq!(perform(&*platform, 1, &approve).await, Ok(Performed::default()));
    assert_eq!(fake.status(id), "APPROVED");
    assert_eq!(
        mutations(&fake),
        [json!({"ref": {"legacyId": id}, "action": "APPROVE", "message": "Approved by vote #3"})]
    );
    assert_eq!(fake.comments(id).len(), 1, "the message goes with the decision");

    // Done already (a retry after a crash): no second mutation, no second message.
    assert_eq!(perform(&*platform, 1, &approve).await, Ok(Performed::default()));
    assert_eq!((mutations(&fake).len(), fake.comments(id).len()), (1, 1));

    let unapprove = call(PROCESS, json!({"id": id.to_string(), "action": "unapprove"}));
    assert_eq!(perform(&*platform, 2, &unapprove).await, Ok(Performed::default()));
    assert_eq!(fake.status(id), "PENDING");
    let reject = call(PROCESS, json!({"expense_id": format!(" {id} "), "decision": "Reject"}));
    assert_eq!(perform(&*platform, 3, &reject).await, Ok(Performed::default()));
    assert_eq!(fake.status(id), "REJECTED");
    let actions: Vec<_> = mutations(&fake).into_iter().map(|v| v["action"].clone()).collect();
    assert_eq!(actions, [json!("APPROVE"), json!("UNAPPROVE"), json!("REJECT")]);
    assert_eq!(mutations(&fake)[1]["message"], json!(null));
}

#[tokio::test]
async fn paying_needs_the_policy_to_say_so() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    fake.approve(id, ADMIN);
    let platform = connect(&fake, HOST_ADMIN_TOKEN).await.platform();
    let before = fake.requests().len();
    let refused = perform(&*platform, 1, &call(PROCESS, json!({"expense_id": id, "decision": "pay"}))).await;
    assert_eq!(
        refused,
        Err(PlatformError::Permanent("paying an expense is not allowed unless the policy says pay = true".into()))
    );
    assert_eq!(fake.requests().len(), before, "nothing asked");
    let pay = call(PROCESS, json!({"expense_id": id, "decision": "PAY", "pay": true}));
    assert_eq!(perform(&*platform, 2, &pay).await, Ok(Performed::default()));
    assert_eq!(fake.status(id), "PAID");
}

#[tokio::test]
async fn another_collectives_expense_is_never_touched() {
    let fake = FakeOpenCollective::start().await;
    // A host admin's token could act on every hosted collective: the check is Polity's own.
    let platform = connect(&fake, HOST_ADMIN_TOKEN).await.platform();
    let theirs = fake.submit_expense(OTHER_COLLECTIVE, MEMBER, "Driftwood's", 500, "USD");
    for effect in [
        call(PROCESS, json!({"expense_id": theirs, "decision": "APPROVE"})),
        call(COMMENT, json!({"expense_id": theirs, "text": "hello"})),
    ] {
        let Err(PlatformError::Permanent(why)) = perform(&*platform, 1, &effect).await else { panic!("done") };
        assert!(why.contains("is not tidepool's"), "{why}");
    }
    assert_eq!(fake.status(theirs), "PENDING");
    assert!(fake.comments(theirs).is_empty());
    assert!(mutations(&fake).is_empty());
    let missing = perform(&*platform, 2, &call(PROCESS, json!({"expense_id": 424_242, "decision": "APPROVE"}))).await;
    assert_eq!(missing, Err(PlatformError::Permanent("Open Collective has no expense 424242".into())));
}

#[tokio::test]
async fn a_community_that_does_not_govern_the_collective_can_do_nothing() {
    let fake = FakeOpenCollective::start().await;
    let connected = connect(&fake, ADMIN_TOKEN).await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let before = fake.requests().len();
    for spaces in [vec![], vec![OTHER_COLLECTIVE.to_string()]] {
        let platform = connected.connection.scopes().platform(&spaces);
        let done = perform(&*platform, 1, &call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}))).await;
        assert!(matches!(done, Err(PlatformError::Permanent(why)) if why.contains("not governed by this community")));
    }
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn the_apis_refusals_and_limits_are_mapped() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let approve = call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}));
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();

    fake.fail_next(Failure::RateLimited { retry_after: "7".into() });
    assert_eq!(
        perform(&*platform, 1, &approve).await,
        Err(PlatformError::RateLimited { retry_after: Some(Duration::from_secs(7)) })
    );
    fake.fail_next(Failure::ServerError);
    assert!(matches!(perform(&*platform, 1, &approve).await, Err(PlatformError::Transient(_))));

    // A member's token: Open Collective forbids it.
    let member = connect(&fake, MEMBER_TOKEN).await.platform();
    let Err(PlatformError::Permanent(why)) = perform(&*member, 1, &approve).await else { panic!("done") };
    assert!(why.contains("refused to approve expense") && why.contains("forbidden"), "{why}");

    // 2FA on, and a token without advanced privileges.
    fake.require_2fa(ADMIN, false);
    let Err(PlatformError::Permanent(why)) = perform(&*platform, 1, &approve).await else { panic!("done") };
    assert!(why.contains("Advanced privileges"), "{why}");
    fake.require_2fa(ADMIN, true);
    assert_eq!(perform(&*platform, 1, &approve).await, Ok(Performed::default()));

    // The token revoked: its 401 body repeats it, the error does not.
    fake.change(|s| s.tokens.retain(|t| t.token != ADMIN_TOKEN));
    let unapprove = call(PROCESS, json!({"expense_id": id, "decision": "UNAPPROVE"}));
    let refused = perform(&*platform, 2, &unapprove).await;
    assert_eq!(refused, Err(PlatformError::Permanent("Open Collective refused the personal token".into())));
}

#[tokio::test]
async fn an_api_that_does_not_answer_in_time_is_transient() {
    let fake = FakeOpenCollective::start().await;
    let mut quick = config(&fake, ADMIN_TOKEN);
    quick["timeout_ms"] = json!(300);
    let platform = start_with(quick).await.platform();
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    fake.fail_next(Failure::Hang);
    let done = perform(&*platform, 1, &call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}))).await;
    assert!(matches!(&done, Err(PlatformError::Transient(why)) if why.contains("in time")), "{done:?}");
}

#[tokio::test]
async fn a_comment_is_posted_once_even_when_retried() {
    let fake = FakeOpenCollective::start().await;
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let comment =
        call(COMMENT, json!({"expense_id": id, "text": "Passed <3 to 1.\n\nDetails: https://x.example/?a=1&b=2"}));
    assert_eq!(perform(&*platform, 41, &comment).await, Ok(Performed::default()));
    assert_eq!(perform(&*platform, 41, &comment).await, Ok(Performed::default()), "a retry");
    let comments = fake.comments(id);
    assert_eq!(comments.len(), 1);
    assert_eq!(
        comments[0].html,
        "<p>Passed &lt;3 to 1.</p><p>Details: https://x.example/?a=1&amp;b=2</p><p><small>polity:41</small></p>"
    );
    assert_eq!(fake.count("PolityComment"), 1);
    // Another effect (key 4: not a prefix of 41's marker) comments again.
    let html = call(COMMENT, json!({"id": id, "html": "<p><strong>Done</strong></p>"}));
    assert_eq!(perform(&*platform, 4, &html).await, Ok(Performed::default()));
    assert_eq!(fake.comments(id)[1].html, "<p><strong>Done</strong></p><p><small>polity:4</small></p>");
    let empty = perform(&*platform, 5, &call(COMMENT, json!({"expense_id": id, "text": "  "}))).await;
    assert!(matches!(empty, Err(PlatformError::Permanent(why)) if why.contains("needs text")));
}

#[tokio::test]
async fn votes_and_other_effects_are_refused() {
    let fake = FakeOpenCollective::start().await;
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let before = fake.requests().len();
    let effects = [
        Effect::PostVote {
            proposal: ProposalId(1),
            place: Place::new("oc-main", COLLECTIVE),
            text: "Vote".into(),
            options: vec![],
        },
        Effect::Post { place: Place::new("oc-main", COLLECTIVE), text: "Hello".into() },
        Effect::Notify { account: AccountRef::new("oc-main", MEMBER), text: "Hello".into(), at: None },
    ];
    for effect in &effects {
        let Err(PlatformError::Permanent(why)) = perform(&*platform, 1, effect).await else { panic!("done") };
        assert!(why.starts_with("Open Collective holds no votes"), "{why}");
    }
    let unknown = perform(&*platform, 1, &call("opencollective.refund", json!({}))).await;
    assert!(matches!(unknown, Err(PlatformError::Permanent(why)) if why.contains("no action opencollective.refund")));
    let bad = perform(&*platform, 1, &call(PROCESS, json!({"expense_id": 1, "decision": "SPAM"}))).await;
    assert!(matches!(bad, Err(PlatformError::Permanent(why)) if why.contains("APPROVE, UNAPPROVE or REJECT")));
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn any_retry_after_is_read_without_panicking_and_capped_at_an_hour() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let approve = call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}));
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let hour = Some(Duration::from_secs(3600));
    let cases = [
        ("1e20", hour),
        ("inf", hour),
        ("86400", hour),
        ("0.25", Some(Duration::from_millis(250))),
        ("soon", None),
        ("", None),
        ("-3", None),
        ("NaN", None),
        ("Fri, 01 Jan 2100 00:00:00 GMT", hour),
        ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::ZERO)),
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
    ];
    for (retry_after, expected) in cases {
        fake.fail_next(Failure::RateLimited { retry_after: retry_after.into() });
        assert_eq!(
            perform(&*platform, 1, &approve).await,
            Err(PlatformError::RateLimited { retry_after: expected }),
            "Retry-After: {retry_after}"
        );
    }
    assert_eq!(perform(&*platform, 1, &approve).await, Ok(Performed::default()), "still working");
}

#[tokio::test]
async fn an_answer_over_4_mib_is_not_read() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let approve = call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}));
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let too_big = PlatformError::Permanent("Open Collective's answer is over 4 MiB".into());
    for chunked in [false, true] {
        fake.fail_next(Failure::Oversized { bytes: 4 * 1024 * 1024 + 1, chunked });
        assert_eq!(perform(&*platform, 1, &approve).await, Err(too_big.clone()), "chunked: {chunked}");
        fake.fail_next(Failure::Oversized { bytes: 64 * 1024 * 1024, chunked });
        assert_eq!(perform(&*platform, 1, &approve).await, Err(too_big.clone()), "chunked: {chunked}");
    }
    // Up to the cap it is read (an answer without the expense: there is none).
    fake.fail_next(Failure::Oversized { bytes: 4 * 1024 * 1024, chunked: true });
    let read = perform(&*platform, 1, &approve).await;
    assert_eq!(read, Err(PlatformError::Permanent(format!("Open Collective has no expense {id}"))));
    assert_eq!(perform(&*platform, 1, &approve).await, Ok(Performed::default()));
    assert_eq!(fake.status(id), "APPROVED");
}

#[tokio::test]
async fn no_message_built_from_an_answer_carries_the_token() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    // An API that repeats the token in what it answers (a proxy, a bug, a hostile server).
    fake.edit_expense(id, |e| e.status = format!("ON_HOLD_{ADMIN_TOKEN}"));
    let platform = connect(&fake, ADMIN_TOKEN).await.platform();
    let approve = call(PROCESS, json!({"expense_id": id, "decision": "APPROVE"}));
    let Err(PlatformError::Permanent(why)) = perform(&*platform, 1, &approve).await else { panic!("done") };
    assert!(why.contains("refused to approve expense"), "{why}");
    assert!(!why.contains(ADMIN_TOKEN), "{why}");
    assert!(why.contains("[token]"), "{why}");
    fake.change(|s| {
        for a in s.accounts.iter_mut().filter(|a| a.slug == ADMIN) {
            a.name = format!("Alice {ADMIN_TOKEN}");
        }
    });
    let tested = polity_opencollective::OpenCollectiveAdapter
        .test(config(&fake, ADMIN_TOKEN), crate::settings(&fake))
        .await
        .expect("tested");
    assert!(tested.contains("an admin of") && !tested.contains(ADMIN_TOKEN), "{tested}");
}
