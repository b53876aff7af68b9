//! `/link PLATFORM ACCOUNT` and `/link confirm CODE`: one person, accounts on several
//! platforms, linked by a one-time code shown on one and typed on the other.

use crate::parse::Parsed;
use crate::ports::{Invocation, LinkOutcome, PortError, Ports};
use crate::reply::Reply;
use polity_governance::ids::AccountRef;

/// How long a code works, in minutes.
pub const CODE_MINUTES: i64 = 10;

pub async fn start(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let c = ports.community();
    let Some(me) = c.member_by_account(&inv.invoker) else {
        return Ok(Reply::private("You are not a member of this community yet: take part here first, then link."));
    };
    let (platform, account) = (args.text("platform").to_lowercase(), args.text("account"));
    let target = AccountRef::new(platform.clone(), account);
    if target == inv.invoker {
        return Ok(Reply::private("That is the account you are using now."));
    }
    // An account that is a member of its own (admitted when it first took part on its
    // platform, as every member of a Discord server is) can still be linked: typed there, the
    // code proves one person holds both, and the two members become one.
    let mut merges = None;
    if let Some(owner) = c.member_by_account(&target) {
        if owner.id == me.id || owner.accounts.len() > 1 {
            let whose = if owner.id == me.id { "you".to_string() } else { owner.name.to_string() };
            return Ok(Reply::private(format!("{target} already belongs to {whose}.")));
        }
        if owner.admin && !me.admin {
            return Ok(Reply::private(format!(
                "{target} is an admin's account ({}): it can be linked only to another admin.",
                owner.name
            )));
        }
        merges = Some(owner.name.clone());
    }
    let member = me.id;
    let code = ports.start_link(member, target.clone()).await?;
    let merged = merges
        .map(|name| format!(" {target} is the member {name} now: once linked, {name} and you are one member."))
        .unwrap_or_default();
    Ok(Reply::private(format!(
        "To link {target} to you, type `/link confirm {code}` on {platform} as {account} within {CODE_MINUTES} minutes. The code works once.{merged}"
    )))
}

pub async fn confirm(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let code = args.text("code");
    let text = match ports.confirm_link(code, inv.invoker.clone()).await? {
        LinkOutcome::Linked(name) => format!("{} is now linked to {name}.", inv.invoker),
        LinkOutcome::Unknown => "That code is wrong: check it, or run /link again where you are a member.".into(),
        LinkOutcome::Expired => "That code has expired: run /link again for a new one.".into(),
        LinkOutcome::AlreadyUsed => "That code was already used: run /link again for a new one.".into(),
        LinkOutcome::OtherAccount(_) => "That code is not for this account: type it as the account you named.".into(),
        LinkOutcome::TooManyTries => {
            "Too many wrong codes from this account: wait a quarter of an hour, then try again.".into()
        }
        LinkOutcome::AlreadyMember(name) => {
            format!("{} already belongs to {name}: type the code as the account you want to link.", inv.invoker)
        }
    };
    Ok(Reply::private(text))
}
