//! The broker: every AMQP command as a method, side effects queued as [`Effect`]s.
//!
//! Channel-level failures close the channel as RabbitMQ does: its unacked deliveries
//! are requeued, its consumers cancelled, a [`Effect::ChannelClosed`] is emitted and
//! later calls on it fail with 504 CHANNEL_ERROR.

use std::collections::VecDeque;
use std::rc::Rc;

use super::args::{Overflow, QueueArgs};
use super::channel::{Channel, Unacked};
use super::dead_letter::{dead_lettered, is_cycle};
use super::effect::{Confirm, Delivery, Effect, Returned, StoreDestination, StoreOp};
use super::error::{AmqpError, ReplyCode, Result};
use super::exchange::{ExchangeKind, Router, Routing};
use super::fxhash::{FxMap, FxSet};
use super::ids::{ChannelRef, ConnId, Destination, ExchangeId, QueueId};
use super::message::Message;
use super::names::{self, NameSource};
use super::queue::{DropReason, Entry, Queue, QueueCounters, ReadyList};
use super::sort;
use super::value::{same_table, FieldValue, Table};

mod durable;
mod horizon;
mod inspect;
mod paging;
mod recovery;
mod resume;
pub use horizon::GetWait;
pub use inspect::{BindingInfo, ConnectionInfo, ExchangeInfo};
pub use recovery::StoredMessage;
pub use resume::{InFlight, Resume, Resumed};

/// Bounds that keep one app from exhausting the page; each error names the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (body, headers and properties), in bytes.
    pub max_message_bytes: usize,
    pub max_queues: usize,
    pub max_exchanges: usize,
    pub max_bindings: usize,
    pub max_consumers: usize,
    /// Channels per connection (RabbitMQ's default `channel_max` is 2047).
    pub max_channels: usize,
    /// The `x-max-length` of queues declared without one, enforced as `reject-publish`
    /// (see [`Queue::refusal`]); `None`: no default. Not written into the queue's arguments.
    pub max_queue_length: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 16 << 20,
            max_queues: 10_000,
            max_exchanges: 10_000,
            max_bindings: 100_000,
            max_consumers: 10_000,
            max_channels: 2047,
            max_queue_length: Some(1_000_000),
        }
    }
}

/// How a broker starts.
#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {
    /// Seeds generated names (`amq.gen-…`, `amq.ctag-…`); give a random one so that
    /// names differ across broker restarts.
    pub seed: u64,
    pub limits: Limits,
    /// Keep a delivery horizon per durable queue (see [`StoreOp::Horizon`]): a driver
    /// with storage sets it, and tells the broker when each horizon is stored
    /// ([`Broker::horizon_stored`]). Without it, stored messages go out at once and a
    /// crash before their marks are stored brings them back unflagged.
    pub delivery_horizon: bool,
}

/// `assertExchange` / `checkExchange`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExchangeDeclare {
    pub name: String,
    pub kind: String,
    /// Only check that it exists (`checkExchange`).
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// `alternate-exchange` and other arguments.
    pub arguments: Table,
}

/// `assertQueue` / `checkQueue`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueDeclare {
    /// `""` asks for a server-named queue.
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
}

/// What `assertQueue` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDeclareOk {
    pub queue: Rc<str>,
    /// Ready messages (not unacked ones), as RabbitMQ counts.
    pub message_count: u32,
    pub consumer_count: u32,
}

