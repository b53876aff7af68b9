//! A large `accounts.json` is read in little more memory than its identities take: the
//! `cred` arrays and `allocationHistory` that make most of its size are skipped unread, never
//! built into values (a `serde_json::Value` of such a document is several times its size).
//!
//! Measured as the process's peak resident memory (`VmHWM`), so in a binary of its own with
//! this one test: Linux only.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_sourcecred::Accounts;
use polity_sourcecred::accounts::MAX_BODY;
use std::fmt::Write;

/// The process's peak resident memory, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// `identities` accounts of SourceCred's shape, each with `weeks` weeks of cred and as many
/// allocations, in one line.
fn document(identities: usize, weeks: usize) -> String {
    let mut doc = String::with_capacity(identities * weeks * 6 + identities * 1024);
    doc.push_str(r#"{"accounts":["#);
    for i in 0..identities {
        if i > 0 {
            doc.push(',');
        }
        write!(
            doc,
            r#"{{"account":{{"active":true,"allocationHistory":[{{"allocationId":"a{i}","credTimestampMs":1610236800000,"grainReceipt":{{"amount":"1","id":"i{i}"}}}}],"balance":"{i}000000000000000000","identity":{{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000i{i}\u0000","aliases":[{{"address":"N\u0000sourcecred\u0000discord\u0000MEMBER\u0000user\u0000{i}\u0000","description":"discord/u{i}#0001"}}],"id":"i{i}","name":"u{i}","subtype":"USER"}},"mergedIdentityIds":["i{i}"],"paid":"0","payoutAddresses":{{}}}},"cred":["#
        )
        .unwrap();
        for w in 0..weeks {
            doc.push_str(if w == 0 { "1.5" } else { ",1.5" });
        }
        write!(doc, r#"],"totalCred":{}}}"#, 1.5 * weeks as f64).unwrap();
    }
    doc.push_str(r#"],"intervals":[],"unclaimedAliases":[]}"#);
    doc
}

#[test]
fn a_large_document_is_read_without_building_what_it_does_not_use() {
    let doc = document(2_000, 3_000);
    assert!(doc.len() > 20 * 1024 * 1024 && doc.len() <= MAX_BODY, "{}", doc.len());
    let before = peak_kib();
    let read = Accounts::parse(doc.as_bytes()).unwrap();
    let grown = peak_kib().saturating_sub(before);
    assert_eq!(read.len(), 2_000);
    assert_eq!(read.by_alias("discord", "1999").map(|i| (i.cred, i.grain)), Some((4500.0, 1999.0)));
    // Its 6 million cred values as JSON values would take some 200 MiB; read, the
    // identities take well under one.
    assert!(grown < 16 * 1024, "reading {} MiB raised the peak by {} MiB", doc.len() >> 20, grown >> 10);
}
