//! The one catalogue of commands. Every platform's surface (Discord application commands,
//! Slack slash commands, console lines) and `/help` are built from it.
use polity_governance::change::ChangeKind;

/// What kind of value an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// One word.
    Word,
    /// A proposal number (`12` or `#12`).
    Proposal,
    /// A whole number.
    Number,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Everything left on the line (text, inline TOML).
    Rest,
    /// `name:value`, anywhere on the line.
    Keyword,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
    pub required: bool,
    pub help: &'static str,
}

/// Which handler serves a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handler {
    Propose,
    Proposals,
    Proposal,
    Vote,
    Unvote,
    Cancel,
    Whoami,
    RoleRequest,
    Help,
    KitList,
    KitInstall,
    PolicyInstall,
    PolicyList,
    PolicyShow,
    PolicyHistory,
    PolicyRemove,
    RoleCreate,
    RoleDelete,
    RoleList,
    RoleGrant,
    RoleRevoke,
    RoleBind,
    RoleUnbind,
    PermissionGrant,
    PermissionRevoke,
    Audit,
    Link,
    LinkConfirm,
    PolicyDryRun,
    Actions,
    Export,
    IntegrationAdd,
    IntegrationList,
    IntegrationTest,
    IntegrationRemove,
    IntegrationConfirm,
}

/// One command: its words, its arguments, its help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The command's words after `/`: `["role", "grant"]`.
    pub path: &'static [&'static str],
    pub args: &'static [Arg],
    /// One line: what it does.
    pub help: &'static str,
    pub handler: Handler,
    /// For commands that change governance: the action type they request, governed by the
    /// community's constitution (carried out at once for members who may execute it).
    pub governs: Option<ChangeKind>,
    /// Takes long enough that platforms with a reply deadline (Discord's and Slack's 3 s)
    /// must acknowledge first and answer after.
    pub slow: bool,
}

impl Spec {
    /// `/role grant ROLE MEMBER`.
    pub fn usage(&self) -> String {
        let mut out = format!("/{}", self.path.join(" "));
        for a in self.args {
            let shown = match a.kind {
                ArgKind::Keyword => format!("{}:{}", a.name, a.name.to_uppercase()),
                ArgKind::OneOf(words) => words.join("|"),
                _ => a.name.to_uppercase(),
            };
            if a.required {
                out.push_str(&format!(" {shown}"));
            } else {
                out.push_str(&format!(" [{shown}]"));
            }
        }
        out
    }

    pub fn name(&self) -> String {
        self.path.join(" ")
    }
}

const fn req(name: &'static str, kind: ArgKind, help: &'static str) -> Arg {
    Arg { name, kind, required: true, help }
}

const fn opt(name: &'static str, kind: ArgKind, help: &'static str) -> Arg {
    Arg { name, kind, required: false, help }
}

const PERMISSIONS: &[&str] = &["propose", "execute", "vote"];