/// `consume`.
#[derive(Clone, Debug, Default)]
pub struct Consume {
    pub queue: String,
    /// `""` asks for a generated tag.
    pub consumer_tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority` (consumer priority) and other arguments.
    pub arguments: Table,
}

/// What `get` answers when a message was there.
#[derive(Clone, Debug)]
pub struct GetOk {
    pub delivery: Delivery,
    /// Ready messages left after this one.
    pub message_count: u32,
}

/// A queue's state, for stats and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueInfo {
    pub name: Rc<str>,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
    /// The most ready messages it takes: its `x-max-length`, else `limits.maxQueueLength`.
    pub effective_max_length: Option<u64>,
    pub ready: usize,
    pub ready_bytes: usize,
    /// Ready messages whose bodies are paged out to the store.
    pub paged: usize,
    pub delayed: usize,
    pub unacked: usize,
    pub consumers: usize,
    pub counters: QueueCounters,
}

#[derive(Debug)]
struct Exchange {
    name: Rc<str>,
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    builtin: bool,
    arguments: Table,
    alternate: Option<String>,
    router: Router,
    /// Bindings with this exchange as source: (destination, key) → arguments of each.
    bindings: FxMap<(Destination, String), Vec<Table>>,
    binding_count: usize,
}

#[derive(Debug)]
struct Consumer {
    channel: ChannelRef,
    tag: Rc<str>,
    queue: QueueId,
    no_ack: bool,
    exclusive: bool,
    priority: i64,
    /// 0 is unlimited.
    prefetch: u32,
    unacked: u32,
}

impl Consumer {
    fn has_capacity(&self) -> bool {
        self.no_ack || self.prefetch == 0 || self.unacked < self.prefetch
    }
}

#[derive(Debug, Default)]
struct Connection {
    channels: Vec<u16>,
    /// The number given last: the next channel takes the first free one after it, so a
    /// number comes back only after every other one was used. A closed channel's late
    /// effects (a confirm held until its transaction commits) then find no channel, never
    /// the next one opened on the connection.
    last_channel: u16,
    exclusive_queues: Vec<QueueId>,
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Reject,
}

/// The broker state machine.
#[derive(Debug)]
pub struct Broker {
    limits: Limits,
    names: NameSource,
    exchanges: FxMap<ExchangeId, Exchange>,
    exchange_ids: FxMap<Rc<str>, ExchangeId>,
    queues: FxMap<QueueId, Queue>,
    queue_ids: FxMap<Rc<str>, QueueId>,
    consumers: FxMap<u32, Consumer>,
    channels: FxMap<ChannelRef, Channel>,
    connections: FxMap<ConnId, Connection>,
    next_exchange: u32,
    next_queue: u32,
    next_consumer: u32,
    next_conn: u32,
    binding_total: usize,
    effects: VecDeque<Effect>,
    /// Reused by routing so that a publish does not allocate for its destinations.
    route_scratch: Vec<Destination>,
    /// The channel that replays stored declarations while a reopened broker recovers.
    recovery: Option<ChannelRef>,
    /// Deliveries to consumers wait (see [`Broker::hold_deliveries`]).
    holding: bool,
    /// Queues with paged-out messages (and perhaps some that had them): the host asks
    /// after every command which need paging in, so that question must not visit them all.
    paged_queues: FxSet<QueueId>,
    /// [`BrokerConfig::delivery_horizon`].
    delivery_horizon: bool,
    /// The store holds no fence: a crash brings every stored message back flagged, so
    /// first deliveries need no stored horizon (see [`Broker::set_horizons_free`]).
    horizons_free: bool,
    /// The least position a queue gives a new message (see [`Broker::raise_seq_floor`]).
    seq_floor: u64,
}

const DEFAULT_EXCHANGE: ExchangeId = ExchangeId(0);
/// The names of server-named queues.
const GENERATED_QUEUE_PREFIX: &str = "amq.gen-";

fn bool_word(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Broker {
        let mut b = Broker {
            limits: config.limits,
            names: NameSource::new(config.seed),
            exchanges: FxMap::default(),
            exchange_ids: FxMap::default(),
            queues: FxMap::default(),
            queue_ids: FxMap::default(),
            consumers: FxMap::default(),
            channels: FxMap::default(),
            connections: FxMap::default(),
            next_exchange: 0,
            next_queue: 1,
            next_consumer: 1,
            next_conn: 1,
            binding_total: 0,
            effects: VecDeque::new(),
            route_scratch: Vec::new(),
            recovery: None,
            holding: false,
            paged_queues: FxSet::default(),
            delivery_horizon: config.delivery_horizon,
            horizons_free: false,
            seq_floor: 1,
        };
        for (name, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            b.insert_exchange(name, kind, true, false, false, true, Table::new());
        }
        b
    }

    /// From now on every queue gives new messages positions of `floor` or above. A host
    /// that takes over sets it to its term (microseconds, above every earlier host's), so
    /// that its positions differ from those an earlier host gave to messages that were
    /// never stored: a client that re-announces a delivery of such a message late (after
    /// a host it never re-announced to) names a position no message of this host has.
    /// Stored and resumed positions are kept as they are.
    pub fn raise_seq_floor(&mut self, floor: u64) {
        self.seq_floor = self.seq_floor.max(floor);
        for q in self.queues.values_mut() {
            q.next_seq = q.next_seq.max(self.seq_floor);
        }
    }

    // ---- effects -------------------------------------------------------------------

    /// The next effect, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// Every pending effect, in order.
    pub fn drain_effects(&mut self) -> std::collections::vec_deque::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    fn store(&mut self, op: StoreOp) {
        self.effects.push_back(Effect::Store(op));
    }

    // ---- connections and channels ------------------------------------------------------

    /// Opens a connection; each `connect()` of a tab or worker gets one.
    pub fn connect(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.connections.insert(id, Connection::default());
        id
    }

    /// Opens a channel on a connection.
    pub fn open_channel(&mut self, conn: ConnId) -> Result<ChannelRef> {
        let max = self.limits.max_channels;
        let c = self
            .connections
            .get_mut(&conn)
            .ok_or_else(|| AmqpError::new(ReplyCode::ChannelError, "connection is closed: connect again"))?;
        if c.channels.len() >= max {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("connection has {max} channels open, the limit (limits.maxChannels): close channels you no longer use, or raise it in connect()"),
            ));
        }
        let after = c.last_channel;
        let number = (after.wrapping_add(1)..=u16::MAX)
            .chain(1..=after)
            .find(|n| *n != 0 && !c.channels.contains(n))
            .expect("below the channel limit");
        c.last_channel = number;
        c.channels.push(number);
        let ch = ChannelRef { conn, channel: number };
        self.channels.insert(ch, Channel::new());
        Ok(ch)
    }

    /// Closes a channel: its unacked deliveries are requeued, its consumers cancelled.
    pub fn close_channel(&mut self, ch: ChannelRef, now: u64) -> Result<()> {
        if !self.channels.contains_key(&ch) {
            return Err(closed(ch));
        }
        self.close_channel_inner(ch, now);
        Ok(())
    }

    /// Closes a connection (or notes that its context died): every channel closes and
    /// its exclusive queues are deleted.
    pub fn disconnect(&mut self, conn: ConnId, now: u64) {
        let Some(c) = self.connections.get(&conn) else { return };
        let channels: Vec<u16> = c.channels.clone();
        for channel in channels {
            self.close_channel_inner(ChannelRef { conn, channel }, now);
        }
        if let Some(c) = self.connections.remove(&conn) {
            for q in c.exclusive_queues {
                self.delete_queue_inner(q);
            }
        }
    }

    fn close_channel_inner(&mut self, ch: ChannelRef, now: u64) {
        let Some(mut channel) = self.channels.remove(&ch) else { return };
        if let Some(c) = self.connections.get_mut(&ch.conn) {
            c.channels.retain(|n| *n != ch.channel);
        }
        // Consumers go first, so the requeued messages go to other consumers.
        for (_, id) in std::mem::take(&mut channel.consumers) {
            self.remove_consumer(id, now);
        }
        let mut all = Vec::new();
        channel.unacked.take_all(&mut all);
        let mut touched = Vec::new();
        for (_, u) in all {
            let q = u.queue;
            self.settle_entry(ch, u, Settle::Requeue, now);
            if !touched.contains(&q) {
                touched.push(q);
            }
        }
        for q in touched {
            self.dispatch(q, now);
        }
    }

    /// Runs a channel command; a failure closes the channel, as in RabbitMQ.
    fn on_channel<T>(&mut self, ch: ChannelRef, now: u64, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if !self.channels.contains_key(&ch) {
            return Err(closed(ch));
        }
        f(self).inspect_err(|e| {
            self.close_channel_inner(ch, now);
            self.effects.push_back(Effect::ChannelClosed { channel: ch, error: e.clone() });
        })
    }

    // ---- exchanges ---------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn insert_exchange(
        &mut self,
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        builtin: bool,
        arguments: Table,
    ) -> ExchangeId {
        let id = ExchangeId(self.next_exchange);
        self.next_exchange += 1;
        let name: Rc<str> = name.into();
        let alternate = arguments.get("alternate-exchange").and_then(FieldValue::as_str).map(str::to_owned);
        self.exchanges.insert(
            id,
            Exchange {
                name: name.clone(),
                kind,
                durable,
                auto_delete,
                internal,
                builtin,
                arguments,
                alternate,
                router: kind.new_router(),
                bindings: FxMap::default(),
                binding_count: 0,
            },
        );
        self.exchange_ids.insert(name, id);
        id
    }

    fn exchange_id(&self, name: &str) -> Result<ExchangeId> {
        self.exchange_ids
            .get(name)
            .copied()
            .ok_or_else(|| AmqpError::not_found(format!("no exchange '{name}': declare it first with assertExchange")))
    }

    /// `assertExchange` (or `checkExchange` when `passive`).
    pub fn declare_exchange(&mut self, ch: ChannelRef, d: ExchangeDeclare, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| b.declare_exchange_inner(d))
    }

    fn declare_exchange_inner(&mut self, d: ExchangeDeclare) -> Result<()> {
        names::check("exchange name", &d.name)?;
        if d.passive {
            return self.exchange_id(&d.name).map(|_| ());
        }
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        names::check_not_reserved("exchange", &d.name)?;
        let kind = ExchangeKind::parse(&d.kind)?;
        let alternate = match d.arguments.get("alternate-exchange") {
            None => None,
            Some(FieldValue::Str(s)) => Some(s.clone()),
            Some(v) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'alternate-exchange' for exchange '{}': expected an exchange name (string), got {}",
                    d.name,
                    v.type_name()
                )))
            }
        };
        if let Some(&id) = self.exchange_ids.get(d.name.as_str()) {
            let ex = &self.exchanges[&id];
            let mismatch = |what: &str, got: &str, cur: &str| {
                AmqpError::precondition(format!(
                    "inequivalent arg '{what}' for exchange '{}': received '{got}' but current is '{cur}'; \
                     declare it as it is, or delete it first",
                    d.name
                ))
            };
            if ex.kind != kind {
                return Err(mismatch("type", kind.as_str(), ex.kind.as_str()));
            }
            for (what, got, cur) in [
                ("durable", d.durable, ex.durable),
                ("auto_delete", d.auto_delete, ex.auto_delete),
                ("internal", d.internal, ex.internal),
            ] {
                if got != cur {
                    return Err(mismatch(what, bool_word(got), bool_word(cur)));
                }
            }
            if ex.alternate != alternate {
                return Err(mismatch(
                    "alternate-exchange",
                    alternate.as_deref().unwrap_or("none"),
                    ex.alternate.as_deref().unwrap_or("none"),
                ));
            }
            return Ok(());
        }
        if self.exchanges.len() >= self.limits.max_exchanges + 6 {
            return Err(limit_error("exchanges", self.limits.max_exchanges, "maxExchanges"));
        }
        let id = self.insert_exchange(&d.name, kind, d.durable, d.auto_delete, d.internal, false, d.arguments);
        if d.durable {
            let ex = &self.exchanges[&id];
            let op = StoreOp::PutExchange {
                name: ex.name.clone(),
                kind: kind.as_str(),
                auto_delete: ex.auto_delete,
                internal: ex.internal,
                arguments: ex.arguments.clone(),
            };
            self.store(op);
        }
        Ok(())
    }

    /// `deleteExchange`. Deleting one that does not exist succeeds, as in RabbitMQ 3.x.
    pub fn delete_exchange(&mut self, ch: ChannelRef, name: &str, if_unused: bool, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            names::check("exchange name", name)?;
            if name.is_empty() {
                return Err(default_exchange_refused());
            }
            let Some(&id) = b.exchange_ids.get(name) else { return Ok(()) };
            let ex = &b.exchanges[&id];
            if ex.builtin {
                return Err(AmqpError::access_refused(format!("exchange '{name}' is built in and cannot be deleted")));
            }
            if if_unused && ex.binding_count > 0 {
                return Err(AmqpError::precondition(format!(
                    "exchange '{name}' in use: it has {} bindings; unbind them first or delete without ifUnused",
                    ex.binding_count
                )));
            }
            b.delete_exchange_inner(id);
            Ok(())
        })
    }

    fn delete_exchange_inner(&mut self, id: ExchangeId) {
        if !self.exchanges.contains_key(&id) {
            return;
        }
        // Bindings to it first, while its durability still decides their store ops. This
        // may delete it already (an auto-delete exchange bound to itself).
        self.remove_bindings_to(Destination::Exchange(id));
        let Some(ex) = self.exchanges.remove(&id) else { return };
        self.exchange_ids.remove(&ex.name);
        self.binding_total -= ex.binding_count;
        if ex.durable {
            for ((dest, key), tables) in &ex.bindings {
                if let Some(destination) = self.durable_destination(*dest) {
                    for args in tables {
                        self.effects.push_back(Effect::Store(StoreOp::DeleteBinding {
                            source: ex.name.clone(),
                            destination: destination.clone(),
                            routing_key: key.clone(),
                            arguments: args.clone(),
                        }));
                    }
                }
            }
            self.store(StoreOp::DeleteExchange { name: ex.name.clone() });
        }
    }

    // ---- bindings --------------------------------------------------------------------------

    /// The stored name of a destination when it is durable (a binding is durable when
    /// both ends are).
    fn durable_destination(&self, dest: Destination) -> Option<StoreDestination> {
        match dest {
            Destination::Queue(q) => {
                let q = self.queues.get(&q)?;
                q.durable.then(|| StoreDestination::Queue(q.name.clone()))
            }
            Destination::Exchange(e) => {
                let e = self.exchanges.get(&e)?;
                e.durable.then(|| StoreDestination::Exchange(e.name.clone()))
            }
        }
    }

    fn binding_op(&self, source: ExchangeId, dest: Destination, key: &str, args: &Table, put: bool) -> Option<StoreOp> {
        let ex = self.exchanges.get(&source)?;
        if !ex.durable {
            return None;
        }
        let destination = self.durable_destination(dest)?;
        let (source, routing_key, arguments) = (ex.name.clone(), key.to_owned(), args.clone());
        Some(if put {
            StoreOp::PutBinding { source, destination, routing_key, arguments }
        } else {
            StoreOp::DeleteBinding { source, destination, routing_key, arguments }
        })
    }

    fn add_binding(&mut self, source: ExchangeId, dest: Destination, key: &str, args: Table) -> Result<()> {
        names::check("routing key", key)?;
        if self.binding_total >= self.limits.max_bindings {
            return Err(limit_error("bindings", self.limits.max_bindings, "maxBindings"));
        }
        let ex = self.exchanges.get_mut(&source).expect("checked by caller");
        ex.router.validate_binding(key, &args)?;
        let tables = ex.bindings.entry((dest, key.to_owned())).or_default();
        if tables.iter().any(|t| same_table(t, &args)) {
            return Ok(()); // binding twice is a no-op, as in AMQP
        }
        ex.router.add_binding(dest, key, &args);
        tables.push(args.clone());
        ex.binding_count += 1;
        self.binding_total += 1;
        if let Some(op) = self.binding_op(source, dest, key, &args, true) {
            self.store(op);
        }
        Ok(())
    }

    fn remove_binding(&mut self, source: ExchangeId, dest: Destination, key: &str, args: &Table) {
        let Some(ex) = self.exchanges.get_mut(&source) else { return };
        let k = (dest, key.to_owned());
        let Some(tables) = ex.bindings.get_mut(&k) else { return };
        let Some(i) = tables.iter().position(|t| same_table(t, args)) else { return };
        tables.swap_remove(i);
        if tables.is_empty() {
            ex.bindings.remove(&k);
        }
        ex.router.remove_binding(dest, key, args);
        ex.binding_count -= 1;
        self.binding_total -= 1;
        if let Some(op) = self.binding_op(source, dest, key, args, false) {
            self.store(op);
        }
        self.auto_delete_exchange(source);
    }

    /// An auto-delete exchange goes when its last binding does.
    fn auto_delete_exchange(&mut self, id: ExchangeId) {
        if self.exchanges.get(&id).is_some_and(|e| e.auto_delete && e.binding_count == 0) {
            self.delete_exchange_inner(id);
        }
    }

    /// Removes every binding leading to `dest` (its queue or exchange is going away).
    fn remove_bindings_to(&mut self, dest: Destination) {
        let mut found: Vec<(ExchangeId, String, Table)> = Vec::new();
        for (&id, ex) in &self.exchanges {
            for ((d, key), tables) in &ex.bindings {
                if *d == dest {
                    found.extend(tables.iter().map(|t| (id, key.clone(), t.clone())));
                }
            }
        }
        // Sorted so that the store ops come out in the same order on every run.
        sort::sort_by(&mut found, |a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (source, key, args) in found {
            self.remove_binding(source, dest, &key, &args);
        }
    }

    /// `bindQueue(queue, exchange, pattern, args)`.
    pub fn bind_queue(
        &mut self,
        ch: ChannelRef,
        queue: &str,
        exchange: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (source, q) = b.binding_ends_queue(ch, queue, exchange)?;
            b.add_binding(source, Destination::Queue(q), key, args)
        })
    }

    /// `unbindQueue(queue, exchange, pattern, args)`. Removing a binding that does not
    /// exist succeeds.
    pub fn unbind_queue(
        &mut self,
        ch: ChannelRef,
        queue: &str,
        exchange: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (source, q) = b.binding_ends_queue(ch, queue, exchange)?;
            b.remove_binding(source, Destination::Queue(q), key, &args);
            Ok(())
        })
    }

    fn binding_ends_queue(&self, ch: ChannelRef, queue: &str, exchange: &str) -> Result<(ExchangeId, QueueId)> {
        names::check("queue name", queue)?;
        names::check("exchange name", exchange)?;
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let q = self.queue_id(queue)?;
        self.check_exclusive(q, ch.conn)?;
        Ok((self.exchange_id(exchange)?, q))
    }

    /// `bindExchange(destination, source, pattern, args)`: messages routed by `source`
    /// also go through `destination`.
    pub fn bind_exchange(
        &mut self,
        ch: ChannelRef,
        destination: &str,
        source: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (s, d) = b.binding_ends_exchange(destination, source)?;
            b.add_binding(s, Destination::Exchange(d), key, args)
        })
    }

    /// `unbindExchange(destination, source, pattern, args)`.
    pub fn unbind_exchange(
        &mut self,
        ch: ChannelRef,
        destination: &str,
        source: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (s, d) = b.binding_ends_exchange(destination, source)?;
            b.remove_binding(s, Destination::Exchange(d), key, &args);
            Ok(())
        })
    }

    fn binding_ends_exchange(&self, destination: &str, source: &str) -> Result<(ExchangeId, ExchangeId)> {
        names::check("exchange name", destination)?;
        names::check("exchange name", source)?;
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        Ok((self.exchange_id(source)?, self.exchange_id(destination)?))
    }

    // ---- queues ------------------------------------------------------------------------------

    fn queue_id(&self, name: &str) -> Result<QueueId> {
        self.queue_ids
            .get(name)
            .copied()
            .ok_or_else(|| AmqpError::not_found(format!("no queue '{name}': declare it first with assertQueue")))
    }

    fn check_exclusive(&self, q: QueueId, conn: ConnId) -> Result<()> {
        let q = &self.queues[&q];
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(AmqpError::locked(format!(
                "cannot obtain exclusive access to locked queue '{}': it is exclusive to another connection; \
                 use a queue of your own, or declare it without exclusive",
                q.name
            ))),
            _ => Ok(()),
        }
    }

    fn declare_ok(&self, q: QueueId) -> QueueDeclareOk {
        let q = &self.queues[&q];
        QueueDeclareOk {
            queue: q.name.clone(),
            message_count: q.ready.len() as u32,
            consumer_count: q.consumers.len() as u32,
        }
    }

    /// `assertQueue` (or `checkQueue` when `passive`).
    pub fn declare_queue(&mut self, ch: ChannelRef, d: QueueDeclare, now: u64) -> Result<QueueDeclareOk> {
        self.on_channel(ch, now, |b| b.declare_queue_inner(ch, d, false, now))
    }

    /// A queue declared again by its owner after failover (topology recovery, see
    /// `crate::mesh::topology`): as [`Broker::declare_queue`], but a server-generated name
    /// (`amq.gen-…`) is taken as it is, so that a server-named queue keeps its name.
    pub fn redeclare_queue(&mut self, ch: ChannelRef, d: QueueDeclare, now: u64) -> Result<QueueDeclareOk> {
        self.on_channel(ch, now, |b| b.declare_queue_inner(ch, d, true, now))
    }

    fn declare_queue_inner(
        &mut self,
        ch: ChannelRef,
        d: QueueDeclare,
        generated_name: bool,
        now: u64,
    ) -> Result<QueueDeclareOk> {
        names::check("queue name", &d.name)?;
        if d.passive {
            let q = self.queue_id(&d.name)?;
            self.check_exclusive(q, ch.conn)?;
            // A passive declare renews the `x-expires` lease too, as in RabbitMQ.
            self.queues.get_mut(&q).expect("exists").last_used = now;
            return Ok(self.declare_ok(q));
        }
        if let Some(&id) = self.queue_ids.get(d.name.as_str()) {
            self.check_exclusive(id, ch.conn)?;
            let q = &self.queues[&id];
            if d.exclusive && q.exclusive_owner.is_none() {
                return Err(AmqpError::locked(format!(
                    "cannot obtain exclusive access to queue '{}': it exists and is not exclusive; \
                     declare it without exclusive, or use another name",
                    d.name
                )));
            }
            for (what, got, cur) in [("durable", d.durable, q.durable), ("auto_delete", d.auto_delete, q.auto_delete)] {
                if got != cur {
                    return Err(AmqpError::precondition(format!(
                        "inequivalent arg '{what}' for queue '{}': received '{}' but current is '{}'; \
                         declare it as it is, or delete it first",
                        d.name,
                        bool_word(got),
                        bool_word(cur)
                    )));
                }
            }
            QueueArgs::check_equivalent(&d.name, &q.raw_args, &d.arguments)?;
            self.queues.get_mut(&id).expect("exists").last_used = now;
            return Ok(self.declare_ok(id));
        }
        let name = if d.name.is_empty() {
            self.names.next(GENERATED_QUEUE_PREFIX)
        } else {
            if !(generated_name && d.name.starts_with(GENERATED_QUEUE_PREFIX)) {
                names::check_not_reserved("queue", &d.name)?;
            }
            d.name
        };
        let args = QueueArgs::parse(&name, &d.arguments)?;
        if self.queues.len() >= self.limits.max_queues {
            return Err(limit_error("queues", self.limits.max_queues, "maxQueues"));
        }
        let id = QueueId(self.next_queue);
        self.next_queue += 1;
        let name: Rc<str> = name.into();
        let owner = d.exclusive.then_some(ch.conn);
        if let Some(conn) = owner {
            self.connections.get_mut(&conn).expect("channel's connection").exclusive_queues.push(id);
        }
        let queue = Queue {
            name: name.clone(),
            durable: d.durable,
            exclusive_owner: owner,
            auto_delete: d.auto_delete,
            ready: ReadyList::new(args.max_priority),
            raw_args: d.arguments,
            args,
            delayed: Default::default(),
            unacked: 0,
            consumers: Vec::new(),
            cursor: 0,
            had_consumer: false,
            mixed_priorities: false,
            paged: 0,
            paged_through: 0,
            paged_from: u64::MAX,
            horizon: 0,
            horizon_asked: 0,
            horizon_blocked: false,
            lookahead: 0,
            handed_through: 0,
            first_delivered_at: None,
            last_used: now,
            next_seq: self.seq_floor,
            stored_below: 1,
            counters: QueueCounters::default(),
        };
        if queue.durable && owner.is_none() {
            self.store(StoreOp::PutQueue {
                name: name.clone(),
                auto_delete: queue.auto_delete,
                arguments: queue.raw_args.clone(),
            });
        }
        self.queues.insert(id, queue);
        self.queue_ids.insert(name, id);
        Ok(self.declare_ok(id))
    }

    /// `deleteQueue(queue, {ifUnused, ifEmpty})` → the number of ready messages deleted.
    /// Deleting a queue that does not exist succeeds with 0, as in RabbitMQ 3.x.
    pub fn delete_queue(
        &mut self,
        ch: ChannelRef,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        now: u64,
    ) -> Result<u32> {
        self.on_channel(ch, now, |b| {
            names::check("queue name", name)?;
            let Some(&id) = b.queue_ids.get(name) else { return Ok(0) };
            b.check_exclusive(id, ch.conn)?;
            let q = &b.queues[&id];
            if if_unused && !q.consumers.is_empty() {
                return Err(AmqpError::precondition(format!(
                    "queue '{name}' in use: it has {} consumers; cancel them first or delete without ifUnused",
                    q.consumers.len()
                )));
            }
            if if_empty && !q.ready.is_empty() {
                return Err(AmqpError::precondition(format!(
                    "queue '{name}' not empty: it has {} messages; purge it first or delete without ifEmpty",
                    q.ready.len()
                )));
            }
            Ok(b.delete_queue_inner(id))
        })
    }

    /// Deletes a queue: its consumers are cancelled (with a notification), its bindings
    /// removed, its ready messages dropped (not dead-lettered, as in RabbitMQ). Unacked
    /// deliveries stay with their channels; acking them later is accepted.
    fn delete_queue_inner(&mut self, id: QueueId) -> u32 {
        if !self.queues.contains_key(&id) {
            return 0;
        }
        // Bindings first, while the queue's durability still decides their store ops.
        self.remove_bindings_to(Destination::Queue(id));
        let Some(q) = self.queues.remove(&id) else { return 0 };
        self.queue_ids.remove(&q.name);
        self.paged_queues.remove(&id);
        for cid in &q.consumers {
            if let Some(c) = self.consumers.remove(cid) {
                if let Some(channel) = self.channels.get_mut(&c.channel) {
                    channel.consumers.retain(|(_, i)| i != cid);
                }
                self.effects.push_back(Effect::ConsumerCancelled { channel: c.channel, consumer_tag: c.tag });
            }
        }
        if let Some(owner) = q.exclusive_owner {
            if let Some(c) = self.connections.get_mut(&owner) {
                c.exclusive_queues.retain(|x| *x != id);
            }
        }
        if q.durable && q.exclusive_owner.is_none() {
            self.store(StoreOp::DeleteQueue { name: q.name.clone() });
        }
        q.ready.len() as u32
    }

    /// `purgeQueue` → the number of messages removed. Unacked deliveries stay.
    pub fn purge_queue(&mut self, ch: ChannelRef, name: &str, now: u64) -> Result<u32> {
        self.on_channel(ch, now, |b| {
            names::check("queue name", name)?;
            let id = b.queue_id(name)?;
            b.check_exclusive(id, ch.conn)?;
            let q = b.queues.get_mut(&id).expect("exists");
            q.paged = 0;
            q.paged_from = u64::MAX;
            b.paged_queues.remove(&id);
            let mut removed: Vec<Entry> = q.ready.drain().collect();
            removed.extend(q.delayed.drain_sorted());
            q.counters.purged += removed.len() as u64;
            let qname = q.name.clone();
            for e in &removed {
                if e.durable {
                    b.effects.push_back(Effect::Store(StoreOp::RemoveMessage { queue: qname.clone(), seq: e.seq }));
                }
            }
            Ok(removed.len() as u32)
        })
    }

    // ---- publishing ----------------------------------------------------------------------------

    /// Puts a channel in confirm mode (`createConfirmChannel`): every later publish gets
    /// a [`Confirm`] with the next sequence number, from 1.
    pub fn confirm_select(&mut self, ch: ChannelRef) -> Result<()> {
        let c = self.channels.get_mut(&ch).ok_or_else(|| closed(ch))?;
        c.confirm_seq.get_or_insert(1);
        Ok(())
    }

    /// `publish(exchange, routingKey, content, options)`; the exchange is
    /// `message.exchange`. With `mandatory`, an unroutable message comes back as a
    /// [`Effect::Return`]. A header `x-delay` (milliseconds) holds the message in its
    /// queues until then (tabbit's delayed delivery).
    pub fn publish(&mut self, ch: ChannelRef, message: Message, mandatory: bool, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| b.publish_inner(ch, message, mandatory, now))
    }

    fn publish_inner(&mut self, ch: ChannelRef, message: Message, mandatory: bool, now: u64) -> Result<()> {
        let size = message.approx_size();
        if size > self.limits.max_message_bytes {
            return Err(AmqpError::precondition(format!(
                "message size {size} is larger than the maximum {} (limits.maxMessageBytes): send smaller messages, or raise it in connect()",
                self.limits.max_message_bytes
            )));
        }
        names::check("exchange name", &message.exchange)?;
        names::check("routing key", &message.routing_key)?;
        let ttl = parse_expiration(message.properties.expiration.as_deref())?;
        let ready_at = parse_delay(&message.properties.headers)?.map(|d| now.saturating_add(d));
        let exchange = self.exchange_id(&message.exchange)?;
        if self.exchanges[&exchange].internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}': publish to an exchange bound to it",
                message.exchange
            )));
        }
        let seq = self.channels.get_mut(&ch).and_then(|c| {
            let s = c.confirm_seq?;
            c.confirm_seq = Some(s + 1);
            Some(s)
        });

        let mut queues = std::mem::take(&mut self.route_scratch);
        queues.clear();
        let mut visited = Vec::new();
        self.route(exchange, &message, &mut visited, &mut queues);
        let message = Rc::new(message);
        let mut ack = true;
        let mut refused = None;
        let mut durable = false;
        for d in &queues {
            let Destination::Queue(q) = *d else { continue };
            match self.enqueue(q, &message, ttl, ready_at, now) {
                Enqueued::Accepted { durable: d } => durable |= d,
                Enqueued::Refused(why) => {
                    ack = false;
                    refused = refused.or(why);
                }
            }
        }
        let routed = !queues.is_empty();
        self.route_scratch = queues;
        if !routed && mandatory {
            self.effects.push_back(Effect::Return(Returned {
                channel: ch,
                reply_code: ReplyCode::NoRoute.code(),
                reply_text: "NO_ROUTE",
                message,
            }));
        }
        if let Some(seq) = seq {
            self.effects.push_back(Effect::Confirm(Confirm { channel: ch, seq, ack, durable, refused }));
        }
        Ok(())
    }

    /// The queues a message published to `exchange` reaches, through exchange-to-exchange
    /// bindings and alternate exchanges, each once, in id order.
    fn route(
        &self,
        exchange: ExchangeId,
        message: &Message,
        visited: &mut Vec<ExchangeId>,
        out: &mut Vec<Destination>,
    ) {
        if exchange == DEFAULT_EXCHANGE {
            // Every queue is bound to the default exchange by its name.
            if let Some(&q) = self.queue_ids.get(message.routing_key.as_str()) {
                out.push(Destination::Queue(q));
            }
            return;
        }
        self.route_via(exchange, message, visited, out);
        if out.len() > 1 {
            sort::sort(out);
            out.dedup();
        }
    }

    fn route_via(
        &self,
        exchange: ExchangeId,
        message: &Message,
        visited: &mut Vec<ExchangeId>,
        out: &mut Vec<Destination>,
    ) {
        if visited.contains(&exchange) {
            return;
        }
        visited.push(exchange);
        let Some(ex) = self.exchanges.get(&exchange) else { return };
        let before = out.len();
        ex.router.route(&message.routing_key, &message.properties.headers, out);
        // Exchange destinations are replaced by what they route to.
        let mut i = before;
        while i < out.len() {
            if let Destination::Exchange(e) = out[i] {
                out.swap_remove(i);
                if e == DEFAULT_EXCHANGE {
                    continue;
                }
                let mut sub = Vec::new();
                self.route_via(e, message, visited, &mut sub);
                out.extend(sub);
            } else {
                i += 1;
            }
        }
        if out.len() == before {
            if let Some(ae) = ex.alternate.as_deref().and_then(|n| self.exchange_ids.get(n)) {
                self.route_via(*ae, message, visited, out);
            }
        }
    }

    /// Puts a message in a queue, applying TTL, delay, length limits and overflow.
    fn enqueue(
        &mut self,
        qid: QueueId,
        message: &Rc<Message>,
        ttl: Option<u64>,
        ready_at: Option<u64>,
        now: u64,
    ) -> Enqueued {
        let default_max = self.limits.max_queue_length;
        let Some(q) = self.queues.get_mut(&qid) else { return Enqueued::Refused(None) };
        let body_len = message.body.len();
        if let Some(refusal) = q.refusal(body_len, default_max) {
            let reason: Rc<str> = refusal.describe(&q.name).into();
            if q.args.overflow == Overflow::RejectPublishDlx {
                let (name, dlx, dlrk) =
                    (q.name.clone(), q.args.dead_letter_exchange.clone(), q.args.dead_letter_routing_key.clone());
                if let Some(dlx) = dlx {
                    // Not counted: the refused message never entered this queue's accounting.
                    self.dead_letter(&name, message, DropReason::MaxLen, &dlx, dlrk.as_deref(), now);
                }
            }
            return Enqueued::Refused(Some(reason));
        }
        let expires_at = match (q.args.message_ttl, ttl) {
            (Some(a), Some(b)) => Some(now.saturating_add(a.min(b))),
            (a, b) => a.or(b).map(|t| now.saturating_add(t)),
        };
        let durable = q.durable && message.properties.persistent && q.exclusive_owner.is_none();
        let priority = message.properties.priority.unwrap_or(0);
        let seq = q.take_seq();
        q.counters.enqueued += 1;
        let entry = Entry {
            seq,
            message: Some(message.clone()),
            body_len: body_len as u32,
            expires_at,
            delivery_count: 0,
            redelivered: false,
            durable,
            priority,
        };
        if durable {
            let op = StoreOp::PutMessage {
                queue: q.name.clone(),
                seq,
                message: message.clone(),
                expires_at,
                ready_at: ready_at.filter(|t| *t > now),
            };
            self.effects.push_back(Effect::Store(op));
        }
        match ready_at {
            Some(t) if t > now => {
                q.delayed.insert(t, entry);
            }
            _ => {
                q.ready.push_back(entry);
                self.dispatch(qid, now);
                if expires_at.is_some_and(|t| t <= now) {
                    // A TTL of 0 means "deliver now or never".
                    self.expire(qid, now);
                }
                self.enforce_max_length(qid, now);
            }
        }
        Enqueued::Accepted { durable }
    }

    /// `x-overflow: drop-head`: drop (or dead-letter) the oldest ready messages while over a limit.
    fn enforce_max_length(&mut self, qid: QueueId, now: u64) {
        let mut dropped = false;
        loop {
            let Some(q) = self.queues.get_mut(&qid) else { return };
            if q.args.overflow != Overflow::DropHead || !q.is_over_limit() {
                break;
            }
            let Some(e) = q.ready.pop_front() else { break };
            self.discard(qid, e, DropReason::MaxLen, now);
            dropped = true;
        }
        if dropped {
            // The new head may be dead already; RabbitMQ checks it after dropping too.
            self.expire(qid, now);
        }
    }

    /// A message leaves its queue without an ack: dead-lettered when the queue has a
    /// dead-letter exchange, else dropped.
    fn discard(&mut self, qid: QueueId, entry: Entry, reason: DropReason, now: u64) {
        let Some(q) = self.queues.get_mut(&qid) else { return };
        let name = q.name.clone();
        let dl = q.args.dead_letter_exchange.clone().map(|x| (x, q.args.dead_letter_routing_key.clone()));
        if dl.is_some() {
            q.counters.dead_lettered += 1;
        } else {
            q.counters.discarded += 1;
        }
        if entry.durable {
            self.store(StoreOp::RemoveMessage { queue: name.clone(), seq: entry.seq });
        }
        if let Some((dlx, dlrk)) = dl {
            if let Some(message) = &entry.message {
                self.dead_letter(&name, message, reason, &dlx, dlrk.as_deref(), now);
            }
        }
    }

    /// Republishes a copy of the message to the dead-letter exchange. A missing exchange
    /// drops it, as in RabbitMQ; so does a cycle with no rejection in it.
    fn dead_letter(
        &mut self,
        queue: &str,
        message: &Message,
        reason: DropReason,
        dlx: &str,
        dlrk: Option<&str>,
        now: u64,
    ) {
        let Some(&exchange) = self.exchange_ids.get(dlx) else { return };
        let copy = dead_lettered(message, queue, reason, now, dlx, dlrk);
        let mut targets = Vec::new();
        self.route(exchange, &copy, &mut Vec::new(), &mut targets);
        let ttl = None; // the copy carries no expiration; the target queue's TTL applies
        let copy = Rc::new(copy);
        for d in targets {
            let Destination::Queue(t) = d else { continue };
            if self.queues.get(&t).is_some_and(|q| is_cycle(&copy, &q.name)) {
                continue;
            }
            self.enqueue(t, &copy, ttl, None, now);
        }
    }

    // ---- consuming -----------------------------------------------------------------------------

    /// `prefetch(count, global)`: without `global`, the limit of each consumer created
    /// after it on this channel; with `global`, one limit for the channel's consumers
    /// together (RabbitMQ's reading of `basic.qos`). 0 is unlimited.
    pub fn prefetch(&mut self, ch: ChannelRef, count: u32, global: bool, now: u64) -> Result<()> {
        let c = self.channels.get_mut(&ch).ok_or_else(|| closed(ch))?;
        if global {
            c.channel_prefetch = count;
            // A higher limit may let waiting messages through now.
            self.dispatch_channel(ch, now);
        } else {
            c.consumer_prefetch = count;
        }
        Ok(())
    }

    /// `consume(queue, fn, options)` → the consumer tag.
    pub fn consume(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<Rc<str>> {
        self.on_channel(ch, now, |b| b.consume_inner(ch, c, now))
    }

    fn consume_inner(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<Rc<str>> {
        let (tag, qid) = self.register_consumer(ch, c, now)?;
        self.dispatch(qid, now);
        Ok(tag)
    }

    /// Adds a consumer to an open channel and its queue without dispatching, so that a
    /// resumed channel can take back its deliveries before new ones flow. Checks
    /// everything before changing anything: on an error the broker is as it was.
    fn register_consumer(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<(Rc<str>, QueueId)> {
        names::check("queue name", &c.queue)?;
        names::check("consumer tag", &c.consumer_tag)?;
        let qid = self.queue_id(&c.queue)?;
        self.check_exclusive(qid, ch.conn)?;
        let priority = match c.arguments.get("x-priority") {
            None => 0,
            Some(v) => v.as_int().ok_or_else(|| {
                AmqpError::precondition(format!(
                    "invalid arg 'x-priority' for consumer on queue '{}': expected an integer, got {}",
                    c.queue,
                    v.type_name()
                ))
            })?,
        };
        let channel = &self.channels[&ch];
        let tag: Rc<str> = if c.consumer_tag.is_empty() {
            self.names.next("amq.ctag-").into()
        } else {
            if channel.consumer(&c.consumer_tag).is_some() {
                return Err(AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "attempt to reuse consumer tag '{}' on this channel: use a new tag, or omit it",
                        c.consumer_tag
                    ),
                ));
            }
            c.consumer_tag.as_str().into()
        };
        let q = &self.queues[&qid];
        if let Some(first) = q.consumers.first().and_then(|id| self.consumers.get(id)) {
            if first.exclusive {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' has an exclusive consumer: wait for it to cancel",
                    c.queue
                )));
            }
            if c.exclusive {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' has {} consumers: an exclusive consumer needs a queue with none",
                    c.queue,
                    q.consumers.len()
                )));
            }
        }
        if self.consumers.len() >= self.limits.max_consumers {
            return Err(limit_error("consumers", self.limits.max_consumers, "maxConsumers"));
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        let prefetch = channel.consumer_prefetch;
        self.consumers.insert(
            id,
            Consumer {
                channel: ch,
                tag: tag.clone(),
                queue: qid,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                priority,
                prefetch,
                unacked: 0,
            },
        );
        self.channels.get_mut(&ch).expect("open").consumers.push((tag.clone(), id));
        let q = self.queues.get_mut(&qid).expect("exists");
        q.consumers.push(id);
        q.had_consumer = true;
        q.last_used = now;
        q.mixed_priorities = {
            let consumers = &self.consumers;
            let mut ps = q.consumers.iter().map(|c| consumers[c].priority);
            let first = ps.next();
            ps.any(|p| Some(p) != first)
        };
        Ok((tag, qid))
    }

    /// `cancel(consumerTag)`. Its unacked deliveries stay unacked on the channel.
    /// Cancelling an unknown tag succeeds, as in RabbitMQ.
    pub fn cancel(&mut self, ch: ChannelRef, consumer_tag: &str, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let channel = b.channels.get_mut(&ch).expect("open");
            if let Some(i) = channel.consumers.iter().position(|(t, _)| &**t == consumer_tag) {
                let (_, id) = channel.consumers.remove(i);
                if let Some(q) = b.remove_consumer(id, now) {
                    b.dispatch(q, now);
                }
            }
            Ok(())
        })
    }

    /// Removes a consumer from its queue; an auto-delete queue goes with its last
    /// consumer. Returns the queue if it still exists.
    fn remove_consumer(&mut self, id: u32, now: u64) -> Option<QueueId> {
        let c = self.consumers.remove(&id)?;
        let q = self.queues.get_mut(&c.queue)?;
        // In use until now: an `x-expires` lease starts when the last consumer goes.
        q.last_used = now;
        if let Some(i) = q.consumers.iter().position(|x| *x == id) {
            q.consumers.remove(i);
            if q.cursor > i {
                q.cursor -= 1;
            }
        }
        if q.cursor >= q.consumers.len() {
            q.cursor = 0;
        }
        if q.auto_delete && q.had_consumer && q.consumers.is_empty() {
            self.delete_queue_inner(c.queue);
            return None;
        }
        Some(c.queue)
    }

    /// Picks the consumer for the next message: among those with room under their
    /// prefetch, the highest priority; round-robin among equals. A single-active-consumer
    /// queue uses only its first consumer.
    fn pick_consumer(&self, q: &Queue) -> Option<usize> {
        let n = q.consumers.len();
        let room = |i: usize| {
            let c = &self.consumers[&q.consumers[i]];
            c.has_capacity() && (c.no_ack || self.channels.get(&c.channel).is_some_and(Channel::has_capacity))
        };
        if q.args.single_active_consumer {
            return (n > 0 && room(0)).then_some(0);
        }
        let mut best: Option<(usize, i64)> = None;
        for k in 0..n {
            let i = (q.cursor + k) % n;
            if !room(i) {
                continue;
            }
            let p = self.consumers[&q.consumers[i]].priority;
            if !q.mixed_priorities {
                return Some(i);
            }
            if best.is_none_or(|(_, bp)| p > bp) {
                best = Some((i, p));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Hands ready messages to consumers while both exist.
    fn dispatch(&mut self, qid: QueueId, now: u64) {
        if self.holding {
            return;
        }
        let mut expired = Vec::new();
        while let Some(q) = self.queues.get(&qid) {
            // A paged-out head waits for the host to page it in (`page_in` dispatches).
            if q.ready.is_empty() || q.consumers.is_empty() || q.head_paged() {
                break;
            }
            let Some(i) = self.pick_consumer(q) else { break };
            // A first delivery beyond the stored horizon waits for a higher one.
            if self.waits_for_horizon(q, now) {
                let demand = self.demand(q);
                self.ask_horizon(qid, demand, now);
                break;
            }
            let q = self.queues.get_mut(&qid).expect("exists");
            let entry = q.ready.pop_front().expect("not empty");
            // Dead once in the queue for longer than its TTL (ttl.md): a message whose
            // TTL ends this very ms still goes to a waiting consumer, which is how a TTL
            // of 0 delivers now or never.
            if entry.expires_at.is_some_and(|t| t < now) {
                expired.push(entry);
                continue;
            }
            let (first, seq) = (entry.durable && !entry.redelivered, entry.seq);
            let cid = q.consumers[i];
            q.cursor = (i + 1) % q.consumers.len();
            q.counters.delivered += 1;
            q.counters.redelivered += entry.redelivered as u64;
            let c = self.consumers.get_mut(&cid).expect("listed consumer exists");
            let channel = self.channels.get_mut(&c.channel).expect("consumer's channel is open");
            let tag = channel.next_delivery_tag;
            channel.next_delivery_tag += 1;
            let delivery = Delivery {
                channel: c.channel,
                consumer_tag: Some(c.tag.clone()),
                delivery_tag: tag,
                redelivered: entry.redelivered,
                delivery_count: entry.delivery_count,
                queue: qid,
                queue_name: q.name.clone(),
                seq: entry.seq,
                message: entry.loaded().clone(),
            };
            if c.no_ack {
                q.counters.auto_acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    self.effects.push_back(Effect::Store(op));
                }
            } else {
                c.unacked += 1;
                channel.consumer_unacked += 1;
                q.unacked += 1;
                if let Some(op) = first_delivery(&q.name, &entry) {
                    self.effects.push_back(Effect::Store(op));
                }
                channel.unacked.push(tag, Unacked { queue: qid, consumer: Some(cid), entry });
            }
            self.effects.push_back(Effect::Deliver(delivery));
            if first {
                self.handed_out(qid, seq, now);
            }
        }
        for e in expired {
            self.discard(qid, e, DropReason::Expired, now);
        }
        // A dead message the deliveries uncovered at the head goes now, as RabbitMQ
        // drops expired messages after every fetch.
        self.expire(qid, now);
    }

    /// `get(queue, {noAck})`: one message, or `None` when the queue has none ready.
    ///
    /// With a delivery horizon, a driver calls [`Broker::get_wait`] first and waits while
    /// it says so: a `get` whose message is beyond the stored horizon fails with
    /// INTERNAL_ERROR (leaving the channel open) and asks for a higher horizon.
    pub fn get(&mut self, ch: ChannelRef, queue: &str, no_ack: bool, now: u64) -> Result<Option<GetOk>> {
        if self.channels.contains_key(&ch) && self.get_wait(queue, now) == Some(GetWait::Horizon) {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                format!("the head of queue '{queue}' waits for its delivery horizon to be stored: wait (get_wait) before get"),
            ));
        }
        self.on_channel(ch, now, |b| {
            names::check("queue name", queue)?;
            let qid = b.queue_id(queue)?;
            b.check_exclusive(qid, ch.conn)?;
            b.queues.get_mut(&qid).expect("exists").last_used = now;
            b.expire(qid, now);
            let q = b.queues.get_mut(&qid).expect("exists");
            if q.head_paged() {
                return Err(AmqpError::new(
                    ReplyCode::InternalError,
                    format!("the head of queue '{queue}' is paged out: page it in before get"),
                ));
            }
            let Some(entry) = q.ready.pop_front() else { return Ok(None) };
            let (first, seq) = (entry.durable && !entry.redelivered, entry.seq);
            q.counters.delivered += 1;
            q.counters.redelivered += entry.redelivered as u64;
            let channel = b.channels.get_mut(&ch).expect("open");
            let tag = channel.next_delivery_tag;
            channel.next_delivery_tag += 1;
            let delivery = Delivery {
                channel: ch,
                consumer_tag: None,
                delivery_tag: tag,
                redelivered: entry.redelivered,
                delivery_count: entry.delivery_count,
                queue: qid,
                queue_name: q.name.clone(),
                seq: entry.seq,
                message: entry.loaded().clone(),
            };
            let message_count = q.ready.len() as u32;
            if no_ack {
                q.counters.auto_acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    b.effects.push_back(Effect::Store(op));
                }
            } else {
                q.unacked += 1;
                if let Some(op) = first_delivery(&q.name, &entry) {
                    b.effects.push_back(Effect::Store(op));
                }
                channel.unacked.push(tag, Unacked { queue: qid, consumer: None, entry });
            }
            if first {
                b.handed_out(qid, seq, now);
            }
            Ok(Some(GetOk { delivery, message_count }))
        })
    }

    // ---- acknowledgements ----------------------------------------------------------------------

    /// `ack(message, allUpTo)`. With `multiple`, every delivery up to `delivery_tag`;
    /// `multiple` with tag 0 acks all (`ackAll`).
    pub fn ack(&mut self, ch: ChannelRef, delivery_tag: u64, multiple: bool, now: u64) -> Result<()> {
        self.settle(ch, delivery_tag, multiple, Settle::Ack, now)
    }

    /// `nack(message, allUpTo, requeue)`. Without requeue the message is dead-lettered
    /// (reason `rejected`) or dropped.
    pub fn nack(&mut self, ch: ChannelRef, delivery_tag: u64, multiple: bool, requeue: bool, now: u64) -> Result<()> {
        self.settle(ch, delivery_tag, multiple, if requeue { Settle::Requeue } else { Settle::Reject }, now)
    }

    /// `reject(message, requeue)`: `nack` of one message.
    pub fn reject(&mut self, ch: ChannelRef, delivery_tag: u64, requeue: bool, now: u64) -> Result<()> {
        self.nack(ch, delivery_tag, false, requeue, now)
    }

    /// `recover()`: every unacked delivery of the channel goes back to its queue.
    pub fn recover(&mut self, ch: ChannelRef, now: u64) -> Result<()> {
        self.settle(ch, 0, true, Settle::Requeue, now)
    }

    fn settle(&mut self, ch: ChannelRef, tag: u64, multiple: bool, how: Settle, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let channel = b.channels.get_mut(&ch).expect("open");
            let global = channel.channel_prefetch > 0;
            if !multiple {
                let Some(u) = channel.unacked.take(tag) else {
                    // A delivery lost with an earlier broker (see `resume_channel`): nothing to do.
                    return if channel.settle_forgiven(tag) { Ok(()) } else { Err(unknown_tag(tag)) };
                };
                let q = u.queue;
                b.settle_entry(ch, u, how, now);
                // The settled message's queue first: the room it freed goes there.
                b.dispatch(q, now);
                if global {
                    b.dispatch_channel(ch, now);
                }
                return Ok(());
            }
            if tag != 0 && !channel.unacked.contains(tag) && !channel.is_forgiven(tag) {
                return Err(unknown_tag(tag));
            }
            let mut taken = Vec::new();
            if tag == 0 {
                channel.unacked.take_all(&mut taken);
                channel.forgiven.clear();
            } else {
                channel.unacked.take_up_to(tag, &mut taken);
                channel.settle_forgiven_up_to(tag);
            }
            let mut touched: Vec<QueueId> = Vec::new();
            for (_, u) in taken {
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
                b.settle_entry(ch, u, how, now);
            }
            for q in touched {
                b.dispatch(q, now);
            }
            if global {
                b.dispatch_channel(ch, now);
            }
            Ok(())
        })
    }

    /// Dispatches every queue a channel consumes from (its channel-wide prefetch freed up).
    fn dispatch_channel(&mut self, ch: ChannelRef, now: u64) {
        let Some(c) = self.channels.get(&ch) else { return };
        let queues: Vec<QueueId> =
            c.consumers.iter().filter_map(|(_, id)| self.consumers.get(id).map(|c| c.queue)).collect();
        for q in queues {
            self.dispatch(q, now);
        }
    }

    /// Settles one delivery taken from its channel's window (no dispatch).
    fn settle_entry(&mut self, ch: ChannelRef, u: Unacked, how: Settle, now: u64) {
        if let Some(cid) = u.consumer {
            // The consumer may be cancelled already; its deliveries still count on the channel.
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.unacked -= 1;
            }
            if let Some(channel) = self.channels.get_mut(&ch) {
                channel.consumer_unacked -= 1;
            }
        }
        let Some(q) = self.queues.get_mut(&u.queue) else { return };
        q.unacked -= 1;
        let mut entry = u.entry;
        match how {
            Settle::Ack => {
                q.counters.acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    self.store(op);
                }
            }
            Settle::Reject => self.discard(u.queue, entry, DropReason::Rejected, now),
            Settle::Requeue => {
                entry.redelivered = true;
                entry.delivery_count += 1;
                if q.args.delivery_limit.is_some_and(|limit| entry.delivery_count > limit) {
                    self.discard(u.queue, entry, DropReason::DeliveryLimit, now);
                    return;
                }
                if entry.durable {
                    let op = StoreOp::ReturnMessage {
                        queue: q.name.clone(),
                        seq: entry.seq,
                        delivery_count: entry.delivery_count,
                    };
                    self.effects.push_back(Effect::Store(op));
                }
                q.ready.requeue(entry);
                // As RabbitMQ's requeue does: a drop-head queue drops down to its limit.
                self.enforce_max_length(u.queue, now);
            }
        }
    }

    // ---- time ----------------------------------------------------------------------------------

    /// Expired messages at the heads of a queue's ready list leave it.
    fn expire(&mut self, qid: QueueId, now: u64) {
        while let Some(e) = self.queues.get_mut(&qid).and_then(|q| q.ready.pop_expired(now)) {
            self.discard(qid, e, DropReason::Expired, now);
        }
    }

    /// Advances time: expires messages, releases delayed ones, deletes queues unused for
    /// their `x-expires`. Returns when it next needs to run, if ever.
    pub fn tick(&mut self, now: u64) -> Option<u64> {
        let mut ids: Vec<QueueId> = self.queues.keys().copied().collect();
        sort::sort(&mut ids);
        for qid in ids {
            let unused = self.queues.get(&qid).is_some_and(|q| {
                q.args.expires.is_some_and(|e| q.consumers.is_empty() && q.last_used.saturating_add(e) <= now)
            });
            if unused {
                self.delete_queue_inner(qid);
                continue;
            }
            let Some(q) = self.queues.get_mut(&qid) else { continue };
            let mut released = false;
            while let Some(entry) = q.delayed.pop_due(now) {
                q.ready.requeue(entry);
                released = true;
            }
            self.expire(qid, now);
            if released {
                self.dispatch(qid, now);
                self.enforce_max_length(qid, now);
            }
        }
        self.next_deadline()
    }

    /// The earliest time at which [`Broker::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queues
            .values()
            .flat_map(|q| {
                let expiry = q.args.expires.filter(|_| q.consumers.is_empty()).map(|e| q.last_used.saturating_add(e));
                [q.ready.next_expiry(), q.delayed.next_time(), expiry]
            })
            .flatten()
            .min()
    }

    // ---- introspection -------------------------------------------------------------------------

    pub fn queue_info(&self, name: &str) -> Option<QueueInfo> {
        let q = &self.queues[self.queue_ids.get(name)?];
        Some(QueueInfo {
            name: q.name.clone(),
            durable: q.durable,
            exclusive: q.exclusive_owner.is_some(),
            auto_delete: q.auto_delete,
            arguments: q.raw_args.clone(),
            effective_max_length: q.effective_max_length(self.limits.max_queue_length),
            ready: q.ready.len(),
            ready_bytes: q.ready.bytes(),
            paged: q.paged,
            delayed: q.delayed.len(),
            unacked: q.unacked,
            consumers: q.consumers.len(),
            counters: q.counters,
        })
    }

    /// Holds every delivery to consumers until [`Broker::release_deliveries`]: a new host
    /// takes back the deliveries each client still holds (`resume_channel`) before any
    /// message can go to someone else. `get` is not held.
    pub fn hold_deliveries(&mut self) {
        self.holding = true;
    }

    /// Deliveries flow again: every queue with consumers dispatches.
    pub fn release_deliveries(&mut self, now: u64) {
        self.holding = false;
        let ids: Vec<QueueId> =
            self.queues.iter().filter(|(_, q)| !q.consumers.is_empty()).map(|(id, _)| *id).collect();
        for id in ids {
            self.dispatch(id, now);
        }
    }

    /// The name of a queue by id.
    pub fn queue_name(&self, id: QueueId) -> Option<Rc<str>> {
        self.queues.get(&id).map(|q| q.name.clone())
    }

    /// Names of every queue, sorted.
    pub fn queue_names(&self) -> Vec<Rc<str>> {
        let mut v: Vec<Rc<str>> = self.queue_ids.keys().cloned().collect();
        sort::sort(&mut v);
        v
    }

    pub fn has_exchange(&self, name: &str) -> bool {
        self.exchange_ids.contains_key(name)
    }

    pub fn has_channel(&self, ch: ChannelRef) -> bool {
        self.channels.contains_key(&ch)
    }

    /// Unacked deliveries of a channel, or `None` when it is closed.
    pub fn channel_unacked(&self, ch: ChannelRef) -> Option<usize> {
        self.channels.get(&ch).map(|c| c.unacked.len())
    }

    /// Ready messages of a queue, in delivery order, without consuming them (the
    /// console's peek).
    pub fn peek(&self, queue: &str, max: usize) -> Vec<Rc<Message>> {
        self.queue_ids
            .get(queue)
            .map(|id| self.queues[id].ready.iter().take(max).filter_map(|e| e.message.clone()).collect())
            .unwrap_or_default()
    }

    /// Checks the broker's internal invariants; the property tests call it after every
    /// command. Returns what is broken.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut unacked_by_queue: FxMap<QueueId, usize> = FxMap::default();
        let mut unacked_by_consumer: FxMap<u32, u32> = FxMap::default();
        let mut seen: FxSet<(QueueId, u64)> = FxSet::default();
        for (ch, channel) in &self.channels {
            let mut consumer_unacked = 0;
            for (tag, u) in channel.unacked.iter() {
                if tag >= channel.next_delivery_tag {
                    return Err(format!("{ch:?}: unacked tag {tag} is not below the next delivery tag"));
                }
                *unacked_by_queue.entry(u.queue).or_default() += 1;
                if let Some(c) = u.consumer {
                    consumer_unacked += 1;
                    *unacked_by_consumer.entry(c).or_default() += 1;
                }
                if !seen.insert((u.queue, u.entry.seq)) {
                    return Err(format!("message {:?}/{} is unacked twice", u.queue, u.entry.seq));
                }
            }
            if !channel.forgiven.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("{ch:?}: forgiven tags {:?} are not sorted and distinct", channel.forgiven));
            }
            if let Some(t) = channel.forgiven.iter().find(|t| channel.unacked.contains(**t)) {
                return Err(format!("{ch:?}: tag {t} is both forgiven and unacked"));
            }
            if channel.forgiven.last().is_some_and(|t| *t >= channel.next_delivery_tag) {
                return Err(format!("{ch:?}: a forgiven tag is not below the next delivery tag"));
            }
            if consumer_unacked != channel.consumer_unacked {
                return Err(format!(
                    "{ch:?}: consumer_unacked {} but {consumer_unacked} in window",
                    channel.consumer_unacked
                ));
            }
            for (tag, id) in &channel.consumers {
                let c = self.consumers.get(id).ok_or(format!("{ch:?} lists a missing consumer {tag}"))?;
                if c.channel != *ch || c.tag != *tag {
                    return Err(format!("consumer {tag} is listed on the wrong channel"));
                }
            }
            if !self.connections.get(&ch.conn).is_some_and(|c| c.channels.contains(&ch.channel)) {
                return Err(format!("{ch:?} is not listed by its connection"));
            }
        }
        for (id, c) in &self.consumers {
            let n = unacked_by_consumer.get(id).copied().unwrap_or(0);
            if c.unacked != n {
                return Err(format!("consumer {}: unacked {} but {n} in windows", c.tag, c.unacked));
            }
            if c.prefetch > 0 && !c.no_ack && c.unacked > c.prefetch {
                return Err(format!("consumer {} has {} unacked over prefetch {}", c.tag, c.unacked, c.prefetch));
            }
            let q = self.queues.get(&c.queue).ok_or(format!("consumer {} of a missing queue", c.tag))?;
            if !q.consumers.contains(id) {
                return Err(format!("consumer {} is not listed by its queue", c.tag));
            }
            if self.channels.get(&c.channel).is_none_or(|ch| ch.consumer(&c.tag) != Some(*id)) {
                return Err(format!("consumer {} is not listed by its channel", c.tag));
            }
        }
        for (id, q) in &self.queues {
            if self.delivery_horizon && !(q.handed_through <= q.horizon && q.horizon <= q.horizon_asked) {
                return Err(format!(
                    "queue {id:?}: handed out through {}, horizon {}, asked {}: out of order",
                    q.handed_through, q.horizon, q.horizon_asked
                ));
            }
            let n = unacked_by_queue.get(id).copied().unwrap_or(0);
            if q.unacked != n {
                return Err(format!("queue {}: unacked {} but {n} in channels", q.name, q.unacked));
            }
            for e in q.ready.iter() {
                if !seen.insert((*id, e.seq)) {
                    return Err(format!("queue {}: message {} is both ready and elsewhere", q.name, e.seq));
                }
            }
            for e in q.delayed.values() {
                if !seen.insert((*id, e.seq)) {
                    return Err(format!("queue {}: message {} is both delayed and elsewhere", q.name, e.seq));
                }
            }
            if q.stored_below > q.next_seq {
                return Err(format!("queue {}: stored_below {} above next_seq {}", q.name, q.stored_below, q.next_seq));
            }
            let paged = q.ready.iter().filter(|e| e.message.is_none()).count();
            if q.ready.iter().any(|e| e.message.is_none() && e.seq < q.paged_from) {
                return Err(format!("queue {}: a message before paged_from {} is paged out", q.name, q.paged_from));
            }
            if paged > 0 && !self.paged_queues.contains(id) {
                return Err(format!("queue {}: has paged-out messages but is not listed as paged", q.name));
            }
            if paged != q.paged || (paged > 0 && !q.can_page()) {
                return Err(format!("queue {}: {paged} ready messages paged out, {} counted", q.name, q.paged));
            }
            let bytes: usize = q.ready.iter().map(Entry::body_len).sum();
            if bytes != q.ready.bytes() {
                return Err(format!("queue {}: ready bytes {} but {bytes} counted", q.name, q.ready.bytes()));
            }
            let c = q.counters;
            let accounted = q.ready.len() as u64
                + q.delayed.len() as u64
                + q.unacked as u64
                + c.acked
                + c.auto_acked
                + c.dead_lettered
                + c.discarded
                + c.purged;
            if accounted != c.enqueued {
                return Err(format!(
                    "queue {}: {} messages entered but {accounted} accounted for ({c:?})",
                    q.name, c.enqueued
                ));
            }
            if let Some(owner) = q.exclusive_owner {
                if !self.connections.get(&owner).is_some_and(|c| c.exclusive_queues.contains(id)) {
                    return Err(format!("exclusive queue {} outlived its connection", q.name));
                }
            }
        }
        let total: usize = self.exchanges.values().map(|e| e.binding_count).sum();
        if total != self.binding_total {
            return Err(format!("binding total {} but {total} counted", self.binding_total));
        }
        Ok(())
    }
}

