//! Sandboxed policy scripts.
//!
//! A policy's script blocks (`filter`, `initialize`, `check`, `notify`, `pass.script`,
//! `fail.script`) are [rhai](https://rhai.rs) scripts. They run in a [`Sandbox`]: one engine,
//! built once, with hard limits on operations, call depth, expression depth, data sizes and
//! wall-clock time, no `eval`, no modules, no `sleep`, no printing and strict variables.
//! Whatever a script does, [`Sandbox::run`] returns: either its value and the actions it asked
//! for, or a [`ScriptError`] naming the policy and the block. Scripts need a big stack
//! ([`SCRIPT_STACK_SIZE`]); a run starts a thread with one unless called inside
//! [`with_script_stack`], which lets a whole batch of runs share one.
//!
//! Scripts see four constants:
//! * `action`, `proposal`, `initiator`: the JSON the runtime hands over, as rhai maps/arrays;
//! * `polity`: host access (`cred`, `grain`, `linked_account`) and requests
//!   (`act`, `message`, `start_process`), collected into [`ScriptOutput::actions`].
//!
//! A whole engine step is held to a budget too ([`StepBudget`], [`DEFAULT_STEP_BUDGET`]):
//! [`Sandbox::run_within`] gives a run no more time than the step has left and charges the
//! step for it, so many slow policies cannot make one input take long.
//!
//! The module does no IO. It reads the monotonic clock only to enforce the wall-clock budgets.

use std::cell::Cell;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, LexError, ParseError, ParseErrorType, Scope};
use serde_json::Value;

use crate::action::ActionType;
use crate::ids::MemberId;

/// How many actions (`act`, `message`, `start_process`) one run may ask for.
pub const MAX_ACTIONS: usize = 100;

/// The names a script sees, in the order they are pushed into its scope.
pub const SCRIPT_GLOBALS: [&str; 7] = ["action", "proposal", "initiator", "polity", "sourcecred", "now", "deadline"];

/// How often (in operations) the wall clock is looked at. Reading the clock costs about as
/// much as one cheap operation, so this keeps its overhead under 1%, while a run of expensive
/// operations (deep copies of data near the size limits) cannot overshoot the budget by much.
const CLOCK_CHECK_INTERVAL: u64 = 128;

/// The script time one engine step may spend, all its runs together, unless the engine is
/// given another ([`StepBudget`]). Four runs that use up the default per-run
/// [`Limits::wall_clock`] spend it.
pub const DEFAULT_STEP_BUDGET: Duration = Duration::from_secs(1);

/// Deepest nesting of arrays/maps a script may hand back (its value, action parameters).
pub const MAX_VALUE_DEPTH: usize = 64;

/// Stack size of the thread a script runs on. Only touched pages are committed; the reserve is
/// sized for the deepest nesting the default limits allow in unoptimised builds.
pub const SCRIPT_STACK_SIZE: usize = 256 * 1024 * 1024;

/// The rhai type name of the `polity` object.
const POLITY_TYPE_NAME: &str = "Polity";

/// The rhai type name of the `sourcecred` object.
const SOURCECRED_TYPE_NAME: &str = "SourceCred";

// ---------------------------------------------------------------------------------------------
// Limits and blocks
// ---------------------------------------------------------------------------------------------

/// Resource limits for one evaluation.
///
/// For every count or size, `0` means "no limit" (rhai's convention), except
/// `max_call_levels`, where `0` forbids calling script functions at all. The wall clock is
/// always enforced; pass `Duration::MAX` to switch it off.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Operations (roughly: expression nodes and statements evaluated) per run.
    pub max_operations: u64,
    /// How deep script-defined function calls may nest.
    pub max_call_levels: usize,
    /// How deep expressions may nest at the top level (checked when compiling).
    pub max_expr_depth: usize,
    /// How deep expressions may nest inside functions (checked when compiling).
    pub max_fn_expr_depth: usize,
    /// Largest string, in bytes.
    pub max_string_size: usize,
    /// Largest array or BLOB, in items (nested arrays count together).
    pub max_array_size: usize,
    /// Largest object map, in entries (nested maps count together).
    pub max_map_size: usize,
    /// Longest a run may take.
    pub wall_clock: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 200_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_fn_expr_depth: 32,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            wall_clock: Duration::from_millis(250),
        }
    }
}

/// Which block of a policy a script is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Block {
    Filter,
    Initialize,
    Check,
    Notify,
    Pass,
    Fail,
}

impl Block {
    /// Every block, in the order a proposal meets them.
    pub const ALL: [Block; 6] =
        [Block::Filter, Block::Initialize, Block::Check, Block::Notify, Block::Pass, Block::Fail];

    /// The block's name as written in policy files and error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Block::Filter => "filter",
            Block::Initialize => "initialize",
            Block::Check => "check",
            Block::Notify => "notify",
            Block::Pass => "pass.script",
            Block::Fail => "fail.script",
        }
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The step budget
// ---------------------------------------------------------------------------------------------

/// The script time one engine step may still spend, all its runs together.
///
/// [`Sandbox::run_within`] gives a run at most what is left (its own
/// [`Limits::wall_clock`] if that is less) and charges what the run took; a run stopped by
/// its operation or time limit is charged its whole allowance, at least what it took. Such
/// runs are what the budget guards against, and charging them in full makes the number of
/// them a step can afford (four with the defaults) independent of the machine's speed. Once
/// the budget is spent, no more scripts run in that step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepBudget {
    total: Duration,
    charged: Duration,
}

impl StepBudget {
    /// A budget of `total`; `Duration::MAX` is no budget at all (never spent).
    pub fn new(total: Duration) -> Self {
        Self { total, charged: Duration::ZERO }
    }

    /// What the step may spend in all.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// What the step's runs have been charged so far.
    pub fn charged(&self) -> Duration {
        self.charged
    }

    fn unlimited(&self) -> bool {
        self.total == Duration::MAX
    }

    /// What is left for the step's next runs.
    pub fn remaining(&self) -> Duration {
        if self.unlimited() { Duration::MAX } else { self.total.saturating_sub(self.charged) }
    }

    /// True when nothing is left: the step runs no more scripts.
    pub fn is_spent(&self) -> bool {
        self.remaining().is_zero()
    }

    fn charge(&mut self, cost: Duration) {
        if !self.unlimited() {
            self.charged = self.charged.saturating_add(cost);
        }
    }
}

/// A budget as people read it: `1 s`, `1.5 s`, `250 ms`.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(100) {
        let tenths = ms / 100;
        if tenths.is_multiple_of(10) {
            format!("{} s", tenths / 10)
        } else {
            format!("{}.{} s", tenths / 10, tenths % 10)
        }
    } else {
        format!("{ms} ms")
    }
}

// ---------------------------------------------------------------------------------------------
// Host data
// ---------------------------------------------------------------------------------------------

/// Host data the runtime provides to scripts (SourceCred cred, linked accounts).
/// Implemented outside this crate.
pub trait HostData: Send + Sync {
    /// A member's cred, if known.
    fn cred(&self, member: &MemberQuery) -> Option<f64>;
    /// A member's grain balance, if known.
    fn grain(&self, member: &MemberQuery) -> Option<f64>;
    /// A member's account name on a platform (`github`, `discord`, …), if linked.
    fn linked_account(&self, member: &MemberQuery, platform: &str) -> Option<String>;
    /// What the community's SourceCred instance says of a member (`sourcecred.cred(...)`).
    ///
    /// # Errors
    /// No SourceCred connection ([`NO_SOURCECRED`]), an unknown member name, or an instance
    /// that could not be read.
    fn sourcecred(&self, member: &MemberQuery) -> Result<CredRecord, String> {
        let _ = member;
        Err(NO_SOURCECRED.to_owned())
    }
    /// The cred of every identity of the community's SourceCred instance.
    ///
    /// # Errors
    /// As [`HostData::sourcecred`].
    fn sourcecred_total(&self) -> Result<f64, String> {
        Err(NO_SOURCECRED.to_owned())
    }
}

/// What a SourceCred instance says of one member ([`HostData::sourcecred`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CredRecord {
    /// Their total cred; 0 when the instance does not know them.
    pub cred: f64,
    /// Their grain balance, in grain; 0 when the instance does not know them.
    pub grain: f64,
    /// The identity they were matched to; `None` when the instance does not know them.
    pub identity: Option<String>,
    /// Why they have none, when the instance does not know them ("no linked account of
    /// alice's is an alias of a SourceCred identity ...").
    pub reason: Option<String>,
}

impl CredRecord {
    /// A member the instance does not know, and why.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self { cred: 0.0, grain: 0.0, identity: None, reason: Some(reason.into()) }
    }
}

/// A member as a data source sees them: their name and linked accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAccounts {
    pub id: MemberId,
    pub name: String,
    pub accounts: Vec<crate::ids::AccountRef>,
}

/// A source of cred (a SourceCred instance a community connected), read from memory: a
/// connection keeps what it last read and refreshes it off the engine's path.
pub trait CredSource: Send + Sync {
    /// What it says of `member`.
    ///
    /// # Errors
    /// The instance could not be read (never, or not for too long), with why and where: a
    /// decision must not take an unreachable instance for "no cred".
    fn lookup(&self, member: &MemberAccounts) -> Result<CredRecord, String>;

    /// The cred of every identity together.
    ///
    /// # Errors
    /// As [`CredSource::lookup`].
    fn total(&self) -> Result<f64, String>;
}

/// What [`HostData::sourcecred`] answers for a community with no SourceCred connection.
pub const NO_SOURCECRED: &str =
    "this community has no SourceCred connection: `/integration add sourcecred NAME url=https://...` connects one";

