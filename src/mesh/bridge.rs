//! The bridge registry of the mesh (`conn.bridge()`, js/bridge.js), sans-IO.
//!
//! A context declares a bridge to its host (a `DeclareBridge` frame: its name and its
//! configuration), and lets it go (`UndeclareBridge`). The host keeps a [`Registry`]: each
//! bridge's configuration and the contexts that declared it. The first declaration starts
//! it (the driver's Runner connects to RabbitMQ); a second one with other options is
//! refused (406); the bridge stops once no live context declares it (undeclared, or the
//! context is gone). The Runner tells its [`BridgeStatus`] to the host state, which tells
//! every context (`BridgeStatus` frames, `BridgeGone` once it stops). After a failover,
//! each client declares its bridges again to the new host (as it re-announces its
//! channels), so the new host runs them. Every context keeps its own declarations and the
//! statuses it was told in [`Declared`].
//!
//! The configuration is what bridgeConfig (js/bridge.js) made of the app's options,
//! carried as a field [`Table`] (strings, whole numbers, booleans, arrays and tables, the
//! wire's strictly decoded table format; no JSON). The mesh only compares two of them
//! (a table's keys are sorted, so equal options are equal tables whatever their order in
//! JS) and leaves out the `passcode` of the copy every context is told; the Runner that
//! runs it checks it again with bridgeConfig before it uses it, so that a declaration no
//! `bridge()` made stops with an error in its status.

use crate::codec::{DecodeError, Reader, Writer};
use crate::core::{AmqpError, Table};

use super::frame::Frame;

/// A bridge's declaration: its name, and bridgeConfig's configuration (see the module's doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BridgeConfig {
    pub name: String,
    pub table: Table,
}

/// What a bridge is doing (`BridgeStatus.state` in index.d.ts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BridgeState {
    #[default]
    Connecting,
    Connected,
    /// Between attempts, until `retry_at`.
    Waiting,
    Stopped,
}

impl BridgeState {
    const ALL: [BridgeState; 4] =
        [BridgeState::Connecting, BridgeState::Connected, BridgeState::Waiting, BridgeState::Stopped];
    const NAMES: [&'static str; 4] = ["connecting", "connected", "waiting", "stopped"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_name(s: &str) -> Option<BridgeState> {
        Self::NAMES.iter().position(|n| *n == s).map(|i| Self::ALL[i])
    }
}

/// What the Runner tells of a bridge: its state and counters (times in ms since the epoch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BridgeStatus {
    pub state: BridgeState,
    pub error: Option<String>,
    pub since: u64,
    pub retry_at: Option<u64>,
    /// Sessions that reached CONNECTED.
    pub connects: u64,
    /// Sent, confirmed, pending, skipped headers.
    pub outbound: [u64; 4],
    /// Received, acked, refused.
    pub inbound: [u64; 3],
}

// ---------------------------------------------------------------- wire format

type R<T> = Result<T, DecodeError>;

pub(super) fn write_config(w: &mut Writer, c: &BridgeConfig) {
    w.str(&c.name);
    w.table(&c.table);
}

/// A name of 1 to 100 bytes (as bridgeConfig checks it), and a table.
pub(super) fn read_config(r: &mut Reader) -> R<BridgeConfig> {
    let name = r.str()?.to_owned();
    if name.is_empty() || name.len() > 100 {
        return Err(DecodeError { what: "bridge name of 0 or over 100 bytes", at: r.pos() });
    }
    Ok(BridgeConfig { name, table: r.table()? })
}

pub(super) fn write_status(w: &mut Writer, s: &BridgeStatus) {
    w.u8(s.state as u8);
    w.opt_str(s.error.as_deref());
    w.uvar(s.since);
    w.opt_uvar(s.retry_at);
    w.uvar(s.connects);
    for n in s.outbound.iter().chain(&s.inbound) {
        w.uvar(*n);
    }
}

pub(super) fn read_status(r: &mut Reader) -> R<BridgeStatus> {
    let at = r.pos();
    let Some(&state) = BridgeState::ALL.get(r.u8()? as usize) else {
        return Err(DecodeError { what: "unknown bridge state", at });
    };
    let mut s = BridgeStatus {
        state,
        error: r.opt_str()?,
        since: r.uvar()?,
        retry_at: r.opt_uvar()?,
        connects: r.uvar()?,
        ..Default::default()
    };
    for n in s.outbound.iter_mut().chain(&mut s.inbound) {
        *n = r.uvar()?;
    }
    Ok(s)
}

// ---------------------------------------------------------------- the host's registry

/// A bridge as the host's registry or a context keeps it. A few of them: a vector, in
/// declaration order, of one type for both sides (each map or element type costs wasm).
#[derive(Debug)]
struct Entry {
    config: BridgeConfig,
    /// The host: the contexts that declared it, each once. A context: one per `bridge()`
    /// handle that holds it.
    owners: Vec<u64>,
    status: Option<BridgeStatus>,
}

fn find(list: &[Entry], name: &str) -> Option<usize> {
    list.iter().position(|e| e.config.name == name)
}

/// Takes one owner `who` (or, with `all`, every one) from bridge `name`; the bridge goes
/// with the last. Whether it went.
fn let_go(list: &mut Vec<Entry>, name: &str, who: u64, all: bool) -> bool {
    let Some(i) = find(list, name) else { return false };
    let owners = &mut list[i].owners;
    match owners.iter().position(|o| *o == who) {
        Some(at) if !all => {
            owners.remove(at);
        }
        _ => owners.retain(|o| *o != who),
    }
    if !owners.is_empty() {
        return false;
    }
    list.remove(i);
    true
}

