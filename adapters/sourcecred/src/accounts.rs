//! `output/accounts.json` read into what lookups need: each identity's name, cred and grain,
//! and indexes to find one by name, id or alias in constant time. Pure: no IO, no clock.
//!
//! Only what is used is required (`accounts[].account.identity.{id,name}`, `.balance`,
//! `accounts[].totalCred`); every other key, of any version, is ignored. A document that
//! lacks one of those, or holds it with the wrong type, is refused as a whole, with the path
//! at fault: a partial read could give one member another's cred.

use polity_governance::ids::AccountRef;
use polity_governance::script::{CredRecord, MemberAccounts};
use serde_json::Value;
use std::collections::HashMap;

/// The largest `accounts.json` read (32 MiB); a bigger one is refused unread.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// Atto-grain in one grain: grain is stored with 18 decimals.
const ATTO: u128 = 1_000_000_000_000_000_000;

/// The platform name under which a member may link a SourceCred identity by name.
pub const PLATFORM: &str = "sourcecred";

/// Why a document is not a readable `accounts.json`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the document is larger than {} MiB", MAX_BODY / (1024 * 1024))]
    TooLarge,
    #[error("the document is not JSON: {0}")]
    NotJson(String),
    #[error("`{path}` is {found}, not {expected}")]
    Shape { path: String, expected: &'static str, found: &'static str },
    #[error("`{path}` is missing")]
    Missing { path: String },
    #[error("`{path}` is \"{value}\", not a whole number of atto-grain")]
    Balance { path: String, value: String },
}

/// One identity of the instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// SourceCred's id for it (a base64url UUID), stable across renames.
    pub id: String,
    /// Its name (`[A-Za-z0-9-]+`, unique regardless of case).
    pub name: String,
    /// `USER`, `BOT`, `PROJECT` or `ORGANIZATION` (empty when the document says none).
    pub subtype: String,
    /// `totalCred`.
    pub cred: f64,
    /// `balance`, in grain.
    pub grain: f64,
}

/// A read of `accounts.json`, indexed.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    identities: Vec<Identity>,
    /// Lower-cased name -> identity.
    by_name: HashMap<String, usize>,
    /// Id -> identity.
    by_id: HashMap<String, usize>,
    /// `plugin\0account` (both lower-cased) -> identity, from the aliases.
    by_alias: HashMap<String, usize>,
    total: f64,
}

impl Accounts {
    /// Reads a document: the plain object SourceCred writes, or the same wrapped in a compat
    /// header (`[{"type": ..., "version": ...}, payload]`).
    ///
    /// # Errors
    /// [`ReadError`]: too large, not JSON, or a required key missing or of the wrong type.
    pub fn parse(body: &[u8]) -> Result<Self, ReadError> {
        if body.len() > MAX_BODY {
            return Err(ReadError::TooLarge);
        }
        let doc: Value = serde_json::from_slice(body).map_err(|e| ReadError::NotJson(e.to_string()))?;
        let payload = unwrap_compat(&doc)?;
        let accounts = array(get(payload, "", "accounts")?, "accounts")?;
        let mut read = Self::default();
        for (i, entry) in accounts.iter().enumerate() {
            let path = format!("accounts[{i}]");
            let (identity, aliases) = identity(entry, &path)?;
            read.add(identity, &aliases);
        }
        Ok(read)
    }

    fn add(&mut self, identity: Identity, aliases: &[String]) {
        let at = self.identities.len();
        self.total += identity.cred;
        // Names are unique regardless of case and ids are unique in a ledger: should a
        // document repeat one anyway, the first holds it.
        self.by_name.entry(identity.name.to_lowercase()).or_insert(at);
        self.by_id.entry(identity.id.clone()).or_insert(at);
        for address in aliases {
            if let Some((plugin, account)) = alias_parts(address) {
                self.by_alias.entry(alias_key(plugin, account)).or_insert(at);
            }
        }
        self.identities.push(identity);
    }

