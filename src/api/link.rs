//! What joins a context's channels to the broker, wherever it runs. A [`Link`] is one
//! broker name in one context. Its role is either
//! - `Host`: this context runs the core ([`Host`]) for itself and for the other contexts,
//!   whose frames it executes and whose events it sends back; or
//! - `Client`: another context hosts; commands go to it as frames, replies and events
//!   come back. The client keeps what a new host needs after failover: each channel's
//!   prefetch, confirm numbering, consumers and deliveries in flight.
//!
//! Without Web Locks and BroadcastChannel (Node, Deno, workerd), or with `mesh: false`,
//! a link hosts its own broker and has no port.
//!
//! The hosting side (taking over, serving other contexts) is in `link/serve.rs`.
//!
//! Borrow discipline: the host's core runs events back into the link (its event sink),
//! and JS callbacks call back into channels, so no `RefCell` of the link is held across
//! `Host::with` or a call into JS.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::convert::{self, set, Fields};
use super::to_js;
use crate::core::fxhash::{FxMap, FxSet};
use crate::core::{AmqpError, Broker, ChannelRef, ConnId, Consume, ReplyCode, Resume};
use crate::host::{now, Event, Host, Storage};
use crate::mesh::frame::{
    self, Answer, ChannelState, Command, ContextInfo, Frame, InFlight, PostWriter, Stats, WireDelivery, WireEvent,
    EVERYONE,
};
use crate::mesh::topology::Recorded;

#[wasm_bindgen(module = "/src/api/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = meshAvailable)]
    fn mesh_available() -> bool;

    #[wasm_bindgen(js_name = defaultLabel)]
    fn default_label() -> String;

    type Port;
    #[wasm_bindgen(constructor)]
    fn new(
        prefix: &str,
        me: f64,
        on_post: &Function,
        on_host: &Function,
        on_gone: &Function,
        on_frozen: &Function,
    ) -> Port;
    #[wasm_bindgen(method, catch)]
    fn start(this: &Port) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method)]
    fn post(this: &Port, bytes: &Uint8Array);
    #[wasm_bindgen(method)]
    fn watch(this: &Port, id: f64);
    #[wasm_bindgen(method, js_name = liveClients)]
    fn live_clients(this: &Port) -> Promise;
    #[wasm_bindgen(method)]
    fn close(this: &Port);
}

/// How long a new host waits at most for the live clients (those holding their client
/// lock) to re-announce their channels before it hands out messages again. It goes on as
/// soon as every one has, within a few ms when none is busy. A client starved of CPU
/// re-announces seconds late: until it has, the host cannot know which messages it still
/// holds, and would hand them to others too (the README's bug 2). A hung client must not
/// stall the broker forever, though.
const RESUME_WINDOW_MS: i32 = 10_000;
/// How long a client remembers a settled delivery, and how many per channel at most: a
/// host stores a settlement within a turn or so of receiving it.
const SETTLED_KEEP_MS: f64 = 2000.0;
const SETTLED_KEEP_MAX: usize = 65_536;
/// A post is sent once its frames reach this size, even mid-turn.
const POST_SPLIT_BYTES: usize = 4 << 20;

/// Calls a JS callback; an exception it throws is reported as uncaught, not swallowed,
/// and does not stop the broker.
pub(crate) fn call(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        convert::report_uncaught(&e);
    }
}

pub(crate) fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        set(&o, k, v.clone());
    }
    o.into()
}

fn host_gone() -> AmqpError {
    AmqpError::new(
        ReplyCode::ConnectionForced,
        "the context hosting the broker went away before answering: the call may or may not have taken effect; \
         another context hosts now, so try again",
    )
}

pub(crate) fn closed_channel() -> AmqpError {
    AmqpError::new(ReplyCode::ChannelError, "channel is closed: open a new one")
}

/// `waitForConfirms()` calls: every publish up to `upto` settles first.
struct ConfirmWaiter {
    upto: u64,
    resolve: Function,
    reject: Function,
    nacked: bool,
}

/// One channel of this context: its JS side, and what a new host needs to rebuild it.
pub(crate) struct Chan {
    conn: u32,
    confirm: bool,
    /// Consumer tag → the callback that takes each message (and `null` when cancelled).
    consumers: FxMap<Rc<str>, Function>,
    /// The consumers' options, re-announced after failover.
    specs: Vec<Consume>,
    /// Confirm sequence number → the publish callback `(err) => …`, if one was given.
    callbacks: FxMap<u64, Function>,
    outstanding: BTreeSet<u64>,
    waiters: Vec<ConfirmWaiter>,
    /// `emit(name, arg)`: the JS channel's events (`return`, `error`, `close`).
    emit: Function,
    /// The confirm sequence number of the next publish.
    pub(crate) next_seq: u64,
    prefetch: (u32, u32),
    /// Client role only: deliveries not yet acked, by tag, and the highest tag seen.
    in_flight: BTreeMap<u64, InFlight>,
    last_tag: u64,
    /// Client role: deliveries settled lately (when, what, ack or reject), re-announced
    /// after failover in case the dead host never stored their settlement.
    settled: VecDeque<(f64, InFlight, bool)>,
}

impl Chan {
    /// Resolves the `waitForConfirms` calls whose publishes have all settled.
    fn settle_waiters(&mut self) {
        let first_open = self.outstanding.first().copied().unwrap_or(u64::MAX);
        self.waiters.retain(|w| {
            if w.upto >= first_open {
                return true;
            }
            let _ = match w.nacked {
                false => w.resolve.call0(&JsValue::NULL),
                true => w.reject.call1(
                    &JsValue::NULL,
                    &to_js(AmqpError::new(
                        ReplyCode::ResourceError,
                        "a message published before waitForConfirms was nacked: its publish callback has the reason",
                    )),
                ),
            };
            false
        });
    }

    /// Every pending confirm fails with `error`, in publish order; says whether any was pending.
    fn fail_all(&mut self, error: &JsValue) -> bool {
        let had = !self.outstanding.is_empty();
        for cb in self.take_callbacks() {
            let _ = cb.call1(&JsValue::NULL, error);
        }
        self.outstanding.clear();
        for w in self.waiters.drain(..) {
            let _ = w.reject.call1(&JsValue::NULL, error);
        }
        had
    }