/// How a script names a member: by id (an int) or by name (a string).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberQuery {
    Id(MemberId),
    Name(String),
}

/// A [`HostData`] with no data (every query answers `None`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHostData;

impl HostData for NoHostData {
    fn cred(&self, _member: &MemberQuery) -> Option<f64> {
        None
    }
    fn grain(&self, _member: &MemberQuery) -> Option<f64> {
        None
    }
    fn linked_account(&self, _member: &MemberQuery, _platform: &str) -> Option<String> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs and outputs
// ---------------------------------------------------------------------------------------------

/// What a script sees.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScriptInput {
    pub action: Value,
    pub proposal: Value,
    pub initiator: Value,
    /// The step's time, in seconds since the Unix epoch (`now`).
    pub now: i64,
    /// Whether a check runs at its proposal's deadline (`deadline`): what it returns then
    /// decides, and nothing (or "proposed") leaves the decision to the vote.
    pub deadline: bool,
}

/// What a script asked for and returned.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptOutput {
    /// The script's final value; `()` becomes `Null`.
    pub value: Value,
    /// The actions the script asked for, in order.
    pub actions: Vec<ScriptAction>,
}

/// One request a script made through `polity`.
///
/// * `polity.act("platform.verb", #{..})` → `{ name: "platform.verb", params: {..} }`
/// * `polity.message(text)` → `{ name: "message", params: { "text": text } }`
/// * `polity.start_process(name, #{..})` →
///   `{ name: "start_process", params: { "process": name, "params": {..} } }`
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptAction {
    pub name: String,
    pub params: serde_json::Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a script did not compile or did not finish: what went wrong ([`ScriptErrorKind`]) and
/// where (policy, block and, when rhai knows it, line).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("policy \"{policy}\" block {block}: {}", KindAtLine(.kind, *.line))]
pub struct ScriptError {
    /// The policy whose script failed.
    pub policy: String,
    /// The block that failed.
    pub block: Block,
    /// The script line the error points at (1-based), when rhai knows it.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: ScriptErrorKind,
}

/// What went wrong in a script (see [`ScriptError`] for where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptErrorKind {
    /// The script does not parse.
    #[error("syntax error: {message}")]
    Syntax { message: String },
    /// The operation budget ran out.
    #[error("stopped after {limit} operations (an endless loop?)")]
    TooManyOperations { limit: u64 },
    /// The wall-clock budget ran out.
    #[error("took longer than {}ms", .limit.as_millis())]
    Timeout { limit: Duration },
    /// The engine step's script budget ([`StepBudget`]) ran out, while the script ran or before
    /// it could start.
    #[error("stopped: the step's script budget of {} was spent", show_duration(*.budget))]
    StepBudgetSpent { budget: Duration },
    /// Function calls nested too deeply.
    #[error("calls nest deeper than {limit} levels (endless recursion?)")]
    TooDeep { limit: usize },
    /// A string grew past the limit.
    #[error("string grows past {limit} bytes")]
    StringTooLarge { limit: usize },
    /// An array (or BLOB) grew past the limit.
    #[error("array grows past {limit} items")]
    ArrayTooLarge { limit: usize },
    /// An object map grew past the limit.
    #[error("map grows past {limit} entries")]
    MapTooLarge { limit: usize },
    /// The script uses `eval`.
    #[error("eval is not allowed in policies")]
    Eval,
    /// The script uses a variable it never declared.
    #[error("variable `{name}` is not defined (scripts see action, proposal, initiator and polity)")]
    UndefinedVariable { name: String },
    /// The script imports (or refers to) a module.
    #[error("modules cannot be imported in policies")]
    Import,
    /// The script asked for more than [`MAX_ACTIONS`] actions.
    #[error("asks for more than {limit} actions in one run")]
    TooManyActions { limit: usize },
    /// Anything else that went wrong while running (a thrown error, a type mismatch, an unknown
    /// function, a bad action name, a value that is not plain data, a panic in the engine or
    /// the host, …).
    #[error("runtime error: {message}")]
    Runtime { message: String },
}

impl ScriptErrorKind {
    /// True when the script ran out of a budget (operations, time, call depth, data size or
    /// actions) rather than being wrong in some other way.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::TooManyOperations { .. }
                | Self::Timeout { .. }
                | Self::StepBudgetSpent { .. }
                | Self::TooDeep { .. }
                | Self::StringTooLarge { .. }
                | Self::ArrayTooLarge { .. }
                | Self::MapTooLarge { .. }
                | Self::TooManyActions { .. }
        )
    }
}

/// A kind as [`ScriptError`] shows it: syntax and runtime errors name the line
/// (`syntax error at line 3: …`); the other kinds read the same wherever they happen.
struct KindAtLine<'a>(&'a ScriptErrorKind, Option<usize>);

impl fmt::Display for KindAtLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (ScriptErrorKind::Syntax { message }, Some(line)) => write!(f, "syntax error at line {line}: {message}"),
            (ScriptErrorKind::Runtime { message }, Some(line)) => write!(f, "runtime error at line {line}: {message}"),
            (kind, _) => fmt::Display::fmt(kind, f),
        }
    }
}

impl ScriptError {
    /// The policy whose script failed.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The block that failed.
    pub fn block(&self) -> Block {
        self.block
    }

    /// The script line the error points at (1-based), when rhai knows it.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// True when the script ran out of a budget (operations, time, call depth, data size or
    /// actions) rather than being wrong in some other way.
    pub fn is_limit(&self) -> bool {
        self.kind.is_limit()
    }
}

/// Builds [`ScriptError`]s for one policy block.
struct ErrorContext<'a> {
    policy: &'a str,
    block: Block,
    limits: &'a Limits,
}

impl ErrorContext<'_> {
    fn error(&self, line: Option<usize>, kind: ScriptErrorKind) -> ScriptError {
        ScriptError { policy: self.policy.to_owned(), block: self.block, line, kind }
    }

    fn runtime(&self, line: Option<usize>, message: impl Into<String>) -> ScriptError {
        self.error(line, ScriptErrorKind::Runtime { message: message.into() })
    }

    fn parse_error(&self, err: &ParseError) -> ScriptError {
        let line = err.position().line();
        let kind = match err.err_type() {
            ParseErrorType::VariableUndefined(name) => ScriptErrorKind::UndefinedVariable { name: name.clone() },
            ParseErrorType::ModuleUndefined(_) => ScriptErrorKind::Import,
            // rhai says "Expression exceeds maximum complexity", which does not say what to change.
            ParseErrorType::ExprTooDeep => ScriptErrorKind::Syntax {
                message: format!(
                    "expressions nest too deeply (at most {} levels, {} inside functions)",
                    self.limits.max_expr_depth, self.limits.max_fn_expr_depth
                ),
            },
            ParseErrorType::BadInput(LexError::ImproperSymbol(symbol, _)) | ParseErrorType::Reserved(symbol) => {
                match symbol.as_str() {
                    "eval" => ScriptErrorKind::Eval,
                    "import" => ScriptErrorKind::Import,
                    "curry" => ScriptErrorKind::Syntax {
                        message: "curry is not allowed in policies (use a closure instead)".to_owned(),
                    },
                    _ => ScriptErrorKind::Syntax { message: err.err_type().to_string() },
                }
            }
            other => ScriptErrorKind::Syntax { message: other.to_string() },
        };
        self.error(line, kind)
    }

    fn eval_error(&self, err: EvalAltResult) -> ScriptError {
        // Errors inside script functions come wrapped; the innermost one says what happened
        // and (being in the same source) where.
        let mut line = err.position().line();
        let mut err = err;
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = err {
            line = inner.position().line().or(line);
            err = *inner;
        }
        let limits = self.limits;
        let kind = match err {
            EvalAltResult::ErrorTooManyOperations(_) => {
                ScriptErrorKind::TooManyOperations { limit: limits.max_operations }
            }
            EvalAltResult::ErrorTerminated(_, _) => ScriptErrorKind::Timeout { limit: limits.wall_clock },
            EvalAltResult::ErrorStackOverflow(_) => ScriptErrorKind::TooDeep { limit: limits.max_call_levels },
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let what = what.to_ascii_lowercase();
                if what.contains("string") {
                    ScriptErrorKind::StringTooLarge { limit: limits.max_string_size }
                } else if what.contains("map") {
                    ScriptErrorKind::MapTooLarge { limit: limits.max_map_size }
                } else {
                    ScriptErrorKind::ArrayTooLarge { limit: limits.max_array_size }
                }
            }
            // Script functions cannot see the caller's variables, the globals included.
            EvalAltResult::ErrorVariableNotFound(name, _) if SCRIPT_GLOBALS.contains(&name.as_str()) => {
                ScriptErrorKind::Runtime {
                    message: format!("`{name}` is not visible inside a function; pass it in as a parameter"),
                }
            }
            EvalAltResult::ErrorVariableNotFound(name, _) => ScriptErrorKind::UndefinedVariable { name },
            EvalAltResult::ErrorModuleNotFound(_, _) | EvalAltResult::ErrorTooManyModules(_) => ScriptErrorKind::Import,
            EvalAltResult::ErrorParsing(kind, pos) => return self.parse_error(&ParseError(Box::new(kind), pos)),
            EvalAltResult::ErrorFunctionNotFound(ref signature, _)
                if signature == "eval" || signature.starts_with("eval ") =>
            {
                ScriptErrorKind::Eval
            }
            EvalAltResult::ErrorRuntime(value, _) => {
                let message = value.to_string();
                let message = if message.trim().is_empty() { "`throw` with no message".to_owned() } else { message };
                ScriptErrorKind::Runtime { message }
            }
            mut other => {
                let _ = other.take_position();
                ScriptErrorKind::Runtime { message: other.to_string() }
            }
        };
        self.error(line, kind)
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// One compiled script block of one policy. Cheap to clone; reusable for any number of runs.
#[derive(Clone)]
pub struct Script {
    policy: String,
    block: Block,
    ast: Arc<AST>,
    mentions: Mentions,
}