/// The 406 of bridge `name` declared again with other options.
fn other_options(name: &str, what: &str) -> AmqpError {
    AmqpError::precondition(format!("bridge '{name}' {what}"))
}

/// The bridges the host runs (see the module's doc).
#[derive(Debug, Default)]
pub struct Registry {
    bridges: Vec<Entry>,
}

/// A status for every context: the configuration without its passcode.
fn status_frame(e: &Entry) -> Option<Frame> {
    let mut config = e.config.clone();
    config.table.remove("passcode");
    Some(Frame::BridgeStatus { config, status: e.status.clone()? })
}

impl Registry {
    /// Context `ctx` declares `config`: the bridge to start if it is its first declaration;
    /// a 406 if it runs with other options.
    pub fn declare(&mut self, ctx: u64, config: BridgeConfig) -> Result<Option<BridgeConfig>, AmqpError> {
        let Some(i) = find(&self.bridges, &config.name) else {
            self.bridges.push(Entry { config: config.clone(), owners: vec![ctx], status: None });
            return Ok(Some(config));
        };
        let b = &mut self.bridges[i];
        if b.config != config {
            return Err(other_options(
                &config.name,
                "runs already with other options (declared by another tab or worker): give this one another name, or \
                 the same options",
            ));
        }
        if !b.owners.contains(&ctx) {
            b.owners.push(ctx);
        }
        Ok(None)
    }

    /// Context `ctx` lets bridge `name` go: whether it stops (no one declares it now).
    pub fn undeclare(&mut self, ctx: u64, name: &str) -> bool {
        let_go(&mut self.bridges, name, ctx, true)
    }

    /// Context `ctx` is gone: the bridges no one else declares stop (their names).
    pub fn gone(&mut self, ctx: u64) -> Vec<String> {
        let mut names = self.names();
        names.retain(|n| self.undeclare(ctx, n));
        names
    }

    /// The Runner's news of bridge `name`: whether it runs (and every context is to be told).
    pub fn status(&mut self, name: &str, status: BridgeStatus) -> bool {
        let Some(i) = find(&self.bridges, name) else { return false };
        self.bridges[i].status = Some(status);
        true
    }

    /// The frame that tells bridge `name`'s status, if it has one.
    pub fn status_of(&self, name: &str) -> Option<Frame> {
        status_frame(&self.bridges[find(&self.bridges, name)?])
    }

    /// The statuses known, for a context that just said hello.
    pub fn statuses(&self) -> Vec<Frame> {
        self.bridges.iter().filter_map(status_frame).collect()
    }

    /// The names of the bridges that run, in declaration order.
    pub fn names(&self) -> Vec<String> {
        self.bridges.iter().map(|b| b.config.name.clone()).collect()
    }
}

// ---------------------------------------------------------------- a context's side

/// A context's bridges: those its connections declared (re-declared to a new host), and
/// the statuses its host told.
#[derive(Debug, Default)]
pub struct Declared {
    mine: Vec<Entry>,
    /// The host's latest status of each bridge, with its configuration (without passcode).
    told: Vec<Entry>,
}

impl Declared {
    /// A `bridge()` of this context: `Ok(true)` if the host must be told (its first here);
    /// a 406 if this context declared the name already with other options.
    pub fn declare(&mut self, config: &BridgeConfig) -> Result<bool, AmqpError> {
        let Some(i) = find(&self.mine, &config.name) else {
            self.mine.push(Entry { config: config.clone(), owners: vec![0], status: None });
            return Ok(true);
        };
        let e = &mut self.mine[i];
        if e.config != *config {
            return Err(other_options(
                &config.name,
                "is declared already in this context with other options: close it first, or use another name",
            ));
        }
        e.owners.push(0);
        Ok(false)
    }

    /// A handle let go: `true` if it was the last, so the host must be told.
    pub fn undeclare(&mut self, name: &str) -> bool {
        let_go(&mut self.mine, name, 0, false)
    }

    /// Whether a `bridge()` handle of this context holds bridge `name`.
    pub fn holds(&self, name: &str) -> bool {
        find(&self.mine, name).is_some()
    }

    /// The host refused it: it is not this context's.
    pub fn refused(&mut self, name: &str) {
        let_go(&mut self.mine, name, 0, true);
    }

    /// What to declare again to a new host; the statuses of the old one are stale.
    pub fn for_new_host(&mut self) -> Vec<BridgeConfig> {
        self.told.clear();
        self.mine.iter().map(|e| e.config.clone()).collect()
    }

    /// A frame of the host about bridges.
    pub fn told(&mut self, f: Frame) {
        let (name, entry) = match f {
            Frame::BridgeStatus { config, status } => {
                (config.name.clone(), Some(Entry { config, owners: Vec::new(), status: Some(status) }))
            }
            Frame::BridgeGone { name } => (name, None),
            _ => return,
        };
        match (find(&self.told, &name), entry) {
            (Some(i), Some(e)) => self.told[i] = e,
            (None, Some(e)) => self.told.push(e),
            (Some(i), None) => {
                self.told.remove(i);
            }
            (None, None) => {}
        }
    }

    /// Every bridge's latest status, in the order the host first told them.
    pub fn statuses(&self) -> impl Iterator<Item = (&BridgeConfig, &BridgeStatus)> {
        self.told.iter().filter_map(|e| Some((&e.config, e.status.as_ref()?)))
    }
}