    /// How many identities it holds.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Every identity, in the document's order.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// The cred of every identity together (unclaimed aliases left out).
    pub fn total(&self) -> f64 {
        self.total
    }

    /// The identity named `name`, regardless of case.
    pub fn by_name(&self, name: &str) -> Option<&Identity> {
        self.by_name.get(&name.to_lowercase()).map(|&i| &self.identities[i])
    }

    /// The identity with an alias of `plugin` (`discord`, `github`, `discourse`) for
    /// `account` (a Discord user id, a GitHub login, a Discourse username), regardless of case.
    pub fn by_alias(&self, plugin: &str, account: &str) -> Option<&Identity> {
        self.by_alias.get(&alias_key(plugin, account)).map(|&i| &self.identities[i])
    }

    /// What the instance says of `member`, on the connection named `connection` of the
    /// instance at `host`. The first of these that matches is theirs:
    /// 1. a linked account on `connection` (or on `sourcecred`) naming an identity by name
    ///    (regardless of case) or id;
    /// 2. a linked account that is an identity's alias: the alias's plugin is the account's
    ///    platform ([`plugin_of`]) and its last part is the account's id (regardless of case);
    /// 3. the member's own name, as SourceCred makes names ([`coerce_name`]), regardless of case.
    ///
    /// A member none matches has no cred, and a reason they can act on.
    pub fn find(&self, member: &MemberAccounts, connection: &str, host: &str) -> CredRecord {
        let found = self
            .by_own_account(&member.accounts, connection)
            .or_else(|| member.accounts.iter().find_map(|a| self.by_alias(plugin_of(a.platform.as_str()), &a.account)))
            .or_else(|| self.by_name(&coerce_name(&member.name)));
        match found {
            Some(identity) => CredRecord {
                cred: identity.cred,
                grain: identity.grain,
                identity: Some(identity.name.clone()),
                reason: None,
            },
            None => CredRecord::unknown(unknown_reason(member, connection, host)),
        }
    }

    fn by_own_account(&self, accounts: &[AccountRef], connection: &str) -> Option<&Identity> {
        accounts
            .iter()
            .filter(|a| a.platform.as_str() == connection || a.platform.as_str() == PLATFORM)
            .find_map(|a| self.by_name(&a.account).or_else(|| self.by_id.get(&a.account).map(|&i| &self.identities[i])))
    }
}

/// Why `member` is unknown, and what they can do about it.
fn unknown_reason(member: &MemberAccounts, connection: &str, host: &str) -> String {
    let name = &member.name;
    let (own, elsewhere): (Vec<&AccountRef>, Vec<&AccountRef>) =
        member.accounts.iter().partition(|a| a.platform.as_str() == connection || a.platform.as_str() == PLATFORM);
    let mut names = vec![name.clone()];
    names.extend(own.iter().map(|a| a.account.clone()).filter(|a| !a.eq_ignore_ascii_case(name)));
    let accounts = if elsewhere.is_empty() {
        format!("{name} has no linked account it could know")
    } else {
        let listed: Vec<String> = elsewhere.iter().map(|a| format!("{} {}", a.platform, a.account)).collect();
        format!("none of {name}'s linked accounts ({}) is one of its aliases", listed.join(", "))
    };
    format!(
        "SourceCred at {host} knows no identity named {}, and {accounts}: link the Discord or GitHub account SourceCred knows {name} by with /link",
        names.join(" or ")
    )
}

/// The SourceCred plugin whose aliases an account of the connection `platform` matches:
/// the platform itself (`discord`, `github`, `discourse`), or the part of a connection's
/// name before its first `-`, `_`, `.` or `:` (`discord-eng` is a Discord connection).
pub fn plugin_of(platform: &str) -> &str {
    platform.split(['-', '_', '.', ':']).next().unwrap_or(platform)
}