/// Every command.
pub const CATALOGUE: &[Spec] = &[
    Spec {
        path: &["propose"],
        args: &[
            req("text", ArgKind::Rest, "what you propose"),
            opt("policy", ArgKind::Keyword, "the policy to decide it (default: the community's)"),
        ],
        help: "Put a decision to a vote.",
        handler: Handler::Propose,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["proposals"],
        args: &[opt("which", ArgKind::OneOf(&["open", "all"]), "open (default) or all")],
        help: "List proposals.",
        handler: Handler::Proposals,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["proposal"],
        args: &[req("id", ArgKind::Proposal, "the proposal's number")],
        help: "Show a proposal: status, tally, deadline, voters, policy.",
        handler: Handler::Proposal,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["vote"],
        args: &[
            req("id", ArgKind::Proposal, "the proposal's number"),
            req("choice", ArgKind::Rest, "yes, no, abstain, an option, 1,3 or 3>1>2"),
        ],
        help: "Vote on a proposal, as a reaction would.",
        handler: Handler::Vote,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["unvote"],
        args: &[req("id", ArgKind::Proposal, "the proposal's number")],
        help: "Take your ballot back.",
        handler: Handler::Unvote,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["cancel"],
        args: &[req("id", ArgKind::Proposal, "the proposal's number")],
        help: "Withdraw an open proposal (yours; admins: any).",
        handler: Handler::Cancel,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["link"],
        args: &[
            req("platform", ArgKind::Word, "the platform of your other account"),
            req("account", ArgKind::Word, "your account there"),
        ],
        help: "Link your account on another platform: shows a one-time code to type there.",
        handler: Handler::Link,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["link", "confirm"],
        args: &[req("code", ArgKind::Word, "the code /link showed you")],
        help: "Confirm a link, on the other platform, with its one-time code.",
        handler: Handler::LinkConfirm,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["whoami"],
        args: &[],
        help: "Your linked accounts, roles and permissions.",
        handler: Handler::Whoami,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["role", "request"],
        args: &[req("role", ArgKind::Word, "the role you ask for")],
        help: "Ask for a role; the constitution decides.",
        handler: Handler::RoleRequest,
        governs: Some(ChangeKind::RoleRequest),
        slow: false,
    },
    Spec {
        path: &["help"],
        args: &[opt("command", ArgKind::Rest, "a command, for its details")],
        help: "This list, or one command's details.",
        handler: Handler::Help,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["kit", "list"],
        args: &[],
        help: "The starter kits.",
        handler: Handler::KitList,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["kit", "install"],
        args: &[req("name", ArgKind::Word, "the kit"), opt("options", ArgKind::Rest, "its options, key=value")],
        help: "Install a starter kit: its roles, permissions and policies (some take options, key=value: `/kit list` says).",
        handler: Handler::KitInstall,
        governs: Some(ChangeKind::KitInstall),
        slow: false,
    },
    Spec {
        path: &["policy", "install"],
        args: &[
            req("name", ArgKind::Word, "the policy's name, as in its TOML (in quotes if it has spaces)"),
            req("toml", ArgKind::Rest, "the policy's TOML; on the console, `\\n` separates its lines"),
        ],
        help: "Install a policy, or a new version of one.",
        handler: Handler::PolicyInstall,
        governs: Some(ChangeKind::PolicyInstall),
        slow: false,
    },
    Spec {
        path: &["policy", "list"],
        args: &[],
        help: "The installed policies.",
        handler: Handler::PolicyList,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["policy", "show"],
        args: &[req("name", ArgKind::Rest, "the policy")],
        help: "Show a policy's TOML.",
        handler: Handler::PolicyShow,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["policy", "history"],
        args: &[req("name", ArgKind::Rest, "the policy")],
        help: "Every version of a policy.",
        handler: Handler::PolicyHistory,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["policy", "dry-run"],
        args: &[
            req("name", ArgKind::Rest, "the installed policy"),
            opt("since", ArgKind::Keyword, "how far back, e.g. 7d (default 7d)"),
        ],
        help: "What a policy would have done with recent events, without doing any of it.",
        handler: Handler::PolicyDryRun,
        governs: None,
        slow: true,
    },
    Spec {
        path: &["policy", "remove"],
        args: &[req("name", ArgKind::Rest, "the policy")],
        help: "Remove a policy (its versions are kept).",
        handler: Handler::PolicyRemove,
        governs: Some(ChangeKind::PolicyRemove),
        slow: false,
    },
    Spec {
        path: &["role", "create"],
        args: &[req("role", ArgKind::Word, "the new role"), opt("description", ArgKind::Rest, "what it is for")],
        help: "Create a role.",
        handler: Handler::RoleCreate,
        governs: Some(ChangeKind::RoleCreate),
        slow: false,
    },
    Spec {
        path: &["role", "delete"],
        args: &[req("role", ArgKind::Word, "the role")],
        help: "Delete a role.",
        handler: Handler::RoleDelete,
        governs: Some(ChangeKind::RoleDelete),
        slow: false,
    },
    Spec {
        path: &["role", "list"],
        args: &[],
        help: "The roles, their permissions and members.",
        handler: Handler::RoleList,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["role", "grant"],
        args: &[req("role", ArgKind::Word, "the role"), req("member", ArgKind::Word, "the member")],
        help: "Give a member a role.",
        handler: Handler::RoleGrant,
        governs: Some(ChangeKind::RoleGrant),
        slow: false,
    },
    Spec {
        path: &["role", "revoke"],
        args: &[req("role", ArgKind::Word, "the role"), req("member", ArgKind::Word, "the member")],
        help: "Take a role from a member.",
        handler: Handler::RoleRevoke,
        governs: Some(ChangeKind::RoleRevoke),
        slow: false,
    },
    Spec {
        path: &["role", "bind"],
        args: &[
            req("role", ArgKind::Word, "the role"),
            req("to", ArgKind::Word, "a platform's role, PLATFORM:ROLE_ID"),
        ],
        help: "Bind a role to a platform's role: whoever has it gets that role there too, and loses it with it.",
        handler: Handler::RoleBind,
        governs: Some(ChangeKind::RoleBind),
        slow: false,
    },
    Spec {
        path: &["role", "unbind"],
        args: &[
            req("role", ArgKind::Word, "the role"),
            req("to", ArgKind::Word, "the platform's role, PLATFORM:ROLE_ID"),
        ],
        help: "Unbind a role from a platform's role (who holds that role there keeps it).",
        handler: Handler::RoleUnbind,
        governs: Some(ChangeKind::RoleUnbind),
        slow: false,
    },
    Spec {
        path: &["permission", "grant"],
        args: &[
            req("role", ArgKind::Word, "the role"),
            req("permission", ArgKind::OneOf(PERMISSIONS), "what the role may do"),
            req("actions", ArgKind::Word, "an action type, PLATFORM.* or *"),
        ],
        help: "Let a role propose, execute or vote on an action type.",
        handler: Handler::PermissionGrant,
        governs: Some(ChangeKind::PermissionGrant),
        slow: false,
    },
    Spec {
        path: &["permission", "revoke"],
        args: &[
            req("role", ArgKind::Word, "the role"),
            req("permission", ArgKind::OneOf(PERMISSIONS), "the permission"),
            req("actions", ArgKind::Word, "as it was granted"),
        ],
        help: "Take a permission from a role.",
        handler: Handler::PermissionRevoke,
        governs: Some(ChangeKind::PermissionRevoke),
        slow: false,
    },
    Spec {
        path: &["integration", "add"],
        args: &[
            req("platform", ArgKind::Word, "the platform (`/integration add` with any other word lists them)"),
            req("name", ArgKind::Word, "a name for the connection"),
            opt("settings", ArgKind::Rest, "key=value settings, e.g. base_url=https://forum.example.org"),
        ],
        help: "Connect a platform; its secret is asked for where only you see it.",
        handler: Handler::IntegrationAdd,
        governs: Some(ChangeKind::IntegrationAdd),
        slow: false,
    },
    Spec {
        path: &["integration", "list"],
        args: &[],
        help: "The connected platforms (never their secrets).",
        handler: Handler::IntegrationList,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["integration", "test"],
        args: &[req("name", ArgKind::Word, "the connection")],
        help: "Check that Polity can reach a connection.",
        handler: Handler::IntegrationTest,
        governs: None,
        slow: true,
    },
    Spec {
        path: &["integration", "remove"],
        args: &[req("name", ArgKind::Word, "the connection")],
        help: "Disconnect a platform.",
        handler: Handler::IntegrationRemove,
        governs: Some(ChangeKind::IntegrationRemove),
        slow: false,
    },
    Spec {
        path: &["integration", "confirm"],
        args: &[opt("code", ArgKind::Word, "the code from /integration add; none: a community of its own")],
        help: "In a server waiting to join a community, as its owner or an admin: join the one whose code this is.",
        handler: Handler::IntegrationConfirm,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["actions"],
        args: &[],
        help: "The actions, triggers and processes policies can use here, with their parameters.",
        handler: Handler::Actions,
        governs: None,
        slow: false,
    },
    Spec {
        path: &["export"],
        args: &[opt("format", ArgKind::OneOf(&["json", "csv"]), "json (default) or csv")],
        help: "The governance record: proposals, ballots, decisions and the audit log.",
        handler: Handler::Export,
        governs: None,
        slow: true,
    },
    Spec {
        path: &["audit"],
        args: &[opt("count", ArgKind::Number, "how many lines (default 20)")],
        help: "The latest lines of the governance record.",
        handler: Handler::Audit,
        governs: None,
        slow: false,
    },
];

/// The command with these words.
pub fn find(path: &[&str]) -> Option<&'static Spec> {
    CATALOGUE.iter().find(|s| s.path == path)
}