/// The store op that marks a stored message as handed out, on its first delivery only:
/// later ones are flagged `redelivered` already.
fn first_delivery(queue: &Rc<str>, e: &Entry) -> Option<StoreOp> {
    (e.durable && !e.redelivered).then(|| StoreOp::Delivered { queue: queue.clone(), seq: e.seq })
}

enum Enqueued {
    Accepted {
        durable: bool,
    },
    /// With why, unless the queue is gone.
    Refused(Option<Rc<str>>),
}

fn closed(ch: ChannelRef) -> AmqpError {
    AmqpError::new(
        ReplyCode::ChannelError,
        format!("channel {} is closed: open a new channel with createChannel", ch.channel),
    )
}

fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::precondition(format!(
        "unknown delivery tag {tag}: it was already acked, or came on another channel; settle each delivery once, on its own channel"
    ))
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused(
        "operation not permitted on the default exchange: it routes to every queue by name and cannot be declared, bound or deleted",
    )
}

/// `setting`: the limit's name in `connect({ limits })`.
fn limit_error(what: &str, limit: usize, setting: &str) -> AmqpError {
    AmqpError::precondition(format!(
        "the broker has {limit} {what}, its limit (limits.{setting}): delete {what} you no longer use, or raise it in connect()"
    ))
}

/// The per-message TTL from the `expiration` property: a decimal string of milliseconds.
fn parse_expiration(expiration: Option<&str>) -> Result<Option<u64>> {
    let Some(s) = expiration else { return Ok(None) };
    match s.parse::<u64>() {
        Ok(ms) if !s.starts_with('+') => Ok(Some(ms)),
        _ => Err(AmqpError::precondition(format!(
            "invalid expiration '{s}': use a non-negative whole number of milliseconds, such as '60000'"
        ))),
    }
}

/// The `x-delay` header (milliseconds) of tabbit's delayed delivery.
fn parse_delay(headers: &Table) -> Result<Option<u64>> {
    match headers.get("x-delay") {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(ms) if ms > 0 => Ok(Some(ms as u64)),
            Some(_) => Ok(None),
            None => Err(AmqpError::precondition(format!(
                "invalid header 'x-delay': expected a whole number of milliseconds, got {}",
                v.type_name()
            ))),
        },
    }
}