/// A member's name as SourceCred makes identity names from platform names: every character
/// other than `A-Z`, `a-z`, `0-9` and `-` becomes `-` (`Owi_Sixseven` is `Owi-Sixseven`).
pub fn coerce_name(name: &str) -> String {
    name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

fn alias_key(plugin: &str, account: &str) -> String {
    format!("{}\0{}", plugin.to_lowercase(), account.to_lowercase())
}

/// An alias address's plugin and account: `N\0sourcecred\0discord\0MEMBER\0user\0<id>\0` is
/// (`discord`, `<id>`), `N\0sourcecred\0github\0USERLIKE\0USER\0<login>\0` is (`github`,
/// `<login>`). `None` for what is not a node address of at least three parts, and for the
/// `core` plugin's (another identity's, after a merge).
pub fn alias_parts(address: &str) -> Option<(&str, &str)> {
    let mut parts = address.split('\0');
    if parts.next()? != "N" {
        return None;
    }
    let parts: Vec<&str> = parts.collect();
    let plugin = *parts.get(1)?;
    let account = *parts.iter().skip(2).rev().find(|p| !p.is_empty())?;
    if plugin.is_empty() || plugin == "core" {
        return None;
    }
    Some((plugin, account))
}

/// The payload of a document that may carry a compat header.
fn unwrap_compat(doc: &Value) -> Result<&Value, ReadError> {
    match doc {
        Value::Array(items) => match items.as_slice() {
            [Value::Object(header), payload] if header.contains_key("type") => Ok(payload),
            _ => Err(ReadError::Shape {
                path: "(the document)".into(),
                expected: "an object, or a compat header and an object",
                found: "another array",
            }),
        },
        other => Ok(other),
    }
}

/// One entry of `accounts`: its identity and its aliases' addresses.
fn identity(entry: &Value, path: &str) -> Result<(Identity, Vec<String>), ReadError> {
    let account = get(entry, path, "account")?;
    let account_path = format!("{path}.account");
    let identity = get(account, &account_path, "identity")?;
    let identity_path = format!("{account_path}.identity");
    let id = string(get(identity, &identity_path, "id")?, &format!("{identity_path}.id"))?;
    let name_path = format!("{identity_path}.name");
    let name = string(get(identity, &identity_path, "name")?, &name_path)?;
    if name.is_empty() {
        return Err(ReadError::Shape { path: name_path, expected: "a name", found: "empty" });
    }
    let subtype = match identity.get("subtype") {
        None | Some(Value::Null) => "",
        Some(v) => string(v, &format!("{identity_path}.subtype"))?,
    };
    let aliases = match identity.get("aliases") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            let aliases_path = format!("{identity_path}.aliases");
            let mut addresses = Vec::new();
            for (j, alias) in array(v, &aliases_path)?.iter().enumerate() {
                let alias_path = format!("{aliases_path}[{j}]");
                addresses
                    .push(string(get(alias, &alias_path, "address")?, &format!("{alias_path}.address"))?.to_owned());
            }
            addresses
        }
    };
    let balance_path = format!("{account_path}.balance");
    let grain = grain(string(get(account, &account_path, "balance")?, &balance_path)?, &balance_path)?;
    let cred_path = format!("{path}.totalCred");
    let cred = get(entry, path, "totalCred")?
        .as_f64()
        .ok_or_else(|| shape(&cred_path, "a number", entry.get("totalCred").unwrap_or(&Value::Null)))?;
    Ok((Identity { id: id.to_owned(), name: name.to_owned(), subtype: subtype.to_owned(), cred, grain }, aliases))
}

/// Grain from atto-grain: a base-10 integer in a string, maybe negative, read exactly and
/// converted once.
fn grain(value: &str, path: &str) -> Result<f64, ReadError> {
    let bad = || ReadError::Balance { path: path.to_owned(), value: value.chars().take(64).collect() };
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let atto: u128 = digits.parse().map_err(|_| bad())?;
    let grain = (atto / ATTO) as f64 + (atto % ATTO) as f64 / ATTO as f64;
    Ok(if negative { -grain } else { grain })
}

