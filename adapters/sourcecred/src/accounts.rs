//! `output/accounts.json` read into what lookups need: each identity's name, cred and grain,
//! and indexes to find one by name, id or alias in constant time. Pure: no IO, no clock.
//!
//! Only what is used is read, into typed values (`accounts[].account.identity.{id,name}`,
//! `.subtype`, `.aliases[].address`, `.balance`, `accounts[].totalCred`); every other key,
//! of any version, is skipped unread ([`IgnoredAny`]: the `cred` arrays, `allocationHistory`,
//! `intervals`, `unclaimedAliases` take no memory), so a read holds little more than the
//! identities. A document that lacks a required value, or holds it with the wrong type, is
//! refused as a whole, with the path at fault: a partial read could give one member
//! another's cred. A document that is not JSON is said so before any value at fault.

use polity_governance::ids::AccountRef;
use polity_governance::script::{CredRecord, MemberAccounts};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

/// The largest `accounts.json` read (32 MiB); a bigger one is refused unread.
pub const MAX_BODY: usize = 32 * 1024 * 1024;

/// Atto-grain in one grain: grain is stored with 18 decimals.
const ATTO: u128 = 1_000_000_000_000_000_000;

/// The platform of an account that names a SourceCred identity (by name or id): one made
/// on a SourceCred connection, by whoever runs the community, never chosen by the member.
pub const PLATFORM: &str = "sourcecred";

