//! The browser's driver of the mesh. A [`Link`] is one broker name in one context: it
//! moves bytes between BroadcastChannel / Web Locks and the mesh's state machines, and
//! between those machines and the app's JS (promises, callbacks, channel events).
//!
//! - [`ClientState`] (every context) turns the app's calls into frames for whoever hosts
//!   and the host's frames into what the app is told;
//! - [`HostState`] (the context holding the host lock) serves every context's frames on
//!   the engine (`crate::host`), the hosting context's own included: its frames reach
//!   its host state at once, and what the host sends back reaches its client state after
//!   the current task, as a post would, so that the app sees one behaviour whoever hosts.
//!
//! Without Web Locks and BroadcastChannel (Node, Deno, workerd), or with `mesh: false`,
//! a link hosts its own broker and has no port.
//!
//! Taking over as host and driving the host state is in `link/serve.rs`.
//!
//! Borrow discipline: JS callbacks call back into the link, so no `RefCell` of the link
//! is held across a call into JS; notices a nested call causes are handed over by the
//! outer loop, in order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use super::convert::{self, set, Fields};
use super::to_js;
use crate::core::fxhash::FxMap;
use crate::core::{AmqpError, Consume, ReplyCode};
use crate::host::{now, Engine, Host, Storage};
use crate::mesh::client::{ClientState, Notice, Track};
use crate::mesh::frame::{self, Answer, Command, Frame, PostWriter, Stats, WireDelivery};
use crate::mesh::host::HostState;

#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = meshAvailable)]
    fn mesh_available() -> bool;

    #[wasm_bindgen(js_name = defaultLabel)]
    fn default_label() -> String;

    #[wasm_bindgen(js_name = clockMicros)]
    fn clock_micros() -> f64;

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

thread_local! {
    /// The names of a confirm channel's events, made once.
    static CONFIRM_EVENTS: [JsValue; 2] = [JsValue::from_str("ack"), JsValue::from_str("nack")];
}

/// The JS side of one channel.
struct ChanJs {
    /// `emit(name, arg)`: the JS channel's events (`return`, `error`, `close`, and a
    /// confirm channel's `ack` and `nack` with the confirm's sequence number).
    emit: Function,
    /// Someone listens to `ack` or `nack` (`RawChannel::want_confirm_events`): until then
    /// a confirm costs no call into JS beyond its callback.
    confirm_events: bool,
    /// Consumer tag → the callback that takes each message (and `null` when cancelled).
    consumers: FxMap<String, Function>,
    /// Confirm sequence number → the publish callback `(err) => …`, if one was given.
    callbacks: FxMap<u64, Function>,
}

/// A call not answered yet, as JS waits for it.
enum Call {
    /// Its promise: resolve, reject.
    Promised(Function, Function),
    /// Its answer may come before the call returns (the hosting context's own host
    /// answers most at once): it is kept, and the call returns a settled promise.
    Returning,
    /// Answered before the call returned.
    Answered(Result<JsValue, JsValue>),
}

/// What JS waits for: promises of calls and of `waitForConfirms()`, and each channel's
/// callbacks.
#[derive(Default)]
struct Js {
    calls: FxMap<u32, Call>,
    waits: FxMap<u64, (Function, Function)>,
    chans: FxMap<u32, ChanJs>,
}

#[derive(Default)]
struct Net {
    out: PostWriter,
    post_scheduled: bool,
    dropped: u64,
}

/// This context hosts: the driver of the engine, and the mesh's host state.
struct Server {
    host: Host,
    state: HostState,
}