    /// The publish callbacks still waiting, in publish order.
    pub(super) fn take_callbacks(&mut self) -> Vec<Function> {
        let mut all: Vec<(u64, Function)> = self.callbacks.drain().collect();
        all.sort_unstable_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, cb)| cb).collect()
    }

    /// A publish on a confirm channel awaits its confirm.
    pub(crate) fn expect_confirm(&mut self, seq: u64, callback: Option<Function>) {
        self.outstanding.insert(seq);
        if let Some(cb) = callback {
            self.callbacks.insert(seq, cb);
        }
    }

    /// The publish did not go out (the channel closed meanwhile).
    pub(crate) fn unexpect_confirm(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
        self.callbacks.remove(&seq);
        self.next_seq = seq;
    }

    pub(crate) fn wait_for_confirms(&mut self, resolve: Function, reject: Function) {
        self.waiters.push(ConfirmWaiter { upto: self.next_seq - 1, resolve, reject, nacked: false });
        self.settle_waiters();
    }

    fn state(&self) -> ChannelState {
        ChannelState {
            next_delivery_tag: self.last_tag + 1,
            confirm_seq: self.confirm.then_some(self.next_seq),
            consumer_prefetch: self.prefetch.0,
            channel_prefetch: self.prefetch.1,
            consumers: self.specs.clone(),
            in_flight: self.in_flight.values().cloned().collect(),
            settled: self.settled.iter().map(|(_, f, ack)| (f.clone(), *ack)).collect(),
        }
    }

    /// Client role: an ack, nack or reject settles deliveries in flight. Acks and rejects
    /// without requeue are kept a while (see `settled`); a requeued message is back in its
    /// queue either way.
    fn settle(&mut self, tag: u64, multiple: bool, keep: Option<bool>) {
        let done: Vec<InFlight> = match (tag, multiple) {
            (0, true) => std::mem::take(&mut self.in_flight).into_values().collect(),
            (t, true) => {
                let rest = self.in_flight.split_off(&(t + 1));
                std::mem::replace(&mut self.in_flight, rest).into_values().collect()
            }
            (t, false) => self.in_flight.remove(&t).into_iter().collect(),
        };
        let now = js_sys::Date::now();
        while self.settled.front().is_some_and(|(at, _, _)| now - at > SETTLED_KEEP_MS)
            || self.settled.len() > SETTLED_KEEP_MAX
        {
            self.settled.pop_front();
        }
        if let Some(ack) = keep {
            self.settled.extend(done.into_iter().map(|f| (now, f, ack)));
        }
    }
}

/// What a reply turns into.
pub(crate) enum Reply {
    /// `{queue, messageCount, consumerCount}`
    Queue,
    /// `{messageCount}`
    Count,
    /// `{}`
    Empty,
    /// `{exchange}`
    Exchange(String),
    /// `{consumerTag}`
    Tag(String),
    /// `{consumerTag}` of a cancelled consumer, whose callback goes once the host has
    /// answered: deliveries sent before the cancel still reach it, as in amqplib.
    Cancelled {
        chan: u32,
        tag: String,
    },
    /// A message (tracked while unacked) or `false`.
    Got {
        chan: u32,
        no_ack: bool,
    },
    Stats,
    Peek,
    Nothing,
    /// A channel re-announced after failover.
    Resume,
    /// A connection's topology declared again after failover.
    Restore,
}

struct Pending {
    resolve: Function,
    reject: Function,
    reply: Reply,
    /// A topology command: recorded for connection `.0` once it succeeds.
    record: Option<(u32, Command)>,
}

/// An event for a channel of this context, while it hosts: handed over after the current
/// task, as a client gets its events in a later post, so that the app sees the same order
/// whether its context hosts or not (a confirm callback never runs inside `publish`).
enum Local {
    Event(u32, WireEvent),
    /// A cancelled consumer's callback goes, after the deliveries made before the cancel.
    Cancelled(u32, String),
}

/// The host's bookkeeping: which core connection and channel each context's ids map to.
struct Server {
    host: Host,
    /// (context, its connection id) → core connection.
    conns: FxMap<(u64, u32), ConnId>,
    /// (context, its channel id) → core channel, and back.
    chans: FxMap<(u64, u32), ChannelRef>,
    owners: FxMap<ChannelRef, (u64, u32)>,
    watched: FxSet<u64>,
    /// What each context calls itself (`connect({label})`).
    labels: FxMap<u64, String>,
    /// (time, totals) of recent stats, for rates.
    samples: VecDeque<(u64, [u64; 6])>,
    /// After taking over: the live clients not yet re-announced, and the frames that
    /// came meanwhile. Messages are held back until it ends.
    window: Option<Window>,
}

#[derive(Default)]
struct Window {
    waiting: Option<FxSet<u64>>,
    done: FxSet<u64>,
    backlog: Vec<(u64, Frame)>,
}

enum Role {
    /// No host known yet.
    Waiting,
    Client(u64),
    Host(Server),
    Closed,
}

#[derive(Default)]
struct Net {
    out: PostWriter,
    post_scheduled: bool,
    /// Frames for a host not known yet.
    waiting: Vec<Frame>,
    pending: FxMap<u32, Pending>,
    next_id: u32,
    dropped: u64,
    /// After failover: replies still due to re-announcements, and what could not be
    /// restored.
    resuming: Option<(usize, Lost)>,
}

/// After failover: consumers the new host could not restore, and topology (what, why).
#[derive(Default)]
pub(super) struct Lost {
    cancelled: Vec<String>,
    topology: Vec<(String, AmqpError)>,
}

mod serve;

type Callback = Closure<dyn FnMut(JsValue)>;

pub(crate) struct Link {
    me: u64,
    /// The broker's origin-wide resource prefix (`crate::mesh::resource_prefix`).
    prefix: String,
    /// `connect({ limits })`: what this context's broker enforces while it hosts.
    limits: crate::core::Limits,
    /// What this context calls itself in the stats.
    label: String,
    storage: JsValue,
    role: RefCell<Role>,
    pub(crate) chans: RefCell<FxMap<u32, Chan>>,
    net: RefCell<Net>,
    port: RefCell<Option<Port>>,
    /// The port's callbacks, kept alive while the port is.
    closures: RefCell<Vec<Callback>>,
    on_failover: RefCell<Option<Function>>,
    /// `open()` waits for a role: resolve, reject.
    ready: RefCell<Option<(Function, Function)>>,
    next_local: Cell<u32>,
    /// Per connection: the topology it declared that dies with the host (see
    /// [`crate::mesh::topology`]).
    topology: RefCell<FxMap<u32, Recorded>>,
    /// Host role: events for this context's channels, handed over after the current task.
    local: RefCell<VecDeque<Local>>,
    local_scheduled: Cell<bool>,
    /// Channels the app closed with confirms outstanding, until the task that closed them
    /// ends (see `RawChannel::wait_for_confirms`): (channel, the error its confirms failed with).
    closing_unconfirmed: Rc<RefCell<Vec<(u32, JsValue)>>>,
}

