//! The host's data a community's scripts read (`sourcecred.cred(...)`, `polity.cred(...)`,
//! `polity.linked_account(...)`): its own SourceCred connections' cred and its own members'
//! linked accounts, and nothing of any other community's.

use super::*;
use polity_governance::script::{CredRecord, CredSource, MemberAccounts, MemberQuery, NO_SOURCECRED};

/// A connection's cred source, with the connection's name.
type Named = (String, Arc<dyn CredSource>);

/// The cred sources of every community's connections, by community and connection name.
#[derive(Default)]
pub(super) struct CredSources(HashMap<CommunityId, Vec<Named>>);

impl CredSources {
    pub(super) fn add(&mut self, community: CommunityId, name: &str, source: Arc<dyn CredSource>) {
        let sources = self.0.entry(community).or_default();
        sources.retain(|(n, _)| n != name);
        sources.push((name.to_string(), source));
        sources.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub(super) fn remove(&mut self, community: CommunityId, name: &str) {
        if let Some(sources) = self.0.get_mut(&community) {
            sources.retain(|(n, _)| n != name);
            if sources.is_empty() {
                self.0.remove(&community);
            }
        }
    }

    pub(super) fn of(&self, community: CommunityId) -> &[Named] {
        self.0.get(&community).map_or(&[], Vec::as_slice)
    }
}

/// One community's host data for one step: its members as they are now (name and linked
/// accounts) and its cred sources. Built only for a community whose policies read the host.
pub(super) struct CommunityHost {
    members: Vec<MemberAccounts>,
    /// Where each member is in `members`: a vote of members with enough cred asks for all.
    by_id: HashMap<MemberId, usize>,
    sources: Vec<Named>,
}

impl CommunityHost {
    /// The data `engine`'s scripts may read, or none when no script of it reads the host.
    /// Accounts are named by their platform (`discord`), not by the connection that brought
    /// them (`kinds`: connection name -> platform), as data sources know them.
    pub(super) fn for_step(
        engine: &Engine,
        sources: &CredSources,
        kinds: impl FnOnce() -> HashMap<String, String>,
    ) -> Option<Self> {
        if !engine.reads_host() {
            return None;
        }
        let kinds = kinds();
        let members: Vec<MemberAccounts> = engine
            .community
            .members
            .values()
            .map(|m| MemberAccounts {
                id: m.id,
                name: m.name.to_string(),
                accounts: m
                    .accounts
                    .iter()
                    .map(|l| match kinds.get(l.account.platform.as_str()) {
                        Some(kind) => AccountRef::new(kind.as_str(), l.account.account.as_str()),
                        None => l.account.clone(),
                    })
                    .collect(),
            })
            .collect();
        let by_id = members.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
        Some(Self { members, by_id, sources: sources.of(engine.community.id).to_vec() })
    }

    fn member(&self, query: &MemberQuery) -> Option<&MemberAccounts> {
        match query {
            MemberQuery::Id(id) => self.by_id.get(id).and_then(|i| self.members.get(*i)),
            MemberQuery::Name(name) => self.members.iter().find(|m| m.name.eq_ignore_ascii_case(name)),
        }
    }

    /// The one source scripts read: a community with several SourceCred connections reads
    /// the first by name.
    fn source(&self) -> Result<&Arc<dyn CredSource>, String> {
        self.sources.first().map(|(_, s)| s).ok_or_else(|| NO_SOURCECRED.to_string())
    }
}

impl HostData for CommunityHost {
    fn cred(&self, member: &MemberQuery) -> Option<f64> {
        self.sourcecred(member).ok().filter(|r| r.identity.is_some()).map(|r| r.cred)
    }

    fn grain(&self, member: &MemberQuery) -> Option<f64> {
        self.sourcecred(member).ok().filter(|r| r.identity.is_some()).map(|r| r.grain)
    }

    fn linked_account(&self, member: &MemberQuery, platform: &str) -> Option<String> {
        let m = self.member(member)?;
        m.accounts.iter().find(|a| a.platform.as_str() == platform).map(|a| a.account.to_string())
    }

    fn sourcecred(&self, member: &MemberQuery) -> Result<CredRecord, String> {
        let source = self.source()?;
        let m = self.member(member).ok_or_else(|| match member {
            MemberQuery::Id(id) => format!("there is no member {id} in this community"),
            MemberQuery::Name(name) => format!("there is no member named {name} in this community"),
        })?;
        source.lookup(m)
    }

    fn sourcecred_total(&self) -> Result<f64, String> {
        self.source()?.total()
    }
}
