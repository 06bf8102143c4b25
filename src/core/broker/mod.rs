//! The broker: every AMQP command as a method, side effects queued as [`Effect`]s.
//!
//! Channel-level failures close the channel as RabbitMQ does: its unacked deliveries
//! are requeued, its consumers cancelled, a [`Effect::ChannelClosed`] is emitted and
//! later calls on it fail with 504 CHANNEL_ERROR.
//!
//! This file holds the [`Broker`], its state and its configuration, the effects queue,
//! connections and channels, and what the files beside it share. Each of those holds one
//! concern, split as RabbitMQ splits it: `topology` (exchanges, bindings, declaring,
//! deleting and purging queues), `publish` (publishing and routing), `queues` (a message
//! in its queue: length limits, TTL, dead-lettering, time), `consumers` (consume, cancel,
//! get, dispatch), `settle` (ack, nack, reject, recover), `invariants` (the checks the
//! property tests run); then `durable`, `horizon`, `inspect`, `paging`, `recovery` and
//! `resume`.

use std::collections::VecDeque;
use std::rc::Rc;

use super::channel::{Channel, Unacked};
use super::effect::{Effect, StoreOp};
use super::error::{AmqpError, ReplyCode, Result};
use super::exchange::{ExchangeKind, Router};
use super::fxhash::{FxMap, FxSet};
use super::ids::{ChannelRef, ConnId, Destination, ExchangeId, QueueId};
use super::names::NameSource;
use super::queue::{DropReason, Entry, Queue};
use super::value::Table;

mod consumers;
mod durable;
mod horizon;
mod inspect;
mod invariants;
mod paging;
mod publish;
mod queues;
mod recovery;
mod resume;
mod settle;
mod topology;
pub use consumers::{Consume, GetOk};
pub use horizon::GetWait;
pub use inspect::{BindingInfo, ConnectionInfo, ExchangeInfo, QueueInfo};
pub use recovery::StoredMessage;
pub use resume::{InFlight, Resume, Resumed};
use settle::Settle;
pub use topology::{ExchangeDeclare, QueueDeclare, QueueDeclareOk};

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
}

/// The store op that marks a stored message as handed out, on its first delivery only:
/// later ones are flagged `redelivered` already.
fn first_delivery(queue: &Rc<str>, e: &Entry) -> Option<StoreOp> {
    (e.durable && !e.redelivered).then(|| StoreOp::Delivered { queue: queue.clone(), seq: e.seq })
}

fn closed(ch: ChannelRef) -> AmqpError {
    AmqpError::new(
        ReplyCode::ChannelError,
        format!("channel {} is closed: open a new channel with createChannel", ch.channel),
    )
}

/// `setting`: the limit's name in `connect({ limits })`.
fn limit_error(what: &str, limit: usize, setting: &str) -> AmqpError {
    AmqpError::precondition(format!(
        "the broker has {limit} {what}, its limit (limits.{setting}): delete {what} you no longer use, or raise it in connect()"
    ))
}