fn get<'a>(value: &'a Value, path: &str, key: &str) -> Result<&'a Value, ReadError> {
    let here = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(map) => map.get(key).ok_or(ReadError::Missing { path: here }),
        other => Err(shape(if path.is_empty() { "(the document)" } else { path }, "an object", other)),
    }
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, ReadError> {
    value.as_str().ok_or_else(|| shape(path, "a string", value))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], ReadError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| shape(path, "an array", value))
}

fn shape(path: &str, expected: &'static str, found: &Value) -> ReadError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ReadError::Shape { path: path.to_owned(), expected, found }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polity_governance::ids::MemberId;
    use serde_json::json;

    /// The research fixture: v0.11's shape, keys sorted, with an unclaimed alias.
    const FIXTURE: &str = r#"{"accounts":[{"account":{"active":true,"allocationHistory":[{"allocationId":"Vj3kQm1xT0uFz9aBcD2eFg","credTimestampMs":1610236800000,"grainReceipt":{"amount":"20000000000000000000","id":"KmNyCR61kjONlv6KxoQPyQ"}}],"balance":"12500000000000000000","identity":{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000KmNyCR61kjONlv6KxoQPyQ\u0000","aliases":[{"address":"N\u0000sourcecred\u0000discord\u0000MEMBER\u0000user\u0000124564013970358272\u0000","description":"discord/Ian#0001"}],"id":"KmNyCR61kjONlv6KxoQPyQ","name":"Ian","subtype":"USER"},"mergedIdentityIds":["KmNyCR61kjONlv6KxoQPyQ"],"paid":"20000000000000000000","payoutAddresses":{}},"cred":[0.5,1.25,2],"totalCred":3.75},{"account":{"active":false,"allocationHistory":[],"balance":"0","identity":{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000ilGTQVoyODdkm0fQauDNJg\u0000","aliases":[{"address":"N\u0000sourcecred\u0000github\u0000USERLIKE\u0000USER\u0000CamiloTD\u0000","description":"github/[@CamiloTD](https://github.com/CamiloTD)"},{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000zas6rwnB7pwvIBf1YHbRqA\u0000","description":"identity @CamiloTD-github (id: zas6rwnB7pwvIBf1YHbRqA)"}],"id":"ilGTQVoyODdkm0fQauDNJg","name":"CamiloTD","subtype":"USER"},"mergedIdentityIds":["ilGTQVoyODdkm0fQauDNJg","zas6rwnB7pwvIBf1YHbRqA"],"paid":"0","payoutAddresses":{}},"cred":[0,4,8.5],"totalCred":12.5},{"account":{"active":false,"allocationHistory":[],"balance":"0","identity":{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000l8oIazNuabsV25wFmO51nQ\u0000","aliases":[{"address":"N\u0000sourcecred\u0000github\u0000USERLIKE\u0000BOT\u0000dependabot\u0000","description":"github/[@dependabot](https://github.com/dependabot)"}],"id":"l8oIazNuabsV25wFmO51nQ","name":"sourcecred-bot","subtype":"BOT"},"mergedIdentityIds":["l8oIazNuabsV25wFmO51nQ"],"paid":"0","payoutAddresses":{}},"cred":[0.25,0,0],"totalCred":0.25}],"intervals":[{"endTimeMs":1610236800000,"startTimeMs":1609632000000},{"endTimeMs":1610841600000,"startTimeMs":1610236800000},{"endTimeMs":1611446400000,"startTimeMs":1610841600000}],"unclaimedAliases":[{"alias":{"address":"N\u0000sourcecred\u0000discord\u0000MEMBER\u0000user\u0000653638788026990593\u0000","description":"discord/cookies#4969"},"cred":[0,0,1],"totalCred":1}]}"#;

    fn member(name: &str, accounts: &[(&str, &str)]) -> MemberAccounts {
        MemberAccounts {
            id: MemberId(1),
            name: name.into(),
            accounts: accounts.iter().map(|(p, a)| AccountRef::new(*p, *a)).collect(),
        }
    }

    fn find(read: &Accounts, m: &MemberAccounts) -> CredRecord {
        read.find(m, "cred", "example.org")
    }

    #[test]
    fn reads_the_fixture_and_its_units() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        assert_eq!(read.len(), 3);
        assert!((read.total() - 16.5).abs() < 1e-9, "unclaimed aliases are not counted");
        let ian = read.by_name("ian").unwrap();
        assert_eq!((ian.cred, ian.grain, ian.subtype.as_str()), (3.75, 12.5, "USER"));
        assert_eq!(read.by_name("SOURCECRED-BOT").unwrap().subtype, "BOT");
    }

    #[test]
    fn matches_aliases_by_plugin_and_account() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        let ian = find(&read, &member("someone", &[("discord", "124564013970358272")]));
        assert_eq!(ian.identity.as_deref(), Some("Ian"));
        assert_eq!((ian.cred, ian.grain), (3.75, 12.5));
        // A connection of a community's own, named after its platform.
        let ian = find(&read, &member("someone", &[("discord-eng", "124564013970358272")]));
        assert_eq!(ian.identity.as_deref(), Some("Ian"));
        // GitHub logins regardless of case.
        let camilo = find(&read, &member("c", &[("github", "camilotd")]));
        assert_eq!(camilo.identity.as_deref(), Some("CamiloTD"));
        // The Discord id on GitHub is no alias; a merged identity's id is no account.
        assert!(find(&read, &member("x", &[("github", "124564013970358272")])).identity.is_none());
        assert!(find(&read, &member("x", &[("core", "zas6rwnB7pwvIBf1YHbRqA")])).identity.is_none());
        // An unclaimed alias is nobody's.
        assert!(find(&read, &member("x", &[("discord", "653638788026990593")])).identity.is_none());
    }

    #[test]
    fn the_order_is_own_account_then_alias_then_name() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        let m = member("Ian", &[("github", "CamiloTD"), ("cred", "sourcecred-BOT")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("sourcecred-bot"));
        let m = member("Ian", &[("github", "CamiloTD")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("CamiloTD"));
        let m = member("ian", &[("slack", "U1")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("Ian"));
        // By id, linked as a SourceCred account.
        let m = member("z", &[("sourcecred", "ilGTQVoyODdkm0fQauDNJg")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("CamiloTD"));
        // Names as SourceCred coerces them.
        let m = member("sourcecred_bot", &[]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("sourcecred-bot"));
    }

    #[test]
    fn an_unknown_member_is_told_why() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        let r = find(&read, &member("alice", &[("discord", "123"), ("cred", "Alicia")]));
        assert_eq!((r.cred, r.grain, r.identity), (0.0, 0.0, None));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "SourceCred at example.org knows no identity named alice or Alicia, and none of alice's linked accounts (discord 123) is one of its aliases: link the Discord or GitHub account SourceCred knows alice by with /link"
            )
        );
        let r = find(&read, &member("bob", &[]));
        assert!(r.reason.unwrap().contains("bob has no linked account it could know"));
    }

    #[test]
    fn accepts_a_compat_header_and_older_accounts() {
        let doc = json!([
            {"type": "sourcecred/credAccounts", "version": "0.1.0"},
            {"accounts": [{"account": {"balance": "197950000000000000000", "identity": {"id": "a", "name": "x"}}, "totalCred": 2}]}
        ]);
        let read = Accounts::parse(doc.to_string().as_bytes()).unwrap();
        let x = read.by_name("X").unwrap();
        assert_eq!((x.cred, x.grain, x.subtype.as_str()), (2.0, 197.95, ""));
    }

    #[test]
    fn grain_is_read_exactly() {
        assert_eq!(grain("0", "b"), Ok(0.0));
        assert_eq!(grain("1", "b"), Ok(1e-18));
        assert_eq!(grain("-2500000000000000000", "b"), Ok(-2.5));
        let most = grain("340282366920938463463374607431768211455", "b").unwrap();
        assert!((most / 340_282_366_920_938_463_463.374_6 - 1.0).abs() < 1e-12, "{most}");
        for bad in ["", "-", "1.5", "+1", "1e18", "340282366920938463463374607431768211456", " 1"] {
            assert!(matches!(grain(bad, "b"), Err(ReadError::Balance { .. })), "{bad:?}");
        }
    }

    #[test]
    fn alias_addresses() {
        assert_eq!(alias_parts("N\0sourcecred\0discord\0MEMBER\0user\x00123\0"), Some(("discord", "123")));
        assert_eq!(alias_parts("N\0sourcecred\0github\0USERLIKE\0BOT\0dependabot\0"), Some(("github", "dependabot")));
        assert_eq!(
            alias_parts("N\0sourcecred\0discourse\0user\0https://forum.example\0owi\0"),
            Some(("discourse", "owi"))
        );
        assert_eq!(alias_parts("N\0sourcecred\0discord\0MEMBER\0user\x00123"), Some(("discord", "123")));
        for bad in [
            "",
            "N",
            "N\0",
            "N\0sourcecred\0",
            "N\0sourcecred\0discord\0",
            "X\0sourcecred\0discord\0a\0",
            "N\0sourcecred\0core\0IDENTITY\0x\0",
        ] {
            assert_eq!(alias_parts(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hostile_documents_are_refused_with_the_path() {
        let cases: &[(&str, &str)] = &[
            ("", "not JSON"),
            ("[1, 2]", "`(the document)` is another array"),
            ("\"hi\"", "`(the document)` is a string, not an object"),
            ("{}", "`accounts` is missing"),
            (r#"{"accounts": {}}"#, "`accounts` is an object, not an array"),
            (r#"{"accounts": [1]}"#, "`accounts[0]` is a number, not an object"),
            (r#"{"accounts": [{"account": {}}]}"#, "`accounts[0].account.identity` is missing"),
            (
                r#"{"accounts": [{"account": {"identity": {"id": 1, "name": "a"}}}]}"#,
                "`accounts[0].account.identity.id` is a number, not a string",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": ""}}}]}"#,
                "`accounts[0].account.identity.name` is empty",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a", "aliases": [{}]}}}]}"#,
                "`accounts[0].account.identity.aliases[0].address` is missing",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": 5}}]}"#,
                "`accounts[0].account.balance` is a number, not a string",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": "x"}}]}"#,
                "`accounts[0].account.balance` is \"x\", not a whole number",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": "1"}, "totalCred": "3"}]}"#,
                "`accounts[0].totalCred` is a string, not a number",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": "1"}}]}"#,
                "`accounts[0].totalCred` is missing",
            ),
            (&format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)), "not JSON"),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": "1"}, "totalCred": 1e999}]}"#,
                "not JSON",
            ),
        ];
        for (doc, says) in cases {
            let e = Accounts::parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(says), "{doc:.80}: {e}");
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(Accounts::parse(&big).unwrap_err(), ReadError::TooLarge);
    }

    #[test]
    fn repeated_names_and_aliases_keep_the_first() {
        let doc = json!({"accounts": [
            {"account": {"balance": "0", "identity": {"id": "1", "name": "Ann", "aliases": [{"address": "N\u{0}sourcecred\u{0}discord\u{0}MEMBER\u{0}user\u{0}7\u{0}"}]}}, "totalCred": 1},
            {"account": {"balance": "0", "identity": {"id": "2", "name": "ann", "aliases": [{"address": "N\u{0}sourcecred\u{0}discord\u{0}MEMBER\u{0}user\u{0}7\u{0}"}]}}, "totalCred": 2},
        ]});
        let read = Accounts::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(read.by_name("ANN").unwrap().id, "1");
        assert_eq!(read.by_alias("discord", "7").unwrap().id, "1");
        assert_eq!(read.total(), 3.0);
    }
}
