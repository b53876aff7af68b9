//! `check`: the configuration read with its own type, mistakes named by key.

use polity_port::{Adapter, AdapterError};
use polity_sourcecred::SourceCredAdapter;
use serde_json::json;

#[test]
fn check_refuses_unknown_keys_and_bad_addresses() {
    let adapter = SourceCredAdapter;
    adapter.check(&json!({ "url": "https://openfoobar.github.io/cred" })).unwrap();
    adapter
        .check(&json!({ "url": "https://openfoobar.github.io/cred", "refresh_secs": 600, "stale_after_secs": 7200, "timeout_ms": 5000 }))
        .unwrap();
    let refused = |config| match adapter.check(&config) {
        Err(AdapterError::Config(why)) => why,
        other => panic!("{config} was not refused: {other:?}"),
    };
    assert!(refused(json!({ "url": "https://x.org", "token": "t" })).contains("unknown field `token`"));
    assert!(refused(json!({ "url": "not a url" })).contains("url `not a url` is not an address"));
    assert!(refused(json!({ "url": "file:///etc/passwd" })).contains("is not an http(s) address"));
    assert!(refused(json!({ "refresh_secs": 300 })).contains("missing field `url`"));
    assert!(refused(json!({ "url": "https://x.org", "refresh_secs": 10 })).contains("refresh_secs is 10"));
}
