//! A native deterministic simulation of the whole mesh (issue 16, item 7), in the manner
//! of FoundationDB's simulator and TigerBeetle's VOPR: N contexts (2 to 5) of one origin,
//! each with a [`ClientState`] and, in the one holding the host lock, a [`HostState`]
//! over an [`Engine`], glued as the browser driver (`src/wasm/link.rs`,
//! `src/wasm/link/serve.rs`) glues them; a simulated BroadcastChannel, Web Locks and
//! IndexedDB; and a seeded schedule that picks every step.
//!
//! The world:
//! - BroadcastChannel: what a context sends in one step goes out as one post (encoded
//!   with [`PostWriter`], decoded by each receiver with [`frame::decode`]), to every other
//!   live context, in order per sender, interleaved at random across senders. Posts of a
//!   context that died meanwhile still arrive (the channel had them already).
//! - Web Locks: every context holds its client lock for its life and queues for the host
//!   lock; the host lock goes to the first live waiter when its holder dies. A host that
//!   watches a context (`Output::Watch`) is told `client_gone` once its lock is released
//!   (at once if it is already gone). `live_clients` answers the contexts alive when the
//!   query runs, a step after the take-over (as `navigator.locks.query()` is async).
//! - IndexedDB: one [`MemoryStore`] for the origin. A transaction in flight ends in a step
//!   of its own: committed (its writes stored, atomically), failed, or refused (quota);
//!   a crash of the host before it ends stores nothing of it. A new host recovers from
//!   what is stored, as `Host::open` does for an adapter (`Log::recover`, `restore`).
//! - The hosting context's own frames go to its host state at once; what its host state
//!   posts to it arrives in a later step (after the current task), but for an answer with
//!   nothing before it still waiting, which goes at once, as in `link.rs`.
//! - Time advances in steps of its own; the engine's and the host state's timers fire
//!   when it passes their wake-up (the resume window is 10 s of sim time). A starved
//!   context takes no step (and fires no timer, ends no transaction) for a while.
//!
//! The apps: each context has a connection and up to 3 channels, some in confirm mode;
//! it publishes (persistent or transient) to the durable queues `d0`, `d1`, `d2`
//! (`d2`: `x-max-length` 3 with `reject-publish`, so that publishes are nacked), the
//! transient queue `t0` and a topic feed; consumes with prefetch, acks (late: any held
//! delivery), nacks and rejects with or without requeue, cancels, gets, waits for
//! confirms, closes channels, and keeps a feed: an exclusive server-named queue bound to
//! `amq.topic` `feed.#`, consumed (the cross-tab feed of issue 16's bug 2). Every body is
//! a unique id (`m<n>`).
//!
//! Invariants, checked as the events happen (so after every step) and at quiescence:
//! - **No confirmed message lost**: a persistent message to a durable queue confirmed
//!   with an ack is, until an app acked it (or rejected it without requeue), in the store
//!   every new host recovers; after the final drain, every one was acked by an app.
//! - **No unflagged redelivery**: a message a host handed out before is handed out again
//!   (by any host) only with `redelivered` set (checked as hosts hand messages out: an
//!   app may read the second delivery first, from another post). No exception: with
//!   storage, a first delivery waits for its queue's delivery horizon to be stored, so a
//!   crash brings back flagged every message handed out before it (see `store::log`);
//!   transient messages do not survive a crash. A message is (queue, body): one published
//!   to the feed is one message per feed queue.
//!   (The one documented exception, a fence abandoned after a newer version upgraded the
//!   database, is not simulated: no transaction ends `Upgraded`.)
//! - **No duplicate to a live consumer**: the host never hands out a message that an app
//!   of a live context holds unacked on a channel that is open, unless the holder lost it
//!   as designed: the host closed that channel (a channel error), the new host could not
//!   resume that channel, or the resume window ended by time before the holder
//!   re-announced (a starved context; see `RESUME_WINDOW_MS`).
//! - **No redelivery of a settled message**: a message an app acked (or rejected without
//!   requeue) is not handed out again by a new host once the app re-announced its channel
//!   to it within `SETTLED_KEEP_MS` of the settlement (its settled list settles it again),
//!   though the host that handed it out died before storing the settlement.
//! - **Live subscriptions survive**: after the drain, a probe published to the feed
//!   reaches every live context whose feed consumer is still registered and was not
//!   reported lost in a failover.
//! - **Host = client**: every publish on a confirm channel gets exactly one confirm, in
//!   every context, hosting or not; `waitForConfirms` is over only once every publish
//!   not yet confirmed when it was called is, and rejects iff one of those was nacked (or
//!   failed with the host, or the channel closed), as amqplib's: publishes nacked before
//!   the call do not count.
//! - **Counts match**: at quiescence, each queue's unacked count in the host's core is
//!   what the apps hold (unless an app holds deliveries of an earlier host, which the
//!   core adopts only if it still has them); every so often and at the end, the store
//!   recovers the same number of messages in `d0` and `d2` (persistent only) as the core
//!   has ready and unacked (but for messages of a failed transaction that were handed out
//!   before it failed: their publishers were nacked, and they are transient from then
//!   on); after the drain, every queue the drain consumes is empty.
//!
//! The bugs the simulation found (A, B, D, E, F in the README's "The mesh, simulated")
//! are fixed, each with a regression test (`found` in `tests/sim.rs`).
//!
//! Bridges: apps declare and let go of bridges `b0` and `b1` (all with the same options);
//! the host's Runner (simulated: it tells a status at its next step) starts and stops as
//! the host state says. At quiescence, the host runs exactly the bridges that some live
//! context holds, each started once, and every live context knows the status of each.
//!
//! Not simulated: paging (the engine runs without `Paging`), a newer version upgrading the database
//! (`WriteOutcome::Upgraded`), queue deletion and purge, TTL and dead-lettering, an app
//! closing a connection, `recover`, stats and peek; the final drain ends every schedule
//! without faults.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use tabbit::core::{Broker, BrokerConfig, Consume, FieldValue, Message, QueueDeclare, Table};
use tabbit::host::engine::{Engine, Transaction, WriteOutcome};
use tabbit::mesh::bridge::{BridgeConfig, BridgeState, BridgeStatus};
use tabbit::mesh::client::{ClientState, Notice, Track, SETTLED_KEEP_MS};
use tabbit::mesh::frame::{self, Answer, Command, Frame, PostWriter, WireDelivery, WireEvent, EVERYONE};
use tabbit::mesh::host::{HostState, Output};
use tabbit::store::{restore, Collection, Log, MemoryStore};

/// splitmix64: small, fast, deterministic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// The seed of schedule `n` of a run seeded `seed`.
pub fn schedule_seed(seed: u64, n: u64) -> u64 {
    Rng::new(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03)).next()
}

/// What a schedule looks like.
#[derive(Clone, Debug)]
pub struct Config {
    /// Steps before the final drain: chosen in this range.
    pub steps: (u64, u64),
    /// Contexts alive at most (and at the start: 2 to this).
    pub max_contexts: u64,
    /// Crashes, restarts, starvation, failed transactions.
    pub faults: bool,
    /// Lines of trace kept for a report.
    pub trace: usize,
    /// A bug planted in the simulation's own copy of the driver, to show that the
    /// invariants catch it: `no-horizon` (first deliveries do not wait for their delivery
    /// horizon to be stored: `BrokerConfig::delivery_horizon` false), `no-window` (a new
    /// host starts without a resume window: `take_over` false), `no-watch` (the driver
    /// never watches a context's lock, so the host is never told it is gone),
    /// `store-failed` (a failed transaction's writes are stored anyway).
    pub plant: Option<String>,
    /// Trace aids: the ready messages of `d0` after every step; the message ids in each
    /// stored segment.
    /// A queue whose ready messages are logged after every step (`SIM_DEBUG_Q`).
    pub debug_queue: Option<String>,
    pub debug_segments: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            steps: (150, 450),
            max_contexts: 5,
            faults: true,
            trace: 50,
            plant: None,
            debug_queue: None,
            debug_segments: false,
        }
    }
}

/// A broken invariant: where, and the steps that led to it.
#[derive(Debug)]
pub struct Violation {
    /// The schedule's number in its run (`run_range`), and its seed.
    pub schedule: u64,
    pub seed: u64,
    pub step: u64,
    pub what: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "VIOLATION (schedule #{}, schedule seed {}, step {}): {}",
            self.schedule, self.seed, self.step, self.what
        )?;
        writeln!(f, "last {} steps:", self.trace.len())?;
        for l in &self.trace {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// What a schedule did, for the runner's totals.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub steps: u64,
    pub posts: u64,
    pub publishes: u64,
    pub confirms_ok: u64,
    pub confirms_err: u64,
    pub deliveries: u64,
    pub redeliveries: u64,
    pub host_crashes: u64,
    pub client_crashes: u64,
    pub failovers: u64,
    pub commits: u64,
    pub failed_writes: u64,
    pub window_timeouts: u64,
    pub waits_hosting: u64,
    pub waits_client: u64,
    pub waits_rejected: u64,
    pub probes_checked: u64,
    pub must_survive: u64,
    pub quiet_checks: u64,
    pub bridges_started: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.steps += o.steps;
        self.posts += o.posts;
        self.publishes += o.publishes;
        self.confirms_ok += o.confirms_ok;
        self.confirms_err += o.confirms_err;
        self.deliveries += o.deliveries;
        self.redeliveries += o.redeliveries;
        self.host_crashes += o.host_crashes;
        self.client_crashes += o.client_crashes;
        self.failovers += o.failovers;
        self.commits += o.commits;
        self.failed_writes += o.failed_writes;
        self.window_timeouts += o.window_timeouts;
        self.waits_hosting += o.waits_hosting;
        self.waits_client += o.waits_client;
        self.waits_rejected += o.waits_rejected;
        self.probes_checked += o.probes_checked;
        self.must_survive += o.must_survive;
        self.quiet_checks += o.quiet_checks;
        self.bridges_started += o.bridges_started;
    }
}

type Res<T = ()> = Result<T, String>;

const DURABLE: [&str; 3] = ["d0", "d1", "d2"];
/// Queues the drain consumes.
const DRAINED: [&str; 4] = ["d0", "d1", "d2", "t0"];

