//! The runtime as the commands' [`Ports`]: one community, one invocation.

use crate::runtime::{HandleError, Handled, Runtime};
use crate::store::links::Redeemed;
use crate::store::{ConnectionChange, Secret};
use chrono::{DateTime, Utc};
use polity_commands::ports::{
    AuditLine, ConnectionInfo, LinkOutcome, PolicyVersion, PortError, Ports, StagedConnection, SubmitError, Submitted,
    Touched,
};
use polity_governance::community::Community;
use polity_governance::ids::{AccountRef, MemberId};
use polity_governance::ids::{CommunityId, ProposalId};
use polity_governance::io::{Audit, Inbound};
use polity_governance::platform::{BoxFuture, PlatformSpec};
use polity_governance::policy::CompiledPolicy;
use polity_governance::proposal::Proposal;
use std::sync::Arc;

pub struct CommunityPorts<'a> {
    rt: &'a mut Runtime,
    community: CommunityId,
    /// Where the invocation came from and its id: the inbox key of what it submits.
    source: String,
    key: String,
    now: DateTime<Utc>,
    submitted: u32,
    /// Stands in for a community that is not loaded (never the case once constructed).
    empty: Community,
}

impl<'a> CommunityPorts<'a> {
    pub fn new(rt: &'a mut Runtime, community: CommunityId, source: &str, key: &str, now: DateTime<Utc>) -> Self {
        Self {
            rt,
            community,
            source: source.into(),
            key: key.into(),
            now,
            submitted: 0,
            empty: Community::new(community, ""),
        }
    }
}