/// A `Resume` for the core from a channel's re-announced state.
fn resume_of(s: ChannelState) -> Resume {
    // Settled ones are taken back with no consumer (so they do not count against its
    // prefetch), to be settled again at once.
    let settled = s.settled.into_iter().map(|(f, _)| InFlight { consumer_tag: None, ..f });
    let in_flight = s.in_flight.into_iter().chain(settled);
    Resume {
        next_delivery_tag: s.next_delivery_tag,
        confirm_seq: s.confirm_seq,
        consumer_prefetch: s.consumer_prefetch,
        channel_prefetch: s.channel_prefetch,
        consumers: s.consumers,
        in_flight: in_flight.collect(),
    }
}

/// Runs one channel command on the core.
fn execute(core: &mut Broker, ch: ChannelRef, cmd: Command, now: u64) -> Result<Answer, AmqpError> {
    let done = |r: crate::core::Result<()>| r.map(|_| Answer::Done);
    match cmd {
        Command::DeclareQueue(d) => core.declare_queue(ch, d, now).map(Answer::Queue),
        Command::DeleteQueue { name, if_unused, if_empty } => {
            core.delete_queue(ch, &name, if_unused, if_empty, now).map(Answer::Count)
        }
        Command::PurgeQueue(name) => core.purge_queue(ch, &name, now).map(Answer::Count),
        Command::BindQueue { queue, source, pattern, args } => {
            done(core.bind_queue(ch, &queue, &source, &pattern, args, now))
        }
        Command::UnbindQueue { queue, source, pattern, args } => {
            done(core.unbind_queue(ch, &queue, &source, &pattern, args, now))
        }
        Command::DeclareExchange(d) => done(core.declare_exchange(ch, d, now)),
        Command::DeleteExchange { name, if_unused } => done(core.delete_exchange(ch, &name, if_unused, now)),
        Command::BindExchange { destination, source, pattern, args } => {
            done(core.bind_exchange(ch, &destination, &source, &pattern, args, now))
        }
        Command::UnbindExchange { destination, source, pattern, args } => {
            done(core.unbind_exchange(ch, &destination, &source, &pattern, args, now))
        }
        Command::Publish { message, mandatory } => done(core.publish(ch, message, mandatory, now)),
        Command::Consume(c) => done(core.consume(ch, c, now).map(|_| ())),
        Command::Cancel(tag) => done(core.cancel(ch, &tag, now)),
        Command::Get { queue, no_ack } => {
            let got = core.get(ch, &queue, no_ack, now)?;
            Ok(Answer::Got(got.map(|g| {
                let d = g.delivery;
                let wire = WireDelivery {
                    consumer_tag: None,
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    delivery_count: d.delivery_count,
                    queue: queue.as_str().into(),
                    seq: d.seq,
                    message: d.message,
                };
                (wire, g.message_count)
            })))
        }
        Command::Ack { tag, multiple } => done(core.ack(ch, tag, multiple, now)),
        Command::Nack { tag, multiple, requeue } => done(core.nack(ch, tag, multiple, requeue, now)),
        Command::Reject { tag, requeue } => done(core.reject(ch, tag, requeue, now)),
        Command::Prefetch { count, global } => done(core.prefetch(ch, count, global, now)),
        Command::Recover => done(core.recover(ch, now)),
        Command::Close => done(core.close_channel(ch, now)),
    }
}

/// The names of `Stats::totals` and `rates` in JS.
const TOTALS: [&str; 6] = ["published", "delivered", "redelivered", "acked", "deadLettered", "discarded"];

/// How far back rates look, and how often a sample is kept.
const RATE_WINDOW_MS: u64 = 5_000;
const RATE_SAMPLE_MS: u64 = 250;

fn totals_of(queues: &[crate::core::QueueInfo]) -> [u64; 6] {
    let mut t = [0u64; 6];
    for q in queues {
        let c = q.counters;
        let v =
            [c.enqueued, c.delivered, c.redelivered, c.acked + c.auto_acked, c.dead_lettered, c.discarded + c.purged];
        for (a, b) in t.iter_mut().zip(v) {
            *a += b;
        }
    }
    t
}

fn counts_js(names: &[&str; 6], v: impl Iterator<Item = f64>) -> JsValue {
    let o = Object::new();
    for (k, x) in names.iter().zip(v) {
        set(&o, k, x);
    }
    o.into()
}

/// What `stats()` answers (see `BrokerStats` in index.d.ts).
fn stats_to_js(s: &Stats, me: u64) -> JsValue {
    let out = Object::new();
    let exchanges: Array = s
        .exchanges
        .iter()
        .map(|x| {
            let o = Object::new();
            set(&o, "name", &*x.name);
            set(&o, "type", x.kind);
            set(&o, "durable", x.durable);
            set(&o, "autoDelete", x.auto_delete);
            set(&o, "internal", x.internal);
            set(&o, "arguments", convert::table_to_js(&x.arguments));
            JsValue::from(o)
        })
        .collect();
    let bindings: Array = s
        .bindings
        .iter()
        .map(|b| {
            let o = Object::new();
            set(&o, "source", &*b.source);
            set(&o, "destination", &*b.destination);
            set(&o, "destinationType", if b.to_exchange { "exchange" } else { "queue" });
            set(&o, "routingKey", b.routing_key.as_str());
            set(&o, "arguments", convert::table_to_js(&b.arguments));
            JsValue::from(o)
        })
        .collect();
    let contexts: Array = s
        .contexts
        .iter()
        .map(|c| {
            let o = Object::new();
            set(&o, "id", c.id.to_string());
            set(&o, "label", c.label.as_str());
            set(&o, "hosting", c.id == s.host);
            set(&o, "self", c.id == me);
            set(&o, "connections", c.connections);
            set(&o, "channels", c.channels);
            set(&o, "consumers", c.consumers);
            set(&o, "unacked", c.unacked);
            JsValue::from(o)
        })
        .collect();
    set(&out, "at", s.at as f64);
    set(&out, "exchanges", exchanges);
    set(&out, "bindings", bindings);
    set(&out, "contexts", contexts);
    set(&out, "totals", counts_js(&TOTALS, s.totals.iter().map(|t| *t as f64)));
    set(&out, "rates", counts_js(&TOTALS, s.rates.iter().copied()));
    let queues: Array = s
        .queues
        .iter()
        .map(|q| {
            let o = Object::new();
            set(&o, "name", &*q.name);
            set(&o, "durable", q.durable);
            set(&o, "exclusive", q.exclusive);
            set(&o, "autoDelete", q.auto_delete);
            set(&o, "arguments", convert::table_to_js(&q.arguments));
            let max = q.effective_max_length.map_or(JsValue::NULL, |m| JsValue::from(m as f64));
            set(&o, "effectiveMaxLength", max);
            set(&o, "ready", q.ready as f64);
            set(&o, "readyBytes", q.ready_bytes as f64);
            set(&o, "pagedOut", q.paged as f64);
            set(&o, "unacked", q.unacked as f64);
            set(&o, "consumers", q.consumers as f64);
            let c = q.counters;
            set(&o, "published", c.enqueued as f64);
            set(&o, "delivered", c.delivered as f64);
            set(&o, "redelivered", c.redelivered as f64);
            set(&o, "acked", (c.acked + c.auto_acked) as f64);
            set(&o, "deadLettered", c.dead_lettered as f64);
            set(&o, "discarded", (c.discarded + c.purged) as f64);
            JsValue::from(o)
        })
        .collect();
    set(&out, "queues", queues);
    set(&out, "storage", s.storage.as_str());
    set(&out, "host", s.host.to_string());
    set(&out, "hosting", s.host == me);
    set(&out, "droppedPosts", s.dropped_posts as f64);
    out.into()
}