fn declare_of(name: &str) -> QueueDeclare {
    let mut d = QueueDeclare { name: name.into(), durable: name.starts_with('d'), ..Default::default() };
    if name == "d2" {
        d.arguments.insert("x-max-length".into(), FieldValue::Int(3));
        d.arguments.insert("x-overflow".into(), FieldValue::Str("reject-publish".into()));
    }
    d
}

/// The message ids in a stored segment's bytes (each body is `m<n>`).
fn bodies(v: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..v.len() {
        if v[i] == b'm' && v.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            let end = (i + 1..v.len()).find(|j| !v[*j].is_ascii_digit()).unwrap_or(v.len());
            if let Ok(id) = std::str::from_utf8(&v[i + 1..end]).unwrap_or("").parse() {
                out.push(id);
            }
        }
    }
    out
}

fn msg_id(m: &Message) -> u64 {
    std::str::from_utf8(&m.body).ok().and_then(|s| s.strip_prefix('m')).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
}

/// An app settled a delivery (ack, or reject without requeue) of another context's host:
/// its client state keeps it a while (`SETTLED_KEEP_MS`) to settle it again with a new
/// host, in case the old one never stored the settlement.
#[derive(Clone, Debug)]
struct SettledAt {
    ctx: u64,
    chan: u32,
    at: u64,
    /// The host that handed it out.
    host: u64,
    /// The host the settlement went to.
    to: u64,
}

/// A delivery an app holds unacked.
#[derive(Clone, Debug)]
struct Held {
    msg: u64,
    queue: String,
    /// Whether the host must not hand it to anyone else (see the module's doc).
    protected: bool,
    /// The host that handed it out.
    host: u64,
}

#[derive(Debug, Default)]
struct AppChan {
    conn: u32,
    confirm: bool,
    closed: bool,
    /// The host closed it (its `Closed` event may not have arrived yet): what it held,
    /// and what it will hold from deliveries made before, went back to the queues.
    host_closed: bool,
    /// tag → (queue, no_ack)
    consumers: BTreeMap<String, (String, bool)>,
    held: BTreeMap<u64, Held>,
    /// confirm seq → message
    pubs: BTreeMap<u64, u64>,
    /// confirm seq → acked
    confirmed: BTreeMap<u64, bool>,
    last_seq: u64,
    /// wait id → the publishes not yet confirmed when it was called (as amqplib's
    /// `waitForConfirms` waits for those only)
    waits: BTreeMap<u64, Vec<u64>>,
}

#[derive(Debug)]
enum Call {
    DeclareFeed,
    BindFeed,
    Get { chan: u32, queue: String, no_ack: bool },
    Cancel { chan: u32, tag: String },
    Bridge(String),
    Other,
}

#[derive(Debug, Default)]
struct Feed {
    name: Option<String>,
    /// The connection that declared it (an exclusive queue is used on it only).
    conn: u32,
    declaring: bool,
    binding: bool,
    bound: bool,
    consumer: Option<(u32, String)>,
    /// Reported lost in a failover (not restored, or its consumer cancelled).
    lost: bool,
}

struct Hosting {
    state: HostState,
    engine: Engine,
    txn: Option<Transaction>,
    /// Messages handed out before the transaction that held them failed: transient from
    /// then on (`Broker::withdraw`), so in the core and not in the store.
    unstored: BTreeSet<u64>,
    /// Contexts whose `Resumed` reached this host, and when.
    resumed: BTreeMap<u64, u64>,
    /// The live-clients query has not answered yet.
    live_pending: bool,
    /// Watched contexts whose lock was released, not yet told.
    gone: VecDeque<u64>,
    watched: BTreeSet<u64>,
    /// The bridges its Runners run, and those whose first status is not told yet.
    running: BTreeSet<String>,
    report: VecDeque<String>,
}

struct Ctx {
    id: u64,
    alive: bool,
    client: ClientState,
    hosting: Option<Hosting>,
    /// Granted the host lock: takes over at its next step.
    become_host: bool,
    /// Frames its own host state sent it, for after the current task.
    local: VecDeque<Frame>,
    /// Posts not yet read, per sender, in order.
    inbox: BTreeMap<u64, VecDeque<Rc<Vec<u8>>>>,
    out: PostWriter,
    starved_until: u64,
    conn: u32,
    chans: BTreeMap<u32, AppChan>,
    calls: BTreeMap<u32, Call>,
    /// `Waited` notices to check once the notices of this turn are handed over.
    waited: Vec<(u32, u64, bool)>,
    feed: Feed,
    /// The bridges its app holds, with how many handles (counted once answered).
    bridges: BTreeMap<String, u32>,
    next_tag: u32,
    /// Messages delivered to this context's apps.
    got: BTreeSet<u64>,
    /// Its notices are being handed over: a nested call leaves its own to the outer loop
    /// (as `Link::pump`).
    pumping: bool,
}

impl Ctx {
    fn new(id: u64) -> Ctx {
        let mut client = ClientState::new(id, format!("ctx{id}"));
        let conn = client.next_id();
        Ctx {
            id,
            alive: true,
            client,
            hosting: None,
            become_host: false,
            local: VecDeque::new(),
            inbox: BTreeMap::new(),
            out: PostWriter::default(),
            starved_until: 0,
            conn,
            chans: BTreeMap::new(),
            calls: BTreeMap::new(),
            waited: Vec::new(),
            feed: Feed::default(),
            bridges: BTreeMap::new(),
            next_tag: 0,
            got: BTreeSet::new(),
            pumping: false,
        }
    }

    fn has_input(&self) -> bool {
        self.become_host
            || !self.local.is_empty()
            || self.inbox.values().any(|q| !q.is_empty())
            || self.hosting.as_ref().is_some_and(|h| h.live_pending || !h.gone.is_empty() || !h.report.is_empty())
    }
}

/// One schedule's world.
pub struct Sim {
    seed: u64,
    cfg: Config,
    rng: Rng,
    now: u64,
    step: u64,
    /// Every context ever, by id - 1.
    ctxs: Vec<Ctx>,
    host_lock: Option<usize>,
    waiters: VecDeque<usize>,
    store: MemoryStore,
    /// Per message: (persistent, queue it was published to).
    msgs: Vec<(bool, String)>,
    must_survive: BTreeSet<u64>,
    /// Acked, rejected without requeue, or taken with no_ack by an app.
    settled: BTreeSet<u64>,
    /// Delivered to an app at least once.
    seen: BTreeSet<u64>,
    /// Handed out by a host at least once.
    handed: BTreeSet<(String, u64)>,
    /// The last settlement of each (queue, message) by an app, when not hosting.
    acks: BTreeMap<(String, u64), SettledAt>,
    trace: VecDeque<String>,
    faults: bool,
    drain: bool,
    pub tally: Tally,
}

impl Sim {
    pub fn new(seed: u64, cfg: Config) -> Sim {
        let mut rng = Rng::new(seed);
        let now = 1_700_000_000_000 + rng.below(1_000_000);
        // The durable queues exist before the schedule starts: a bootstrap host stored them.
        let mut store = MemoryStore::new();
        {
            let mut e = Engine::new(
                Broker::new(BrokerConfig { seed: rng.next(), delivery_horizon: true, ..Default::default() }),
                Some(Log::new()),
                None,
            );
            e.with(now, |b| {
                let c = b.connect();
                let ch = b.open_channel(c).unwrap();
                for q in DURABLE {
                    b.declare_queue(ch, declare_of(q), now).unwrap();
                }
            });
            let t = e.poll_write(now).expect("the declarations");
            store.write(&t.writes);
        }
        let faults = cfg.faults;
        let mut sim = Sim {
            seed,
            rng,
            now,
            step: 0,
            ctxs: Vec::new(),
            host_lock: None,
            waiters: VecDeque::new(),
            store,
            msgs: Vec::new(),
            must_survive: BTreeSet::new(),
            settled: BTreeSet::new(),
            seen: BTreeSet::new(),
            handed: BTreeSet::new(),
            acks: BTreeMap::new(),
            trace: VecDeque::new(),
            faults,
            drain: false,
            tally: Tally::default(),
            cfg,
        };
        let n = sim.rng.range(2, sim.cfg.max_contexts.max(2));
        for _ in 0..n {
            sim.spawn();
        }
        sim
    }

    fn planted(&self, plant: &str) -> bool {
        self.cfg.plant.as_deref() == Some(plant)
    }

    fn log(&mut self, line: String) {
        if self.cfg.trace == 0 {
            return;
        }
        if self.trace.len() >= self.cfg.trace {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("#{} t={} {}", self.step, self.now % 1_000_000, line));
    }