impl CommunityPorts<'_> {
    async fn submit_staged(&mut self, input: Inbound, staged: Vec<ConnectionChange>) -> Result<Submitted, SubmitError> {
        // One invocation may submit more than once; each gets its own inbox key.
        let key = if self.submitted == 0 { self.key.clone() } else { format!("{}#{}", self.key, self.submitted) };
        self.submitted += 1;
        match self.rt.handle_with(self.community, &self.source, &key, input, self.now, false, staged).await {
            Ok(Handled::Duplicate) => Ok(Submitted { duplicate: true, ..Submitted::default() }),
            Ok(Handled::Done(step)) => {
                // A script of the deciding policy that failed (its SourceCred instance could not
                // be read) is said with the proposal it left open, not only in the audit log.
                let failed = |policy: &str| {
                    step.audit.iter().find_map(|a| match a {
                        Audit::ScriptFailed { policy_name, error } if policy_name == policy => Some(error.clone()),
                        _ => None,
                    })
                };
                let proposals = step
                    .changed
                    .iter()
                    .filter_map(|id| {
                        let (state, policy, why) = self.rt.proposal_state(self.community, *id)?;
                        let why = match why {
                            None if state.is_open() => failed(&policy).map(|e| {
                                format!("its policy could not decide yet ({e}); it is tried again every minute")
                            }),
                            why => why,
                        };
                        Some(Touched { id: *id, state, policy, why })
                    })
                    .collect();
                let applied = step
                    .audit
                    .iter()
                    .filter_map(|a| match a {
                        Audit::Applied { action, .. } => Some(action.clone()),
                        _ => None,
                    })
                    .collect();
                Ok(Submitted { duplicate: false, proposals, applied })
            }
            Err(HandleError::Refused(mistake)) => Err(SubmitError::Mistake(mistake)),
            Err(HandleError::Failed(e)) => {
                tracing::error!(source = %self.source, key = %key, error = %format!("{e:#}"), "a command's input failed");
                Err(SubmitError::Internal(internal(format!("{e:#}"))))
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> PortError {
    PortError(e.to_string())
}

impl Ports for CommunityPorts<'_> {
    fn community(&self) -> &Community {
        self.rt.engine(self.community).map_or(&self.empty, |e| &e.community)
    }

    fn policies(&self) -> Vec<Arc<CompiledPolicy>> {
        self.rt.engine(self.community).map(|e| e.policies().to_vec()).unwrap_or_default()
    }

    fn submit<'b>(&'b mut self, input: Inbound) -> BoxFuture<'b, Result<Submitted, SubmitError>> {
        Box::pin(self.submit_staged(input, Vec::new()))
    }

    fn proposals(&self, open_only: bool) -> BoxFuture<'_, Result<Vec<Proposal>, PortError>> {
        Box::pin(async move { self.rt.store().load_proposals(self.community, open_only).await.map_err(internal) })
    }

    fn proposal(&self, id: ProposalId) -> BoxFuture<'_, Result<Option<Proposal>, PortError>> {
        Box::pin(async move { self.rt.store().proposal(self.community, id).await.map_err(internal) })
    }

    fn proposal_failures(&self, id: ProposalId) -> BoxFuture<'_, Result<Vec<String>, PortError>> {
        Box::pin(async move { self.rt.store().failed_effects_of(self.community, id).await.map_err(internal) })
    }

    fn policy_history<'b>(&'b self, name: &'b str) -> BoxFuture<'b, Result<Vec<PolicyVersion>, PortError>> {
        Box::pin(async move {
            let all = self.rt.store().load_policies(self.community).await.map_err(internal)?;
            Ok(all
                .into_iter()
                .filter(|p| p.name.eq_ignore_ascii_case(name))
                .map(|p| PolicyVersion {
                    id: p.id,
                    version: p.version,
                    active: p.active,
                    installed_at: p.installed_at,
                    source: p.source,
                })
                .collect())
        })
    }

    fn audit(&self, count: u64) -> BoxFuture<'_, Result<Vec<AuditLine>, PortError>> {
        Box::pin(async move {
            let rows = self.rt.store().audit(self.community, count).await.map_err(internal)?;
            Ok(rows.into_iter().map(|r| AuditLine { at: r.at, text: r.text }).collect())
        })
    }

    fn start_link(&mut self, member: MemberId, account: AccountRef) -> BoxFuture<'_, Result<String, PortError>> {
        Box::pin(async move {
            let expires = self.now + chrono::TimeDelta::minutes(polity_commands::link::CODE_MINUTES);
            // Six digits; a clash with a live code of this community is simply drawn again.
            for attempt in 0..5u32 {
                let code = format!("{:06}", link_entropy(&self.key, attempt) % 1_000_000);
                let put =
                    self.rt.store().put_link_code(self.community, &code, member, &account, expires, self.now).await;
                if put.is_ok() {
                    return Ok(code);
                }
            }
            Err(internal("could not store a link code"))
        })
    }

    fn confirm_link<'b>(&'b mut self, code: &'b str, by: AccountRef) -> BoxFuture<'b, Result<LinkOutcome, PortError>> {
        Box::pin(async move {
            // An account that is a member of its own already (admitted when it first took
            // part on its platform, as every Discord server member is) may still be linked:
            // the code proves the two members are one person. One with several accounts
            // linked is someone established: it links nothing.
            let existing =
                self.community().member_by_account(&by).map(|m| (m.id, m.name.to_string(), m.accounts.len()));
            if let Some((_, name, accounts)) = &existing
                && *accounts > 1
            {
                return Ok(LinkOutcome::AlreadyMember(name.clone()));
            }
            if !self.rt.may_try_link(self.community, &by, self.now) {
                return Ok(LinkOutcome::TooManyTries);
            }
            let redeemed =
                self.rt.store().redeem_link_code(self.community, code.trim(), &by, self.now).await.map_err(internal)?;
            if !matches!(redeemed, Redeemed::Linked { .. }) {
                self.rt.link_failed(self.community, &by, self.now);
            }
            Ok(match (redeemed, existing) {
                (Redeemed::Linked { member }, Some((own, name, _))) if own == member => {
                    LinkOutcome::AlreadyMember(name)
                }
                (Redeemed::Linked { member }, Some((own, _, _))) => {
                    self.rt
                        .merge_member(self.community, member, own, self.now)
                        .await
                        .map_err(|e| internal(format!("{e:#}")))?;
                    let name = self.community().member(member).map(|m| m.name.to_string()).unwrap_or_default();
                    LinkOutcome::Linked(name)
                }
                (Redeemed::Linked { member }, None) => {
                    self.rt
                        .link_account(self.community, member, &by, self.now)
                        .await
                        .map_err(|e| internal(format!("{e:#}")))?;
                    let name = self.community().member(member).map(|m| m.name.to_string()).unwrap_or_default();
                    LinkOutcome::Linked(name)
                }
                // A member typing a code meant for another account: as before, it links nothing.
                (Redeemed::OtherAccount(_), Some((_, name, _))) => LinkOutcome::AlreadyMember(name),
                (Redeemed::Unknown, _) => LinkOutcome::Unknown,
                (Redeemed::Expired, _) => LinkOutcome::Expired,
                (Redeemed::AlreadyUsed, _) => LinkOutcome::AlreadyUsed,
                (Redeemed::OtherAccount(a), None) => LinkOutcome::OtherAccount(a),
            })
        })
    }

    fn dry_run<'b>(&'b self, policy: &'b str, since: DateTime<Utc>) -> BoxFuture<'b, Result<Vec<String>, PortError>> {
        Box::pin(async move {
            self.rt.dry_run(self.community, policy, since, self.now).await.map_err(|e| internal(format!("{e:#}")))
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn actions(&self) -> Vec<polity_governance::platform::ActionInfo> {
        self.rt.actions(self.community)
    }

    fn can_store_secrets(&self) -> bool {
        self.rt.store().has_secret_key()
    }

    fn declared_actions(&self) -> Vec<polity_governance::platform::ActionInfo> {
        let mut all = self.rt.actions(self.community);
        all.extend(self.rt.registry().actions());
        all
    }

    fn one_time_code(&mut self) -> String {
        use chacha20poly1305::aead::OsRng;
        use chacha20poly1305::aead::rand_core::RngCore;
        // Ten digits from the operating system's generator.
        format!("{:010}", OsRng.next_u64() % 10_000_000_000)
    }

    fn bot_invite(&self, platform: &str) -> Option<String> {
        self.rt.invite(platform).map(str::to_string)
    }

    fn new_webhook(&mut self, platform: &str, name: &str) -> Option<polity_commands::ports::Webhook> {
        use chacha20poly1305::aead::OsRng;
        use chacha20poly1305::aead::rand_core::RngCore;
        let hooks = self.rt.registry().adapter(platform)?.webhooks()?;
        // 32 bytes from the operating system's generator, in URL-safe text.
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let path = crate::http::hook_path(platform, self.community, name);
        let base = self.rt.registry().public_url();
        let url = if hooks.secret_in_url() { format!("{base}{path}?token={secret}") } else { format!("{base}{path}") };
        Some(polity_commands::ports::Webhook { secret, url, secret_in_url: hooks.secret_in_url() })
    }

    fn connections(&self) -> BoxFuture<'_, Result<Vec<ConnectionInfo>, PortError>> {
        Box::pin(async move {
            let all = self.rt.store().connections(self.community).await.map_err(internal)?;
            Ok(all
                .into_iter()
                .map(|c| ConnectionInfo {
                    enabled: c.config.get("enabled").and_then(serde_json::Value::as_bool).unwrap_or(true),
                    name: c.name,
                    platform: c.platform,
                    has_secret: c.has_secret,
                })
                .collect())
        })
    }

    fn submit_with_connection(
        &mut self,
        input: Inbound,
        connection: StagedConnection,
    ) -> BoxFuture<'_, Result<Submitted, SubmitError>> {
        Box::pin(async move {
            let store = self.rt.store();
            let retried = store.seen(&self.source, &self.key).await.map_err(|e| SubmitError::Internal(internal(e)))?;
            if !retried {
                let all = store.connections(self.community).await.map_err(|e| SubmitError::Internal(internal(e)))?;
                if all.iter().any(|c| c.name == connection.name) {
                    return Err(SubmitError::Refused(format!(
                        "A connection named {} exists already: `/integration list` shows them.",
                        connection.name
                    )));
                }
                if connection.secret.is_some() && !store.has_secret_key() {
                    return Err(SubmitError::Refused(
                        "Polity cannot store secrets without POLITY_SECRET_KEY (base64 of 32 bytes): set it and start Polity again."
                            .into(),
                    ));
                }
            }
            let mut config = connection.config;
            config.insert("enabled".into(), serde_json::Value::Bool(false));
            let staged = ConnectionChange::Stage {
                name: connection.name,
                platform: connection.platform,
                config: serde_json::Value::Object(config),
                secret: connection.secret.map(Secret::new),
                hook_secret: connection.hook_secret.map(Secret::new),
            };
            self.submit_staged(input, vec![staged]).await
        })
    }

    fn test_connection<'b>(&'b self, name: &'b str) -> BoxFuture<'b, Result<String, PortError>> {
        Box::pin(async move {
            match crate::connections::prepare_test(self.rt, self.community, name).await {
                Ok(Ok(test)) => Ok(test.run().await),
                Ok(Err(why)) => Ok(why),
                Err(e) => Err(internal(format!("{e:#}"))),
            }
        })
    }

    fn platforms(&self) -> Vec<PlatformSpec> {
        self.rt.registry().specs()
    }

    fn export(&self, csv: bool) -> BoxFuture<'_, Result<String, PortError>> {
        Box::pin(async move {
            let name = self.community().name.clone();
            let record =
                crate::export::collect(self.rt.store(), Some(&name)).await.map_err(|e| internal(format!("{e:#}")))?;
            let mut out = Vec::new();
            let written = if csv {
                crate::export::write_csv(&record, &mut out)
            } else {
                crate::export::write_json(&record, &mut out)
            };
            written.map_err(internal)?;
            String::from_utf8(out).map_err(internal)
        })
    }
}

/// Entropy for a link code: unpredictable from outside this process.
fn link_entropy(key: &str, attempt: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(key.as_bytes());
    h.write_u32(attempt);
    h.write_i64(Utc::now().timestamp_nanos_opt().unwrap_or_default());
    h.finish()
}