fn peeked_js(messages: &[Rc<crate::core::Message>]) -> JsValue {
    let out: Array = messages.iter().map(|m| convert::message_to_js(m, Fields::Peek, 0)).collect();
    out.into()
}

fn message_js(d: &WireDelivery, message_count: Option<u32>) -> JsValue {
    let (delivery_tag, redelivered, seq) = (d.delivery_tag, d.redelivered, d.seq);
    let fields = match (message_count, d.consumer_tag.as_deref()) {
        (Some(message_count), _) => Fields::Get { delivery_tag, redelivered, message_count, seq },
        (None, tag) => Fields::Consume { consumer_tag: tag.unwrap_or(""), delivery_tag, redelivered, seq },
    };
    convert::message_to_js(&d.message, fields, d.delivery_count)
}

impl Link {
    fn new(prefix: &str, storage: JsValue, label: String, limits: crate::core::Limits, role: Role) -> Rc<Link> {
        Rc::new(Link {
            me: (js_sys::Math::random() * 9.0e15) as u64 + 1,
            prefix: prefix.into(),
            limits,
            label,
            storage,
            role: RefCell::new(role),
            chans: RefCell::default(),
            net: RefCell::default(),
            port: RefCell::new(None),
            closures: RefCell::default(),
            on_failover: RefCell::new(None),
            ready: RefCell::new(None),
            next_local: Cell::new(1),
            topology: RefCell::default(),
            local: RefCell::default(),
            local_scheduled: Cell::new(false),
            closing_unconfirmed: Rc::default(),
        })
    }