    fn violation(&self, what: String) -> Violation {
        Violation { schedule: 0, seed: self.seed, step: self.step, what, trace: self.trace.iter().cloned().collect() }
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.ctxs.len()).filter(|i| self.ctxs[*i].alive).collect()
    }

    fn host(&self) -> Option<usize> {
        self.host_lock.filter(|h| self.ctxs[*h].hosting.is_some())
    }

    fn idx(id: u64) -> usize {
        (id - 1) as usize
    }

    // ------------------------------------------------------------ the whole schedule

    /// Runs the schedule: its steps, then the final drain and its checks.
    pub fn run(mut self) -> Result<Tally, Violation> {
        let steps = self.rng.range(self.cfg.steps.0, self.cfg.steps.1);
        for _ in 0..steps {
            self.step += 1;
            if let Err(what) = self.one_step() {
                return Err(self.violation(what));
            }
        }
        if let Err(what) = self.finish() {
            return Err(self.violation(what));
        }
        self.tally.steps = self.step;
        self.tally.must_survive = self.must_survive.len() as u64;
        Ok(self.tally)
    }

    fn one_step(&mut self) -> Res {
        let r = self.rng.below(1000);
        let faults = self.faults;
        match r {
            0..=699 => {
                let ready: Vec<usize> =
                    self.alive().into_iter().filter(|i| self.ctxs[*i].starved_until <= self.step).collect();
                if ready.is_empty() {
                    return self.advance_time();
                }
                let i = self.rng.pick(&ready);
                self.ctx_step(i)?;
            }
            700..=819 => {
                if !self.end_txn(None)? {
                    let ready: Vec<usize> =
                        self.alive().into_iter().filter(|i| self.ctxs[*i].starved_until <= self.step).collect();
                    if !ready.is_empty() {
                        let i = self.rng.pick(&ready);
                        self.ctx_step(i)?;
                    }
                }
            }
            820..=949 => self.advance_time()?,
            950..=955 if faults => self.crash_client()?,
            956..=960 if faults => self.crash_host()?,
            961..=975 if faults => self.restart()?,
            976..=985 if faults => self.starve(),
            _ => self.advance_time()?,
        }
        if self.faults && self.alive().len() < 2 && self.rng.chance(20) {
            self.restart()?;
        }
        self.flush_posts();
        if let (Some(q), Some(h)) = (self.cfg.debug_queue.clone(), self.host()) {
            let core = self.ctxs[h].hosting.as_ref().unwrap().engine.core();
            let ids: Vec<u64> = core.peek(&q, 100).iter().map(|m| msg_id(m)).collect();
            let unacked = core.queue_info(&q).map_or(0, |i| i.unacked);
            self.log(format!("DEBUG {q} ready {ids:?} unacked {unacked}"));
        }
        self.check_quiet()
    }

    // ------------------------------------------------------------ the world

    fn spawn(&mut self) -> usize {
        let id = self.ctxs.len() as u64 + 1;
        self.ctxs.push(Ctx::new(id));
        let i = self.ctxs.len() - 1;
        self.log(format!("ctx{id} starts"));
        // Its Hello goes out with its first post.
        let _ = self.pump(i);
        self.waiters.push_back(i);
        self.grant_host_lock();
        i
    }

    fn grant_host_lock(&mut self) {
        if self.host_lock.is_some_and(|h| self.ctxs[h].alive) {
            return;
        }
        self.host_lock = None;
        while let Some(w) = self.waiters.pop_front() {
            if self.ctxs[w].alive {
                self.host_lock = Some(w);
                self.ctxs[w].become_host = true;
                let id = self.ctxs[w].id;
                self.log(format!("ctx{id} gets the host lock"));
                return;
            }
        }
    }

    /// What each context sent during the step goes out as one post.
    fn flush_posts(&mut self) {
        for i in 0..self.ctxs.len() {
            if self.ctxs[i].out.is_empty() {
                continue;
            }
            let from = self.ctxs[i].id;
            let bytes = Rc::new(self.ctxs[i].out.finish(from));
            if !self.ctxs[i].alive {
                continue;
            }
            self.tally.posts += 1;
            for c in self.ctxs.iter_mut().filter(|c| c.alive && c.id != from) {
                c.inbox.entry(from).or_default().push_back(bytes.clone());
            }
        }
    }

    fn kill(&mut self, i: usize) {
        let id = self.ctxs[i].id;
        let c = &mut self.ctxs[i];
        c.alive = false;
        c.inbox.clear();
        c.local.clear();
        c.out = PostWriter::default();
        c.hosting = None;
        // Its client lock is released: a host watching it is told.
        if let Some(h) = self.host() {
            let hosting = self.ctxs[h].hosting.as_mut().expect("hosting");
            if hosting.watched.remove(&id) {
                hosting.gone.push_back(id);
            }
        }
        self.grant_host_lock();
    }

    fn crash_client(&mut self) -> Res {
        let host = self.host_lock;
        let clients: Vec<usize> = self.alive().into_iter().filter(|i| Some(*i) != host).collect();
        if clients.is_empty() {
            return Ok(());
        }
        let i = self.rng.pick(&clients);
        self.log(format!("CRASH client ctx{}", self.ctxs[i].id));
        self.tally.client_crashes += 1;
        self.kill(i);
        Ok(())
    }

    fn crash_host(&mut self) -> Res {
        let Some(h) = self.host_lock.filter(|h| self.ctxs[*h].alive) else { return Ok(()) };
        let cut = self.ctxs[h].hosting.as_ref().is_some_and(|x| x.txn.is_some());
        self.log(format!("CRASH host ctx{} (a transaction in flight: {cut})", self.ctxs[h].id));
        self.tally.host_crashes += 1;
        self.kill(h);
        Ok(())
    }

    fn restart(&mut self) -> Res {
        if self.alive().len() as u64 >= self.cfg.max_contexts {
            return Ok(());
        }
        self.spawn();
        Ok(())
    }

    fn starve(&mut self) {
        let alive = self.alive();
        if alive.is_empty() {
            return;
        }
        let i = self.rng.pick(&alive);
        let n = match self.rng.chance(70) {
            true => self.rng.range(5, 40),
            false => self.rng.range(40, 250),
        };
        self.ctxs[i].starved_until = self.step + n;
        self.log(format!("ctx{} starved for {n} steps", self.ctxs[i].id));
    }

    fn advance_time(&mut self) -> Res {
        let dt = match self.rng.below(100) {
            0..=69 => self.rng.range(1, 30),
            70..=94 => self.rng.range(100, 3000),
            _ => self.rng.range(5000, 12_000),
        };
        self.now += dt;
        self.log(format!("time +{dt}ms"));
        self.fire_timers()
    }

    /// The host's timers whose time has come fire (not in a starved host).
    fn fire_timers(&mut self) -> Res {
        let Some(h) = self.host() else { return Ok(()) };
        if self.ctxs[h].starved_until > self.step {
            return Ok(());
        }
        let now = self.now;
        let x = self.ctxs[h].hosting.as_mut().expect("hosting");
        if x.engine.next_wakeup().is_some_and(|t| t <= now) {
            x.engine.wake(now);
        }
        let mut timed_out = false;
        if x.state.next_wakeup().is_some_and(|t| t <= now) {
            let was = x.state.in_window();
            x.state.wake(&mut x.engine, now);
            timed_out = was && !x.state.in_window();
        }
        if timed_out {
            // Whoever has not re-announced may have its deliveries handed to others.
            let resumed = x.resumed.clone();
            let me = self.ctxs[h].id;
            self.tally.window_timeouts += 1;
            self.log(format!("resume window of ctx{me} ends by time; resumed: {:?}", resumed.keys()));
            for c in self.ctxs.iter_mut().filter(|c| c.alive && c.id != me && !resumed.contains_key(&c.id)) {
                for ch in c.chans.values_mut() {
                    for held in ch.held.values_mut() {
                        held.protected = false;
                    }
                }
            }
        }
        self.host_after(h)
    }

    /// The host's transaction in flight ends (`outcome`, or one at random).
    fn end_txn(&mut self, outcome: Option<WriteOutcome>) -> Res<bool> {
        let Some(h) = self.host() else { return Ok(false) };
        if self.ctxs[h].starved_until > self.step {
            return Ok(false);
        }
        let Some(txn) = self.ctxs[h].hosting.as_mut().expect("hosting").txn.take() else { return Ok(false) };
        let outcome = outcome.unwrap_or_else(|| match self.faults {
            true => match self.rng.below(100) {
                0..=5 => WriteOutcome::Failed("AbortError".into()),
                6..=9 => WriteOutcome::QuotaExceeded("QuotaExceededError".into()),
                _ => WriteOutcome::Committed,
            },
            false => WriteOutcome::Committed,
        });
        let what: Vec<String> = txn
            .writes
            .iter()
            .take(8)
            .map(|w| {
                let mut ids = String::new();
                if let (true, Some(v)) = (self.cfg.debug_segments, &w.value) {
                    for id in bodies(v) {
                        ids.push_str(&format!(" m{id}"));
                    }
                }
                format!("{:?} {:?}{}{ids}", w.collection, w.key, if w.value.is_some() { "" } else { " deleted" })
            })
            .collect();
        self.log(format!("transaction {} ({} writes: {}): {outcome:?}", txn.id, txn.writes.len(), what.join(", ")));
        if outcome != WriteOutcome::Committed {
            let handed: Vec<u64> = txn
                .writes
                .iter()
                .filter(|w| w.collection == Collection::Segments)
                .filter_map(|w| w.value.as_deref())
                .flat_map(bodies)
                .filter(|id| self.msgs.get(*id as usize).is_some_and(|m| self.handed.contains(&(m.1.clone(), *id))))
                .collect();
            self.ctxs[h].hosting.as_mut().expect("hosting").unstored.extend(handed);
        }
        if outcome == WriteOutcome::Committed || self.planted("store-failed") {
            self.store.write(&txn.writes);
            self.tally.commits += 1;
        } else {
            self.tally.failed_writes += 1;
        }
        let now = self.now;
        let x = self.ctxs[h].hosting.as_mut().expect("hosting");
        x.engine.write_done(txn.id, outcome, now);
        self.host_after(h)?;
        Ok(true)
    }

    // ------------------------------------------------------------ a context's step

    fn ctx_step(&mut self, i: usize) -> Res {
        if self.ctxs[i].become_host {
            return self.become_host(i);
        }
        if let Some(x) = &mut self.ctxs[i].hosting {
            if x.live_pending && self.rng.chance(60) {
                x.live_pending = false;
                let me = self.ctxs[i].id;
                let live: Vec<u64> = self.ctxs.iter().filter(|c| c.alive && c.id != me).map(|c| c.id).collect();
                self.log(format!("ctx{me} learns the live clients {live:?}"));
                let now = self.now;
                let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                x.state.live_clients(&mut x.engine, live, now);
                return self.host_after(i);
            }
            if !x.report.is_empty() {
                return self.runner_reports(i);
            }
            if let Some(gone) = x.gone.pop_front() {
                let me = self.ctxs[i].id;
                self.log(format!("ctx{me} is told ctx{gone} is gone"));
                let now = self.now;
                let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                x.state.client_gone(&mut x.engine, gone, now);
                return self.host_after(i);
            }
        }
        let c = &self.ctxs[i];
        let senders: Vec<u64> = c.inbox.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
        let has_local = !c.local.is_empty();
        let r = self.rng.below(100);
        if !senders.is_empty() && (r < 50 || (!has_local && r < 70)) {
            let from = self.rng.pick(&senders);
            return self.read_post(i, from);
        }
        if has_local && r < 80 {
            return self.hand_over_local(i);
        }
        self.app_step(i)
    }

    /// The host's Runners that started tell their first status.
    fn runner_reports(&mut self, i: usize) -> Res {
        let me = self.ctxs[i].id;
        let x = self.ctxs[i].hosting.as_mut().expect("hosting");
        let names: Vec<String> = x.report.drain(..).collect();
        for name in &names {
            x.state.bridge_status(name, BridgeStatus { state: BridgeState::Connected, ..Default::default() });
        }
        self.log(format!("ctx{me}'s Runners of {names:?} tell their status"));
        self.host_after(i)
    }

    /// A post from `from` is read.
    fn read_post(&mut self, i: usize, from: u64) -> Res {
        let me = self.ctxs[i].id;
        let bytes = self.ctxs[i].inbox.get_mut(&from).and_then(|q| q.pop_front()).expect("a post");
        let (sender, frames) = frame::decode(&bytes, me).map_err(|e| format!("ctx{me} cannot decode a post: {e:?}"))?;
        if sender != from {
            return Err(format!("a post from ctx{from} says it is from {sender}"));
        }
        if !frames.is_empty() {
            self.log(format!("ctx{me} reads a post of ctx{from}: {}", describe_frames(&frames)));
        }
        if self.ctxs[i].hosting.is_some() {
            self.ctxs[i].hosting.as_mut().expect("hosting").state.heard_from(from);
            for f in frames {
                self.host_receive(i, from, f)?;
            }
            return self.host_after(i);
        }
        let now = self.now;
        for f in frames {
            self.ctxs[i].client.receive(from, f, now);
        }
        self.pump(i)
    }

    /// Host role: what the host state sent this context, after the task that caused it.
    fn hand_over_local(&mut self, i: usize) -> Res {
        let me = self.ctxs[i].id;
        let now = self.now;
        let mut n = 0;
        while let Some(f) = self.ctxs[i].local.pop_front() {
            n += 1;
            self.ctxs[i].client.receive(me, f, now);
            self.pump(i)?;
        }
        self.log(format!("ctx{me} takes {n} frames of its own host"));
        Ok(())
    }

    /// The host lock is this context's: recover from the store, take over, serve.
    fn become_host(&mut self, i: usize) -> Res {
        self.ctxs[i].become_host = false;
        let me = self.ctxs[i].id;
        let now = self.now;
        let (log, recovered) = Log::recover(self.store.records());
        // No confirmed message lost: every one not settled by an app is stored.
        let mut stored = BTreeSet::new();
        for q in &recovered.queues {
            for m in &q.messages {
                if let Some(msg) = &m.message {
                    stored.insert(msg_id(msg));
                }
            }
        }
        let lost = self.must_survive.iter().find(|m| !self.settled.contains(m) && !stored.contains(m));
        if let Some(lost) = lost {
            return Err(format!(
                "confirmed message m{lost} (persistent, to {}) is not in the store ctx{me} recovers from",
                self.msgs[*lost as usize].1
            ));
        }
        let delivery_horizon = !self.planted("no-horizon");
        let mut core = Broker::new(BrokerConfig { seed: self.rng.next(), delivery_horizon, ..Default::default() });
        let problems = restore(&mut core, recovered, now);
        if !problems.is_empty() {
            return Err(format!("recovery problems: {problems:?}"));
        }
        let mut engine = Engine::new(core, Some(log), None);
        engine.pump(now);
        let take_over = !self.planted("no-window");
        let mut state = HostState::new(me, format!("ctx{me}"), "indexeddb", &mut engine, take_over, now);
        // Take-overs come one after another in real time, though the simulation's
        // clock may show one millisecond for several: microseconds tell them apart.
        state.follow(&mut engine, self.ctxs[i].client.since(), now * 1000 + self.tally.failovers % 1000);
        let since = state.since();
        self.ctxs[i].hosting = Some(Hosting {
            state,
            engine,
            txn: None,
            unstored: BTreeSet::new(),
            resumed: BTreeMap::new(),
            live_pending: true,
            gone: VecDeque::new(),
            watched: BTreeSet::new(),
            running: BTreeSet::new(),
            report: VecDeque::new(),
        });
        self.tally.failovers += 1;
        let ids: Vec<u64> = stored.iter().take(20).copied().collect();
        self.log(format!("ctx{me} takes over as host ({} messages stored: {ids:?})", stored.len()));
        self.ctxs[i].client.hosting_now(since, now);
        self.pump(i)?;
        self.ctxs[i].out.push(EVERYONE, &Frame::Host { since });
        self.host_after(i)
    }

    // ------------------------------------------------------------ the host's side

    fn host_receive(&mut self, i: usize, from: u64, f: Frame) -> Res {
        let now = self.now;
        let resume_chan = match &f {
            Frame::Resume { chan, .. } => Some(*chan),
            _ => None,
        };
        let x = self.ctxs[i].hosting.as_mut().expect("hosting");
        if let Frame::Resumed = f {
            x.resumed.insert(from, now);
        }
        x.state.receive(&mut x.engine, from, f, now);
        if let Some(chan) = resume_chan {
            // A channel the host could not resume: what it held goes to others.
            if x.state.channel(from, chan).is_none() {
                if let Some(ch) = self.ctxs.get_mut(Self::idx(from)).and_then(|c| c.chans.get_mut(&chan)) {
                    for held in ch.held.values_mut() {
                        held.protected = false;
                    }
                }
            }
        }
        self.host_after(i)
    }

    /// After any work of the host: its events, the waits that ended, the next
    /// transaction, and what the host state said.
    fn host_after(&mut self, i: usize) -> Res {
        let now = self.now;
        loop {
            let mut outputs = Vec::new();
            {
                let Some(x) = self.ctxs[i].hosting.as_mut() else { return Ok(()) };
                x.state.take_events(&mut x.engine);
                while let Some(d) = x.engine.poll_done() {
                    if let Some(d) = x.state.wait_done(&mut x.engine, d, now) {
                        return Err(format!("a wait nobody asked for ended: {d:?}"));
                    }
                }
                if x.txn.is_none() && x.engine.wants_write(now) {
                    x.txn = x.engine.poll_write(now);
                    x.state.take_events(&mut x.engine);
                    while let Some(d) = x.engine.poll_done() {
                        if let Some(d) = x.state.wait_done(&mut x.engine, d, now) {
                            return Err(format!("a wait nobody asked for ended: {d:?}"));
                        }
                    }
                }
                while let Some(o) = x.state.poll_output() {
                    outputs.push(o);
                }
            }
            if outputs.is_empty() {
                return Ok(());
            }
            // A channel the host closed gave back what it held, to be handed out in the
            // same batch: its events come after the deliveries the requeue caused.
            for o in &outputs {
                if let Output::Post { to, frame: Frame::Event { chan, event: WireEvent::Closed(_) } } = o {
                    if let Some(ch) = self.ctxs.get_mut(Self::idx(*to)).and_then(|c| c.chans.get_mut(chan)) {
                        ch.host_closed = true;
                        for held in ch.held.values_mut() {
                            held.protected = false;
                        }
                    }
                }
            }
            for o in outputs {
                self.output(i, o)?;
            }
        }
    }

    fn output(&mut self, i: usize, o: Output) -> Res {
        let me = self.ctxs[i].id;
        match o {
            Output::Watch(ctx) => {
                let alive = self.ctxs.get(Self::idx(ctx)).is_some_and(|c| c.alive);
                let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                match alive {
                    _ if self.cfg.plant.as_deref() == Some("no-watch") => {}
                    true => {
                        x.watched.insert(ctx);
                    }
                    // Its lock is free already: the request is granted at once.
                    false => x.gone.push_back(ctx),
                }
            }
            Output::Post { to, frame } => {
                match &frame {
                    Frame::Event { chan, event: WireEvent::Deliver(d) } => {
                        let tag = d.consumer_tag.as_deref().unwrap_or("");
                        let queue = match d.queue.is_empty() {
                            false => d.queue.to_string(),
                            // The hosting context's deliveries name no queue: its consumer's.
                            true => self.ctxs[Self::idx(to)]
                                .chans
                                .get(chan)
                                .and_then(|ch| ch.consumers.get(tag))
                                .map_or(String::new(), |(q, _)| q.clone()),
                        };
                        self.handed_out(to, Some(*chan), &queue, d)?
                    }
                    Frame::Reply { id, result: Ok(Answer::Got(Some((d, _)))) } => {
                        let queue = match self.ctxs[Self::idx(to)].calls.get(id) {
                            Some(Call::Get { queue, .. }) => queue.clone(),
                            _ => d.queue.to_string(),
                        };
                        self.handed_out(to, None, &queue, d)?
                    }
                    _ => {}
                }
                if to == me {
                    // As `Link::carry_out`: an answer goes to the client state at once when
                    // nothing handed over before it still waits; events (and answers behind
                    // them) after the current task.
                    if matches!(frame, Frame::Reply { .. }) && self.ctxs[i].local.is_empty() {
                        let now = self.now;
                        self.ctxs[i].client.receive(me, frame, now);
                        self.pump(i)?;
                    } else {
                        self.ctxs[i].local.push_back(frame);
                    }
                } else {
                    self.ctxs[i].out.push(to, &frame);
                }
            }
            Output::StartBridge(c) => {
                let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                if !x.running.insert(c.name.clone()) {
                    return Err(format!("bridges: ctx{me} starts {} that it runs already", c.name));
                }
                x.report.push_back(c.name.clone());
                self.tally.bridges_started += 1;
                self.log(format!("ctx{me} starts bridge {}", c.name));
            }
            Output::StopBridge(name) => {
                let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                if !x.running.remove(&name) {
                    return Err(format!("bridges: ctx{me} stops {name}, which it does not run"));
                }
                x.report.retain(|n| *n != name);
                self.log(format!("ctx{me} stops bridge {name}"));
            }
        }
        Ok(())
    }

    /// No duplicate to a live consumer: the host hands out `d` to context `to`.
    /// (A message published to the feed is one message per feed queue: they are told
    /// apart by queue.)
    fn handed_out(&mut self, to: u64, chan: Option<u32>, queue: &str, d: &WireDelivery) -> Res {
        let id = msg_id(&d.message);
        self.log(format!(
            "  host hands m{id} of {queue} to ctx{to} chan {chan:?} tag {}{}",
            d.delivery_tag,
            if d.redelivered { " (redelivered)" } else { "" }
        ));
        // No unflagged redelivery (checked as the host hands messages out: an app may read
        // a second delivery before the first, from two posts).
        if !self.handed.insert((queue.to_string(), id)) && !d.redelivered {
            return Err(format!(
                "unflagged redelivery: m{id} (to {}) handed out again, to ctx{to} chan {chan:?}, with redelivered false",
                self.msgs.get(id as usize).map_or("?", |m| &m.1)
            ));
        }
        // No redelivery of a settled message: an app that settled it lately and
        // re-announced its channel to this host (so the settlement with it) does not see it
        // again, though the host that handed it out died before storing the settlement.
        // (Checked at the first hand-out after the settlement only.)
        if let (Some(a), Some(h)) = (self.acks.remove(&(queue.to_string(), id)), self.host()) {
            let x = self.ctxs[h].hosting.as_ref().expect("hosting");
            let current = self.ctxs[h].id;
            let holder = &self.ctxs[Self::idx(a.ctx)];
            let resumed = x.resumed.get(&a.ctx).is_some_and(|t| *t >= a.at && t - a.at <= SETTLED_KEEP_MS);
            if holder.alive
                && a.host != current
                && a.to != current
                && resumed
                && holder.chans.get(&a.chan).is_some_and(|ch| !ch.closed)
                && x.state.channel(a.ctx, a.chan).is_some()
            {
                return Err(format!(
                    "settled message redelivered: m{id} of {queue} handed to ctx{to} again, though ctx{} settled it at t={} (handed out by ctx{}) and re-announced chan {} to ctx{current} in time",
                    a.ctx,
                    a.at % 1_000_000,
                    a.host,
                    a.chan
                ));
            }
        }
        for c in self.ctxs.iter().filter(|c| c.alive) {
            for (cn, ch) in c.chans.iter().filter(|(_, ch)| !ch.closed) {
                for (tag, _) in ch.held.iter().filter(|(_, h)| h.msg == id && h.queue == queue && h.protected) {
                    if c.id == to && chan == Some(*cn) && *tag == d.delivery_tag {
                        continue;
                    }
                    return Err(format!(
                        "duplicate to a live consumer: m{id} handed to ctx{to} (chan {chan:?}, tag {}, redelivered \
                         {}) while ctx{} holds it unacked on open channel {cn} (tag {tag})",
                        d.delivery_tag, d.redelivered, c.id
                    ));
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ the app's side

    /// Hands over the client state's notices, in order (as `Link::pump`).
    fn pump(&mut self, i: usize) -> Res {
        if std::mem::replace(&mut self.ctxs[i].pumping, true) {
            return Ok(());
        }
        let r = self.pump_notices(i);
        self.ctxs[i].pumping = false;
        r
    }

    fn pump_notices(&mut self, i: usize) -> Res {
        let me = self.ctxs[i].id;
        while let Some(n) = self.ctxs[i].client.poll_notice() {
            match n {
                Notice::Post { to, frame } if to == me => {
                    if self.ctxs[i].hosting.is_none() {
                        return Err(format!("ctx{me} posts to itself while not hosting"));
                    }
                    self.host_receive(i, me, frame)?;
                }
                Notice::Post { to, frame } => self.ctxs[i].out.push(to, &frame),
                Notice::Ready => {}
                Notice::Answer { id, result } => self.answered(i, id, result)?,
                Notice::Confirm { chan, seq, error, .. } => self.confirmed(i, chan, seq, error.is_none())?,
                Notice::Waited { chan, wait, result } => {
                    let hosting = self.ctxs[i].hosting.is_some();
                    match hosting {
                        true => self.tally.waits_hosting += 1,
                        false => self.tally.waits_client += 1,
                    }
                    self.ctxs[i].waited.push((chan, wait, result.is_ok()));
                }
                Notice::Deliver { chan, delivery } => self.delivered(i, chan, delivery, None)?,
                Notice::Return { .. } => {}
                Notice::ConsumerGone { chan, tag, .. } => {
                    if let Some(ch) = self.ctxs[i].chans.get_mut(&chan) {
                        ch.consumers.remove(&tag);
                    }
                    if self.ctxs[i].feed.consumer.as_ref().is_some_and(|(c, t)| *c == chan && *t == tag) {
                        self.ctxs[i].feed.consumer = None;
                    }
                }
                Notice::Closed { chan, .. } => {
                    if let Some(ch) = self.ctxs[i].chans.get_mut(&chan) {
                        ch.closed = true;
                        ch.held.clear();
                        ch.consumers.clear();
                    }
                    if self.ctxs[i].feed.consumer.as_ref().is_some_and(|(c, _)| *c == chan) {
                        self.ctxs[i].feed.consumer = None;
                    }
                }
                Notice::Failover { cancelled, not_restored } => {
                    let feed = &mut self.ctxs[i].feed;
                    let name = feed.name.clone().unwrap_or_default();
                    if !not_restored.is_empty() && not_restored.iter().any(|(what, _)| what.contains(&name)) {
                        feed.lost = true;
                    }
                    if feed.consumer.as_ref().is_some_and(|(_, t)| cancelled.contains(t)) {
                        feed.lost = true;
                    }
                    if !cancelled.is_empty() || !not_restored.is_empty() {
                        self.log(format!("ctx{me} failover: cancelled {cancelled:?}, not restored {not_restored:?}"));
                    }
                }
            }
        }
        self.check_waited(i)
    }

    /// Host = client: a `waitForConfirms` is over once every publish before it is
    /// confirmed, and rejects iff one of them was nacked.
    fn check_waited(&mut self, i: usize) -> Res {
        let me = self.ctxs[i].id;
        for (chan, wait, ok) in std::mem::take(&mut self.ctxs[i].waited) {
            let ch =
                self.ctxs[i].chans.get_mut(&chan).ok_or_else(|| format!("ctx{me}: a wait on unknown chan {chan}"))?;
            let open = ch.waits.remove(&wait).ok_or_else(|| format!("ctx{me} chan {chan}: wait {wait} over twice"))?;
            let upto = open.last().copied().unwrap_or(0);
            let mut nacked = false;
            for seq in open {
                match ch.confirmed.get(&seq) {
                    Some(acked) => nacked |= !acked,
                    None => {
                        return Err(format!(
                        "host = client: ctx{me} chan {chan}: waitForConfirms (up to {upto}) over before publish {seq} \
                             was confirmed"
                    ))
                    }
                }
            }
            if ok == nacked {
                return Err(format!(
                    "host = client: ctx{me} (hosting: {}) chan {chan}: waitForConfirms up to {upto} {} though {}",
                    self.ctxs[i].hosting.is_some(),
                    if ok { "resolved" } else { "rejected" },
                    if nacked { "a publish before it was nacked" } else { "every publish before it was acked" }
                ));
            }
            if !ok {
                self.tally.waits_rejected += 1;
            }
        }
        Ok(())
    }

    fn confirmed(&mut self, i: usize, chan: u32, seq: u64, ok: bool) -> Res {
        let me = self.ctxs[i].id;
        let ch =
            self.ctxs[i].chans.get_mut(&chan).ok_or_else(|| format!("ctx{me}: a confirm on unknown chan {chan}"))?;
        let Some(msg) = ch.pubs.get(&seq).copied() else {
            return Err(format!("host = client: ctx{me} chan {chan}: a confirm of publish {seq}, never made"));
        };
        if ch.confirmed.insert(seq, ok).is_some() {
            return Err(format!("host = client: ctx{me} chan {chan}: publish {seq} (m{msg}) confirmed twice"));
        }
        match ok {
            true => self.tally.confirms_ok += 1,
            false => self.tally.confirms_err += 1,
        }
        let (persistent, queue) = &self.msgs[msg as usize];
        if ok && *persistent && DURABLE.contains(&queue.as_str()) {
            self.must_survive.insert(msg);
        }
        Ok(())
    }

    /// An app got `d` (from a consumer, or a `get` of `queue`).
    fn delivered(&mut self, i: usize, chan: u32, d: WireDelivery, get: Option<(String, bool)>) -> Res {
        let me = self.ctxs[i].id;
        let id = msg_id(&d.message);
        self.tally.deliveries += 1;
        if d.redelivered {
            self.tally.redeliveries += 1;
        }
        self.seen.insert(id);
        self.ctxs[i].got.insert(id);
        // A get answered after the app closed its channel: the close gave it back.
        let Some(ch) = self.ctxs[i].chans.get_mut(&chan).filter(|ch| !ch.closed) else { return Ok(()) };
        let (queue, no_ack) = match get {
            Some(g) => g,
            None => {
                let tag = d.consumer_tag.as_deref().unwrap_or("");
                match ch.consumers.get(tag) {
                    Some((q, no_ack)) => (q.clone(), *no_ack),
                    None => return Err(format!("ctx{me} chan {chan}: a delivery for unknown consumer {tag}")),
                }
            }
        };
        if no_ack {
            self.settled.insert(id);
            return Ok(());
        }
        let host = self.ctxs[i].client.host().unwrap_or(0);
        // From a host that died meanwhile: the next host adopts it only if this context
        // re-announces it before that host's resume window ends.
        let from_dead = !self.ctxs.get(Self::idx(host.max(1))).is_some_and(|c| c.alive);
        let next_waits = match self.host() {
            Some(h) => self.ctxs[h].hosting.as_ref().is_some_and(|x| x.state.in_window()),
            None => true,
        };
        let ch = self.ctxs[i].chans.get_mut(&chan).expect("open");
        let protected = !ch.host_closed && (!from_dead || next_waits);
        let ch = self.ctxs[i].chans.get_mut(&chan).expect("open");
        if ch.held.insert(d.delivery_tag, Held { msg: id, queue, protected, host }).is_some() {
            return Err(format!("ctx{me} chan {chan}: delivery tag {} given twice", d.delivery_tag));
        }
        Ok(())
    }

    fn answered(&mut self, i: usize, id: u32, result: Result<Answer, tabbit::core::AmqpError>) -> Res {
        let Some(call) = self.ctxs[i].calls.remove(&id) else { return Ok(()) };
        let feed = &mut self.ctxs[i].feed;
        match (call, result) {
            (Call::DeclareFeed, Ok(Answer::Queue(ok))) => {
                feed.name = Some(ok.queue.to_string());
                feed.declaring = false;
            }
            (Call::DeclareFeed, _) => feed.declaring = false,
            (Call::BindFeed, Ok(_)) => {
                feed.binding = false;
                feed.bound = true;
            }
            (Call::BindFeed, Err(_)) => feed.binding = false,
            (Call::Bridge(name), Ok(_)) => *self.ctxs[i].bridges.entry(name).or_default() += 1,
            (Call::Bridge(name), Err(e)) => return Err(format!("bridges: declaring {name} failed: {}", e.message)),
            (Call::Get { chan, queue, no_ack }, Ok(Answer::Got(Some((d, _))))) => {
                self.delivered(i, chan, d, Some((queue, no_ack)))?
            }
            // A cancel that failed with the host: the app tries again (the consumer was
            // not re-announced, but its callback stays until a cancel is answered).
            (Call::Cancel { chan, tag }, Err(_)) => {
                let c = &mut self.ctxs[i];
                if c.chans.get(&chan).is_some_and(|ch| !ch.closed && ch.consumers.contains_key(&tag)) {
                    if let Ok(id) = c.client.cancel(chan, &tag) {
                        c.calls.insert(id, Call::Cancel { chan, tag });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The app does something.
    fn app_step(&mut self, i: usize) -> Res {
        if self.drain {
            return self.drain_step(i);
        }
        let me = self.ctxs[i].id;
        let now = self.now;
        let open: Vec<u32> = self.ctxs[i].chans.iter().filter(|(_, c)| !c.closed).map(|(k, _)| *k).collect();
        let r = self.rng.below(100);
        if open.is_empty() || (open.len() < 3 && r < 5) {
            let confirm = self.rng.chance(60);
            let c = &mut self.ctxs[i];
            let conn = c.conn;
            let chan = c.client.next_id();
            c.client.open_channel(conn, chan, confirm);
            c.chans.insert(chan, AppChan { conn, confirm, ..Default::default() });
            self.log(format!("ctx{me} opens chan {chan} (confirm: {confirm})"));
            return self.pump(i);
        }
        let chan = self.rng.pick(&open);
        match r {
            5..=30 => self.publish(i, chan)?,
            31..=49 => self.settle(i, chan, true)?,
            50..=54 => self.settle(i, chan, false)?,
            55..=63 => {
                let mut queues = vec!["d0", "d1", "d2", "t0"];
                let feed = self.ctxs[i].feed.name.clone();
                let c = &self.ctxs[i];
                let feed_free = c.feed.bound && c.feed.consumer.is_none() && c.chans[&chan].conn == c.feed.conn;
                if feed_free {
                    queues.push("feed");
                }
                let q = self.rng.pick(&queues);
                let queue = if q == "feed" { feed.unwrap_or_default() } else { q.to_string() };
                self.consume(i, chan, queue, q == "feed")?;
            }
            64..=66 => {
                let tags: Vec<String> = self.ctxs[i].chans[&chan].consumers.keys().cloned().collect();
                if !tags.is_empty() {
                    let tag = tags[self.rng.below(tags.len() as u64) as usize].clone();
                    let id = self.ctxs[i].client.cancel(chan, &tag).map_err(|e| format!("cancel: {e:?}"))?;
                    self.ctxs[i].calls.insert(id, Call::Cancel { chan, tag: tag.clone() });
                    self.log(format!("ctx{me} cancels {tag} on chan {chan}"));
                }
            }
            67..=71 => {
                let queue = self.rng.pick(&DRAINED).to_string();
                let no_ack = queue == "t0" && self.rng.chance(40);
                let id = self.ctxs[i].client.get(chan, queue.clone(), no_ack).map_err(|e| format!("get: {e:?}"))?;
                self.ctxs[i].calls.insert(id, Call::Get { chan, queue: queue.clone(), no_ack });
                self.log(format!("ctx{me} gets from {queue} on chan {chan} (no_ack: {no_ack})"));
            }
            72..=77 => {
                let c = &mut self.ctxs[i];
                if c.chans[&chan].confirm {
                    if let Some(wait) = c.client.wait_for_confirms(chan) {
                        let ch = c.chans.get_mut(&chan).expect("open");
                        let open: Vec<u64> =
                            ch.pubs.keys().filter(|s| !ch.confirmed.contains_key(s)).copied().collect();
                        ch.waits.insert(wait, open);
                        let upto = ch.last_seq;
                        self.log(format!("ctx{me} waits for confirms on chan {chan} (up to {upto})"));
                    }
                }
            }
            78..=79 => {
                let c = &mut self.ctxs[i];
                c.client.close_channel(chan);
                if let Some(ch) = c.chans.get_mut(&chan) {
                    ch.held.clear();
                }
                self.log(format!("ctx{me} closes chan {chan}"));
            }
            80..=84 => {
                let q = self.rng.pick(&["t0", "d0", "d2"]);
                let id = self.ctxs[i]
                    .client
                    .call(chan, Command::DeclareQueue(declare_of(q)), Track::Nothing)
                    .map_err(|e| format!("declare: {e:?}"))?;
                self.ctxs[i].calls.insert(id, Call::Other);
                self.log(format!("ctx{me} declares {q} on chan {chan}"));
            }
            85..=92 => self.advance_feed(i, chan)?,
            93..=95 => {
                let n = self.rng.range(1, 4) as u32;
                let id = self.ctxs[i].client.prefetch(chan, n, false).map_err(|e| format!("prefetch: {e:?}"))?;
                self.ctxs[i].calls.insert(id, Call::Other);
                self.log(format!("ctx{me} sets prefetch {n} on chan {chan}"));
            }
            96..=97 => self.bridge_step(i)?,
            _ => {
                let id = self.ctxs[i].client.ask(|id| Frame::Flush { id });
                self.ctxs[i].calls.insert(id, Call::Other);
                self.log(format!("ctx{me} flushes"));
            }
        }
        let _ = now;
        self.pump(i)
    }

    /// The app declares a bridge (another handle, if it holds it), or lets one handle go.
    fn bridge_step(&mut self, i: usize) -> Res {
        let me = self.ctxs[i].id;
        let name = self.rng.pick(&["b0", "b1"]).to_string();
        let c = &mut self.ctxs[i];
        let held = c.bridges.get(&name).copied().unwrap_or(0);
        if held > 0 && self.rng.chance(50) {
            match held {
                1 => c.bridges.remove(&name),
                n => c.bridges.insert(name.clone(), n - 1),
            };
            c.client.undeclare_bridge(&name);
            self.log(format!("ctx{me} lets bridge {name} go"));
            return Ok(());
        }
        let mut table = Table::new();
        table.insert("url".into(), FieldValue::Str(format!("ws://rabbit/{name}")));
        let config = BridgeConfig { name: name.clone(), table };
        match c.client.declare_bridge(config).map_err(|e| format!("bridges: declaring {name}: {}", e.message))? {
            Some(id) => {
                c.calls.insert(id, Call::Bridge(name.clone()));
            }
            None => *c.bridges.entry(name.clone()).or_default() += 1,
        }
        self.log(format!("ctx{me} declares bridge {name}"));
        Ok(())
    }

    /// At quiescence: the host runs exactly the bridges some live context holds, and
    /// every live context knows the status of each.
    fn check_bridges(&self) -> Res {
        let Some(h) = self.host() else { return Ok(()) };
        let running: Vec<&String> = self.ctxs[h].hosting.as_ref().expect("hosting").running.iter().collect();
        let held: BTreeSet<&String> = self.ctxs.iter().filter(|c| c.alive).flat_map(|c| c.bridges.keys()).collect();
        if running != held.iter().copied().collect::<Vec<_>>() {
            return Err(format!("bridges: the host runs {running:?}, the live contexts hold {held:?}"));
        }
        for c in self.ctxs.iter().filter(|c| c.alive) {
            let mut told: Vec<&String> = c.client.bridges().map(|(b, _)| &b.name).collect();
            told.sort();
            if told != running {
                return Err(format!("bridges: ctx{} knows the statuses of {told:?}, the host runs {running:?}", c.id));
            }
        }
        Ok(())
    }

    fn publish(&mut self, i: usize, chan: u32) -> Res {
        let me = self.ctxs[i].id;
        let id = self.msgs.len() as u64;
        let target = self.rng.pick(&["d0", "d0", "d1", "d2", "t0", "feed"]);
        let persistent = match target {
            "d0" | "d2" => true,
            "d1" => self.rng.chance(70),
            _ => self.rng.chance(30),
        };
        let (exchange, key) = match target {
            "feed" => ("amq.topic", "feed.x".to_string()),
            q => ("", q.to_string()),
        };
        self.publish_to(i, chan, id, exchange, &key, persistent, target)?;
        self.log(format!("ctx{me} publishes m{id} to {target} on chan {chan} (persistent: {persistent})"));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_to(
        &mut self,
        i: usize,
        chan: u32,
        id: u64,
        exchange: &str,
        key: &str,
        persistent: bool,
        target: &str,
    ) -> Res {
        let now = self.now;
        let mut message = Message::new(exchange, key, format!("m{id}").into_bytes());
        message.properties.persistent = persistent;
        self.msgs.push((persistent, target.to_string()));
        self.tally.publishes += 1;
        let c = &mut self.ctxs[i];
        if let Ok(Some(seq)) =
            c.client.cast(chan, Command::Publish { message: Box::new(message), mandatory: false }, now)
        {
            let ch = c.chans.get_mut(&chan).ok_or("publish on an unknown chan")?;
            if seq != ch.last_seq + 1 {
                return Err(format!("ctx{} chan {chan}: publish seq {seq} after {}", c.id, ch.last_seq));
            }
            ch.last_seq = seq;
            ch.pubs.insert(seq, id);
        }
        Ok(())
    }

    /// Acks (or nacks/rejects) one held delivery, sometimes with `multiple`.
    fn settle(&mut self, i: usize, chan: u32, ack: bool) -> Res {
        let me = self.ctxs[i].id;
        let now = self.now;
        let tags: Vec<u64> = self.ctxs[i].chans[&chan].held.keys().copied().collect();
        if tags.is_empty() {
            return Ok(());
        }
        let tag = self.rng.pick(&tags);
        let multiple = self.rng.chance(15);
        let requeue = self.rng.chance(50);
        let cmd = match (ack, multiple, self.rng.chance(50)) {
            (true, _, _) => Command::Ack { tag, multiple },
            (false, _, true) => Command::Reject { tag, requeue },
            (false, m, false) => Command::Nack { tag, multiple: m, requeue },
        };
        let (multiple, removes) = match &cmd {
            Command::Ack { multiple, .. } => (*multiple, true),
            Command::Nack { multiple, requeue, .. } => (*multiple, !requeue),
            Command::Reject { requeue, .. } => (false, !requeue),
            _ => unreachable!(),
        };
        self.log(format!("ctx{me} {cmd:?} on chan {chan}"));
        let c = &mut self.ctxs[i];
        if c.client.cast(chan, cmd, now).is_err() {
            return Ok(());
        }
        let hosting = c.hosting.is_some();
        let to = c.client.host().unwrap_or(0);
        let ch = c.chans.get_mut(&chan).expect("open");
        let done: Vec<u64> = match multiple {
            true => ch.held.range(..=tag).map(|(t, _)| *t).collect(),
            false => vec![tag],
        };
        for t in done {
            if let Some(h) = ch.held.remove(&t) {
                if removes {
                    self.settled.insert(h.msg);
                    if !hosting && h.host != me {
                        self.acks.insert((h.queue, h.msg), SettledAt { ctx: me, chan, at: now, host: h.host, to });
                    }
                }
            }
        }
        Ok(())
    }

    fn consume(&mut self, i: usize, chan: u32, queue: String, feed: bool) -> Res {
        let me = self.ctxs[i].id;
        let c = &mut self.ctxs[i];
        c.next_tag += 1;
        let tag = format!("c{me}.{}", c.next_tag);
        let no_ack = !feed && queue == "t0" && self.rng.chance(30);
        let consume = Consume { queue: queue.clone(), consumer_tag: tag.clone(), no_ack, ..Default::default() };
        let c = &mut self.ctxs[i];
        let id = c.client.consume(chan, consume).map_err(|e| format!("consume: {e:?}"))?;
        c.calls.insert(id, Call::Other);
        c.chans.get_mut(&chan).expect("open").consumers.insert(tag.clone(), (queue.clone(), no_ack));
        if feed {
            c.feed.consumer = Some((chan, tag.clone()));
        }
        self.log(format!("ctx{me} consumes {queue} as {tag} on chan {chan} (no_ack: {no_ack})"));
        Ok(())
    }

    /// The feed: an exclusive server-named queue, bound to amq.topic feed.#, consumed.
    fn advance_feed(&mut self, i: usize, chan: u32) -> Res {
        let me = self.ctxs[i].id;
        let c = &mut self.ctxs[i];
        let conn = c.chans[&chan].conn;
        if c.feed.name.is_some() && conn != c.feed.conn {
            return Ok(());
        }
        if c.feed.name.is_none() && !c.feed.declaring {
            c.feed.conn = conn;
            let d = QueueDeclare { exclusive: true, ..Default::default() };
            let id = c.client.call(chan, Command::DeclareQueue(d), Track::Nothing).map_err(|e| format!("{e:?}"))?;
            c.calls.insert(id, Call::DeclareFeed);
            c.feed.declaring = true;
            self.log(format!("ctx{me} declares its feed queue on chan {chan}"));
        } else if let (Some(name), false, false) = (c.feed.name.clone(), c.feed.bound, c.feed.binding) {
            let cmd = Command::BindQueue {
                queue: name.clone(),
                source: "amq.topic".into(),
                pattern: "feed.#".into(),
                args: Table::new(),
            };
            let id = c.client.call(chan, cmd, Track::Nothing).map_err(|e| format!("{e:?}"))?;
            c.calls.insert(id, Call::BindFeed);
            c.feed.binding = true;
            self.log(format!("ctx{me} binds its feed {name} on chan {chan}"));
        } else if c.feed.bound && c.feed.consumer.is_none() && !c.feed.lost {
            let name = c.feed.name.clone().unwrap_or_default();
            self.consume(i, chan, name, true)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ quiescence

    /// Nothing in flight anywhere: no post, no local frame, no transaction, no window, no
    /// lock event.
    fn quiet(&self) -> bool {
        let Some(h) = self.host() else { return false };
        let x = self.ctxs[h].hosting.as_ref().expect("hosting");
        // (During the wait after a failed transaction, writes are pending but not wanted yet.)
        let pending = x.engine.log().is_some_and(|l| l.has_pending());
        if x.txn.is_some() || pending || x.engine.wants_write(self.now) || x.state.in_window() {
            return false;
        }
        self.ctxs.iter().filter(|c| c.alive).all(|c| !c.has_input() && c.out.is_empty() && c.calls.is_empty())
    }

    /// What keeps the mesh from being quiet, for a report.
    fn why_busy(&self) -> String {
        let mut out = Vec::new();
        match self.host() {
            None => out.push("no host".to_string()),
            Some(h) => {
                let x = self.ctxs[h].hosting.as_ref().expect("hosting");
                out.push(format!(
                    "host ctx{}: txn {:?}, wants write {}, window {}",
                    self.ctxs[h].id,
                    x.txn.as_ref().map(|t| t.id),
                    x.engine.wants_write(self.now),
                    x.state.in_window()
                ));
            }
        }
        for c in self.ctxs.iter().filter(|c| c.alive) {
            let held: Vec<String> = c
                .chans
                .iter()
                .filter(|(_, ch)| !ch.held.is_empty())
                .map(|(k, ch)| format!("chan {k} holds {:?}", ch.held.values().map(|h| h.msg).collect::<Vec<_>>()))
                .chain(c.chans.iter().filter(|(_, ch)| !ch.closed).map(|(k, ch)| {
                    format!(
                        "chan {k} consumers {:?}",
                        ch.consumers.iter().map(|(t, (q, _))| (t, q)).collect::<Vec<_>>()
                    )
                }))
                .collect();
            out.push(format!(
                "ctx{}: input {}, out {}, calls {:?}, host known {:?}, {}",
                c.id,
                c.has_input(),
                !c.out.is_empty(),
                c.calls,
                c.client.host(),
                held.join("; ")
            ));
        }
        out.join(" | ")
    }

    fn check_quiet(&mut self) -> Res {
        if !self.quiet() {
            return Ok(());
        }
        self.tally.quiet_checks += 1;
        self.check_bridges()?;
        self.check_counts(self.step.is_multiple_of(16))
    }

    /// Counts match: each queue's unacked count is what the apps hold; with `log`, the
    /// store holds as many messages of `d0` and `d2` as the core has.
    fn check_counts(&mut self, log: bool) -> Res {
        let Some(h) = self.host() else { return Ok(()) };
        let x = self.ctxs[h].hosting.as_ref().expect("hosting");
        let core = x.engine.core();
        // What a previous host handed out is adopted by this one only if it still has the
        // message (transient ones died with it).
        let me = self.ctxs[h].id;
        let unprotected = self.ctxs.iter().filter(|c| c.alive).any(|c| {
            c.chans.values().any(|ch| !ch.closed && ch.held.values().any(|held| !held.protected || held.host != me))
        });
        if !unprotected {
            for name in core.queue_names() {
                let info = core.queue_info(&name).expect("listed");
                let held: usize = self
                    .ctxs
                    .iter()
                    .filter(|c| c.alive)
                    .flat_map(|c| {
                        c.chans
                            .iter()
                            .filter(move |(cn, ch)| !ch.closed && x.state.channel(c.id, **cn).is_some())
                            .flat_map(|(_, ch)| ch.held.values())
                    })
                    .filter(|held| held.queue == *name)
                    .count();
                if info.unacked != held {
                    return Err(format!(
                        "counts: queue {name} has {} unacked in the core, the apps hold {held}",
                        info.unacked
                    ));
                }
            }
        }
        if log {
            let (_, recovered) = Log::recover(self.store.records());
            for q in ["d0", "d2"] {
                let stored = recovered.queues.iter().find(|s| &*s.name == q).map_or(0, |s| s.messages.len());
                let info = core.queue_info(q).ok_or_else(|| format!("durable queue {q} is gone"))?;
                let total = info.ready + info.unacked;
                // Handed out before the transaction that held them failed: transient now.
                let slack = x.unstored.iter().filter(|id| self.msgs[**id as usize].1 == q).count();
                if stored > total || total - stored > slack {
                    let ids: Vec<u64> = recovered
                        .queues
                        .iter()
                        .filter(|s| &*s.name == q)
                        .flat_map(|s| s.messages.iter().filter_map(|m| m.message.as_ref().map(|m| msg_id(m))))
                        .collect();
                    let held: Vec<u64> = self
                        .ctxs
                        .iter()
                        .filter(|c| c.alive)
                        .flat_map(|c| c.chans.values().flat_map(|ch| ch.held.values()))
                        .filter(|h| h.queue == q)
                        .map(|h| h.msg)
                        .collect();
                    let ready: Vec<u64> = core.peek(q, 1000).iter().map(|m| msg_id(m)).collect();
                    return Err(format!(
                        "counts: the store holds {stored} messages of {q} {ids:?}, the core {} ready {ready:?} + {} \
                         unacked (the apps hold {held:?})",
                        info.ready, info.unacked
                    ));
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------ the final drain

    /// In the drain: every app acks what it holds; the first live context consumes every
    /// drained queue.
    fn drain_step(&mut self, i: usize) -> Res {
        let now = self.now;
        let drainer = self.alive().first().copied() == Some(i);
        let c = &mut self.ctxs[i];
        for (chan, ch) in c.chans.iter_mut().filter(|(_, ch)| !ch.closed) {
            if let Some(last) = ch.held.keys().next_back().copied() {
                if c.client.cast(*chan, Command::Ack { tag: last, multiple: true }, now).is_ok() {
                    for h in std::mem::take(&mut ch.held).into_values() {
                        self.settled.insert(h.msg);
                    }
                }
            }
        }
        if drainer {
            let has =
                |c: &Ctx, q: &str| c.chans.values().any(|ch| !ch.closed && ch.consumers.values().any(|(x, _)| x == q));
            let open = c.chans.iter().find(|(_, ch)| !ch.closed).map(|(k, _)| *k);
            let chan = match open {
                Some(chan) => chan,
                None => {
                    let chan = c.client.next_id();
                    c.client.open_channel(c.conn, chan, false);
                    c.chans.insert(chan, AppChan { conn: c.conn, ..Default::default() });
                    chan
                }
            };
            if c.calls.is_empty() {
                if !has(c, "t0") {
                    let id = c
                        .client
                        .call(chan, Command::DeclareQueue(declare_of("t0")), Track::Nothing)
                        .map_err(|e| format!("{e:?}"))?;
                    c.calls.insert(id, Call::Other);
                }
                for q in DRAINED {
                    if !has(&self.ctxs[i], q) {
                        self.consume(i, chan, q.to_string(), false)?;
                    }
                }
            }
        }
        self.pump(i)
    }

    /// One round of the drain: every live context takes all its input and acks; the
    /// transaction commits; time advances when nothing else happened. Answers whether
    /// something happened.
    fn drain_round(&mut self) -> Res<bool> {
        self.step += 1;
        let mut busy = false;
        for i in self.alive() {
            if !self.ctxs[i].alive {
                continue;
            }
            while self.ctxs[i].alive && self.ctxs[i].has_input() {
                busy = true;
                if self.ctxs[i].become_host {
                    self.become_host(i)?;
                    continue;
                }
                let pending = self.ctxs[i].hosting.as_ref().is_some_and(|x| x.live_pending || !x.gone.is_empty());
                if pending {
                    // Lock events first, as ctx_step takes them.
                    let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                    if x.live_pending {
                        x.live_pending = false;
                        let me = self.ctxs[i].id;
                        let live: Vec<u64> = self.ctxs.iter().filter(|c| c.alive && c.id != me).map(|c| c.id).collect();
                        let now = self.now;
                        let x = self.ctxs[i].hosting.as_mut().expect("hosting");
                        x.state.live_clients(&mut x.engine, live, now);
                    } else if let Some(gone) = x.gone.pop_front() {
                        let now = self.now;
                        x.state.client_gone(&mut x.engine, gone, now);
                    }
                    self.host_after(i)?;
                    continue;
                }
                if self.ctxs[i].hosting.as_ref().is_some_and(|x| !x.report.is_empty()) {
                    self.runner_reports(i)?;
                } else if let Some(from) = self.ctxs[i].inbox.iter().find(|(_, q)| !q.is_empty()).map(|(k, _)| *k) {
                    self.read_post(i, from)?;
                } else {
                    self.hand_over_local(i)?;
                }
            }
            let before = self.ctxs[i].out.is_empty();
            self.drain_step(i)?;
            busy |= before && !self.ctxs[i].out.is_empty();
        }
        self.flush_posts();
        if self.end_txn(Some(WriteOutcome::Committed))? {
            busy = true;
        }
        if !busy {
            self.now += 1000;
            self.fire_timers()?;
            self.flush_posts();
        }
        Ok(busy)
    }

    /// Runs drain rounds until the mesh is quiet and no app holds anything.
    fn settle_all(&mut self, what: &str) -> Res {
        let mut calm = 0;
        for _ in 0..3000 {
            let busy = self.drain_round()?;
            let held = self.ctxs.iter().filter(|c| c.alive).any(|c| c.chans.values().any(|ch| !ch.held.is_empty()));
            if !busy && !held && self.quiet() {
                calm += 1;
                if calm >= 3 {
                    return Ok(());
                }
            } else {
                calm = 0;
            }
        }
        Err(format!("the mesh never went quiet ({what}): {}", self.why_busy()))
    }

    /// The final drain and its checks.
    fn finish(&mut self) -> Res {
        self.faults = false;
        self.drain = true;
        self.log("---- final drain".into());
        for c in &mut self.ctxs {
            c.starved_until = 0;
        }
        if self.alive().is_empty() {
            self.spawn();
        }
        self.settle_all("drain")?;
        let h = self.host().ok_or("no host after the drain")?;
        {
            let core = self.ctxs[h].hosting.as_ref().expect("hosting").engine.core();
            for q in DRAINED {
                if let Some(info) = core.queue_info(q) {
                    if info.ready + info.unacked != 0 {
                        return Err(format!(
                            "counts: after the drain, {q} has {} ready, {} unacked, {} consumers; {}",
                            info.ready,
                            info.unacked,
                            info.consumers,
                            self.why_busy()
                        ));
                    }
                }
            }
        }
        self.check_counts(true)?;
        if let Some(lost) = self.must_survive.iter().find(|m| !self.settled.contains(m)) {
            return Err(format!(
                "confirmed message m{lost} (persistent, to {}) never reached an app that acked it",
                self.msgs[*lost as usize].1
            ));
        }
        for c in self.ctxs.iter().filter(|c| c.alive) {
            for (chan, ch) in &c.chans {
                if let Some(seq) = ch.pubs.keys().find(|s| !ch.confirmed.contains_key(s)) {
                    return Err(format!("host = client: ctx{} chan {chan}: publish {seq} never confirmed", c.id));
                }
                if !ch.waits.is_empty() {
                    return Err(format!("host = client: ctx{} chan {chan}: waitForConfirms never over", c.id));
                }
            }
        }
        // Live subscriptions survive: a probe to the feed reaches every live subscriber.
        let subscribers: Vec<usize> = self
            .alive()
            .into_iter()
            .filter(|i| {
                let c = &self.ctxs[*i];
                !c.feed.lost && c.feed.consumer.as_ref().is_some_and(|(chan, tag)| c.client.has_consumer(*chan, tag))
            })
            .collect();
        if subscribers.is_empty() {
            return Ok(());
        }
        let p = self.alive()[0];
        let chan = self.ctxs[p].chans.iter().find(|(_, ch)| !ch.closed).map(|(k, _)| *k).ok_or("no open channel")?;
        let id = self.msgs.len() as u64;
        self.log(format!("ctx{} publishes the probe m{id}", self.ctxs[p].id));
        self.publish_to(p, chan, id, "amq.topic", "feed.probe", false, "feed")?;
        self.pump(p)?;
        self.flush_posts();
        self.settle_all("probe")?;
        for i in subscribers {
            let c = &self.ctxs[i];
            if !c.alive {
                continue;
            }
            self.tally.probes_checked += 1;
            if !c.got.contains(&id) {
                return Err(format!(
                    "live subscription lost: ctx{}'s feed consumer {:?} on {:?} did not get the probe m{id}",
                    c.id, c.feed.consumer, c.feed.name
                ));
            }
        }
        Ok(())
    }
}

/// Short names of frames, for the trace.
fn describe_frames(frames: &[Frame]) -> String {
    let mut out = Vec::new();
    for f in frames.iter().take(6) {
        out.push(match f {
            Frame::Hello { .. } => "hello".to_string(),
            Frame::Host { since } => format!("host since {since}"),
            Frame::OpenChannel { chan, .. } => format!("open {chan}"),
            Frame::CloseConnection { conn } => format!("close-conn {conn}"),
            Frame::Call { id, chan, cmd } => format!("call {id}@{chan} {}", command_name(cmd)),
            Frame::Stats { id } => format!("stats {id}"),
            Frame::Flush { id } => format!("flush {id}"),
            Frame::Peek { id, .. } => format!("peek {id}"),
            Frame::Resume { id, chan, state, .. } => {
                format!("resume {id}@{chan} ({} in flight, {} settled)", state.in_flight.len(), state.settled.len())
            }
            Frame::Restore { id, .. } => format!("restore {id}"),
            Frame::Resumed => "resumed".into(),
            Frame::QueueArguments { id, .. } => format!("queue-arguments {id}"),
            Frame::DeclareBridge { id, config } => format!("declare-bridge {id} {}", config.name),
            Frame::UndeclareBridge { name } => format!("undeclare-bridge {name}"),
            Frame::BridgeStatus { config, .. } => format!("bridge-status {}", config.name),
            Frame::BridgeGone { name } => format!("bridge-gone {name}"),
            Frame::Reply { id, result: Ok(_) } => format!("reply {id}"),
            Frame::Reply { id, result: Err(e) } => format!("reply {id} err {}", e.code.code()),
            Frame::Event { chan, event } => match event {
                WireEvent::Deliver(d) => format!(
                    "deliver@{chan} m{} tag {}{}",
                    msg_id(&d.message),
                    d.delivery_tag,
                    if d.redelivered { " redelivered" } else { "" }
                ),
                WireEvent::Confirm { seq, error } => {
                    format!("confirm@{chan} {seq}{}", if error.is_some() { " NACK" } else { "" })
                }
                WireEvent::Return { .. } => format!("return@{chan}"),
                WireEvent::Cancelled(t) => format!("cancelled@{chan} {t}"),
                WireEvent::Closed(e) => format!("closed@{chan} {}", e.code.code()),
            },
        });
    }
    if frames.len() > 6 {
        out.push(format!("+{}", frames.len() - 6));
    }
    out.join(", ")
}

fn command_name(c: &Command) -> String {
    match c {
        Command::Publish { message, .. } => format!("publish m{}", msg_id(message)),
        Command::Ack { tag, multiple } => format!("ack {tag}{}", if *multiple { "+" } else { "" }),
        Command::Nack { tag, multiple, requeue } => {
            format!("nack {tag}{} requeue {requeue}", if *multiple { "+" } else { "" })
        }
        Command::Reject { tag, requeue } => format!("reject {tag} requeue {requeue}"),
        Command::Consume(c) => format!("consume {} {}", c.queue, c.consumer_tag),
        Command::Get { queue, .. } => format!("get {queue}"),
        Command::DeclareQueue(d) => format!("declare '{}'", d.name),
        Command::Cancel(t) => format!("cancel {t}"),
        other => format!("{other:?}").chars().take(30).collect(),
    }
}

/// Runs schedules `from..to` of a run seeded `seed`: the totals, or the first violation.
pub fn run_range(seed: u64, from: u64, to: u64, cfg: &Config) -> Result<Tally, Box<Violation>> {
    let mut total = Tally::default();
    for n in from..to {
        let s = schedule_seed(seed, n);
        match Sim::new(s, cfg.clone()).run() {
            Ok(t) => total.add(&t),
            Err(mut v) => {
                v.schedule = n;
                return Err(Box::new(v));
            }
        }
    }
    Ok(total)
}