mod bridge;
pub(crate) mod endpoint;
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
    client: RefCell<ClientState>,
    server: RefCell<Option<Server>>,
    closed: Cell<bool>,
    js: RefCell<Js>,
    net: RefCell<Net>,
    port: RefCell<Option<Port>>,
    /// The port's callbacks, kept alive while the port is.
    closures: RefCell<Vec<Callback>>,
    on_failover: RefCell<Option<Function>>,
    /// `fn(name, config)` starts a bridge's Runner, `fn(name, null)` stops it (host role).
    on_bridge: RefCell<Option<Function>>,
    /// `open()` waits for a host: resolve, reject.
    ready: RefCell<Option<(Function, Function)>>,
    /// Host role: what the host sent this context, handed over after the current task.
    local: RefCell<VecDeque<Frame>>,
    local_scheduled: Cell<bool>,
    /// Notices are being handed over: a nested call leaves its own to the outer loop.
    pumping: Cell<bool>,
    /// Channels the app closed with confirms outstanding, until the task that closed them
    /// ends (see `RawChannel::wait_for_confirms`): (channel, the error its confirms failed with).
    closing_unconfirmed: Rc<RefCell<Vec<(u32, JsValue)>>>,
    /// Host role: the STOMP sessions served (`link/endpoint.rs`), by context id, and how
    /// many were opened.
    sessions: RefCell<FxMap<u64, endpoint::Session>>,
    next_session: Cell<u64>,
}