impl Script {
    /// The policy this script belongs to.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Which block of the policy this script is.
    pub fn block(&self) -> Block {
        self.block
    }

    /// Whether the script mentions one of the [`SCRIPT_GLOBALS`] (`action`, `proposal`,
    /// `initiator`, `polity`, `now`, `deadline`): callers need not build an input the script
    /// never reads, and a check that reads neither the clock nor the host cannot change
    /// without an input.
    /// Errs on the side of yes (a mention in a comment counts).
    pub fn uses(&self, global: &str) -> bool {
        match global {
            "action" => self.mentions.action,
            "proposal" => self.mentions.proposal,
            "initiator" => self.mentions.initiator,
            "polity" => self.mentions.polity,
            "sourcecred" => self.mentions.sourcecred,
            "now" => self.mentions.now,
            "deadline" => self.mentions.deadline,
            _ => false,
        }
    }
}

/// Which of the [`SCRIPT_GLOBALS`] a script's source mentions (as a whole word, anywhere: code,
/// strings, comments). A global it does not mention cannot be read: variables are strict, there
/// is no `eval`, functions do not see the globals and closures capture what they name. A run
/// hands such a global `()` instead of converting its JSON (or building the action list).
#[derive(Clone, Copy, Debug)]
struct Mentions {
    action: bool,
    proposal: bool,
    initiator: bool,
    polity: bool,
    sourcecred: bool,
    now: bool,
    deadline: bool,
}

impl Mentions {
    fn of(source: &str) -> Self {
        Self {
            action: mentions(source, "action"),
            proposal: mentions(source, "proposal"),
            initiator: mentions(source, "initiator"),
            polity: mentions(source, "polity"),
            sourcecred: mentions(source, "sourcecred"),
            now: mentions(source, "now"),
            deadline: mentions(source, "deadline"),
        }
    }
}

/// Whether `source` holds `word` with no identifier character (ASCII letter, digit or `_`)
/// right before or after it. Errs on the side of "yes": `x.action`, `"action"` and `//action`
/// all count.
fn mentions(source: &str, word: &str) -> bool {
    let is_ident = |byte: &u8| byte.is_ascii_alphanumeric() || *byte == b'_';
    let bytes = source.as_bytes();
    source.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(at + word.len());
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script").field("policy", &self.policy).field("block", &self.block).finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// The `polity` object
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Collector {
    actions: Vec<ScriptAction>,
    overflowed: bool,
}

/// What scripts see as `polity`.
#[derive(Clone)]
struct PolityApi {
    host: Arc<dyn HostData>,
    collector: Arc<Mutex<Collector>>,
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

impl PolityApi {
    fn record(&self, action: ScriptAction) -> RhaiResult<()> {
        let mut collector = self.collector.lock().map_err(|_| "the action list is unavailable")?;
        if collector.actions.len() >= MAX_ACTIONS {
            collector.overflowed = true;
            return Err(format!("a policy may ask for at most {MAX_ACTIONS} actions per run").into());
        }
        collector.actions.push(action);
        Ok(())
    }

    fn act(&mut self, name: ImmutableString, params: rhai::Map) -> RhaiResult<()> {
        // Same rule as everywhere else in Polity: `platform.verb`, lowercase, digits and `_`.
        ActionType::new(&name)?;
        let params = to_json_map(params, "the parameters of an action")?;
        self.record(ScriptAction { name: name.to_string(), params })
    }

    fn message(&mut self, text: ImmutableString) -> RhaiResult<()> {
        let mut params = serde_json::Map::new();
        params.insert("text".to_owned(), Value::String(text.to_string()));
        self.record(ScriptAction { name: "message".to_owned(), params })
    }

    fn start_process(&mut self, process: ImmutableString, params: rhai::Map) -> RhaiResult<()> {
        if process.trim().is_empty() {
            return Err("start_process needs the name of a decision process".into());
        }
        let inner = to_json_map(params, "the parameters of a decision process")?;
        let mut params = serde_json::Map::new();
        params.insert("process".to_owned(), Value::String(process.to_string()));
        params.insert("params".to_owned(), Value::Object(inner));
        self.record(ScriptAction { name: "start_process".to_owned(), params })
    }
}

fn to_json_map(map: rhai::Map, what: &str) -> RhaiResult<serde_json::Map<String, Value>> {
    match to_json(&Dynamic::from_map(map), 0) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{what} must be a map").into()),
        Err(err) => Err(format!("{what} {err}").into()),
    }
}

/// Converts plain script data to JSON: `()` is `null`, chars are strings, BLOBs are arrays of
/// numbers, non-finite floats are `null`. Nesting is capped at [`MAX_VALUE_DEPTH`].
fn to_json(value: &Dynamic, depth: usize) -> Result<Value, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("nests deeper than {MAX_VALUE_DEPTH} levels"));
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Ok(s) = value.as_immutable_string_ref() {
        return Ok(Value::String(s.as_str().to_owned()));
    }
    if let Ok(array) = value.as_array_ref() {
        return array.iter().map(|item| to_json(item, depth + 1)).collect::<Result<Vec<_>, _>>().map(Value::Array);
    }
    if let Ok(blob) = value.as_blob_ref() {
        return Ok(Value::Array(blob.iter().map(|&byte| Value::from(byte)).collect()));
    }
    if let Ok(map) = value.as_map_ref() {
        return map
            .iter()
            .map(|(key, item)| Ok((key.to_string(), to_json(item, depth + 1)?)))
            .collect::<Result<serde_json::Map<_, _>, String>>()
            .map(Value::Object);
    }
    Err(format!("must be plain data (numbers, strings, booleans, arrays, maps), not {}", type_label(value)))
}

/// Converts the JSON the runtime hands over to script data, as `rhai::serde::to_dynamic` would
/// (`null` is `()`, integers that fit an `i64` are ints, other numbers floats) but without
/// going through serde.
fn from_json(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(from_json).collect()),
        Value::Object(map) => {
            Dynamic::from_map(map.iter().map(|(key, item)| (key.as_str().into(), from_json(item))).collect())
        }
    }
}

/// A user-facing name for a value's type.
fn type_label(value: &Dynamic) -> &'static str {
    if value.is::<PolityApi>() {
        "polity"
    } else if value.is::<SourceCredApi>() {
        "sourcecred"
    } else if value.is::<rhai::FnPtr>() {
        "a function"
    } else {
        match value.type_name() {
            name if name.contains("::") => "a host value",
            name => name,
        }
    }
}

fn float_or_unit(value: Option<f64>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Dynamic::from_float)
}

fn string_or_unit(value: Option<String>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Dynamic::from)
}

fn by_id(id: rhai::INT) -> MemberQuery {
    MemberQuery::Id(MemberId(id))
}

fn by_name(name: &ImmutableString) -> MemberQuery {
    MemberQuery::Name(name.to_string())
}

fn register_polity(engine: &mut Engine) {
    engine.register_type_with_name::<PolityApi>(POLITY_TYPE_NAME);
    engine.register_fn("to_string", |_: &mut PolityApi| -> ImmutableString { "polity".into() });
    engine.register_fn("to_debug", |_: &mut PolityApi| -> ImmutableString { "polity".into() });

    // Cred and grain: by member id or name; `()` for an unknown member.
    engine.register_fn("cred", |p: &mut PolityApi, id: rhai::INT| float_or_unit(p.host.cred(&by_id(id))));
    engine.register_fn("cred", |p: &mut PolityApi, name: ImmutableString| float_or_unit(p.host.cred(&by_name(&name))));
    engine.register_fn("cred", |_: &mut PolityApi, _: ()| Dynamic::UNIT);
    engine.register_fn("grain", |p: &mut PolityApi, id: rhai::INT| float_or_unit(p.host.grain(&by_id(id))));
    engine
        .register_fn("grain", |p: &mut PolityApi, name: ImmutableString| float_or_unit(p.host.grain(&by_name(&name))));
    engine.register_fn("grain", |_: &mut PolityApi, _: ()| Dynamic::UNIT);

    // Linked accounts.
    engine.register_fn("linked_account", |p: &mut PolityApi, id: rhai::INT, platform: ImmutableString| {
        string_or_unit(p.host.linked_account(&by_id(id), &platform))
    });
    engine.register_fn("linked_account", |p: &mut PolityApi, name: ImmutableString, platform: ImmutableString| {
        string_or_unit(p.host.linked_account(&by_name(&name), &platform))
    });
    engine.register_fn("linked_account", |_: &mut PolityApi, _: (), _: ImmutableString| Dynamic::UNIT);

    // Requests.
    engine.register_fn("act", PolityApi::act);
    engine.register_fn("act", |p: &mut PolityApi, name: ImmutableString| p.act(name, rhai::Map::new()));
    engine.register_fn("message", PolityApi::message);
    engine.register_fn("start_process", PolityApi::start_process);
    engine.register_fn("start_process", |p: &mut PolityApi, process: ImmutableString| {
        p.start_process(process, rhai::Map::new())
    });
}

// ---------------------------------------------------------------------------------------------
// The `sourcecred` object
// ---------------------------------------------------------------------------------------------

/// What scripts see as `sourcecred`: the community's SourceCred instance. A member it does
/// not know has 0 cred (`sourcecred.why(member)` says why); an instance that cannot be read
/// is an error that stops the script, so no decision takes it for "no cred".
#[derive(Clone)]
struct SourceCredApi {
    host: Arc<dyn HostData>,
}