/// Why a document is not a readable `accounts.json`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the document is larger than {} MiB", MAX_BODY / (1024 * 1024))]
    TooLarge,
    #[error("the document is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not one SourceCred writes (a key twice in one object).
    #[error("the document cannot be read: {0}")]
    Invalid(String),
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
    /// `platform\0account` (the account lower-cased) -> identity, from the aliases
    /// [`alias_parts`] reads.
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
        let doc: Slot<Document> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() { ReadError::Invalid(e.to_string()) } else { ReadError::NotJson(e.to_string()) }
        })?;
        let payload = match doc.required("(the document)")? {
            Document::Object(payload) => payload,
            Document::Compat(payload) => payload.required("(the document)")?,
            Document::OtherArray => {
                return Err(ReadError::Shape {
                    path: "(the document)".into(),
                    expected: "an object, or a compat header and an object",
                    found: "another array",
                });
            }
        };
        let mut read = Self::default();
        for (i, entry) in payload.accounts.required("accounts")?.into_iter().enumerate() {
            let (identity, aliases) = identity(entry, &format!("accounts[{i}]"))?;
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
            if let Some((platform, account)) = alias_parts(address) {
                self.by_alias.entry(alias_key(platform, account)).or_insert(at);
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

    /// The identity with the id `id`, exactly.
    pub fn by_id(&self, id: &str) -> Option<&Identity> {
        self.by_id.get(id).map(|&i| &self.identities[i])
    }

    /// The identity with an alias for the account `account` of the platform `platform`,
    /// exactly as the host names platforms (`discord`: a Discord user id; `github`: a
    /// GitHub login, regardless of case). Discourse accounts are never matched: see
    /// [`alias_parts`].
    pub fn by_alias(&self, platform: &str, account: &str) -> Option<&Identity> {
        if !ALIASED.contains(&platform) {
            return None;
        }
        self.by_alias.get(&alias_key(platform, account)).map(|&i| &self.identities[i])
    }

    /// What the instance at `host` says of `member`. The first of these that matches is
    /// theirs:
    /// 1. a linked account of the platform `sourcecred` (made by whoever runs the community)
    ///    naming an identity by name (regardless of case) or id;
    /// 2. a linked account that is an identity's alias: the alias's plugin is the account's
    ///    platform, exactly, and the alias's account is the account's id ([`alias_parts`]);
    /// 3. only when `match_names`: the member's own name, as SourceCred makes names
    ///    ([`coerce_name`]), regardless of case. Members choose their names (a platform's
    ///    display name), so this is for communities whose admins choose them.
    ///
    /// A member none matches has no cred, and a reason saying how to become known.
    pub fn find(&self, member: &MemberAccounts, host: &str, match_names: bool) -> CredRecord {
        let found = self
            .by_own_account(&member.accounts)
            .or_else(|| member.accounts.iter().find_map(|a| self.by_alias(a.platform.as_str(), &a.account)))
            .or_else(|| if match_names { self.by_name(&coerce_name(&member.name)) } else { None });
        match found {
            Some(identity) => CredRecord {
                cred: identity.cred,
                grain: identity.grain,
                identity: Some(identity.name.clone()),
                reason: None,
            },
            None => CredRecord::unknown(unknown_reason(member, host, match_names)),
        }
    }

    fn by_own_account(&self, accounts: &[AccountRef]) -> Option<&Identity> {
        accounts
            .iter()
            .filter(|a| a.platform.as_str() == PLATFORM)
            .find_map(|a| self.by_name(&a.account).or_else(|| self.by_id(&a.account)))
    }
}

/// The platforms whose accounts an alias can be: those [`alias_parts`] reads.
const ALIASED: [&str; 2] = ["discord", "github"];

/// Why `member` is unknown, and what makes them known.
fn unknown_reason(member: &MemberAccounts, host: &str, match_names: bool) -> String {
    let name = &member.name;
    let listed = |platforms: &[&str]| -> Vec<String> {
        member
            .accounts
            .iter()
            .filter(|a| platforms.contains(&a.platform.as_str()))
            .map(|a| format!("{} {}", a.platform, a.account))
            .collect()
    };
    let aliased = listed(&ALIASED);
    let own: Vec<&str> =
        member.accounts.iter().filter(|a| a.platform.as_str() == PLATFORM).map(|a| a.account.as_str()).collect();
    let mut lacks = Vec::new();
    if !aliased.is_empty() {
        lacks.push(format!("with an alias for any of {name}'s linked accounts ({})", aliased.join(", ")));
    }
    if !own.is_empty() {
        lacks.push(format!("named or with the id {}", own.join(" or ")));
    }
    if match_names {
        lacks.push(format!("named {}", coerce_name(name)));
    }
    let mut reason = if lacks.is_empty() {
        format!("SourceCred at {host} cannot know {name}, who has no linked Discord or GitHub account")
    } else {
        let mut reason = format!("SourceCred at {host} has no identity {}", lacks.join(", nor one "));
        if aliased.is_empty() {
            reason.push_str(&format!(", and {name} has no linked Discord or GitHub account"));
        }
        reason
    };
    let forums = listed(&["discourse"]);
    if !forums.is_empty() {
        reason.push_str(&format!(
            " ({} {} not matched: SourceCred's Discourse aliases name their forum, and linked accounts do not)",
            forums.join(", "),
            if forums.len() == 1 { "is" } else { "are" },
        ));
    }
    if aliased.is_empty() {
        reason.push_str(&format!(": link the one SourceCred knows {name} by with /link"));
    } else {
        reason.push_str(": its operator adds the alias to their identity in the ledger");
    }
    reason
}

/// A member's name as SourceCred makes identity names from platform names: every character
/// other than `A-Z`, `a-z`, `0-9` and `-` becomes `-` (`Owi_Sixseven` is `Owi-Sixseven`).
pub fn coerce_name(name: &str) -> String {
    name.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect()
}

fn alias_key(platform: &str, account: &str) -> String {
    format!("{platform}\0{}", account.to_lowercase())
}

/// The platform and account of an alias address, for the platforms an account is matched
/// on, each as SourceCred's own plugin writes its users:
/// - `N\0sourcecred\0discord\0MEMBER\0user\0<id>\0` (or `bot`) is (`discord`, `<id>`);
/// - `N\0sourcecred\0github\0USERLIKE\0USER\0<login>\0` (or `BOT`) is (`github`, `<login>`).
///
/// `None` for every other address: another plugin's, another node of these plugins' (a
/// GitHub repository's last part may be anybody's login), the `core` plugin's (another
/// identity's, after a merge), and Discourse's (`N\0sourcecred\0discourse\0user\0<forum
/// url>\0<username>\0`): a Discourse username is only unique within its forum, and an
/// account the host links names no forum, so matching it could give one forum's user
/// another's cred. The trailing NUL may be missing.
pub fn alias_parts(address: &str) -> Option<(&'static str, &str)> {
    let parts = address.strip_prefix("N\0")?;
    let parts: Vec<&str> = parts.strip_suffix('\0').unwrap_or(parts).split('\0').collect();
    match parts.as_slice() {
        ["sourcecred", "discord", "MEMBER", "user" | "bot", id] if !id.is_empty() => Some(("discord", id)),
        ["sourcecred", "github", "USERLIKE", "USER" | "BOT", login] if !login.is_empty() => Some(("github", login)),
        _ => None,
    }
}

/// One entry of `accounts`, checked: its identity and its aliases' addresses.
fn identity(entry: Slot<Entry>, path: &str) -> Result<(Identity, Vec<String>), ReadError> {
    let entry = entry.required(path)?;
    let account_path = format!("{path}.account");
    let account = entry.account.required(&account_path)?;
    let identity_path = format!("{account_path}.identity");
    let identity = account.identity.required(&identity_path)?;
    let id = identity.id.required(&format!("{identity_path}.id"))?;
    let name_path = format!("{identity_path}.name");
    let name = identity.name.required(&name_path)?;
    if name.is_empty() {
        return Err(ReadError::Shape { path: name_path, expected: "a name", found: "empty" });
    }
    let subtype = identity.subtype.optional(&format!("{identity_path}.subtype"))?.unwrap_or_default();
    let aliases_path = format!("{identity_path}.aliases");
    let mut addresses = Vec::new();
    for (j, alias) in identity.aliases.optional(&aliases_path)?.unwrap_or_default().into_iter().enumerate() {
        let alias_path = format!("{aliases_path}[{j}]");
        addresses.push(alias.required(&alias_path)?.address.required(&format!("{alias_path}.address"))?);
    }
    let balance_path = format!("{account_path}.balance");
    let grain = grain(&account.balance.required(&balance_path)?, &balance_path)?;
    let cred = entry.total_cred.required(&format!("{path}.totalCred"))?;
    Ok((Identity { id, name, subtype, cred, grain }, addresses))
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

// ---------------------------------------------------------------------------------------------
// The document's typed shape: only what is used, every value read into a [`Slot`] that
// records a wrong type instead of failing, so the path at fault is known when it is checked.
// ---------------------------------------------------------------------------------------------

/// A value the reader wants, as the document holds it: absent, of another type (which), or
/// read. Reading into one fails only on what is not JSON.
#[derive(Debug, Default)]
enum Slot<T> {
    #[default]
    Missing,
    /// Of another JSON type: `null`, `a boolean`, `a number`, `a string`, `an array` or
    /// `an object`.
    Wrong(&'static str),
    Is(T),
}

impl<T: Shape> Slot<T> {
    /// The value, or why there is none at `path`.
    fn required(self, path: &str) -> Result<T, ReadError> {
        match self {
            Self::Is(value) => Ok(value),
            Self::Missing => Err(ReadError::Missing { path: path.to_owned() }),
            Self::Wrong(found) => Err(ReadError::Shape { path: path.to_owned(), expected: T::EXPECTED, found }),
        }
    }

    /// The value, if there is one (`null` is none), or why the one at `path` is wrong.
    fn optional(self, path: &str) -> Result<Option<T>, ReadError> {
        match self {
            Self::Missing | Self::Wrong("null") => Ok(None),
            other => other.required(path).map(Some),
        }
    }
}

/// What a [`Slot`] of a type takes, and what it skips: each method is a JSON type, `None`
/// (after skipping what it holds) when the type is not that.
trait Shape: Sized {
    /// How errors name the type (`a string`).
    const EXPECTED: &'static str;

    fn string(_value: &str) -> Option<Self> {
        None
    }

    fn number(_value: f64) -> Option<Self> {
        None
    }

    fn array<'de, A: SeqAccess<'de>>(mut items: A) -> Result<Option<Self>, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn object<'de, A: MapAccess<'de>>(mut entries: A) -> Result<Option<Self>, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Shape for String {
    const EXPECTED: &'static str = "a string";

    fn string(value: &str) -> Option<Self> {
        Some(value.to_owned())
    }
}

impl Shape for f64 {
    const EXPECTED: &'static str = "a number";

    fn number(value: f64) -> Option<Self> {
        Some(value)
    }
}

impl<T: Shape> Shape for Vec<Slot<T>> {
    const EXPECTED: &'static str = "an array";

    fn array<'de, A: SeqAccess<'de>>(mut items: A) -> Result<Option<Self>, A::Error> {
        let mut read = Vec::with_capacity(items.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = items.next_element::<Slot<T>>()? {
            read.push(item);
        }
        Ok(Some(read))
    }
}

/// An object of the document: its keys read by its derived `Deserialize` (unknown ones
/// skipped, as [`IgnoredAny`]).
macro_rules! object {
    ($($type:ty),*) => {$(
        impl Shape for $type {
            const EXPECTED: &'static str = "an object";

            fn object<'de, A: MapAccess<'de>>(entries: A) -> Result<Option<Self>, A::Error> {
                Self::deserialize(MapAccessDeserializer::new(entries)).map(Some)
            }
        }
    )*};
}

object!(Payload, Header, Entry, AccountDoc, IdentityDoc, AliasDoc);

impl<'de, T: Shape> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SlotVisitor(PhantomData))
    }
}

struct SlotVisitor<T>(PhantomData<T>);

fn slot<T>(value: Option<T>, found: &'static str) -> Slot<T> {
    value.map_or(Slot::Wrong(found), Slot::Is)
}

impl<'de, T: Shape> Visitor<'de> for SlotVisitor<T> {
    type Value = Slot<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Wrong("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Wrong("null"))
    }

    fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Slot<T>, E> {
        Ok(Slot::Wrong("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Slot<T>, E> {
        Ok(slot(T::number(value as f64), "a number"))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Slot<T>, E> {
        Ok(slot(T::number(value as f64), "a number"))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Slot<T>, E> {
        Ok(slot(T::number(value), "a number"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Slot<T>, E> {
        Ok(slot(T::string(value), "a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Slot<T>, A::Error> {
        Ok(slot(T::array(items)?, "an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, entries: A) -> Result<Slot<T>, A::Error> {
        Ok(slot(T::object(entries)?, "an object"))
    }
}

/// The whole document: SourceCred's object, or an array that should be a compat header and
/// that object.
enum Document {
    Object(Payload),
    Compat(Slot<Payload>),
    OtherArray,
}

impl Shape for Document {
    const EXPECTED: &'static str = "an object";

    fn object<'de, A: MapAccess<'de>>(entries: A) -> Result<Option<Self>, A::Error> {
        Ok(Payload::object(entries)?.map(Document::Object))
    }

    fn array<'de, A: SeqAccess<'de>>(mut items: A) -> Result<Option<Self>, A::Error> {
        let header = items.next_element::<Slot<Header>>()?;
        let payload = items.next_element::<Slot<Payload>>()?;
        let mut more = false;
        while items.next_element::<IgnoredAny>()?.is_some() {
            more = true;
        }
        Ok(Some(match (header, payload) {
            (Some(Slot::Is(Header { kind: Present(true) })), Some(payload)) if !more => Document::Compat(payload),
            _ => Document::OtherArray,
        }))
    }
}

/// `{"accounts": [...], ...}`.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    accounts: Slot<Vec<Slot<Entry>>>,
}

/// A compat header: an object with a `type`.
#[derive(Deserialize)]
struct Header {
    #[serde(default, rename = "type")]
    kind: Present,
}

/// Whether a key is there, whatever it holds.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// `accounts[i]`: `{"account": ..., "totalCred": ..., "cred": [...] (skipped)}`.
#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    account: Slot<AccountDoc>,
    #[serde(default, rename = "totalCred")]
    total_cred: Slot<f64>,
}

/// `accounts[i].account`: its identity and balance (`allocationHistory`, `paid`, ...
/// skipped).
#[derive(Deserialize)]
struct AccountDoc {
    #[serde(default)]
    identity: Slot<IdentityDoc>,
    #[serde(default)]
    balance: Slot<String>,
}

/// `accounts[i].account.identity` (`address` skipped: its shape varies by version, the id
/// does not).
#[derive(Deserialize)]
struct IdentityDoc {
    #[serde(default)]
    id: Slot<String>,
    #[serde(default)]
    name: Slot<String>,
    #[serde(default)]
    subtype: Slot<String>,
    #[serde(default)]
    aliases: Slot<Vec<Slot<AliasDoc>>>,
}

/// An alias: its `address` (`description` skipped).
#[derive(Deserialize)]
struct AliasDoc {
    #[serde(default)]
    address: Slot<String>,
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
        read.find(m, "example.org", false)
    }

    /// As a connection with `match_names` finds.
    fn find_by_name_too(read: &Accounts, m: &MemberAccounts) -> CredRecord {
        read.find(m, "example.org", true)
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
        // The platform, exactly: the host names accounts by their platform's kind, so a
        // connection's name (`discord-eng`) or another case is no platform an alias has.
        for platform in ["discord-eng", "Discord", "discord_eng", "cred", "sourcecred"] {
            let m = member("someone", &[(platform, "124564013970358272")]);
            assert!(find(&read, &m).identity.is_none(), "{platform}");
        }
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
    fn the_order_is_sourcecred_account_then_alias_then_name() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        let m = member("Ian", &[("github", "CamiloTD"), ("sourcecred", "sourcecred-BOT")]);
        assert_eq!(find_by_name_too(&read, &m).identity.as_deref(), Some("sourcecred-bot"));
        let m = member("Ian", &[("github", "CamiloTD")]);
        assert_eq!(find_by_name_too(&read, &m).identity.as_deref(), Some("CamiloTD"));
        let m = member("ian", &[("slack", "U1")]);
        assert_eq!(find_by_name_too(&read, &m).identity.as_deref(), Some("Ian"));
        // By id, linked as a SourceCred account; the id exactly.
        let m = member("z", &[("sourcecred", "ilGTQVoyODdkm0fQauDNJg")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("CamiloTD"));
        let m = member("z", &[("sourcecred", "ILGTQVOYODDKM0FQAUDNJG")]);
        assert!(find(&read, &m).identity.is_none());
        // Names as SourceCred coerces them.
        let m = member("sourcecred_bot", &[]);
        assert_eq!(find_by_name_too(&read, &m).identity.as_deref(), Some("sourcecred-bot"));
    }

    #[test]
    fn a_members_own_name_matches_only_where_the_connection_says_so() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        // Anyone can call themselves Ian on Discord: that is not Ian's cred.
        for m in [member("Ian", &[]), member("ian", &[("discord", "999")]), member("Camilo_TD", &[])] {
            let r = find(&read, &m);
            assert_eq!((r.cred, r.grain, r.identity), (0.0, 0.0, None), "{}", m.name);
        }
        assert_eq!(find_by_name_too(&read, &member("Ian", &[])).identity.as_deref(), Some("Ian"));
        // A SourceCred account (which only an admin links) names an identity either way.
        let m = member("mallory", &[("sourcecred", "ian")]);
        assert_eq!(find(&read, &m).identity.as_deref(), Some("Ian"));
    }

    #[test]
    fn discourse_aliases_are_not_matched() {
        // A Discourse username is unique only within its forum: `owi` on any forum would
        // otherwise be this identity.
        let owi = "N\0sourcecred\0discourse\0user\0https://forum.example\0owi\0";
        let doc = json!({"accounts": [
            {"account": {"balance": "0", "identity": {"id": "1", "name": "Owi-Sixseven", "aliases": [{"address": owi}]}}, "totalCred": 9},
        ]});
        let read = Accounts::parse(doc.to_string().as_bytes()).unwrap();
        for account in ["owi", "https://forum.example/owi", "https://forum.example\0owi"] {
            let r = find(&read, &member("o", &[("discourse", account)]));
            assert!(r.identity.is_none(), "{account}");
        }
        assert!(read.by_alias("discourse", "owi").is_none());
        let r = find(&read, &member("o", &[("discourse", "owi")]));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "SourceCred at example.org cannot know o, who has no linked Discord or GitHub account (discourse owi is not matched: SourceCred's Discourse aliases name their forum, and linked accounts do not): link the one SourceCred knows o by with /link"
            )
        );
    }

    #[test]
    fn an_unknown_member_is_told_why() {
        let read = Accounts::parse(FIXTURE.as_bytes()).unwrap();
        let r = find(&read, &member("alice", &[("discord", "123"), ("slack", "U1")]));
        assert_eq!((r.cred, r.grain, r.identity), (0.0, 0.0, None));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "SourceCred at example.org has no identity with an alias for any of alice's linked accounts (discord 123): its operator adds the alias to their identity in the ledger"
            )
        );
        let m = member("alice", &[("discord", "123"), ("github", "al"), ("sourcecred", "Alicia")]);
        assert_eq!(
            find_by_name_too(&read, &m).reason.as_deref(),
            Some(
                "SourceCred at example.org has no identity with an alias for any of alice's linked accounts (discord 123, github al), nor one named or with the id Alicia, nor one named alice: its operator adds the alias to their identity in the ledger"
            )
        );
        assert_eq!(
            find(&read, &member("bob", &[])).reason.as_deref(),
            Some(
                "SourceCred at example.org cannot know bob, who has no linked Discord or GitHub account: link the one SourceCred knows bob by with /link"
            )
        );
        assert_eq!(
            find_by_name_too(&read, &member("bob smith", &[])).reason.as_deref(),
            Some(
                "SourceCred at example.org has no identity named bob-smith, and bob smith has no linked Discord or GitHub account: link the one SourceCred knows bob smith by with /link"
            )
        );
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
        assert_eq!(alias_parts("N\0sourcecred\0discord\0MEMBER\0bot\x00124\0"), Some(("discord", "124")));
        assert_eq!(alias_parts("N\0sourcecred\0github\0USERLIKE\0USER\0CamiloTD\0"), Some(("github", "CamiloTD")));
        assert_eq!(alias_parts("N\0sourcecred\0github\0USERLIKE\0BOT\0dependabot\0"), Some(("github", "dependabot")));
        assert_eq!(alias_parts("N\0sourcecred\0discord\0MEMBER\0user\x00123"), Some(("discord", "123")));
        for bad in [
            "",
            "N",
            "N\0",
            "N\0sourcecred\0",
            "N\0sourcecred\0discord\0",
            "X\0sourcecred\0discord\0MEMBER\0user\0a\0",
            "N\0sourcecred\0core\0IDENTITY\0x\0",
            // Discourse: a username of one forum.
            "N\0sourcecred\0discourse\0user\0https://forum.example\0owi\0",
            // Not the plugins' users: a repository, a channel, another plugin, another owner.
            "N\0sourcecred\0github\0REPO\0sourcecred\0camilotd\0",
            "N\0sourcecred\0discord\0CHANNEL\x00123\0",
            "N\0sourcecred\0discord\0MEMBER\0user\0\0",
            "N\0sourcecred\0discord-eng\0MEMBER\0user\x00123\0",
            "N\0acme\0discord\0MEMBER\0user\x00123\0",
            "N\0sourcecred\0discord\0MEMBER\0user\x00123\0extra\0",
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
            // Deep, and no stack overflow: what is not read is skipped without recursing.
            (&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)), "`(the document)` is another array"),
            (&format!("{}{}", "[".repeat(100_000), "]".repeat(99_999)), "not JSON"),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a"}, "balance": "1"}, "totalCred": 1e999}]}"#,
                "not JSON",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": null, "name": "a"}}}]}"#,
                "`accounts[0].account.identity.id` is null, not a string",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a", "subtype": 1}}}]}"#,
                "`accounts[0].account.identity.subtype` is a number, not a string",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a", "aliases": {}}}}]}"#,
                "`accounts[0].account.identity.aliases` is an object, not an array",
            ),
            (
                r#"{"accounts": [{"account": {"identity": {"id": "i", "name": "a", "aliases": [true]}}}]}"#,
                "`accounts[0].account.identity.aliases[0]` is a boolean, not an object",
            ),
            (r#"{"accounts": [], "accounts": []}"#, "cannot be read: duplicate field `accounts`"),
            // Not JSON comes first, wherever it is.
            (r#"{"accounts": 5, "intervals": [}"#, "not JSON"),
            (r#"{"accounts": [{"account": {}}]} x"#, "not JSON"),
            (r#"[{"version": "0.1.0"}, {"accounts": []}]"#, "`(the document)` is another array"),
            (r#"[{"type": "t"}, {"accounts": []}, {}]"#, "`(the document)` is another array"),
            (r#"[{"type": "t"}]"#, "`(the document)` is another array"),
            (r#"[{"type": "t"}, 1]"#, "`(the document)` is a number, not an object"),
        ];
        for (doc, says) in cases {
            let e = Accounts::parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(says), "{doc:.80}: {e}");
        }
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(Accounts::parse(&big).unwrap_err(), ReadError::TooLarge);
    }

    #[test]
    fn keys_not_used_are_skipped_unread() {
        // Whatever they hold, and numbers no f64 holds.
        let doc = r#"{"accounts": [{"account": {"active": true, "allocationHistory": [{"grainReceipt": {"amount": 1e999}}],
            "balance": "5000000000000000000", "identity": {"id": "i", "name": "a", "address": 7, "aliases": [{"address": "x", "description": null}]},
            "paid": {"not": "a string"}, "payoutAddresses": [[[]]]}, "cred": [1e999, "x", null], "totalCred": 2}],
            "intervals": 1e999, "unclaimedAliases": [{"alias": {}}], "newKey": {"deep": [[[[[[[[1]]]]]]]]}}"#;
        let read = Accounts::parse(doc.as_bytes()).unwrap();
        let a = read.by_name("a").unwrap();
        assert_eq!((a.cred, a.grain), (2.0, 5.0));
        // A compat header with more than a type.
        let doc = format!(r#"[{{"type": "sourcecred/credAccounts", "version": "0.1.0", "x": [1e999]}}, {doc}]"#);
        assert_eq!(Accounts::parse(doc.as_bytes()).unwrap().len(), 1);
        // However deep, skipped without recursing (no stack overflow).
        let deep = format!(r#"{{"accounts": [], "x": {}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(Accounts::parse(deep.as_bytes()).unwrap().is_empty());
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