    /// Opens the broker whose resources are named `prefix…` in this context: joins the
    /// mesh where it can (and `mesh` allows), else hosts alone.
    pub(crate) async fn open(
        prefix: &str,
        storage: JsValue,
        mesh: bool,
        label: Option<String>,
        limits: crate::core::Limits,
    ) -> Result<Rc<Link>, JsValue> {
        let kind = Storage::from_js(&storage).map_err(to_js)?;
        let label = label.unwrap_or_else(default_label);
        if !mesh || !mesh_available() {
            let host = Host::open(prefix, kind, limits.clone()).await.map_err(to_js)?;
            let link = Link::new(prefix, storage, label, limits, Role::Waiting);
            link.install(host, false);
            return Ok(link);
        }
        let link = Link::new(prefix, storage, label, limits, Role::Waiting);
        let ready = Promise::new(&mut |resolve, reject| *link.ready.borrow_mut() = Some((resolve, reject)));
        let weak = Rc::downgrade(&link);
        let on_post = Closure::<dyn FnMut(JsValue)>::new({
            let weak = weak.clone();
            move |v: JsValue| {
                if let Some(link) = weak.upgrade() {
                    link.receive(v);
                }
            }
        });
        let on_host = Closure::<dyn FnMut(JsValue)>::new({
            let weak = weak.clone();
            move |_| {
                if let Some(link) = weak.upgrade() {
                    spawn_local(async move { link.become_host().await });
                }
            }
        });
        let on_gone = Closure::<dyn FnMut(JsValue)>::new({
            let weak = weak.clone();
            move |id: JsValue| {
                if let (Some(link), Some(id)) = (weak.upgrade(), id.as_f64()) {
                    link.client_gone(id as u64);
                }
            }
        });
        let on_frozen = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(link) = weak.upgrade() {
                link.left();
            }
        });
        let port = Port::new(
            prefix,
            link.me as f64,
            on_post.as_ref().unchecked_ref(),
            on_host.as_ref().unchecked_ref(),
            on_gone.as_ref().unchecked_ref(),
            on_frozen.as_ref().unchecked_ref(),
        );
        *link.closures.borrow_mut() = vec![on_post, on_host, on_gone, on_frozen];
        let started = port.start();
        *link.port.borrow_mut() = Some(port);
        JsFuture::from(started?).await?;
        link.send(EVERYONE, Frame::Hello { label: link.label.clone() });
        JsFuture::from(ready).await?;
        Ok(link)
    }

    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    pub(crate) fn next_id(&self) -> u32 {
        let id = self.next_local.get();
        self.next_local.set(id + 1);
        id
    }

    pub(crate) fn hosting(&self) -> bool {
        matches!(*self.role.borrow(), Role::Host(_))
    }

    pub(crate) fn set_on_failover(&self, f: Option<Function>) {
        *self.on_failover.borrow_mut() = f;
    }

    /// The host, when this context hosts.
    pub(crate) fn host(&self) -> Option<Host> {
        match &*self.role.borrow() {
            Role::Host(s) => Some(s.host.clone()),
            _ => None,
        }
    }

    /// The core channel of local channel `chan`, when this context hosts.
    fn local(&self, chan: u32) -> Option<(Host, Option<ChannelRef>)> {
        match &*self.role.borrow() {
            Role::Host(s) => Some((s.host.clone(), s.chans.get(&(self.me, chan)).copied())),
            _ => None,
        }
    }

    pub(crate) fn storage_name(&self) -> &'static str {
        match self.host() {
            Some(h) => h.storage(),
            None => Storage::from_js(&self.storage).map_or("memory", |s| s.name()),
        }
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        self.host().map(|h| h.problems().to_vec()).unwrap_or_default()
    }

    // ------------------------------------------------------------ sending

    fn send(self: &Rc<Self>, to: u64, f: Frame) {
        let host = match &*self.role.borrow() {
            Role::Client(h) => Some(*h),
            Role::Closed => return,
            _ => None,
        };
        let mut net = self.net.borrow_mut();
        let to = match (to, host) {
            (EVERYONE, _) => EVERYONE,
            (u64::MAX, None) => {
                net.waiting.push(f);
                return;
            }
            (u64::MAX, Some(h)) => h,
            (to, _) => to,
        };
        net.out.push(to, &f);
        if net.out.len() >= POST_SPLIT_BYTES {
            // Receivers drop posts over 64 MiB: a large turn goes out in several, in order.
            drop(net);
            self.post_now();
            return;
        }
        if !net.post_scheduled {
            net.post_scheduled = true;
            let link = self.clone();
            // Everything this context sends in one turn goes in one post.
            spawn_local(async move { link.post_now() });
        }
    }

    /// A frame for whoever hosts (held until a host is known).
    fn to_host(self: &Rc<Self>, f: Frame) {
        self.send(u64::MAX, f);
    }

    fn post_now(&self) {
        let bytes = {
            let mut net = self.net.borrow_mut();
            net.post_scheduled = false;
            if net.out.is_empty() {
                return;
            }
            net.out.finish(self.me)
        };
        if let Some(port) = &*self.port.borrow() {
            port.post(&Uint8Array::from(&bytes[..]));
        }
    }

    /// A call to the host answered later: its promise.
    fn request(self: &Rc<Self>, reply: Reply, frame: impl FnOnce(u32) -> Frame) -> Promise {
        self.request_recording(reply, None, frame)
    }

    /// [`Link::request`], recording a topology command once it succeeds.
    fn request_recording(
        self: &Rc<Self>,
        reply: Reply,
        record: Option<(u32, Command)>,
        frame: impl FnOnce(u32) -> Frame,
    ) -> Promise {
        let mut slot = None;
        let promise = Promise::new(&mut |resolve, reject| slot = Some((resolve, reject)));
        let (resolve, reject) = slot.expect("the executor runs at once");
        let id = {
            let mut net = self.net.borrow_mut();
            net.next_id = net.next_id.wrapping_add(1).max(1);
            let id = net.next_id;
            net.pending.insert(id, Pending { resolve, reject, reply, record });
            id
        };
        self.to_host(frame(id));
        promise
    }

    // ------------------------------------------------------------ commands

    /// A channel command that answers: at once when hosting, else a promise.
    pub(crate) fn call(self: &Rc<Self>, chan: u32, cmd: Command, reply: Reply) -> Result<JsValue, JsValue> {
        let conn = self.chans.borrow().get(&chan).map(|c| c.conn);
        let record = match conn {
            Some(conn) if Recorded::concerns(&cmd) => Some((conn, cmd.clone())),
            _ => None,
        };
        if let Some((host, ch)) = self.local(chan) {
            let ch = ch.ok_or_else(|| to_js(closed_channel()))?;
            let answer = host.with(|core| execute(core, ch, cmd, now())).map_err(to_js)?;
            if let Some((conn, cmd)) = record {
                self.record(conn, cmd, &answer);
            }
            return Ok(self.answer_js(reply, answer));
        }
        if conn.is_none() {
            return Err(to_js(closed_channel()));
        }
        Ok(self.request_recording(reply, record, |id| Frame::Call { id, chan, cmd }).into())
    }

    /// A topology command of connection `conn` succeeded.
    fn record(&self, conn: u32, cmd: Command, answer: &Answer) {
        let queue = match answer {
            Answer::Queue(ok) => Some(&*ok.queue),
            _ => None,
        };
        self.topology.borrow_mut().entry(conn).or_default().record(cmd, queue);
    }

    /// A channel command that answers nothing (publish, ack, nack, reject): an error
    /// closes the channel and reaches the app as its events.
    pub(crate) fn cast(self: &Rc<Self>, chan: u32, cmd: Command) -> Result<(), JsValue> {
        if let Some((host, ch)) = self.local(chan) {
            let Some(ch) = ch else {
                // Closed by the broker, and the app not told yet (its events come after
                // this task): taken and dropped, as a host would a client's.
                return match self.chans.borrow().contains_key(&chan) {
                    true => Ok(()),
                    false => Err(to_js(closed_channel())),
                };
            };
            let _ = host.with(|core| execute(core, ch, cmd, now()));
            return Ok(());
        }
        {
            let mut chans = self.chans.borrow_mut();
            let c = chans.get_mut(&chan).ok_or_else(|| to_js(closed_channel()))?;
            match &cmd {
                Command::Ack { tag, multiple } => c.settle(*tag, *multiple, Some(true)),
                Command::Nack { tag, multiple, requeue } => c.settle(*tag, *multiple, (!requeue).then_some(false)),
                Command::Reject { tag, requeue } => c.settle(*tag, false, (!requeue).then_some(false)),
                _ => {}
            }
        }
        self.to_host(Frame::Call { id: 0, chan, cmd });
        Ok(())
    }

    pub(crate) fn add_chan(self: &Rc<Self>, conn: u32, confirm: bool, emit: Function) -> Result<u32, JsValue> {
        let chan = self.next_id();
        if self.host().is_some() {
            self.server_open(self.me, conn, chan, confirm).map_err(to_js)?;
        } else {
            self.to_host(Frame::OpenChannel { conn, chan, confirm });
        }
        let c = Chan {
            conn,
            confirm,
            consumers: FxMap::default(),
            specs: Vec::new(),
            callbacks: FxMap::default(),
            outstanding: BTreeSet::new(),
            waiters: Vec::new(),
            emit,
            next_seq: 1,
            prefetch: (0, 0),
            in_flight: BTreeMap::new(),
            last_tag: 0,
            settled: VecDeque::new(),
        };
        self.chans.borrow_mut().insert(chan, c);
        Ok(chan)
    }

    /// Registers a consumer's callback (before the first delivery can come) and starts it.
    pub(crate) fn consume(self: &Rc<Self>, chan: u32, c: Consume, callback: Function) -> Result<JsValue, JsValue> {
        let tag: Rc<str> = c.consumer_tag.as_str().into();
        let previous = match self.chans.borrow_mut().get_mut(&chan) {
            Some(h) => {
                h.specs.push(c.clone());
                h.consumers.insert(tag.clone(), callback)
            }
            None => return Err(to_js(closed_channel())),
        };
        let started = self.call(chan, Command::Consume(c), Reply::Tag(tag.to_string()));
        if let Err(e) = &started {
            self.drop_consumer(chan, &tag, previous);
            return Err(e.clone());
        }
        started
    }

    /// Undoes a consumer registration (a failed consume keeps the earlier one with that tag).
    fn drop_consumer(&self, chan: u32, tag: &str, previous: Option<Function>) {
        if let Some(h) = self.chans.borrow_mut().get_mut(&chan) {
            if let Some(i) = h.specs.iter().rposition(|s| s.consumer_tag == tag) {
                h.specs.remove(i);
            }
            match previous {
                Some(p) => {
                    h.consumers.insert(tag.into(), p);
                }
                None => {
                    h.consumers.remove(tag);
                }
            }
        }
    }

    pub(crate) fn cancel(self: &Rc<Self>, chan: u32, tag: &str) -> Result<JsValue, JsValue> {
        if let Some(h) = self.chans.borrow_mut().get_mut(&chan) {
            // Not re-announced to a new host from now on.
            h.specs.retain(|s| s.consumer_tag != tag);
        }
        self.call(chan, Command::Cancel(tag.into()), Reply::Cancelled { chan, tag: tag.into() })
    }

    pub(crate) fn prefetch(self: &Rc<Self>, chan: u32, count: u32, global: bool) -> Result<JsValue, JsValue> {
        let out = self.call(chan, Command::Prefetch { count, global }, Reply::Empty)?;
        if let Some(h) = self.chans.borrow_mut().get_mut(&chan) {
            match global {
                false => h.prefetch.0 = count,
                true => h.prefetch.1 = count,
            }
        }
        Ok(out)
    }

    pub(crate) fn recover(self: &Rc<Self>, chan: u32) -> Result<JsValue, JsValue> {
        let out = self.call(chan, Command::Recover, Reply::Empty)?;
        if let Some(h) = self.chans.borrow_mut().get_mut(&chan) {
            h.in_flight.clear();
        }
        Ok(out)
    }

    /// `get` when the head of the queue is at hand, or from another context.
    pub(crate) fn get(self: &Rc<Self>, chan: u32, queue: String, no_ack: bool) -> Result<JsValue, JsValue> {
        self.call(chan, Command::Get { queue, no_ack }, Reply::Got { chan, no_ack })
    }

    /// `close()` of a channel: unacked messages go back; pending confirms fail.
    pub(crate) fn close_chan(self: &Rc<Self>, chan: u32) {
        match self.local(chan) {
            Some((host, Some(ch))) => {
                let _ = host.with(|core| core.close_channel(ch, now()));
                self.forget(self.me, chan);
            }
            Some((_, None)) => {}
            None => {
                if self.chans.borrow().contains_key(&chan) {
                    self.to_host(Frame::Call { id: 0, chan, cmd: Command::Close });
                }
            }
        }
        self.close_handlers(chan);
    }

    /// A connection closed by the app: its channels close, its exclusive queues go.
    pub(crate) fn close_conn(self: &Rc<Self>, conn: u32) {
        self.topology.borrow_mut().remove(&conn);
        if let Some(host) = self.host() {
            let id = match &*self.role.borrow() {
                Role::Host(s) => s.conns.get(&(self.me, conn)).copied(),
                _ => None,
            };
            if let Some(id) = id {
                host.with(|core| core.disconnect(id, now()));
            }
            self.forget_conn(self.me, conn);
        } else {
            self.to_host(Frame::CloseConnection { conn });
        }
        let gone: Vec<u32> = self.chans.borrow().iter().filter(|(_, c)| c.conn == conn).map(|(k, _)| *k).collect();
        for chan in gone {
            self.close_handlers(chan);
        }
    }

    /// A channel closed by the app: its pending confirms fail, and it says `close`.
    fn close_handlers(&self, chan: u32) {
        let Some(mut h) = self.chans.borrow_mut().remove(&chan) else { return };
        let err = to_js(AmqpError::new(ReplyCode::ChannelError, "channel closed before the broker confirmed"));
        if h.fail_all(&err) {
            let closing = self.closing_unconfirmed.clone();
            closing.borrow_mut().push((chan, err));
            spawn_local(async move { closing.borrow_mut().retain(|(c, _)| *c != chan) });
        }
        let _ = h.emit.call2(&JsValue::NULL, &"close".into(), &JsValue::UNDEFINED);
    }

    /// `waitForConfirms()` on a closed channel: the error its outstanding confirms failed
    /// with, while the task that closed it runs; else `None`.
    pub(crate) fn closing_unconfirmed(&self, chan: u32) -> Option<JsValue> {
        self.closing_unconfirmed.borrow().iter().find(|(c, _)| *c == chan).map(|(_, e)| e.clone())
    }

    pub(crate) fn stats(self: &Rc<Self>) -> JsValue {
        match self.host_stats() {
            Some(s) => stats_to_js(&s, self.me),
            None => self.request(Reply::Stats, |id| Frame::Stats { id }).into(),
        }
    }

    /// `peek(queue, count)`: messages at the head of a queue, not consumed.
    pub(crate) fn peek(self: &Rc<Self>, queue: String, count: u32) -> JsValue {
        match self.host() {
            Some(host) => peeked_js(&host.read(|core| core.peek(&queue, count as usize))),
            None => self.request(Reply::Peek, |id| Frame::Peek { id, queue, count }).into(),
        }
    }

    pub(crate) fn flush(self: &Rc<Self>) -> Promise {
        match self.host() {
            Some(host) => host.flush(),
            None => self.request(Reply::Nothing, |id| Frame::Flush { id }),
        }
    }

    /// Leaves: a host writes what it has and lets another context take over.
    pub(crate) async fn close(self: &Rc<Self>) {
        self.post_now();
        let role = std::mem::replace(&mut *self.role.borrow_mut(), Role::Closed);
        if let Role::Host(s) = role {
            s.host.close().await;
        }
        if let Some(port) = self.port.borrow_mut().take() {
            port.close();
        }
        self.closures.borrow_mut().clear();
        let err = to_js(AmqpError::new(ReplyCode::ChannelError, "the connection closed before the broker answered"));
        let pending: Vec<Pending> = self.net.borrow_mut().pending.drain().map(|(_, p)| p).collect();
        for p in pending.into_iter().filter(|p| !matches!(p.reply, Reply::Resume | Reply::Restore)) {
            let _ = p.reject.call1(&JsValue::NULL, &err);
        }
    }

    /// The page went into the back/forward cache and its port left the mesh: this link is
    /// done. Calls waiting for an answer fail, and every channel closes with code 320; the
    /// app connects again if the page comes back. A host writes nothing more: the next host
    /// recovers from the store.
    fn left(self: &Rc<Self>) {
        *self.role.borrow_mut() = Role::Closed;
        self.port.borrow_mut().take();
        let error = AmqpError::new(
            ReplyCode::ConnectionForced,
            "this page went into the back/forward cache and left the broker: connect again",
        );
        let err = to_js(error.clone());
        let pending: Vec<Pending> = self.net.borrow_mut().pending.drain().map(|(_, p)| p).collect();
        for p in pending.into_iter().filter(|p| !matches!(p.reply, Reply::Resume | Reply::Restore)) {
            let _ = p.reject.call1(&JsValue::NULL, &err);
        }
        let chans: Vec<u32> = self.chans.borrow().keys().copied().collect();
        for chan in chans {
            self.route(chan, WireEvent::Closed(error.clone()));
        }
    }

    // ------------------------------------------------------------ answers and events

    fn answer_js(self: &Rc<Self>, reply: Reply, answer: Answer) -> JsValue {
        match (reply, answer) {
            (Reply::Queue, Answer::Queue(ok)) => obj(&[
                ("queue", JsValue::from_str(&ok.queue)),
                ("messageCount", ok.message_count.into()),
                ("consumerCount", ok.consumer_count.into()),
            ]),
            (Reply::Count, Answer::Count(n)) => obj(&[("messageCount", n.into())]),
            (Reply::Exchange(name), _) => obj(&[("exchange", name.into())]),
            (Reply::Tag(tag), _) => obj(&[("consumerTag", tag.into())]),
            (Reply::Cancelled { chan, tag }, _) => {
                let out = obj(&[("consumerTag", JsValue::from_str(&tag))]);
                match self.hosting() {
                    // After the deliveries made before the cancel, which wait for this task to end.
                    true => self.push_local(Local::Cancelled(chan, tag)),
                    false => self.forget_consumer(chan, &tag),
                }
                out
            }
            (Reply::Got { .. }, Answer::Got(None)) => JsValue::FALSE,
            (Reply::Got { chan, no_ack }, Answer::Got(Some((d, left)))) => {
                if !no_ack && !self.hosting() {
                    self.track(chan, &d);
                }
                message_js(&d, Some(left))
            }
            (Reply::Stats, Answer::Stats(s)) => stats_to_js(&s, self.me),
            (Reply::Peek, Answer::Peeked(m)) => peeked_js(&m),
            (Reply::Nothing, _) => JsValue::UNDEFINED,
            _ => obj(&[]),
        }
    }

    fn forget_consumer(&self, chan: u32, tag: &str) {
        if let Some(h) = self.chans.borrow_mut().get_mut(&chan) {
            h.consumers.remove(tag);
        }
    }

    /// Host role: an event for this context, handed over once the current task ends.
    fn push_local(self: &Rc<Self>, l: Local) {
        self.local.borrow_mut().push_back(l);
        if !self.local_scheduled.replace(true) {
            let link = self.clone();
            spawn_local(async move { link.hand_over_local() });
        }
    }

    fn hand_over_local(&self) {
        self.local_scheduled.set(false);
        // Events that callbacks cause meanwhile join the queue and go in this same loop.
        loop {
            let next = self.local.borrow_mut().pop_front();
            match next {
                Some(Local::Event(chan, e)) => self.route(chan, e),
                Some(Local::Cancelled(chan, tag)) => self.forget_consumer(chan, &tag),
                None => return,
            }
        }
    }

    /// Client role: a delivery to ack later, re-announced if the host changes.
    fn track(&self, chan: u32, d: &WireDelivery) {
        if let Some(c) = self.chans.borrow_mut().get_mut(&chan) {
            c.last_tag = c.last_tag.max(d.delivery_tag);
            let tag = d.consumer_tag.as_deref();
            let no_ack = tag.is_some_and(|t| c.specs.iter().any(|s| s.consumer_tag == t && s.no_ack));
            if !no_ack {
                let f = InFlight {
                    queue: d.queue.to_string(),
                    seq: d.seq,
                    delivery_tag: d.delivery_tag,
                    consumer_tag: tag.map(str::to_owned),
                };
                c.in_flight.insert(d.delivery_tag, f);
            }
        }
    }

    /// An event for local channel `chan`, to its JS side.
    fn route(&self, chan: u32, event: WireEvent) {
        let mut chans = self.chans.borrow_mut();
        match event {
            WireEvent::Confirm { seq, error } => {
                let Some(h) = chans.get_mut(&chan) else { return };
                h.outstanding.remove(&seq);
                let err = error.map(to_js);
                if err.is_some() {
                    for w in h.waiters.iter_mut().filter(|w| w.upto >= seq) {
                        w.nacked = true;
                    }
                }
                let cb = h.callbacks.remove(&seq);
                h.settle_waiters();
                drop(chans);
                if let Some(cb) = cb {
                    call(&cb, &err.unwrap_or(JsValue::NULL));
                }
            }
            WireEvent::Deliver(d) => {
                let tag = d.consumer_tag.clone().unwrap_or_else(|| "".into());
                let known = chans.get(&chan).map(|h| h.consumers.get(&tag).cloned());
                drop(chans);
                // A cancelled consumer keeps its callback until the host answers the cancel,
                // after which the host sends it nothing more.
                let Some(Some(f)) = known else { return };
                if !d.queue.is_empty() {
                    self.track(chan, &d);
                }
                call(&f, &message_js(&d, None));
            }
            WireEvent::Return { code, text, message } => {
                let Some(emit) = chans.get(&chan).map(|h| h.emit.clone()) else { return };
                drop(chans);
                let fields = Fields::Return { reply_code: code, reply_text: &text };
                let msg = convert::message_to_js(&message, fields, 0);
                let _ = emit.call2(&JsValue::NULL, &"return".into(), &msg);
            }
            WireEvent::Cancelled(tag) => {
                let Some(h) = chans.get_mut(&chan) else { return };
                h.specs.retain(|s| *s.consumer_tag != *tag);
                let Some(f) = h.consumers.remove(&tag) else { return };
                drop(chans);
                call(&f, &JsValue::NULL);
            }
            WireEvent::Closed(error) => {
                let Some(mut h) = chans.remove(&chan) else { return };
                drop(chans);
                let err = to_js(error);
                h.fail_all(&err);
                let _ = h.emit.call2(&JsValue::NULL, &"error".into(), &err);
                let _ = h.emit.call2(&JsValue::NULL, &"close".into(), &JsValue::UNDEFINED);
            }
        }
    }

    /// The host's event for a channel of some context: to it, local or remote.
    fn on_host_event(self: &Rc<Self>, event: Event) {
        let channel = match &event {
            Event::Confirm { channel, .. } => *channel,
            Event::Deliver(d) => d.channel,
            Event::Return(r) => r.channel,
            Event::ConsumerCancelled { channel, .. } => *channel,
            Event::ChannelClosed { channel, .. } => *channel,
        };
        let owner = match &*self.role.borrow() {
            Role::Host(s) => s.owners.get(&channel).copied(),
            _ => None,
        };
        let Some((ctx, chan)) = owner else { return };
        let remote = ctx != self.me;
        let wire = match event {
            Event::Confirm { seq, result, .. } => WireEvent::Confirm { seq, error: result.err() },
            Event::Deliver(d) => {
                let queue: Rc<str> = match remote {
                    true => {
                        self.host().and_then(|h| h.read(|core| core.queue_name(d.queue))).unwrap_or_else(|| "".into())
                    }
                    false => "".into(),
                };
                WireEvent::Deliver(WireDelivery {
                    consumer_tag: d.consumer_tag,
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    delivery_count: d.delivery_count,
                    queue,
                    seq: d.seq,
                    message: d.message,
                })
            }
            Event::Return(r) => {
                WireEvent::Return { code: r.reply_code, text: r.reply_text.to_string(), message: r.message }
            }
            Event::ConsumerCancelled { consumer_tag, .. } => WireEvent::Cancelled(consumer_tag),
            Event::ChannelClosed { error, .. } => {
                self.forget(ctx, chan);
                WireEvent::Closed(error)
            }
        };
        match remote {
            true => self.send(ctx, Frame::Event { chan, event: wire }),
            false => self.push_local(Local::Event(chan, wire)),
        }
    }

    // ------------------------------------------------------------ receiving

    /// A post from another context.
    fn receive(self: &Rc<Self>, v: JsValue) {
        let (from, frames) = match v.dyn_into::<Uint8Array>().ok().map(|a| self.read_post(&a)) {
            Some(Ok(x)) => x,
            _ => {
                self.net.borrow_mut().dropped += 1;
                return;
            }
        };
        // A host learns of a context's death by waiting for its lock, from its first post.
        let watch = match &mut *self.role.borrow_mut() {
            Role::Host(s) => from != self.me && s.watched.insert(from),
            _ => false,
        };
        if watch {
            if let Some(port) = &*self.port.borrow() {
                port.watch(from as f64);
            }
        }
        for f in frames {
            if self.hosting() {
                self.serve(from, f);
            } else {
                self.client_frame(from, f);
            }
        }
    }

    /// The frames of a post for this context. Only the directory and this context's
    /// sections are copied into wasm: every context receives every post, and most of a
    /// host's posts are deliveries to the others.
    fn read_post(&self, a: &Uint8Array) -> Result<(u64, Vec<Frame>), frame::Dropped> {
        let total = a.length() as usize;
        let mut head_len = total.min(64);
        let dir = loop {
            let head = a.subarray(0, head_len as u32).to_vec();
            match frame::directory(&head, total, self.me)? {
                Some(d) => break d,
                None => head_len = total.min(head_len * 8),
            }
        };
        let mut frames = Vec::new();
        for (n, start, end) in dir.sections {
            frames.extend(frame::section(&a.subarray(start as u32, end as u32).to_vec(), n)?);
        }
        Ok((dir.from, frames))
    }

    /// Client role: a frame from the host.
    fn client_frame(self: &Rc<Self>, from: u64, f: Frame) {
        let current = match &*self.role.borrow() {
            Role::Client(h) => Some(*h),
            Role::Waiting => None,
            _ => return,
        };
        if let Frame::Host = f {
            match current {
                Some(h) if h == from => {}
                None => {
                    *self.role.borrow_mut() = Role::Client(from);
                    let waiting = std::mem::take(&mut self.net.borrow_mut().waiting);
                    for f in waiting {
                        self.send(from, f);
                    }
                    if let Some((resolve, _)) = self.ready.borrow_mut().take() {
                        let _ = resolve.call0(&JsValue::NULL);
                    }
                }
                Some(_) => self.take_new_host(from),
            }
            return;
        }
        if current != Some(from) {
            return;
        }
        match f {
            Frame::Reply { id, result } => {
                let Some(p) = self.net.borrow_mut().pending.remove(&id) else { return };
                match result {
                    Ok(Answer::Resumed(lost)) => {
                        let _ = p.resolve.call0(&JsValue::NULL);
                        self.resume_answered(&p.reply, lost);
                    }
                    Ok(a) => {
                        if let Some((conn, cmd)) = p.record {
                            self.record(conn, cmd, &a);
                        }
                        let v = self.answer_js(p.reply, a);
                        let _ = p.resolve.call1(&JsValue::NULL, &v);
                    }
                    Err(e) => {
                        let _ = p.reject.call1(&JsValue::NULL, &to_js(e));
                    }
                }
            }
            Frame::Event { chan, event } => self.route(chan, event),
            _ => {}
        }
    }

    /// Another context hosts now: re-announce every connection's topology and every
    /// channel to it.
    fn take_new_host(self: &Rc<Self>, host: u64) {
        *self.role.borrow_mut() = Role::Client(host);
        self.fail_in_flight_calls();
        self.send(host, Frame::Hello { label: self.label.clone() });
        let topology = self.topology_to_restore();
        let states: Vec<(u32, u32, ChannelState)> =
            self.chans.borrow().iter().map(|(k, c)| (*k, c.conn, c.state())).collect();
        self.net.borrow_mut().resuming = Some((topology.len() + states.len(), Lost::default()));
        // Before the channels: their consumers need the queues.
        for (conn, commands) in topology {
            let _ = self.request(Reply::Restore, |id| Frame::Restore { id, conn, commands });
        }
        for (chan, conn, state) in states {
            // The promise settles through resume_answered; its own value is not needed.
            let _ = self.request(Reply::Resume, |id| Frame::Resume { id, conn, chan, state });
        }
        self.send(host, Frame::Resumed);
        if self.net.borrow().resuming.as_ref().is_some_and(|(n, _)| *n == 0) {
            self.net.borrow_mut().resuming = None;
            self.emit_failover(Lost::default());
        }
    }

    /// Per connection, the commands that build again what it declared (see
    /// [`crate::mesh::topology`]).
    pub(super) fn topology_to_restore(&self) -> Vec<(u32, Vec<Command>)> {
        let chans = self.chans.borrow();
        let consumed =
            |conn: u32, queue: &str| chans.values().any(|c| c.conn == conn && c.specs.iter().any(|s| s.queue == queue));
        let topology = self.topology.borrow();
        topology
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(conn, r)| (*conn, r.commands(|q| consumed(*conn, q))))
            .collect()
    }

    /// A re-announcement was answered: `lost` is what the new host could not restore.
    fn resume_answered(&self, reply: &Reply, lost: Vec<(String, AmqpError)>) {
        let mut gone = Lost::default();
        match reply {
            Reply::Restore => gone.topology = lost,
            _ => {
                // The channel of each lost consumer: the one whose specs name its tag.
                for (tag, e) in lost {
                    let chan = self
                        .chans
                        .borrow()
                        .iter()
                        .find(|(_, c)| c.consumers.contains_key(tag.as_str()))
                        .map(|(k, _)| *k);
                    if let Some(chan) = chan {
                        gone.cancelled.extend(self.cancel_lost(chan, vec![(tag, e)]));
                    }
                }
            }
        }
        let done = {
            let mut net = self.net.borrow_mut();
            match &mut net.resuming {
                Some((n, all)) => {
                    *n = n.saturating_sub(1);
                    all.cancelled.extend(gone.cancelled);
                    all.topology.extend(gone.topology);
                    if *n == 0 {
                        net.resuming.take().map(|(_, all)| all)
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(all) = done {
            self.emit_failover(all);
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &JsValue, ms: i32) -> JsValue;
}