impl SourceCredApi {
    fn record(&self, member: &MemberQuery) -> RhaiResult<CredRecord> {
        self.host.sourcecred(member).map_err(|e| sourcecred_error(&e))
    }
}

/// A host's answer about SourceCred as a script error, saying it is about SourceCred.
fn sourcecred_error(e: &str) -> Box<EvalAltResult> {
    if e.starts_with("SourceCred") { e.to_string().into() } else { format!("SourceCred: {e}").into() }
}

/// A member named by id (an int), name (a string) or a map with an `id` (`initiator`).
fn member_of(who: &Dynamic) -> RhaiResult<MemberQuery> {
    if let Some(id) = who.clone().try_cast::<rhai::INT>() {
        return Ok(by_id(id));
    }
    if let Some(name) = who.clone().try_cast::<ImmutableString>() {
        return Ok(by_name(&name));
    }
    if let Some(map) = who.clone().try_cast::<rhai::Map>()
        && let Some(id) = map.get("id").and_then(|v| v.clone().try_cast::<rhai::INT>())
    {
        return Ok(by_id(id));
    }
    Err(format!("SourceCred: {} is not a member (give a member id, a name, or `initiator`)", type_label(who)).into())
}

fn register_sourcecred(engine: &mut Engine) {
    engine.register_type_with_name::<SourceCredApi>(SOURCECRED_TYPE_NAME);
    engine.register_fn("to_string", |_: &mut SourceCredApi| -> ImmutableString { "sourcecred".into() });
    engine.register_fn("to_debug", |_: &mut SourceCredApi| -> ImmutableString { "sourcecred".into() });
    engine.register_fn("cred", |s: &mut SourceCredApi, who: Dynamic| -> RhaiResult<rhai::FLOAT> {
        Ok(s.record(&member_of(&who)?)?.cred)
    });
    engine.register_fn("grain", |s: &mut SourceCredApi, who: Dynamic| -> RhaiResult<rhai::FLOAT> {
        Ok(s.record(&member_of(&who)?)?.grain)
    });
    engine.register_fn("identity", |s: &mut SourceCredApi, who: Dynamic| -> RhaiResult<Dynamic> {
        Ok(string_or_unit(s.record(&member_of(&who)?)?.identity))
    });
    engine.register_fn("why", |s: &mut SourceCredApi, who: Dynamic| -> RhaiResult<ImmutableString> {
        Ok(s.record(&member_of(&who)?)?.reason.unwrap_or_default().into())
    });
    engine.register_fn("total", |s: &mut SourceCredApi| -> RhaiResult<rhai::FLOAT> {
        s.host.sourcecred_total().map_err(|e| sourcecred_error(&e))
    });
}

// ---------------------------------------------------------------------------------------------
// Wall clock
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The deadline of the evaluation running on this thread, if any.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets this thread's deadline for the duration of one evaluation, restoring the previous one
/// (nested runs, e.g. from a host callback, keep working) when dropped.
struct DeadlineGuard {
    previous: Option<Instant>,
}

impl DeadlineGuard {
    fn set(deadline: Option<Instant>) -> Self {
        Self { previous: DEADLINE.with(|cell| cell.replace(deadline)) }
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|cell| cell.set(self.previous));
    }
}

fn past_deadline(operations: u64) -> Option<Dynamic> {
    if !operations.is_multiple_of(CLOCK_CHECK_INTERVAL) {
        return None;
    }
    let deadline = DEADLINE.with(Cell::get)?;
    (Instant::now() >= deadline).then(|| Dynamic::from("wall clock budget exceeded"))
}

// ---------------------------------------------------------------------------------------------
// Stack
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Whether this thread's stack is [`SCRIPT_STACK_SIZE`] (it was started by
    /// [`with_script_stack`] or [`Sandbox::run`]).
    static ON_SCRIPT_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether scripts can run on this thread's stack, i.e. [`Sandbox::run`] runs them inline.
pub(crate) fn on_script_stack() -> bool {
    ON_SCRIPT_STACK.with(Cell::get)
}

/// A thread with a stack big enough for scripts.
fn script_thread() -> std::thread::Builder {
    std::thread::Builder::new().name("polity-script".to_owned()).stack_size(SCRIPT_STACK_SIZE)
}

/// Runs `f` on a thread with a stack big enough for scripts, unless already on one; scripts
/// run by `Sandbox::run` inside `f` then run inline, without a thread of their own.
///
/// Wrap a batch of script runs (a whole engine step) in it: one thread start instead of one
/// per run. A panic in `f` is re-raised here. Should no thread be available, `f` runs on the
/// current thread, where every [`Sandbox::run`] still isolates itself (and reports an error
/// when it cannot).
pub fn with_script_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if on_script_stack() {
        return f();
    }
    let mut f = Some(f);
    let outcome = std::thread::scope(|threads| {
        let f = &mut f;
        script_thread()
            .spawn_scoped(threads, move || {
                ON_SCRIPT_STACK.with(|flag| flag.set(true));
                f.take().map(|f| f())
            })
            .map(|handle| handle.join())
    });
    match (outcome, f) {
        (Ok(Ok(Some(result))), _) => result,
        (Ok(Err(panic)), _) => std::panic::resume_unwind(panic),
        (Err(_), Some(f)) => f(),
        // The thread ran (and took `f`) or the spawn failed (and left it): nothing else.
        (Ok(Ok(None)), _) | (Err(_), None) => unreachable!("the script thread neither ran nor failed to start"),
    }
}

/// Native functions that must not be reachable from policies.
fn forbid(engine: &mut Engine) {
    const SLEEP: &str = "sleep is not allowed in policies";
    engine.register_fn("sleep", |_: rhai::INT| -> RhaiResult<()> { Err(SLEEP.into()) });
    engine.register_fn("sleep", |_: rhai::FLOAT| -> RhaiResult<()> { Err(SLEEP.into()) });
}

// ---------------------------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------------------------