/// The names of `Stats::totals` and `rates` in JS.
const TOTALS: [&str; 6] = ["published", "delivered", "redelivered", "acked", "deadLettered", "discarded"];

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
    let emptied = s.storage_emptied.map_or(JsValue::NULL, |(at, lost)| {
        let o = Object::new();
        set(&o, "at", at as f64);
        set(&o, "lost", lost.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64)));
        o.into()
    });
    set(&out, "storageEmptied", emptied);
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
    fn new(prefix: &str, storage: JsValue, label: String, limits: crate::core::Limits) -> Rc<Link> {
        let me = (js_sys::Math::random() * 9.0e15) as u64 + 1;
        Rc::new(Link {
            me,
            prefix: prefix.into(),
            limits,
            label: label.clone(),
            storage,
            client: RefCell::new(ClientState::new(me, label)),
            server: RefCell::new(None),
            closed: Cell::new(false),
            js: RefCell::default(),
            net: RefCell::default(),
            port: RefCell::new(None),
            closures: RefCell::default(),
            on_failover: RefCell::new(None),
            on_bridge: RefCell::new(None),
            ready: RefCell::new(None),
            local: RefCell::default(),
            local_scheduled: Cell::new(false),
            pumping: Cell::new(false),
            closing_unconfirmed: Rc::default(),
            sessions: RefCell::default(),
            next_session: Cell::new(0),
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
            let link = Link::new(prefix, storage, label, limits);
            let since = link.install(host, false);
            link.client.borrow_mut().hosting_now(since, now());
            link.pump();
            return Ok(link);
        }
        let link = Link::new(prefix, storage, label, limits);
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
        // Asks who hosts.
        link.pump();
        JsFuture::from(ready).await?;
        Ok(link)
    }

    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    pub(crate) fn next_id(&self) -> u32 {
        self.client.borrow_mut().next_id()
    }

    pub(crate) fn hosting(&self) -> bool {
        self.server.borrow().is_some()
    }

    pub(crate) fn set_on_failover(&self, f: Option<Function>) {
        *self.on_failover.borrow_mut() = f;
    }

    /// The host, when this context hosts.
    pub(crate) fn host(&self) -> Option<Host> {
        self.server.borrow().as_ref().map(|s| s.host.clone())
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

    /// A frame for another context (`frame::EVERYONE`: all of them).
    fn send(self: &Rc<Self>, to: u64, f: Frame) {
        if self.closed.get() || self.port.borrow().is_none() {
            return;
        }
        let mut net = self.net.borrow_mut();
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

    /// Hands over what the client state said, in order: frames to the host (this
    /// context's own host state at once), answers and events to JS.
    fn pump(self: &Rc<Self>) {
        if self.pumping.replace(true) {
            return;
        }
        loop {
            let next = self.client.borrow_mut().poll_notice();
            let Some(notice) = next else { break };
            self.notice(notice);
        }
        self.pumping.set(false);
    }

    fn notice(self: &Rc<Self>, notice: Notice) {
        match notice {
            Notice::Post { to, frame } if to == self.me => {
                let me = self.me;
                self.hosted(|s, e, now| s.receive(e, me, frame, now));
            }
            Notice::Post { to, frame } => self.send(to, frame),
            Notice::Ready => {
                if let Some((resolve, _)) = self.ready.borrow_mut().take() {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
            Notice::Answer { id, result } => {
                let call = self.js.borrow_mut().calls.remove(&id);
                let promised = match call {
                    Some(Call::Promised(resolve, reject)) => Some((resolve, reject)),
                    Some(Call::Returning) => None,
                    _ => return,
                };
                let settled = result.map(|a| self.answer_js(a)).map_err(to_js);
                let _ = match (promised, settled) {
                    (Some((resolve, _)), Ok(v)) => resolve.call1(&JsValue::NULL, &v),
                    (Some((_, reject)), Err(e)) => reject.call1(&JsValue::NULL, &e),
                    (None, settled) => {
                        self.js.borrow_mut().calls.insert(id, Call::Answered(settled));
                        Ok(JsValue::UNDEFINED)
                    }
                };
            }
            Notice::Confirm { chan, seq, error, broker } => {
                let (cb, emit) = match self.js.borrow_mut().chans.get_mut(&chan) {
                    Some(c) => (c.callbacks.remove(&seq), (broker && c.confirm_events).then(|| c.emit.clone())),
                    None => return,
                };
                let nacked = error.is_some();
                if let Some(cb) = cb {
                    call(&cb, &error.map_or(JsValue::NULL, to_js));
                }
                // Then the channel's 'ack' or 'nack' event for the broker's answer, as
                // amqplib's confirm channel emits it after the callbacks, once someone listens
                // (the JS channel makes `{deliveryTag, multiple}`). A confirm that failed here
                // (the channel closed, the host went away) has its callback only.
                if let Some(emit) = emit {
                    let name = CONFIRM_EVENTS.with(|n| n[nacked as usize].clone());
                    let _ = emit.call2(&JsValue::NULL, &name, &JsValue::from(seq as f64));
                }
            }
            Notice::Waited { wait, result, .. } => {
                let Some((resolve, reject)) = self.js.borrow_mut().waits.remove(&wait) else { return };
                let _ = match result {
                    Ok(()) => resolve.call0(&JsValue::NULL),
                    Err(e) => reject.call1(&JsValue::NULL, &to_js(e)),
                };
            }
            Notice::Deliver { chan, delivery } => {
                let tag = delivery.consumer_tag.as_deref().unwrap_or("");
                let f = self.js.borrow().chans.get(&chan).and_then(|c| c.consumers.get(tag).cloned());
                if let Some(f) = f {
                    call(&f, &message_js(&delivery, None));
                }
            }
            Notice::Return { chan, code, text, message } => {
                let Some(emit) = self.js.borrow().chans.get(&chan).map(|c| c.emit.clone()) else { return };
                let fields = Fields::Return { reply_code: code, reply_text: &text };
                let msg = convert::message_to_js(&message, fields, 0);
                let _ = emit.call2(&JsValue::NULL, &"return".into(), &msg);
            }
            Notice::ConsumerGone { chan, tag, notify } => {
                let f = self.js.borrow_mut().chans.get_mut(&chan).and_then(|c| c.consumers.remove(&tag));
                if let (Some(f), true) = (f, notify) {
                    call(&f, &JsValue::NULL);
                }
            }
            Notice::Closed { chan, error } => {
                let Some(c) = self.js.borrow_mut().chans.remove(&chan) else { return };
                if let Some(e) = error {
                    let _ = c.emit.call2(&JsValue::NULL, &"error".into(), &super::closed_js(e));
                }
                let _ = c.emit.call2(&JsValue::NULL, &"close".into(), &JsValue::UNDEFINED);
            }
            Notice::Failover { cancelled, not_restored } => {
                let Some(f) = self.on_failover.borrow().clone() else { return };
                let tags: Array = cancelled.iter().map(|t| JsValue::from_str(t)).collect();
                let not_restored: Array = not_restored
                    .into_iter()
                    .map(|(what, e)| obj(&[("what", what.into()), ("error", to_js(e))]))
                    .collect();
                let info = obj(&[
                    ("hosting", self.hosting().into()),
                    ("cancelled", tags.into()),
                    ("notRestored", not_restored.into()),
                ]);
                call(&f, &info);
            }
        }
    }

    /// A promise for call `id` (registered before the client state's notices go). An
    /// answer that comes while they go (the hosting context's own host answers most at
    /// once) makes a settled promise, without an executor: the app cannot tell the two
    /// apart, as its handlers are attached once the call has returned.
    fn promise(self: &Rc<Self>, id: u32) -> Promise {
        self.js.borrow_mut().calls.insert(id, Call::Returning);
        self.pump();
        let call = self.js.borrow_mut().calls.remove(&id);
        match call {
            Some(Call::Answered(Ok(v))) => Promise::resolve(&v),
            Some(Call::Answered(Err(e))) => Promise::reject(&e),
            Some(Call::Returning) => {
                // A nested call (from a callback of the loop handing notices over): the
                // outer loop answers it once this call has returned.
                Promise::new(&mut |resolve, reject| {
                    self.js.borrow_mut().calls.insert(id, Call::Promised(resolve, reject));
                })
            }
            Some(Call::Promised(..)) | None => Promise::resolve(&JsValue::UNDEFINED),
        }
    }

    // ------------------------------------------------------------ commands

    /// A channel command that answers: a promise of the answer.
    pub(crate) fn call(self: &Rc<Self>, chan: u32, cmd: Command) -> Result<JsValue, JsValue> {
        let id = self.client.borrow_mut().call(chan, cmd, Track::Nothing).map_err(to_js)?;
        Ok(self.promise(id).into())
    }

    /// A channel command that answers nothing (ack, nack, reject): an error closes the
    /// channel and reaches the app as its events.
    pub(crate) fn cast(self: &Rc<Self>, chan: u32, cmd: Command) -> Result<(), JsValue> {
        // A client keeps what it settles, with the time (see `ClientState::cast`); the
        // hosting context does not, and asks the clock nothing.
        let at = match cmd {
            Command::Ack { .. } | Command::Nack { .. } | Command::Reject { .. } if !self.hosting() => now(),
            _ => 0,
        };
        self.client.borrow_mut().cast(chan, cmd, at).map_err(to_js)?;
        self.pump();
        Ok(())
    }

    /// A publish; on a confirm channel `callback(err)` runs once the broker confirms.
    pub(crate) fn publish(self: &Rc<Self>, chan: u32, cmd: Command, callback: Option<Function>) -> Result<(), JsValue> {
        let seq = self.client.borrow_mut().cast(chan, cmd, 0).map_err(to_js)?;
        if let (Some(seq), Some(cb)) = (seq, callback) {
            if let Some(c) = self.js.borrow_mut().chans.get_mut(&chan) {
                c.callbacks.insert(seq, cb);
            }
        }
        self.pump();
        Ok(())
    }

    /// `waitForConfirms()`.
    pub(crate) fn wait_for_confirms(self: &Rc<Self>, chan: u32) -> Promise {
        let wait = self.client.borrow_mut().wait_for_confirms(chan);
        let promise = Promise::new(&mut |resolve, reject| match wait {
            Some(id) => {
                self.js.borrow_mut().waits.insert(id, (resolve, reject));
            }
            None => {
                // Closed: while the task that closed it runs, it rejects if confirms
                // were outstanding, as amqplib's does.
                let _ = match self.closing_unconfirmed(chan) {
                    Some(e) => reject.call1(&JsValue::NULL, &e),
                    None => resolve.call0(&JsValue::NULL),
                };
            }
        });
        self.pump();
        promise
    }

    /// Channel `chan`'s app listens to `ack` or `nack` from now on.
    pub(crate) fn want_confirm_events(&self, chan: u32) {
        if let Some(c) = self.js.borrow_mut().chans.get_mut(&chan) {
            c.confirm_events = true;
        }
    }

    pub(crate) fn add_chan(self: &Rc<Self>, conn: u32, confirm: bool, emit: Function) -> Result<u32, JsValue> {
        let chan = self.next_id();
        let js = ChanJs { emit, confirm_events: false, consumers: FxMap::default(), callbacks: FxMap::default() };
        self.js.borrow_mut().chans.insert(chan, js);
        self.client.borrow_mut().open_channel(conn, chan, confirm);
        self.pump();
        Ok(chan)
    }

    /// Registers a consumer's callback (before the first delivery can come) and starts it.
    pub(crate) fn consume(self: &Rc<Self>, chan: u32, c: Consume, callback: Function) -> Result<JsValue, JsValue> {
        let tag = c.consumer_tag.clone();
        let fresh = !self.client.borrow().has_consumer(chan, &tag);
        let id = self.client.borrow_mut().consume(chan, c).map_err(to_js)?;
        if fresh {
            if let Some(h) = self.js.borrow_mut().chans.get_mut(&chan) {
                h.consumers.insert(tag.clone(), callback);
            }
        }
        Ok(self.promise(id).into())
    }

    pub(crate) fn cancel(self: &Rc<Self>, chan: u32, tag: &str) -> Result<JsValue, JsValue> {
        let id = self.client.borrow_mut().cancel(chan, tag).map_err(to_js)?;
        Ok(self.promise(id).into())
    }

    pub(crate) fn prefetch(self: &Rc<Self>, chan: u32, count: u32, global: bool) -> Result<JsValue, JsValue> {
        let id = self.client.borrow_mut().prefetch(chan, count, global).map_err(to_js)?;
        Ok(self.promise(id).into())
    }

    pub(crate) fn recover(self: &Rc<Self>, chan: u32) -> Result<JsValue, JsValue> {
        let id = self.client.borrow_mut().recover(chan).map_err(to_js)?;
        Ok(self.promise(id).into())
    }

    /// `get`: answered once the head of the queue is at hand.
    pub(crate) fn get(self: &Rc<Self>, chan: u32, queue: String, no_ack: bool) -> Result<JsValue, JsValue> {
        let id = self.client.borrow_mut().get(chan, queue, no_ack).map_err(to_js)?;
        Ok(self.promise(id).into())
    }

    /// `close()` of a channel: unacked messages go back; pending confirms fail.
    pub(crate) fn close_chan(self: &Rc<Self>, chan: u32) {
        let had = self.client.borrow_mut().close_channel(chan);
        self.closing(chan, had);
        self.pump();
    }

    /// A connection closed by the app: its channels close, its exclusive queues go.
    pub(crate) fn close_conn(self: &Rc<Self>, conn: u32) {
        let unconfirmed = self.client.borrow_mut().close_connection(conn);
        for chan in unconfirmed {
            self.closing(chan, true);
        }
        self.pump();
    }

    /// Channel `chan` was closed by the app, with confirms outstanding or not.
    fn closing(&self, chan: u32, had_outstanding: bool) {
        if !had_outstanding {
            return;
        }
        let err = to_js(AmqpError::new(ReplyCode::ChannelError, "channel closed before the broker confirmed"));
        let closing = self.closing_unconfirmed.clone();
        closing.borrow_mut().push((chan, err));
        spawn_local(async move { closing.borrow_mut().retain(|(c, _)| *c != chan) });
    }

    /// `waitForConfirms()` on a closed channel: the error its outstanding confirms failed
    /// with, while the task that closed it runs; else `None`.
    pub(crate) fn closing_unconfirmed(&self, chan: u32) -> Option<JsValue> {
        self.closing_unconfirmed.borrow().iter().find(|(c, _)| *c == chan).map(|(_, e)| e.clone())
    }

    pub(crate) fn stats(self: &Rc<Self>) -> JsValue {
        let id = self.client.borrow_mut().ask(|id| Frame::Stats { id });
        self.promise(id).into()
    }

    /// `peek(queue, count)`: messages at the head of a queue, not consumed.
    pub(crate) fn peek(self: &Rc<Self>, queue: String, count: u32) -> JsValue {
        let id = self.client.borrow_mut().ask(|id| Frame::Peek { id, queue, count });
        self.promise(id).into()
    }

    pub(crate) fn flush(self: &Rc<Self>) -> Promise {
        let id = self.client.borrow_mut().ask(|id| Frame::Flush { id });
        self.promise(id)
    }

    /// Leaves: a host writes what it has and lets another context take over.
    pub(crate) async fn close(self: &Rc<Self>) {
        self.stop_bridges();
        self.end_sessions("the broker is closing");
        self.post_now();
        let error = AmqpError::new(ReplyCode::ChannelError, "the connection closed before the broker answered");
        self.client.borrow_mut().leave(error, false);
        self.pump();
        self.closed.set(true);
        let server = self.server.borrow_mut().take();
        if let Some(s) = server {
            s.host.close().await;
        }
        if let Some(port) = self.port.borrow_mut().take() {
            port.close();
        }
        self.closures.borrow_mut().clear();
    }

    /// The page went into the back/forward cache and its port left the mesh: this link is
    /// done. Calls waiting for an answer fail, and every channel closes with code 320; the
    /// app connects again if the page comes back. A host writes nothing more: the next host
    /// recovers from the store.
    fn left(self: &Rc<Self>) {
        self.stop_bridges();
        self.end_sessions("the context hosting the broker left");
        self.closed.set(true);
        self.server.borrow_mut().take();
        self.port.borrow_mut().take();
        let error = AmqpError::new(
            ReplyCode::ConnectionForced,
            "this page went into the back/forward cache and left the broker: connect again",
        );
        self.client.borrow_mut().leave(error, true);
        self.pump();
    }

    // ------------------------------------------------------------ answers

    /// The app's value for an answer, in amqplib's shapes.
    fn answer_js(&self, answer: Answer) -> JsValue {
        match answer {
            Answer::Done | Answer::Resumed(_) => obj(&[]),
            Answer::Queue(ok) => obj(&[
                ("queue", JsValue::from_str(&ok.queue)),
                ("messageCount", ok.message_count.into()),
                ("consumerCount", ok.consumer_count.into()),
            ]),
            Answer::Count(n) => obj(&[("messageCount", n.into())]),
            Answer::Exchange(name) => obj(&[("exchange", name.into())]),
            Answer::Tag(tag) => obj(&[("consumerTag", tag.into())]),
            Answer::Got(None) => JsValue::FALSE,
            Answer::Got(Some((d, left))) => message_js(&d, Some(left)),
            Answer::Stats(s) => stats_to_js(&s, self.me),
            Answer::Peeked(m) => peeked_js(&m),
            Answer::Arguments(a) => a.map_or(JsValue::NULL, |t| convert::table_to_js(&t).into()),
        }
    }

    // ------------------------------------------------------------ receiving

    /// A post from another context.
    fn receive(self: &Rc<Self>, v: JsValue) {
        let (from, frames) = match v.dyn_into::<Uint8Array>().ok().map(|a| self.read_post(&a)) {
            Some(Ok(x)) => x,
            _ => {
                let dropped = {
                    let mut net = self.net.borrow_mut();
                    net.dropped += 1;
                    net.dropped
                };
                self.hosted(|s, _, _| s.dropped_posts = dropped);
                return;
            }
        };
        if self.hosting() {
            // A host learns of a context's death by waiting for its lock, from its first post.
            self.hosted(|s, e, now| {
                s.heard_from(from);
                for f in frames {
                    s.receive(e, from, f, now);
                }
            });
            return;
        }
        {
            let mut client = self.client.borrow_mut();
            let at = now();
            for f in frames {
                client.receive(from, f, at);
            }
        }
        self.pump();
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

    /// Host role: a frame the host sent this context, handed over once the current task
    /// ends, as a client gets its frames in a later post.
    fn push_local(self: &Rc<Self>, f: Frame) {
        self.local.borrow_mut().push_back(f);
        if !self.local_scheduled.replace(true) {
            let link = self.clone();
            spawn_local(async move { link.hand_over_local() });
        }
    }

    fn hand_over_local(self: &Rc<Self>) {
        self.local_scheduled.set(false);
        // Frames that callbacks cause meanwhile join the queue and go in this same loop,
        // at the time this task began (one clock reading for the batch).
        let at = now();
        loop {
            let next = self.local.borrow_mut().pop_front();
            let Some(f) = next else { return };
            self.client.borrow_mut().receive(self.me, f, at);
            self.pump();
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &JsValue, ms: i32) -> JsValue;
}