/// A rhai engine configured for policy scripts. Build it once and share it (it is `Send + Sync`).
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Sandbox {
    /// Builds the engine: standard library only, no module resolver, limits applied.
    pub fn new(limits: Limits) -> Self {
        let mut engine = Engine::new_raw();
        engine.register_global_module(StandardPackage::new().as_shared_module());

        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_levels);
        engine.set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_max_modules(0);
        engine.set_strict_variables(true);
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        // Curried arguments escape rhai's data-size accounting (and `f = f.curry(f)` doubles
        // in size every turn), so currying is off. Closures still work.
        engine.disable_symbol("curry");
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        engine.on_progress(past_deadline);

        forbid(&mut engine);
        register_polity(&mut engine);
        register_sourcecred(&mut engine);

        Self { engine, limits }
    }

    /// The limits every run is held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles one script block. Syntax errors, undeclared variables, `eval` and `import`
    /// are reported here, before the script ever runs.
    pub fn compile(&self, policy: &str, block: Block, source: &str) -> Result<Script, ScriptError> {
        let context = ErrorContext { policy, block, limits: &self.limits };
        // Plain variables, not constants: constants would be folded into the AST by the
        // optimizer with these placeholder values.
        let mut scope = Scope::new();
        for name in SCRIPT_GLOBALS {
            scope.push_dynamic(name, Dynamic::UNIT);
        }
        let ast = self.engine.compile_with_scope(&scope, source).map_err(|err| context.parse_error(&err))?;
        Ok(Script { policy: policy.to_owned(), block, ast: Arc::new(ast), mentions: Mentions::of(source) })
    }

    /// Runs a compiled script against one input, within the limits.
    ///
    /// rhai recurses (and drops values recursively) as deep as a script nests its data or
    /// closures, which a small worker stack cannot always take, so scripts run on a stack of
    /// [`SCRIPT_STACK_SIZE`]: inline when the caller is already on one (inside
    /// [`with_script_stack`]), otherwise on a short-lived thread of their own. A panic inside
    /// rhai or the [`HostData`] is caught either way and reported as a
    /// [`ScriptErrorKind::Runtime`] error.
    pub fn run(
        &self,
        script: &Script,
        input: &ScriptInput,
        host: Arc<dyn HostData>,
    ) -> Result<ScriptOutput, ScriptError> {
        self.run_for(script, input, host, self.limits.wall_clock)
    }

    /// [`Sandbox::run`] as one of an engine step's runs: the run gets no more time than
    /// `budget` has left, and `budget` is charged for it (see [`StepBudget`]). A run cut short
    /// by the step's budget, or not started because it was already spent, fails with
    /// [`ScriptErrorKind::StepBudgetSpent`].
    pub fn run_within(
        &self,
        script: &Script,
        input: &ScriptInput,
        host: Arc<dyn HostData>,
        budget: &mut StepBudget,
    ) -> Result<ScriptOutput, ScriptError> {
        let total = budget.total();
        let spent = || self.context(script).error(None, ScriptErrorKind::StepBudgetSpent { budget: total });
        if budget.is_spent() {
            return Err(spent());
        }
        let own = self.limits.wall_clock;
        let allowance = own.min(budget.remaining());
        let started = Instant::now();
        let result = self.run_for(script, input, host, allowance);
        let took = started.elapsed();
        let used_up = matches!(&result, Err(e) if matches!(e.kind, ScriptErrorKind::TooManyOperations { .. } | ScriptErrorKind::Timeout { .. }));
        budget.charge(if used_up { took.max(allowance) } else { took });
        match result {
            Err(e) if allowance < own && matches!(e.kind, ScriptErrorKind::Timeout { .. }) => Err(spent()),
            other => other,
        }
    }

    /// [`Sandbox::run`] with a wall clock of `allowance`.
    fn run_for(
        &self,
        script: &Script,
        input: &ScriptInput,
        host: Arc<dyn HostData>,
        allowance: Duration,
    ) -> Result<ScriptOutput, ScriptError> {
        if on_script_stack() {
            return self.run_caught(script, input, host, allowance);
        }
        std::thread::scope(|threads| {
            let spawned = script_thread().spawn_scoped(threads, move || {
                ON_SCRIPT_STACK.with(|flag| flag.set(true));
                self.run_caught(script, input, host, allowance)
            });
            match spawned {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err(self.panicked(script))),
                Err(err) => Err(self.context(script).runtime(None, format!("could not start the script: {err}"))),
            }
        })
    }

    fn context<'a>(&'a self, script: &'a Script) -> ErrorContext<'a> {
        ErrorContext { policy: &script.policy, block: script.block, limits: &self.limits }
    }

    fn panicked(&self, script: &Script) -> ScriptError {
        self.context(script).runtime(None, "the script engine failed (panicked)")
    }

    /// [`Sandbox::run`] on the current thread, a panic turned into an error.
    fn run_caught(
        &self,
        script: &Script,
        input: &ScriptInput,
        host: Arc<dyn HostData>,
        allowance: Duration,
    ) -> Result<ScriptOutput, ScriptError> {
        // Nothing the closure touches outlives a panic in a broken state: the scope, the
        // action list and the engine's run state are dropped with it, the engine itself is
        // only read and the deadline guard restores the thread's deadline while unwinding.
        std::panic::catch_unwind(AssertUnwindSafe(|| self.run_here(script, input, host, allowance)))
            .unwrap_or_else(|_| Err(self.panicked(script)))
    }

    /// [`Sandbox::run`] on the current thread, with a wall clock of `allowance`.
    fn run_here(
        &self,
        script: &Script,
        input: &ScriptInput,
        host: Arc<dyn HostData>,
        allowance: Duration,
    ) -> Result<ScriptOutput, ScriptError> {
        let context = self.context(script);
        let mentions = script.mentions;
        let global = |mentioned: bool, value: &Value| if mentioned { from_json(value) } else { Dynamic::UNIT };

        let collector = mentions.polity.then(|| Arc::new(Mutex::new(Collector::default())));
        let mut scope = Scope::new();
        scope.push_constant_dynamic("action", global(mentions.action, &input.action));
        scope.push_constant_dynamic("proposal", global(mentions.proposal, &input.proposal));
        scope.push_constant_dynamic("initiator", global(mentions.initiator, &input.initiator));
        match &collector {
            Some(collector) => {
                scope.push_constant("polity", PolityApi { host: Arc::clone(&host), collector: Arc::clone(collector) })
            }
            None => scope.push_constant_dynamic("polity", Dynamic::UNIT),
        };
        if mentions.sourcecred {
            scope.push_constant("sourcecred", SourceCredApi { host: Arc::clone(&host) });
        } else {
            scope.push_constant_dynamic("sourcecred", Dynamic::UNIT);
        }
        scope.push_constant("now", input.now as rhai::INT);
        scope.push_constant("deadline", input.deadline);

        let result = {
            let _deadline = DeadlineGuard::set(Instant::now().checked_add(allowance));
            self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast)
        };
        drop(scope);

        let actions = match collector {
            None => Vec::new(),
            Some(collector) => {
                let collected = match collector.lock() {
                    Ok(mut collector) => std::mem::take(&mut *collector),
                    Err(_) => return Err(context.runtime(None, "the action list is unavailable")),
                };
                if collected.overflowed {
                    return Err(context.error(None, ScriptErrorKind::TooManyActions { limit: MAX_ACTIONS }));
                }
                collected.actions
            }
        };

        let value = match result {
            Ok(value) => value,
            Err(err) => match *err {
                EvalAltResult::Exit(value, _) => value,
                other => return Err(context.eval_error(other)),
            },
        };
        let value = to_json(&value, 0).map_err(|err| context.runtime(None, format!("the script's value {err}")))?;
        Ok(ScriptOutput { value, actions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Generous: proves a run returned instead of hanging, not how fast it is.
    const BUDGET: Duration = Duration::from_secs(5);
    const POLICY: &str = "Big expenses";

    fn input() -> ScriptInput {
        ScriptInput {
            action: json!({ "kind": "opencollective.expense_created", "id": 42, "amount": 60_000 }),
            proposal: json!({ "id": 9, "tally": { "yes": 3, "no": 1 } }),
            initiator: json!({ "id": 7, "name": "alice", "roles": ["member", "treasurer"], "admin": false }),
            ..ScriptInput::default()
        }
    }

    /// Compiles and runs `source` as the `check` block, asserting it returned within [`BUDGET`].
    fn run_with(sandbox: &Sandbox, source: &str, host: Arc<dyn HostData>) -> Result<ScriptOutput, ScriptError> {
        let started = Instant::now();
        let result =
            sandbox.compile(POLICY, Block::Check, source).and_then(|script| sandbox.run(&script, &input(), host));
        let elapsed = started.elapsed();
        assert!(elapsed < BUDGET, "{source:?} took {elapsed:?}");
        result
    }

    /// The default limits, except a wall clock long enough that a busy test machine cannot turn
    /// an expected operation-budget error into a timeout.
    fn sandbox() -> Sandbox {
        Sandbox::new(Limits { wall_clock: Duration::from_secs(3), ..Limits::default() })
    }

    fn run(source: &str) -> Result<ScriptOutput, ScriptError> {
        run_with(&sandbox(), source, Arc::new(NoHostData))
    }

    fn value(source: &str) -> Value {
        run(source).unwrap_or_else(|e| panic!("{source:?} failed: {e}")).value
    }

    fn error(source: &str) -> ScriptError {
        match run(source) {
            Ok(out) => panic!("{source:?} should fail, returned {out:?}"),
            Err(err) => {
                assert_eq!(err.policy(), POLICY);
                assert_eq!(err.block(), Block::Check);
                assert!(err.to_string().starts_with("policy \"Big expenses\" block check: "), "{err}");
                err
            }
        }
    }

    /// A host that knows one member (id 7, "alice") and remembers what it was asked.
    #[derive(Default)]
    struct TestHost {
        asked: Mutex<Vec<MemberQuery>>,
    }

    impl TestHost {
        fn knows(&self, member: &MemberQuery) -> bool {
            self.asked.lock().unwrap().push(member.clone());
            matches!(member, MemberQuery::Id(MemberId(7))) || *member == MemberQuery::Name("alice".into())
        }
    }

    impl HostData for TestHost {
        fn cred(&self, member: &MemberQuery) -> Option<f64> {
            self.knows(member).then_some(12.5)
        }
        fn grain(&self, member: &MemberQuery) -> Option<f64> {
            self.knows(member).then_some(300.0)
        }
        fn linked_account(&self, member: &MemberQuery, platform: &str) -> Option<String> {
            (self.knows(member) && platform == "github").then(|| "alice-gh".to_owned())
        }
    }

    // --- limits -------------------------------------------------------------------------------

    #[test]
    fn endless_loop_stops_at_the_operation_budget() {
        for source in [
            "loop {}",
            "while true {}",
            "let i = 0; loop { i += 1; }",
            "let n = 0; for x in 0..1_000_000_000 { n += x; }",
        ] {
            let err = error(source);
            assert!(matches!(err.kind, ScriptErrorKind::TooManyOperations { limit: 200_000 }), "{source}: {err:?}");
            assert!(err.is_limit());
            assert_eq!(
                err.to_string(),
                "policy \"Big expenses\" block check: stopped after 200000 operations (an endless loop?)"
            );
        }
    }

    #[test]
    fn endless_loop_inside_try_catch_still_stops() {
        let err = error("try { loop {} } catch { 1 }");
        assert!(matches!(err.kind, ScriptErrorKind::TooManyOperations { .. }), "{err:?}");
    }

    #[test]
    fn endless_recursion_stops_at_the_call_depth() {
        for source in [
            "fn f(x) { f(x + 1) } f(0)",
            "fn g(h) { h.call(h) } g(Fn(\"g\"))",
            "fn a(x) { b(x) } fn b(x) { a(x) } a(1)",
        ] {
            let err = error(source);
            assert!(matches!(err.kind, ScriptErrorKind::TooDeep { limit: 32 }), "{source}: {err:?}");
            assert!(err.to_string().ends_with("calls nest deeper than 32 levels (endless recursion?)"), "{err}");
        }
    }

    #[test]
    fn string_bombs_stop_at_the_size_limit() {
        for source in [
            "let s = \"x\"; loop { s += s; }",
            "\"x\".pad(1_000_000_000, \"y\")",
            "let s = \"\"; loop { s += \"abc\"; }",
        ] {
            let err = error(source);
            assert!(matches!(err.kind, ScriptErrorKind::StringTooLarge { limit: 65_536 }), "{source}: {err:?}");
            assert!(err.to_string().ends_with("string grows past 65536 bytes"), "{err}");
        }
    }

    #[test]
    fn array_bombs_stop_at_the_size_limit() {
        for source in ["let a = [1]; loop { a += a; }", "[].pad(1_000_000_000, 0)", "blob(1_000_000_000)"] {
            let err = error(source);
            assert!(matches!(err.kind, ScriptErrorKind::ArrayTooLarge { limit: 10_000 }), "{source}: {err:?}");
            assert!(err.to_string().ends_with("array grows past 10000 items"), "{err}");
        }
    }

    #[test]
    fn map_bombs_stop_at_the_size_limit() {
        let err = error("let m = #{a: 1}; loop { m = #{a: m, b: m}; }");
        assert!(matches!(err.kind, ScriptErrorKind::MapTooLarge { limit: 10_000 }), "{err:?}");
        assert!(err.to_string().ends_with("map grows past 10000 entries"), "{err}");
    }

    #[test]
    fn wall_clock_budget_stops_a_script_the_operation_budget_would_not() {
        let limits = Limits { max_operations: 0, wall_clock: Duration::from_millis(50), ..Limits::default() };
        let sandbox = Sandbox::new(limits);
        assert_eq!(sandbox.limits().wall_clock, Duration::from_millis(50));
        let started = Instant::now();
        let err = run_with(&sandbox, "loop {}", Arc::new(NoHostData)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(err.kind == ScriptErrorKind::Timeout { limit: Duration::from_millis(50) }, "{err:?}");
        assert_eq!(err.to_string(), "policy \"Big expenses\" block check: took longer than 50ms");
    }

    // --- the step budget ----------------------------------------------------------------------

    fn run_in(sandbox: &Sandbox, source: &str, budget: &mut StepBudget) -> Result<ScriptOutput, ScriptError> {
        let script = sandbox.compile(POLICY, Block::Filter, source).unwrap();
        sandbox.run_within(&script, &input(), Arc::new(NoHostData), budget)
    }

    #[test]
    fn a_run_that_uses_up_its_limit_is_charged_its_whole_allowance() {
        // Stopped by the operation limit long before its wall clock: charged the wall clock,
        // so three such runs fit in 10 s and the fourth spends it, however fast the machine.
        let sandbox =
            Sandbox::new(Limits { max_operations: 10_000, wall_clock: Duration::from_secs(3), ..Limits::default() });
        let mut budget = StepBudget::new(Duration::from_secs(10));
        for run in 1..=4 {
            assert!(!budget.is_spent(), "spent before run {run}: {budget:?}");
            let err = run_in(&sandbox, "loop {}", &mut budget).unwrap_err();
            assert!(matches!(err.kind, ScriptErrorKind::TooManyOperations { .. }), "{err:?}");
            assert!(budget.charged() >= Duration::from_secs(3 * run).min(budget.total()), "{budget:?}");
        }
        assert!(budget.is_spent());
    }

    #[test]
    fn a_run_that_finishes_is_charged_what_it_took() {
        let mut budget = StepBudget::new(Duration::from_secs(10));
        assert_eq!(run_in(&sandbox(), "action.amount > 50000", &mut budget).unwrap().value, json!(true));
        assert!(!budget.is_spent());
        assert!(budget.charged() < budget.total(), "{budget:?}");
        // Failing for another reason than a limit is charged what it took, too.
        run_in(&sandbox(), "throw \"no\"", &mut budget).unwrap_err();
        assert!(!budget.is_spent(), "{budget:?}");
    }

    #[test]
    fn a_run_gets_no_more_time_than_the_step_has_left() {
        // Only the wall clock can stop this loop, and the step's 50 ms come before its own 3 s.
        let sandbox =
            Sandbox::new(Limits { max_operations: 0, wall_clock: Duration::from_secs(3), ..Limits::default() });
        let mut budget = StepBudget::new(Duration::from_millis(50));
        let err = run_in(&sandbox, "loop {}", &mut budget).unwrap_err();
        assert_eq!(err.kind, ScriptErrorKind::StepBudgetSpent { budget: Duration::from_millis(50) });
        assert!(err.is_limit());
        assert_eq!(
            err.to_string(),
            "policy \"Big expenses\" block filter: stopped: the step's script budget of 50 ms was spent"
        );
        assert!(budget.is_spent());
    }

    #[test]
    fn a_spent_budget_runs_nothing() {
        let mut budget = StepBudget::new(Duration::ZERO);
        assert!(budget.is_spent());
        let err = run_in(&sandbox(), "polity.message(\"hi\"); true", &mut budget).unwrap_err();
        assert_eq!(err.kind, ScriptErrorKind::StepBudgetSpent { budget: Duration::ZERO });
        assert_eq!(budget.charged(), Duration::ZERO);
    }

    #[test]
    fn an_unlimited_budget_is_never_spent() {
        let sandbox = Sandbox::new(Limits { max_operations: 1_000, ..Limits::default() });
        let mut budget = StepBudget::new(Duration::MAX);
        for _ in 0..10 {
            let err = run_in(&sandbox, "loop {}", &mut budget).unwrap_err();
            assert!(matches!(err.kind, ScriptErrorKind::TooManyOperations { .. }), "{err:?}");
        }
        assert!(!budget.is_spent());
        assert_eq!(budget.remaining(), Duration::MAX);
    }

    #[test]
    fn budgets_read_as_people_write_them() {
        assert_eq!(show_duration(DEFAULT_STEP_BUDGET), "1 s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(show_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(show_duration(Duration::from_millis(1234)), "1234 ms");
        assert_eq!(show_duration(Duration::ZERO), "0 ms");
    }

    #[test]
    fn deep_closure_chains_do_not_overflow_the_stack() {
        // Each closure captures the previous one: a chain rhai builds, copies and drops recursively.
        let err = error("let f = || 1; loop { let g = f; f = || g.call(); }");
        assert!(err.is_limit(), "{err:?}");
    }

    #[test]
    fn deeply_nested_data_does_not_overflow_the_stack() {
        let err =
            run_with(&Sandbox::default(), "let a = []; loop { a = [#{a: a}]; }", Arc::new(NoHostData)).unwrap_err();
        assert!(err.is_limit(), "{err:?}");
        // Nesting that fits the limits but not the JSON depth is refused, not recursed into.
        let err = error("let a = []; for i in 0..200 { a = [a]; } a");
        assert!(
            matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("nests deeper than 64")),
            "{err:?}"
        );
        let err = error("let a = []; for i in 0..200 { a = [a]; } polity.act(\"x.y\", #{a: a})");
        assert!(
            matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("nests deeper than 64")),
            "{err:?}"
        );
    }

    #[test]
    fn too_many_actions_is_an_error_even_when_caught() {
        for source in [
            "for i in 0..1000 { polity.message(\"hi\"); }",
            "for i in 0..1000 { try { polity.message(\"hi\"); } catch {} } true",
        ] {
            let err = error(source);
            assert!(err.kind == ScriptErrorKind::TooManyActions { limit: MAX_ACTIONS }, "{source}: {err:?}");
            assert!(err.to_string().ends_with("asks for more than 100 actions in one run"), "{err}");
        }
        let out = run("for i in 0..100 { polity.message(`${i}`); }").unwrap();
        assert_eq!(out.actions.len(), MAX_ACTIONS);
    }

    // --- forbidden language features ----------------------------------------------------------

    #[test]
    fn eval_is_refused() {
        let err = Sandbox::default().compile(POLICY, Block::Check, "let x = 1;\neval(\"1\")").unwrap_err();
        assert!((&err.kind, err.line) == (&ScriptErrorKind::Eval, Some(2)), "{err:?}");
        assert_eq!(err.to_string(), "policy \"Big expenses\" block check: eval is not allowed in policies");
        // Reaching it through a function pointer does not work either.
        for source in ["call(Fn(\"eval\"), \"1\")", "let f = Fn(\"ev\" + \"al\"); f.call(\"1\")"] {
            let err = error(source);
            assert!(err.kind == ScriptErrorKind::Eval, "{source}: {err:?}");
        }
    }

    #[test]
    fn undefined_variables_are_refused_when_compiling() {
        let err = Sandbox::default().compile(POLICY, Block::Check, "let x = 1;\namount > 50000").unwrap_err();
        assert!(matches!(&err.kind, ScriptErrorKind::UndefinedVariable { name } if name == "amount"), "{err:?}");
        assert_eq!(err.line(), Some(2));
        assert_eq!(
            err.to_string(),
            "policy \"Big expenses\" block check: variable `amount` is not defined \
             (scripts see action, proposal, initiator and polity)"
        );
        // Declared variables and the four globals are fine.
        assert_eq!(value("let amount = action.amount; amount > 50000"), json!(true));
    }

    #[test]
    fn modules_are_refused() {
        for source in ["import \"x\" as y;", "import \"x\";", "y::f()"] {
            let err = Sandbox::default().compile(POLICY, Block::Check, source).unwrap_err();
            assert!(err.kind == ScriptErrorKind::Import, "{source}: {err:?}");
            assert_eq!(err.to_string(), "policy \"Big expenses\" block check: modules cannot be imported in policies");
        }
    }

    #[test]
    fn sleep_and_curry_are_refused() {
        for source in ["sleep(1000)", "sleep(1000.0)", "call(Fn(\"sleep\"), 1000)"] {
            let err = error(source);
            assert!(
                matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("sleep is not allowed")),
                "{source}: {err:?}"
            );
        }
        let err = Sandbox::default().compile(POLICY, Block::Check, "curry(Fn(\"x\"), 1)").unwrap_err();
        assert!(
            matches!(&err.kind, ScriptErrorKind::Syntax { message } if message.starts_with("curry is not allowed")),
            "{err:?}"
        );
    }

    #[test]
    fn functions_must_be_handed_the_globals() {
        let err = error("fn big() {\n  action.amount > 5\n}\nbig()");
        assert!(
            err.line == Some(2)
                && matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("`action` is not visible inside a function")),
            "{err:?}"
        );
        assert_eq!(value("fn big(a) { a.amount > 5 } big(action)"), json!(true));
    }

    #[test]
    fn a_panicking_host_is_an_error_not_a_crash() {
        struct Panics;
        impl HostData for Panics {
            fn cred(&self, _: &MemberQuery) -> Option<f64> {
                panic!("host bug")
            }
            fn grain(&self, _: &MemberQuery) -> Option<f64> {
                None
            }
            fn linked_account(&self, _: &MemberQuery, _: &str) -> Option<String> {
                None
            }
        }
        let err = run_with(&Sandbox::default(), "polity.cred(7)", Arc::new(Panics)).unwrap_err();
        assert!(matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("panicked")), "{err:?}");
    }

    #[test]
    fn print_and_debug_do_nothing() {
        assert_eq!(value("print(\"x\"); debug(action); 1"), json!(1));
    }

    #[test]
    fn the_globals_are_constants() {
        for source in ["action = 1", "action.amount = 1", "polity = 1"] {
            let err = error(source);
            assert!(matches!(err.kind, ScriptErrorKind::Runtime { .. }), "{source}: {err:?}");
        }
    }

    // --- error reporting ----------------------------------------------------------------------

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = Sandbox::default().compile(POLICY, Block::Check, "let x = 1;\nlet y = 2;\nlet z = ;").unwrap_err();
        assert!(err.line == Some(3) && matches!(err.kind, ScriptErrorKind::Syntax { .. }), "{err:?}");
        assert!(err.to_string().starts_with("policy \"Big expenses\" block check: syntax error at line 3: "), "{err}");
    }

    #[test]
    fn runtime_errors_carry_the_line() {
        let err = error("let x = 1;\n\nthrow \"boom\"");
        assert_eq!(
            err,
            ScriptError {
                policy: POLICY.into(),
                block: Block::Check,
                line: Some(3),
                kind: ScriptErrorKind::Runtime { message: "boom".into() }
            }
        );
        assert_eq!(err.to_string(), "policy \"Big expenses\" block check: runtime error at line 3: boom");
        // Inside a function: the line inside the function, not the call.
        let err = error("fn f(x) {\n  x / 0\n}\nf(1)");
        assert_eq!(err.line(), Some(2), "{err:?}");
        let err = error("action.amount.no_such_function()");
        assert!(err.line == Some(1) && matches!(err.kind, ScriptErrorKind::Runtime { .. }), "{err:?}");
    }

    #[test]
    fn errors_name_every_block() {
        let sandbox = Sandbox::default();
        for block in Block::ALL {
            let err = sandbox.compile("P", block, "nope").unwrap_err();
            assert_eq!(err.block(), block);
            assert!(err.to_string().starts_with(&format!("policy \"P\" block {block}: ")), "{err}");
            let script = sandbox.compile("P", block, "throw 1").unwrap();
            let err = sandbox.run(&script, &input(), Arc::new(NoHostData)).unwrap_err();
            assert_eq!((err.policy(), err.block()), ("P", block));
        }
    }

    #[test]
    fn blocks_display_as_written_in_policies() {
        let names: Vec<String> = Block::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["filter", "initialize", "check", "notify", "pass.script", "fail.script"]);
    }

    #[test]
    fn a_value_that_is_not_data_is_an_error() {
        for source in ["polity", "Fn(\"x\")", "|| 1"] {
            let err = error(source);
            assert!(
                err.line.is_none()
                    && matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("plain data")),
                "{source}: {err:?}"
            );
        }
        assert!(error("polity").to_string().ends_with("not polity"));
    }

    // --- happy paths --------------------------------------------------------------------------

    #[test]
    fn a_filter_returns_a_bool() {
        let sandbox = Sandbox::default();
        let filter = sandbox.compile(POLICY, Block::Filter, "action.amount > 50000").unwrap();
        let out = sandbox.run(&filter, &input(), Arc::new(NoHostData)).unwrap();
        assert_eq!(out, ScriptOutput { value: json!(true), actions: vec![] });
        let small = ScriptInput { action: json!({ "amount": 100 }), ..input() };
        assert_eq!(sandbox.run(&filter, &small, Arc::new(NoHostData)).unwrap().value, json!(false));
    }

    #[test]
    fn scripts_read_initiator_and_proposal() {
        assert_eq!(value("\"treasurer\" in initiator.roles && proposal.tally.yes >= 3"), json!(true));
        assert_eq!(value("initiator.name + \" asked for \" + action.amount"), json!("alice asked for 60000"));
        assert_eq!(value("proposal.tally.no"), json!(1));
        assert_eq!(value("action.missing"), Value::Null);
    }

    #[test]
    fn values_come_back_as_json() {
        assert_eq!(value(""), Value::Null);
        assert_eq!(value("()"), Value::Null);
        assert_eq!(value("let x = 5;"), Value::Null);
        assert_eq!(
            value("#{a: [1, 2.5, \"x\", 'c', ()], b: true, c: #{d: -3}}"),
            json!({ "a": [1, 2.5, "x", "c", null], "b": true, "c": { "d": -3 } })
        );
        assert_eq!(value("\"passed\""), json!("passed"));
        assert_eq!(value("exit(\"failed\"); \"passed\""), json!("failed"));
        assert_eq!(value("fn double(x) { x * 2 } double(action.amount)"), json!(120_000));
        assert_eq!(value("[3, 1, 2].filter(|x| x > 1).map(|x| x * 10)"), json!([30, 20]));
    }

    #[test]
    fn scripts_read_host_data() {
        let host = Arc::new(TestHost::default());
        let sandbox = Sandbox::default();
        let check = |source: &str| run_with(&sandbox, source, host.clone()).unwrap().value;
        assert_eq!(check("polity.cred(initiator.id) >= 10.0"), json!(true));
        assert_eq!(check("polity.cred(\"alice\")"), json!(12.5));
        assert_eq!(check("polity.cred(8)"), Value::Null);
        assert_eq!(check("polity.cred(8) >= 10.0"), json!(false));
        assert_eq!(check("polity.cred(())"), Value::Null);
        assert_eq!(check("polity.grain(7)"), json!(300.0));
        assert_eq!(check("polity.linked_account(initiator.id, \"github\")"), json!("alice-gh"));
        assert_eq!(check("polity.linked_account(\"alice\", \"discord\")"), Value::Null);
        assert_eq!(host.asked.lock().unwrap().first(), Some(&MemberQuery::Id(MemberId(7))), "an int is a member id");
        assert!(host.asked.lock().unwrap().contains(&MemberQuery::Name("alice".into())));
        // Without host data every answer is ().
        assert_eq!(
            value("[polity.cred(7), polity.grain(7), polity.linked_account(7, \"github\")]"),
            json!([null, null, null])
        );
    }

    #[test]
    fn scripts_ask_for_actions() {
        let out =
            run("polity.act(\"opencollective.process_expense\", #{expense_id: action.id, decision: \"APPROVE\"});\n\
             polity.message(\"hi\");\n\
             polity.start_process(\"loomio.poll\", #{title: \"Approve?\", options: [\"yes\", \"no\"]});\n\
             polity.act(\"discord.lock_channel\");\n\
             \"proposed\"")
            .unwrap();
        assert_eq!(out.value, json!("proposed"));
        let params = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        assert_eq!(
            out.actions,
            vec![
                ScriptAction {
                    name: "opencollective.process_expense".into(),
                    params: params(json!({ "expense_id": 42, "decision": "APPROVE" })),
                },
                ScriptAction { name: "message".into(), params: params(json!({ "text": "hi" })) },
                ScriptAction {
                    name: "start_process".into(),
                    params: params(json!({
                        "process": "loomio.poll",
                        "params": { "title": "Approve?", "options": ["yes", "no"] }
                    })),
                },
                ScriptAction { name: "discord.lock_channel".into(), params: serde_json::Map::new() },
            ]
        );
    }

    #[test]
    fn bad_action_names_are_refused() {
        for name in ["Bad", "opencollective", "Discord.kick", "a.b.c", ".kick", "discord.", "slack eng.post", ""] {
            let err = error(&format!("polity.act({name:?}, #{{}})"));
            assert!(
                err.line == Some(1)
                    && matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("is not an action name")),
                "{name}: {err:?}"
            );
        }
        let err = error("polity.act(\"x.y\", #{f: polity})");
        assert!(matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("plain data")), "{err:?}");
        let err = error("polity.start_process(\"  \")");
        assert!(matches!(err.kind, ScriptErrorKind::Runtime { .. }), "{err:?}");
    }

    #[test]
    fn a_throw_without_a_message_says_so() {
        // Found by tests/fuzz.rs: this was "runtime error at line 1: " with nothing after it.
        for source in ["throw", "throw \"\"", "throw ()"] {
            assert_eq!(
                error(source).to_string(),
                "policy \"Big expenses\" block check: runtime error at line 1: `throw` with no message",
                "{source}"
            );
        }
        assert!(error("throw \"no\"").to_string().ends_with("runtime error at line 1: no"));
    }

    #[test]
    fn a_failed_run_reports_no_actions_and_a_later_run_starts_clean() {
        let sandbox = Sandbox::default();
        let script =
            sandbox.compile(POLICY, Block::Notify, "polity.message(\"a\"); if action.fail { throw \"no\" }").unwrap();
        let failing = ScriptInput { action: json!({ "fail": true }), ..input() };
        assert!(sandbox.run(&script, &failing, Arc::new(NoHostData)).is_err());
        let ok = ScriptInput { action: json!({ "fail": false }), ..input() };
        assert_eq!(sandbox.run(&script, &ok, Arc::new(NoHostData)).unwrap().actions.len(), 1);
    }

    #[test]
    fn a_compiled_script_is_reusable() {
        let sandbox = Sandbox::default();
        let script = sandbox.compile(POLICY, Block::Check, "polity.message(`${action.n}`); action.n * 2").unwrap();
        assert_eq!(script.policy(), POLICY);
        assert_eq!(script.block(), Block::Check);
        assert_eq!(format!("{script:?}"), "Script { policy: \"Big expenses\", block: Check, .. }");
        for n in 0..200 {
            let input = ScriptInput { action: json!({ "n": n }), ..ScriptInput::default() };
            let out = sandbox.run(&script, &input, Arc::new(NoHostData)).unwrap();
            assert_eq!(out.value, json!(n * 2));
            assert_eq!(out.actions.len(), 1);
        }
    }

    #[test]
    fn one_sandbox_serves_many_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Sandbox>();
        shareable::<Script>();
        let sandbox = Arc::new(Sandbox::default());
        let script = sandbox.compile(POLICY, Block::Check, "action.n + 1").unwrap();
        std::thread::scope(|threads| {
            for n in 0..4 {
                let (sandbox, script) = (&sandbox, &script);
                threads.spawn(move || {
                    let input = ScriptInput { action: json!({ "n": n }), ..ScriptInput::default() };
                    for _ in 0..20 {
                        assert_eq!(sandbox.run(script, &input, Arc::new(NoHostData)).unwrap().value, json!(n + 1));
                    }
                });
            }
        });
    }

    #[test]
    fn default_limits() {
        let limits = Limits::default();
        assert_eq!(limits.max_operations, 200_000);
        assert_eq!(limits.max_call_levels, 32);
        assert_eq!((limits.max_expr_depth, limits.max_fn_expr_depth), (64, 32));
        assert_eq!(limits.max_string_size, 64 * 1024);
        assert_eq!((limits.max_array_size, limits.max_map_size), (10_000, 10_000));
        assert_eq!(limits.wall_clock, Duration::from_millis(250));
        assert_eq!(Sandbox::default().limits().max_operations, 200_000);
        assert_eq!(DEFAULT_STEP_BUDGET, 4 * limits.wall_clock);
    }

    #[test]
    fn deeply_nested_expressions_are_refused_when_compiling() {
        let source = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        let err = Sandbox::default().compile(POLICY, Block::Check, &source).unwrap_err();
        assert!(matches!(err.kind, ScriptErrorKind::Syntax { .. }), "{err:?}");
        // Found by tests/fuzz.rs: this said "Expression exceeds maximum complexity".
        assert_eq!(
            err.to_string(),
            "policy \"Big expenses\" block check: syntax error at line 1: expressions nest too deeply (at most 64 levels, 32 inside functions)"
        );
    }

    // --- the script stack ---------------------------------------------------------------------

    /// A host that notes which thread asked it something.
    #[derive(Default)]
    struct ThreadNotingHost {
        threads: Mutex<Vec<std::thread::ThreadId>>,
    }

    impl HostData for ThreadNotingHost {
        fn cred(&self, _: &MemberQuery) -> Option<f64> {
            self.threads.lock().unwrap().push(std::thread::current().id());
            None
        }
        fn grain(&self, _: &MemberQuery) -> Option<f64> {
            None
        }
        fn linked_account(&self, _: &MemberQuery, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn a_run_outside_with_script_stack_gets_a_thread_of_its_own() {
        assert!(!on_script_stack());
        let host = Arc::new(ThreadNotingHost::default());
        assert_eq!(value_with(&sandbox(), "polity.cred(7)", host.clone()), Value::Null);
        let threads = host.threads.lock().unwrap();
        assert_eq!(threads.len(), 1);
        assert_ne!(threads[0], std::thread::current().id());
    }

    fn value_with(sandbox: &Sandbox, source: &str, host: Arc<dyn HostData>) -> Value {
        run_with(sandbox, source, host).unwrap_or_else(|e| panic!("{source:?} failed: {e}")).value
    }

    #[test]
    fn runs_inside_with_script_stack_run_inline() {
        let host = Arc::new(ThreadNotingHost::default());
        let stack_thread = with_script_stack(|| {
            assert!(on_script_stack());
            let sandbox = sandbox();
            for _ in 0..3 {
                assert_eq!(value_with(&sandbox, "polity.cred(7)", host.clone()), Value::Null);
            }
            std::thread::current().id()
        });
        assert_ne!(stack_thread, std::thread::current().id());
        assert_eq!(*host.threads.lock().unwrap(), vec![stack_thread; 3]);
        assert!(!on_script_stack(), "the flag stays on the script thread");
    }

    #[test]
    fn inline_runs_keep_every_limit_and_survive_deep_nesting() {
        with_script_stack(|| {
            assert!(on_script_stack());
            let err = error("fn f(x) { f(x + 1) } f(0)");
            assert_eq!(err.kind, ScriptErrorKind::TooDeep { limit: 32 });
            let err = error("loop {}");
            assert_eq!(err.kind, ScriptErrorKind::TooManyOperations { limit: 200_000 });
            let err = error("let f = || 1; loop { let g = f; f = || g.call(); }");
            assert!(err.is_limit(), "{err:?}");
            let err =
                run_with(&Sandbox::default(), "let a = []; loop { a = [#{a: a}]; }", Arc::new(NoHostData)).unwrap_err();
            assert!(err.is_limit(), "{err:?}");
            let err = error("let a = []; for i in 0..200 { a = [a]; } a");
            assert!(
                matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("nests deeper than 64")),
                "{err:?}"
            );
            let err = error("for i in 0..1000 { polity.message(\"hi\"); }");
            assert_eq!(err.kind, ScriptErrorKind::TooManyActions { limit: MAX_ACTIONS });
            // The thread keeps serving runs after all that.
            assert_eq!(value("action.amount + 1"), json!(60_001));
        });
    }

    #[test]
    fn a_panic_in_an_inline_run_is_an_error_not_a_crash() {
        struct Panics;
        impl HostData for Panics {
            fn cred(&self, _: &MemberQuery) -> Option<f64> {
                panic!("host bug")
            }
            fn grain(&self, _: &MemberQuery) -> Option<f64> {
                None
            }
            fn linked_account(&self, _: &MemberQuery, _: &str) -> Option<String> {
                None
            }
        }
        with_script_stack(|| {
            let sandbox = Sandbox::default();
            let err = run_with(&sandbox, "polity.cred(7)", Arc::new(Panics)).unwrap_err();
            assert_eq!(
                err,
                ScriptError {
                    policy: POLICY.into(),
                    block: Block::Check,
                    line: None,
                    kind: ScriptErrorKind::Runtime { message: "the script engine failed (panicked)".into() }
                }
            );
            // The deadline guard unwound with the panic; the next run has a fresh budget.
            assert_eq!(DEADLINE.with(Cell::get), None);
            assert_eq!(value("1 + 1"), json!(2));
        });
    }

    #[test]
    fn with_script_stack_nested_uses_one_thread() {
        assert!(!on_script_stack());
        let (outer, inner) = with_script_stack(|| {
            let outer = (std::thread::current().id(), on_script_stack());
            let inner = with_script_stack(|| (std::thread::current().id(), on_script_stack()));
            (outer, inner)
        });
        assert!(outer.1 && inner.1);
        assert_eq!(outer.0, inner.0, "the nested call ran where it was");
        assert_ne!(outer.0, std::thread::current().id());
    }

    #[test]
    fn with_script_stack_reraises_a_panic() {
        let payload = std::panic::catch_unwind(|| with_script_stack(|| -> u8 { panic!("step bug") })).unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"step bug"));
        assert_eq!(with_script_stack(|| 7), 7);
    }

    // --- inputs -------------------------------------------------------------------------------

    #[test]
    fn json_converts_as_rhai_serde_would() {
        let input = json!({
            "null": null, "t": true, "f": false, "int": 42, "neg": -7, "min": i64::MIN, "max": i64::MAX,
            "huge": u64::MAX, "float": 2.5, "whole_float": 3.0, "s": "x \u{e9}", "empty": {},
            "list": [1, [2, [3, {"deep": ["a", null]}]], 1.5, ""],
        });
        let direct = from_json(&input);
        let via_serde = rhai::serde::to_dynamic(&input).unwrap();
        assert_eq!(format!("{direct:?}"), format!("{via_serde:?}"));
        assert_eq!(to_json(&direct, 0).unwrap()["huge"], json!(u64::MAX as f64));
        let back = to_json(&direct, 0).unwrap();
        assert_eq!(back["list"], input["list"]);
        assert_eq!(back["min"], input["min"]);
    }

    #[test]
    fn globals_are_found_as_whole_words() {
        assert!(mentions("action.amount > 5", "action"));
        assert!(mentions("(action)", "action"));
        assert!(mentions("x.action", "action"), "errs on the side of yes");
        assert!(mentions("\"action\"", "action"), "errs on the side of yes");
        assert!(mentions("let s = `${action}`;", "action"));
        assert!(mentions("transaction; action", "action"));
        assert!(!mentions("transaction", "action"));
        assert!(!mentions("actions + action_1 + _action", "action"));
        assert!(!mentions("", "action"));
        let m = Mentions::of("proposal.tally.yes >= 3 && initiator.admin");
        assert!(!m.action && m.proposal && m.initiator && !m.polity);
    }

    #[test]
    fn unmentioned_globals_are_still_defined() {
        // `is_def_var` is the one way to name a variable without writing it out.
        assert_eq!(value("is_def_var(\"act\" + \"ion\") && is_def_var(\"pol\" + \"ity\")"), json!(true));
        assert_eq!(value("let n = 1; n + 1"), json!(2));
        let err = error("fn f() { action } f()");
        assert!(
            matches!(&err.kind, ScriptErrorKind::Runtime { message } if message.contains("not visible")),
            "{err:?}"
        );
    }
}
