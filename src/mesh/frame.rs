//! The wire format between contexts: everything one context sends in one event-loop
//! turn is one `postMessage` of one `Uint8Array`, a [`Post`]: a header (magic byte,
//! version, sender) and sections, each for one receiver, of [`Frame`]s. Decoding is
//! strict and never panics: any same-origin script can post to the channel, so a post
//! that fails to decode is dropped whole and counted, and nothing of it is applied.

use std::rc::Rc;

use super::bridge::{read_config, read_status, write_config, write_status, BridgeConfig, BridgeStatus};
use crate::codec::{DecodeError, Reader, Writer};
pub use crate::core::InFlight;
use crate::core::{
    AmqpError, BindingInfo, Consume, ExchangeDeclare, ExchangeInfo, Message, QueueCounters, QueueDeclare,
    QueueDeclareOk, QueueInfo, ReplyCode, Table,
};

/// First byte of every post.
pub const MAGIC: u8 = 0xB7;
/// The protocol version; a post with another one is dropped (and counted).
pub const VERSION: u8 = 2;
/// The receiver id that means every context.
pub const EVERYONE: u64 = 0;

/// A command on a channel: amqplib's channel methods, their arguments converted and
/// validated by the sender's binding (and validated again by the host's core).
// A command lives for one call, moved once; boxing the large publish would cost an
// allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Command {
    DeclareQueue(QueueDeclare),
    DeleteQueue {
        name: String,
        if_unused: bool,
        if_empty: bool,
    },
    PurgeQueue(String),
    BindQueue {
        queue: String,
        source: String,
        pattern: String,
        args: Table,
    },
    UnbindQueue {
        queue: String,
        source: String,
        pattern: String,
        args: Table,
    },
    DeclareExchange(ExchangeDeclare),
    DeleteExchange {
        name: String,
        if_unused: bool,
    },
    BindExchange {
        destination: String,
        source: String,
        pattern: String,
        args: Table,
    },
    UnbindExchange {
        destination: String,
        source: String,
        pattern: String,
        args: Table,
    },
    /// Boxed: a message is most of a command's size, and frames move by value through
    /// several queues on the way to the host (a 190-byte copy each, measured in row (b)).
    Publish {
        message: Box<Message>,
        mandatory: bool,
    },
    Consume(Consume),
    Cancel(String),
    Get {
        queue: String,
        no_ack: bool,
    },
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
    Reject {
        tag: u64,
        requeue: bool,
    },
    Prefetch {
        count: u32,
        global: bool,
    },
    Recover,
    Close,
}

/// channel.open (and confirm.select with it): the method of an error opening a channel.
pub const CHANNEL_OPEN: (u16, u16) = (20, 10);

impl Command {
    /// The AMQP 0-9-1 method this command is, as (class id, method id): what a channel
    /// error it causes names (`AmqpError::method`).
    pub fn method(&self) -> (u16, u16) {
        match self {
            Command::DeclareExchange(_) => (40, 10),
            Command::DeleteExchange { .. } => (40, 20),
            Command::BindExchange { .. } => (40, 30),
            Command::UnbindExchange { .. } => (40, 40),
            Command::DeclareQueue(_) => (50, 10),
            Command::BindQueue { .. } => (50, 20),
            Command::PurgeQueue(_) => (50, 30),
            Command::DeleteQueue { .. } => (50, 40),
            Command::UnbindQueue { .. } => (50, 50),
            Command::Prefetch { .. } => (60, 10),
            Command::Consume(_) => (60, 20),
            Command::Cancel(_) => (60, 30),
            Command::Publish { .. } => (60, 40),
            Command::Get { .. } => (60, 70),
            Command::Ack { .. } => (60, 80),
            Command::Reject { .. } => (60, 90),
            Command::Recover => (60, 110),
            Command::Nack { .. } => (60, 120),
            Command::Close => (20, 40),
        }
    }
}

/// A delivery as it crosses to the consumer's context.
#[derive(Clone, Debug)]
pub struct WireDelivery {
    /// `None` for `get`.
    pub consumer_tag: Option<Rc<str>>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub delivery_count: u32,
    /// The queue and the message's position in it: what names the message when a new
    /// host adopts the deliveries still in flight.
    pub queue: Rc<str>,
    pub seq: u64,
    pub message: Rc<Message>,
}

/// What a call answers: each the shape of one amqplib reply, so that the binding makes
/// the app's value from the answer alone.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `{}`.
    Done,
    /// `assertExchange`: `{exchange}`.
    Exchange(String),
    /// `consume` and `cancel`: `{consumerTag}`.
    Tag(String),
    Queue(QueueDeclareOk),
    Count(u32),
    /// `get`: the message and the ready count left, or nothing.
    Got(Option<(WireDelivery, u32)>),
    Stats(Box<Stats>),
    /// `resume`: the consumers that could not be restored, with why.
    Resumed(Vec<(String, AmqpError)>),
    /// `peek`: messages at the head of a queue, not consumed.
    Peeked(Vec<Rc<Message>>),
    /// `QueueArguments`: the queue's arguments, or `None` if there is no such queue.
    Arguments(Option<Table>),
}

/// The broker's state for the management view.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// When the host took it (ms since the epoch).
    pub at: u64,
    /// The id of the context that hosts the broker.
    pub host: u64,
    pub storage: String,
    pub queues: Vec<QueueInfo>,
    pub exchanges: Vec<ExchangeInfo>,
    pub bindings: Vec<BindingInfo>,
    pub contexts: Vec<ContextInfo>,
    /// Per second, over the last few seconds, for `totals`.
    pub rates: [f64; 6],
    /// Sums over the queues: published, delivered, redelivered, acked, dead-lettered, discarded.
    pub totals: [u64; 6],
    /// Dropped posts: undecodable, another version, or too large.
    pub dropped_posts: u64,
    /// When the host found its store emptied, and the messages lost with it in all, if
    /// known ([`crate::host::engine::Emptied`]).
    pub storage_emptied: Option<(u64, Option<u64>)>,
}

/// A context of the mesh and its load on the broker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContextInfo {
    pub id: u64,
    pub label: String,
    pub connections: u32,
    pub channels: u32,
    pub consumers: u32,
    pub unacked: u32,
}

/// A channel as its client knows it, re-announced to a new host after failover.
#[derive(Clone, Debug, Default)]
pub struct ChannelState {
    pub next_delivery_tag: u64,
    pub confirm_seq: Option<u64>,
    pub consumer_prefetch: u32,
    pub channel_prefetch: u32,
    pub consumers: Vec<Consume>,
    pub in_flight: Vec<InFlight>,
    /// Deliveries the client settled just before the host died, whose settlement may not
    /// have reached the store: `true` for an ack, `false` for a reject without requeue.
    /// The new host takes them back and settles them again, so they are not redelivered.
    pub settled: Vec<(InFlight, bool)>,
}

/// A channel event, host to client.
#[derive(Clone, Debug)]
pub enum WireEvent {
    Deliver(WireDelivery),
    Confirm { seq: u64, error: Option<AmqpError> },
    Return { code: u16, text: String, message: Rc<Message> },
    Cancelled(Rc<str>),
    Closed(AmqpError),
}

/// One unit of a post. Channel ids are the client's own; `id` correlates a call with its
/// reply (0: no reply wanted).
#[allow(clippy::large_enum_variant)] // as Command
#[derive(Clone, Debug)]
pub enum Frame {
    // Client to host.
    /// Who hosts? The host answers with `Host`. `label` names the context in the stats.
    Hello {
        label: String,
    },
    OpenChannel {
        conn: u32,
        chan: u32,
        confirm: bool,
    },
    CloseConnection {
        conn: u32,
    },
    Call {
        id: u32,
        chan: u32,
        cmd: Command,
    },
    Stats {
        id: u32,
    },
    Flush {
        id: u32,
    },
    Peek {
        id: u32,
        queue: String,
        count: u32,
    },
    /// After failover: rebuild this channel (answered with `Answer::Resumed`).
    Resume {
        id: u32,
        conn: u32,
        chan: u32,
        state: ChannelState,
    },
    /// After failover, before its channels' `Resume`: build again what connection `conn`
    /// declared that died with the host (declarations and bindings only; see
    /// [`super::topology`]). Answered with `Answer::Resumed`, listing what failed.
    Restore {
        id: u32,
        conn: u32,
        commands: Vec<Command>,
    },
    /// After failover: every channel of this client has been re-announced.
    Resumed,
    /// One queue's arguments (answered with `Answer::Arguments`): what the bridge reads
    /// its outbox's epoch from.
    QueueArguments {
        id: u32,
        queue: String,
    },
    /// This context declares a bridge (see [`super::bridge`]); answered with `Done`, or a
    /// 406 if it runs with other options. `id` 0: a re-declaration after failover.
    DeclareBridge {
        id: u32,
        config: BridgeConfig,
    },
    /// This context no longer declares bridge `name`.
    UndeclareBridge {
        name: String,
    },
    // Host to client.
    /// The sender hosts the broker (sent when it starts hosting and to answer `Hello`),
    /// since `since`: a term that grows from one host to the next (see
    /// [`crate::mesh::host::HostState::since`]), so that a client tells a late post of a
    /// host that is gone from its successor's.
    Host {
        since: u64,
    },
    Reply {
        id: u32,
        result: Result<Answer, AmqpError>,
    },
    Event {
        chan: u32,
        event: WireEvent,
    },
    /// A bridge's status, with its configuration (without the passcode), to every context.
    BridgeStatus {
        config: BridgeConfig,
        status: BridgeStatus,
    },
    /// Bridge `name` stopped: no context declares it any more.
    BridgeGone {
        name: String,
    },
}

/// One `postMessage`: from one context, sections for one receiver each (or `EVERYONE`).
#[derive(Clone, Debug, Default)]
pub struct Post {
    pub from: u64,
    pub sections: Vec<(u64, Vec<Frame>)>,
}

/// Why a post was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dropped {
    NotOurs,
    Version(u8),
    Corrupt(DecodeError),
}

// ---------------------------------------------------------------- decoding helpers

type R<T> = Result<T, DecodeError>;

fn bad<T>(what: &'static str, r: &Reader) -> R<T> {
    Err(DecodeError { what, at: r.pos() })
}

fn string(r: &mut Reader) -> R<String> {
    Ok(r.str()?.to_owned())
}

fn u32v(r: &mut Reader) -> R<u32> {
    let v = r.uvar()?;
    u32::try_from(v).or_else(|_| bad("number out of range", r))
}

fn usize_v(r: &mut Reader) -> R<usize> {
    let v = r.uvar()?;
    usize::try_from(v).or_else(|_| bad("number out of range", r))
}

fn flags(r: &mut Reader, max: u8) -> R<u8> {
    let f = r.u8()?;
    if f > max {
        return bad("unknown flag bits", r);
    }
    Ok(f)
}

// ---------------------------------------------------------------- each part: its encoder, then its decoder

fn error(w: &mut Writer, e: &AmqpError) {
    w.uvar(e.code.code() as u64);
    w.str(&e.message);
    w.uvar(e.method.0 as u64);
    w.uvar(e.method.1 as u64);
}

fn read_error(r: &mut Reader) -> R<AmqpError> {
    let code = match r.uvar()? {
        312 => ReplyCode::NoRoute,
        320 => ReplyCode::ConnectionForced,
        403 => ReplyCode::AccessRefused,
        404 => ReplyCode::NotFound,
        405 => ReplyCode::ResourceLocked,
        406 => ReplyCode::PreconditionFailed,
        501 => ReplyCode::FrameError,
        503 => ReplyCode::CommandInvalid,
        504 => ReplyCode::ChannelError,
        506 => ReplyCode::ResourceError,
        530 => ReplyCode::NotAllowed,
        541 => ReplyCode::InternalError,
        _ => return bad("unknown reply code", r),
    };
    let message = string(r)?;
    let mut id = || u16::try_from(r.uvar()?).or_else(|_| bad("method id out of range", r));
    let method = (id()?, id()?);
    Ok(AmqpError::new(code, message).in_method(method))
}

fn table_args(w: &mut Writer, a: &str, b: &str, c: &str, t: &Table) {
    w.str(a);
    w.str(b);
    w.str(c);
    w.table(t);
}

fn consume(w: &mut Writer, c: &Consume) {
    w.str(&c.queue);
    w.str(&c.consumer_tag);
    w.bool(c.no_ack);
    w.bool(c.exclusive);
    w.table(&c.arguments);
}

fn read_consume(r: &mut Reader) -> R<Consume> {
    Ok(Consume {
        queue: string(r)?,
        consumer_tag: string(r)?,
        no_ack: r.bool()?,
        exclusive: r.bool()?,
        arguments: r.table()?,
    })
}

fn command(w: &mut Writer, c: &Command) {
    match c {
        Command::DeclareQueue(d) => {
            w.u8(0);
            w.str(&d.name);
            w.u8(d.passive as u8 | (d.durable as u8) << 1 | (d.exclusive as u8) << 2 | (d.auto_delete as u8) << 3);
            w.table(&d.arguments);
        }
        Command::DeleteQueue { name, if_unused, if_empty } => {
            w.u8(1);
            w.str(name);
            w.u8(*if_unused as u8 | (*if_empty as u8) << 1);
        }
        Command::PurgeQueue(name) => {
            w.u8(2);
            w.str(name);
        }
        Command::BindQueue { queue, source, pattern, args } => {
            w.u8(3);
            table_args(w, queue, source, pattern, args);
        }
        Command::UnbindQueue { queue, source, pattern, args } => {
            w.u8(4);
            table_args(w, queue, source, pattern, args);
        }
        Command::DeclareExchange(d) => {
            w.u8(5);
            w.str(&d.name);
            w.str(&d.kind);
            w.u8(d.passive as u8 | (d.durable as u8) << 1 | (d.auto_delete as u8) << 2 | (d.internal as u8) << 3);
            w.table(&d.arguments);
        }
        Command::DeleteExchange { name, if_unused } => {
            w.u8(6);
            w.str(name);
            w.bool(*if_unused);
        }
        Command::BindExchange { destination, source, pattern, args } => {
            w.u8(7);
            table_args(w, destination, source, pattern, args);
        }
        Command::UnbindExchange { destination, source, pattern, args } => {
            w.u8(8);
            table_args(w, destination, source, pattern, args);
        }
        Command::Publish { message, mandatory } => {
            w.u8(9);
            w.bool(*mandatory);
            w.message(message);
        }
        Command::Consume(c) => {
            w.u8(10);
            consume(w, c);
        }
        Command::Cancel(tag) => {
            w.u8(11);
            w.str(tag);
        }
        Command::Get { queue, no_ack } => {
            w.u8(12);
            w.str(queue);
            w.bool(*no_ack);
        }
        Command::Ack { tag, multiple } => {
            w.u8(13);
            w.uvar(*tag);
            w.bool(*multiple);
        }
        Command::Nack { tag, multiple, requeue } => {
            w.u8(14);
            w.uvar(*tag);
            w.u8(*multiple as u8 | (*requeue as u8) << 1);
        }
        Command::Reject { tag, requeue } => {
            w.u8(15);
            w.uvar(*tag);
            w.bool(*requeue);
        }
        Command::Prefetch { count, global } => {
            w.u8(16);
            w.uvar(*count as u64);
            w.bool(*global);
        }
        Command::Recover => w.u8(17),
        Command::Close => w.u8(18),
    }
}

fn read_command(r: &mut Reader) -> R<Command> {
    let four =
        |r: &mut Reader| -> R<(String, String, String, Table)> { Ok((string(r)?, string(r)?, string(r)?, r.table()?)) };
    Ok(match r.u8()? {
        0 => {
            let name = string(r)?;
            let f = flags(r, 15)?;
            Command::DeclareQueue(QueueDeclare {
                name,
                passive: f & 1 != 0,
                durable: f & 2 != 0,
                exclusive: f & 4 != 0,
                auto_delete: f & 8 != 0,
                arguments: r.table()?,
            })
        }
        1 => {
            let name = string(r)?;
            let f = flags(r, 3)?;
            Command::DeleteQueue { name, if_unused: f & 1 != 0, if_empty: f & 2 != 0 }
        }
        2 => Command::PurgeQueue(string(r)?),
        3 => {
            let (queue, source, pattern, args) = four(r)?;
            Command::BindQueue { queue, source, pattern, args }
        }
        4 => {
            let (queue, source, pattern, args) = four(r)?;
            Command::UnbindQueue { queue, source, pattern, args }
        }
        5 => {
            let (name, kind) = (string(r)?, string(r)?);
            let f = flags(r, 15)?;
            Command::DeclareExchange(ExchangeDeclare {
                name,
                kind,
                passive: f & 1 != 0,
                durable: f & 2 != 0,
                auto_delete: f & 4 != 0,
                internal: f & 8 != 0,
                arguments: r.table()?,
            })
        }
        6 => Command::DeleteExchange { name: string(r)?, if_unused: r.bool()? },
        7 => {
            let (destination, source, pattern, args) = four(r)?;
            Command::BindExchange { destination, source, pattern, args }
        }
        8 => {
            let (destination, source, pattern, args) = four(r)?;
            Command::UnbindExchange { destination, source, pattern, args }
        }
        9 => {
            let mandatory = r.bool()?;
            Command::Publish { mandatory, message: Box::new(r.message()?) }
        }
        10 => Command::Consume(read_consume(r)?),
        11 => Command::Cancel(string(r)?),
        12 => Command::Get { queue: string(r)?, no_ack: r.bool()? },
        13 => Command::Ack { tag: r.uvar()?, multiple: r.bool()? },
        14 => {
            let tag = r.uvar()?;
            let f = flags(r, 3)?;
            Command::Nack { tag, multiple: f & 1 != 0, requeue: f & 2 != 0 }
        }
        15 => Command::Reject { tag: r.uvar()?, requeue: r.bool()? },
        16 => Command::Prefetch { count: u32v(r)?, global: r.bool()? },
        17 => Command::Recover,
        18 => Command::Close,
        _ => return bad("unknown command", r),
    })
}

fn delivery(w: &mut Writer, d: &WireDelivery) {
    w.opt_str(d.consumer_tag.as_deref());
    w.uvar(d.delivery_tag);
    w.bool(d.redelivered);
    w.uvar(d.delivery_count as u64);
    w.str(&d.queue);
    w.uvar(d.seq);
    w.message(&d.message);
}

fn read_delivery(r: &mut Reader) -> R<WireDelivery> {
    Ok(WireDelivery {
        consumer_tag: r.opt_str()?.map(Into::into),
        delivery_tag: r.uvar()?,
        redelivered: r.bool()?,
        delivery_count: u32v(r)?,
        queue: r.str()?.into(),
        seq: r.uvar()?,
        message: Rc::new(r.message()?),
    })
}

fn counters(w: &mut Writer, c: &QueueCounters) {
    for v in c.to_array() {
        w.uvar(v);
    }
}

fn answer(w: &mut Writer, a: &Answer) {
    match a {
        Answer::Done => w.u8(0),
        Answer::Queue(q) => {
            w.u8(1);
            w.str(&q.queue);
            w.uvar(q.message_count as u64);
            w.uvar(q.consumer_count as u64);
        }
        Answer::Count(n) => {
            w.u8(2);
            w.uvar(*n as u64);
        }
        Answer::Got(None) => w.u8(3),
        Answer::Got(Some((d, left))) => {
            w.u8(4);
            delivery(w, d);
            w.uvar(*left as u64);
        }
        Answer::Stats(s) => {
            w.u8(5);
            w.uvar(s.at);
            w.uvar(s.host);
            w.str(&s.storage);
            w.uvar(s.dropped_posts);
            // 0: never; lost + 1, 0 if not known.
            let (at, lost) = s.storage_emptied.unwrap_or((0, None));
            w.uvar(at);
            // A count of u64::MAX is written as u64::MAX - 1: no store holds that many.
            w.uvar(lost.map_or(0, |n| n.min(u64::MAX - 1) + 1));
            for (r, t) in s.rates.iter().zip(&s.totals) {
                w.f64(*r);
                w.uvar(*t);
            }
            w.uvar(s.exchanges.len() as u64);
            for x in &s.exchanges {
                w.str(&x.name);
                w.str(x.kind);
                w.u8(x.durable as u8 | (x.auto_delete as u8) << 1 | (x.internal as u8) << 2);
                w.table(&x.arguments);
            }
            w.uvar(s.bindings.len() as u64);
            for b in &s.bindings {
                w.str(&b.source);
                w.str(&b.destination);
                w.bool(b.to_exchange);
                w.str(&b.routing_key);
                w.table(&b.arguments);
            }
            w.uvar(s.contexts.len() as u64);
            for c in &s.contexts {
                w.uvar(c.id);
                w.str(&c.label);
                for v in [c.connections, c.channels, c.consumers, c.unacked] {
                    w.uvar(v as u64);
                }
            }
            w.uvar(s.queues.len() as u64);
            for q in &s.queues {
                w.str(&q.name);
                let max = q.effective_max_length;
                w.u8(q.durable as u8
                    | (q.exclusive as u8) << 1
                    | (q.auto_delete as u8) << 2
                    | (max.is_some() as u8) << 3);
                w.table(&q.arguments);
                for v in [q.ready, q.ready_bytes, q.paged, q.delayed, q.unacked, q.consumers] {
                    w.uvar(v as u64);
                }
                counters(w, &q.counters);
                if let Some(m) = max {
                    w.uvar(m);
                }
            }
        }
        Answer::Resumed(cancelled) => {
            w.u8(6);
            w.uvar(cancelled.len() as u64);
            for (tag, e) in cancelled {
                w.str(tag);
                error(w, e);
            }
        }
        Answer::Peeked(messages) => {
            w.u8(7);
            w.uvar(messages.len() as u64);
            for m in messages {
                w.message(m);
            }
        }
        Answer::Exchange(name) => {
            w.u8(8);
            w.str(name);
        }
        Answer::Tag(tag) => {
            w.u8(9);
            w.str(tag);
        }
        Answer::Arguments(None) => w.u8(10),
        Answer::Arguments(Some(t)) => {
            w.u8(11);
            w.table(t);
        }
    }
}

fn read_answer(r: &mut Reader) -> R<Answer> {
    Ok(match r.u8()? {
        0 => Answer::Done,
        1 => {
            Answer::Queue(QueueDeclareOk { queue: r.str()?.into(), message_count: u32v(r)?, consumer_count: u32v(r)? })
        }
        2 => Answer::Count(u32v(r)?),
        3 => Answer::Got(None),
        4 => {
            let d = read_delivery(r)?;
            Answer::Got(Some((d, u32v(r)?)))
        }
        5 => {
            let at = r.uvar()?;
            let host = r.uvar()?;
            let storage = string(r)?;
            let dropped_posts = r.uvar()?;
            let (emptied_at, lost) = (r.uvar()?, r.uvar()?);
            if emptied_at == 0 && lost != 0 {
                return bad("emptied: a loss count without a time", r);
            }
            let storage_emptied = (emptied_at > 0).then_some((emptied_at, lost.checked_sub(1)));
            let (mut rates, mut totals) = ([0f64; 6], [0u64; 6]);
            for (rate, total) in rates.iter_mut().zip(&mut totals) {
                *rate = r.f64()?;
                *total = r.uvar()?;
            }
            let n = r.count(4)?;
            let mut exchanges = Vec::with_capacity(n);
            for _ in 0..n {
                let name: Rc<str> = r.str()?.into();
                let kind = match r.str()? {
                    "direct" => "direct",
                    "fanout" => "fanout",
                    "topic" => "topic",
                    "headers" => "headers",
                    _ => return bad("unknown exchange type", r),
                };
                let f = flags(r, 7)?;
                let arguments = r.table()?;
                exchanges.push(ExchangeInfo {
                    name,
                    kind,
                    durable: f & 1 != 0,
                    auto_delete: f & 2 != 0,
                    internal: f & 4 != 0,
                    arguments,
                });
            }
            let n = r.count(5)?;
            let mut bindings = Vec::with_capacity(n);
            for _ in 0..n {
                bindings.push(BindingInfo {
                    source: r.str()?.into(),
                    destination: r.str()?.into(),
                    to_exchange: r.bool()?,
                    routing_key: string(r)?,
                    arguments: r.table()?,
                });
            }
            let n = r.count(6)?;
            let mut contexts = Vec::with_capacity(n);
            for _ in 0..n {
                contexts.push(ContextInfo {
                    id: r.uvar()?,
                    label: string(r)?,
                    connections: u32v(r)?,
                    channels: u32v(r)?,
                    consumers: u32v(r)?,
                    unacked: u32v(r)?,
                });
            }
            let n = r.count(4)?;
            let mut queues = Vec::with_capacity(n);
            for _ in 0..n {
                let name: Rc<str> = r.str()?.into();
                let f = flags(r, 15)?;
                let arguments = r.table()?;
                let mut v = [0usize; 6];
                for x in &mut v {
                    *x = usize_v(r)?;
                }
                let mut c = [0u64; 8];
                for x in &mut c {
                    *x = r.uvar()?;
                }
                let effective_max_length = if f & 8 != 0 { Some(r.uvar()?) } else { None };
                queues.push(QueueInfo {
                    name,
                    durable: f & 1 != 0,
                    exclusive: f & 2 != 0,
                    auto_delete: f & 4 != 0,
                    arguments,
                    effective_max_length,
                    ready: v[0],
                    ready_bytes: v[1],
                    paged: v[2],
                    delayed: v[3],
                    unacked: v[4],
                    consumers: v[5],
                    counters: QueueCounters::from_array(c),
                });
            }
            Answer::Stats(Box::new(Stats {
                at,
                host,
                storage,
                queues,
                exchanges,
                bindings,
                contexts,
                rates,
                totals,
                dropped_posts,
                storage_emptied,
            }))
        }
        6 => {
            let n = r.count(2)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push((string(r)?, read_error(r)?));
            }
            Answer::Resumed(out)
        }
        7 => {
            let n = r.count(8)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push(Rc::new(r.message()?));
            }
            Answer::Peeked(out)
        }
        8 => Answer::Exchange(string(r)?),
        9 => Answer::Tag(string(r)?),
        10 => Answer::Arguments(None),
        11 => Answer::Arguments(Some(r.table()?)),
        _ => return bad("unknown answer", r),
    })
}

fn channel_state(w: &mut Writer, s: &ChannelState) {
    w.uvar(s.next_delivery_tag);
    w.opt_uvar(s.confirm_seq);
    w.uvar(s.consumer_prefetch as u64);
    w.uvar(s.channel_prefetch as u64);
    w.uvar(s.consumers.len() as u64);
    for c in &s.consumers {
        consume(w, c);
    }
    w.uvar(s.in_flight.len() as u64);
    for f in &s.in_flight {
        in_flight(w, f);
    }
    w.uvar(s.settled.len() as u64);
    for (f, ack) in &s.settled {
        in_flight(w, f);
        w.bool(*ack);
    }
}

fn read_channel_state(r: &mut Reader) -> R<ChannelState> {
    let next_delivery_tag = r.uvar()?;
    let confirm_seq = r.opt_uvar()?;
    let consumer_prefetch = u32v(r)?;
    let channel_prefetch = u32v(r)?;
    let n = r.count(5)?;
    let mut consumers = Vec::with_capacity(n);
    for _ in 0..n {
        consumers.push(read_consume(r)?);
    }
    let n = r.count(4)?;
    let mut in_flight = Vec::with_capacity(n);
    for _ in 0..n {
        in_flight.push(read_in_flight(r)?);
    }
    let n = r.count(5)?;
    let mut settled = Vec::with_capacity(n);
    for _ in 0..n {
        settled.push((read_in_flight(r)?, r.bool()?));
    }
    Ok(ChannelState {
        next_delivery_tag,
        confirm_seq,
        consumer_prefetch,
        channel_prefetch,
        consumers,
        in_flight,
        settled,
    })
}

fn in_flight(w: &mut Writer, f: &InFlight) {
    w.str(&f.queue);
    w.uvar(f.seq);
    w.uvar(f.delivery_tag);
    w.opt_str(f.consumer_tag.as_deref());
}

fn read_in_flight(r: &mut Reader) -> R<InFlight> {
    Ok(InFlight { queue: string(r)?, seq: r.uvar()?, delivery_tag: r.uvar()?, consumer_tag: r.opt_str()? })
}

/// Appends one frame.
pub fn frame(w: &mut Writer, f: &Frame) {
    match f {
        Frame::Hello { label } => {
            w.u8(0);
            w.str(label);
        }
        Frame::OpenChannel { conn, chan, confirm } => {
            w.u8(1);
            w.uvar(*conn as u64);
            w.uvar(*chan as u64);
            w.bool(*confirm);
        }
        Frame::CloseConnection { conn } => {
            w.u8(2);
            w.uvar(*conn as u64);
        }
        Frame::Call { id, chan, cmd } => {
            w.u8(3);
            w.uvar(*id as u64);
            w.uvar(*chan as u64);
            command(w, cmd);
        }
        Frame::Stats { id } => {
            w.u8(4);
            w.uvar(*id as u64);
        }
        Frame::Flush { id } => {
            w.u8(5);
            w.uvar(*id as u64);
        }
        Frame::Peek { id, queue, count } => {
            w.u8(11);
            w.uvar(*id as u64);
            w.str(queue);
            w.uvar(*count as u64);
        }
        Frame::Resume { id, conn, chan, state } => {
            w.u8(6);
            w.uvar(*id as u64);
            w.uvar(*conn as u64);
            w.uvar(*chan as u64);
            channel_state(w, state);
        }
        Frame::Restore { id, conn, commands } => {
            w.u8(12);
            w.uvar(*id as u64);
            w.uvar(*conn as u64);
            w.uvar(commands.len() as u64);
            for c in commands {
                command(w, c);
            }
        }
        Frame::Resumed => w.u8(7),
        Frame::QueueArguments { id, queue } => {
            w.u8(13);
            w.uvar(*id as u64);
            w.str(queue);
        }
        Frame::DeclareBridge { id, config } => {
            w.u8(14);
            w.uvar(*id as u64);
            write_config(w, config);
        }
        Frame::UndeclareBridge { name } => {
            w.u8(15);
            w.str(name);
        }
        Frame::BridgeStatus { config, status } => {
            w.u8(16);
            write_config(w, config);
            write_status(w, status);
        }
        Frame::BridgeGone { name } => {
            w.u8(17);
            w.str(name);
        }
        Frame::Host { since } => {
            w.u8(8);
            w.uvar(*since);
        }
        Frame::Reply { id, result } => {
            w.u8(9);
            w.uvar(*id as u64);
            match result {
                Ok(a) => {
                    w.u8(0);
                    answer(w, a);
                }
                Err(e) => {
                    w.u8(1);
                    error(w, e);
                }
            }
        }
        Frame::Event { chan, event } => {
            w.u8(10);
            w.uvar(*chan as u64);
            match event {
                WireEvent::Deliver(d) => {
                    w.u8(0);
                    delivery(w, d);
                }
                WireEvent::Confirm { seq, error: e } => {
                    w.u8(1);
                    w.uvar(*seq);
                    match e {
                        None => w.u8(0),
                        Some(e) => {
                            w.u8(1);
                            error(w, e);
                        }
                    }
                }
                WireEvent::Return { code, text, message } => {
                    w.u8(2);
                    w.uvar(*code as u64);
                    w.str(text);
                    w.message(message);
                }
                WireEvent::Cancelled(tag) => {
                    w.u8(3);
                    w.str(tag);
                }
                WireEvent::Closed(e) => {
                    w.u8(4);
                    error(w, e);
                }
            }
        }
    }
}

fn read_frame(r: &mut Reader) -> R<Frame> {
    Ok(match r.u8()? {
        0 => Frame::Hello { label: string(r)? },
        1 => Frame::OpenChannel { conn: u32v(r)?, chan: u32v(r)?, confirm: r.bool()? },
        2 => Frame::CloseConnection { conn: u32v(r)? },
        3 => Frame::Call { id: u32v(r)?, chan: u32v(r)?, cmd: read_command(r)? },
        4 => Frame::Stats { id: u32v(r)? },
        5 => Frame::Flush { id: u32v(r)? },
        11 => Frame::Peek { id: u32v(r)?, queue: string(r)?, count: u32v(r)? },
        6 => Frame::Resume { id: u32v(r)?, conn: u32v(r)?, chan: u32v(r)?, state: read_channel_state(r)? },
        12 => {
            let (id, conn) = (u32v(r)?, u32v(r)?);
            let n = r.count(1)?;
            let mut commands = Vec::with_capacity(n);
            for _ in 0..n {
                commands.push(read_command(r)?);
            }
            Frame::Restore { id, conn, commands }
        }
        7 => Frame::Resumed,
        13 => Frame::QueueArguments { id: u32v(r)?, queue: string(r)? },
        14 => Frame::DeclareBridge { id: u32v(r)?, config: read_config(r)? },
        15 => Frame::UndeclareBridge { name: string(r)? },
        16 => Frame::BridgeStatus { config: read_config(r)?, status: read_status(r)? },
        17 => Frame::BridgeGone { name: string(r)? },
        8 => Frame::Host { since: r.uvar()? },
        9 => {
            let id = u32v(r)?;
            let result = match r.u8()? {
                0 => Ok(read_answer(r)?),
                1 => Err(read_error(r)?),
                _ => return bad("unknown reply kind", r),
            };
            Frame::Reply { id, result }
        }
        10 => {
            let chan = u32v(r)?;
            let event = match r.u8()? {
                0 => WireEvent::Deliver(read_delivery(r)?),
                1 => {
                    let seq = r.uvar()?;
                    let error = match r.u8()? {
                        0 => None,
                        1 => Some(read_error(r)?),
                        _ => return bad("unknown confirm kind", r),
                    };
                    WireEvent::Confirm { seq, error }
                }
                2 => {
                    let code = r.uvar()?;
                    let code = u16::try_from(code).or_else(|_| bad("number out of range", r))?;
                    WireEvent::Return { code, text: string(r)?, message: Rc::new(r.message()?) }
                }
                3 => WireEvent::Cancelled(r.str()?.into()),
                4 => WireEvent::Closed(read_error(r)?),
                _ => return bad("unknown event", r),
            };
            Frame::Event { chan, event }
        }
        _ => return bad("unknown frame", r),
    })
}

// ---------------------------------------------------------------- posts

/// Builds posts: `section(to)` starts the frames for one receiver, `frame` appends.
#[derive(Default)]
pub struct PostWriter {
    /// Per receiver: its encoded frames and their count.
    sections: Vec<(u64, Writer, u64)>,
}

impl PostWriter {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// Bytes of frames so far.
    pub fn len(&self) -> usize {
        self.sections.iter().map(|(_, w, _)| w.len()).sum()
    }

    pub fn push(&mut self, to: u64, f: &Frame) {
        let i = match self.sections.iter().position(|(t, _, _)| *t == to) {
            Some(i) => i,
            None => {
                self.sections.push((to, Writer::new(), 0));
                self.sections.len() - 1
            }
        };
        let (_, w, n) = &mut self.sections[i];
        frame(w, f);
        *n += 1;
    }

    /// The post's bytes; the writer is empty after. A directory (receiver, frame count,
    /// length of each section) comes first, so that a receiver reads only its sections.
    pub fn finish(&mut self, from: u64) -> Vec<u8> {
        let mut w = Writer::with_capacity(16 + self.sections.iter().map(|(_, s, _)| s.len() + 12).sum::<usize>());
        w.u8(MAGIC);
        w.u8(VERSION);
        w.uvar(from);
        w.uvar(self.sections.len() as u64);
        for (to, s, n) in &self.sections {
            w.uvar(*to);
            w.uvar(*n);
            w.uvar(s.len() as u64);
        }
        let mut out = w.into_bytes();
        for (_, s, _) in self.sections.drain(..) {
            out.extend_from_slice(s.as_bytes());
        }
        out
    }
}

/// A post's header: who sent it, and where the sections for one receiver are.
#[derive(Debug, PartialEq, Eq)]
pub struct Directory {
    pub from: u64,
    /// (frame count, start, end) of each section for the receiver, in order.
    pub sections: Vec<(usize, usize, usize)>,
}

/// Reads a post's directory from its first bytes (`head`, of a post `total` bytes long).
/// `Ok(None)`: `head` is too short to hold it; read more and ask again.
pub fn directory(head: &[u8], total: usize, me: u64) -> Result<Option<Directory>, Dropped> {
    if head.first() != Some(&MAGIC) {
        return Err(Dropped::NotOurs);
    }
    match head.get(1) {
        Some(&VERSION) => {}
        Some(v) => return Err(Dropped::Version(*v)),
        None if head.len() < total => return Ok(None),
        None => return Err(Dropped::Version(0)),
    }
    let mut r = Reader::new(&head[2..]);
    let mut read = || -> R<Directory> {
        let from = r.uvar()?;
        let n = r.uvar()?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let (to, frames, len) = (r.uvar()?, r.uvar()?, r.uvar()?);
            entries.push((to, frames, len));
        }
        let mut start = 2 + r.pos();
        let mut sections = Vec::new();
        for (to, frames, len) in entries {
            // Every frame takes a byte at least; the sections fill the post exactly.
            if frames > len || len > (total - start.min(total)) as u64 {
                return bad("section exceeds post", &r);
            }
            let end = start + len as usize;
            if to == me || to == EVERYONE {
                sections.push((frames as usize, start, end));
            }
            start = end;
        }
        if start != total {
            return bad("trailing bytes", &r);
        }
        Ok(Directory { from, sections })
    };
    match read() {
        Ok(d) => Ok(Some(d)),
        // Cut short by the end of `head`, not of the post: the caller reads more.
        Err(e) if e.what == "unexpected end of record" && head.len() < total => Ok(None),
        Err(e) => Err(Dropped::Corrupt(e)),
    }
}

/// The frames of one section, all or none.
pub fn section(body: &[u8], frames: usize) -> Result<Vec<Frame>, Dropped> {
    let mut s = Reader::new(body);
    let mut out = Vec::with_capacity(frames.min(body.len()));
    for _ in 0..frames {
        out.push(read_frame(&mut s).map_err(Dropped::Corrupt)?);
    }
    s.finish().map_err(Dropped::Corrupt)?;
    Ok(out)
}

/// The sender of a post, and the frames in it for receiver `me` (its own section and
/// the `EVERYONE` one); sections for others are not read. Nothing is returned unless all
/// of those decode.
pub fn decode(bytes: &[u8], me: u64) -> Result<(u64, Vec<Frame>), Dropped> {
    let d = directory(bytes, bytes.len(), me)?
        .ok_or(Dropped::Corrupt(DecodeError { what: "unexpected end of record", at: bytes.len() }))?;
    let mut frames = Vec::new();
    for (n, start, end) in d.sections {
        frames.extend(section(&bytes[start..end], n)?);
    }
    Ok((d.from, frames))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::FieldValue;
    use crate::mesh::bridge::BridgeState;

    fn message() -> Message {
        let mut m = Message::new("logs", "a.b", b"hello".to_vec());
        m.properties.message_id = Some("m-1".into());
        m.properties.headers.insert("n".into(), FieldValue::Int(7));
        m
    }

    fn stats() -> Stats {
        let mut b = crate::core::Broker::new(crate::core::BrokerConfig::default());
        let conn = b.connect();
        let ch = b.open_channel(conn).unwrap();
        let x = ExchangeDeclare { name: "logs".into(), kind: "topic".into(), durable: true, ..Default::default() };
        b.declare_exchange(ch, x, 0).unwrap();
        b.declare_queue(ch, QueueDeclare { name: "q".into(), ..Default::default() }, 0).unwrap();
        b.bind_queue(ch, "q", "logs", "#", Table::new(), 0).unwrap();
        Stats {
            at: 1_700_000_000_000,
            host: 5,
            storage: "memory".into(),
            queues: vec![b.queue_info("q").unwrap()],
            exchanges: b.exchange_infos(),
            bindings: b.binding_infos(),
            contexts: vec![ContextInfo {
                id: 5,
                label: "tab".into(),
                connections: 1,
                channels: 2,
                consumers: 3,
                unacked: 4,
            }],
            rates: [1.5, 2.0, 0.0, 3.0, 0.0, 0.25],
            totals: [1, 2, 3, 4, 5, 6],
            dropped_posts: 2,
            storage_emptied: Some((1_700_000_000_500, Some(3))),
        }
    }

    /// A bridge's declaration as bridgeConfig makes them (a few of its fields).
    fn bridge() -> BridgeConfig {
        let rule: Table = [("queue", "bridge.b.x"), ("to", "/amq/queue/x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), FieldValue::Str(v.into())))
            .chain([("own".to_string(), FieldValue::Bool(true))])
            .collect();
        let table: Table = [
            ("name".to_string(), FieldValue::Str("b".into())),
            ("prefetch".to_string(), FieldValue::Int(100)),
            ("outbound".to_string(), FieldValue::Array(vec![FieldValue::Table(rule)])),
        ]
        .into_iter()
        .collect();
        BridgeConfig { name: "b".into(), table }
    }

    fn every_frame() -> Vec<Frame> {
        let consume = Consume {
            queue: "q".into(),
            consumer_tag: "c1".into(),
            no_ack: false,
            exclusive: true,
            arguments: Table::default(),
        };
        let d = WireDelivery {
            consumer_tag: Some("c1".into()),
            delivery_tag: 9,
            redelivered: true,
            delivery_count: 2,
            queue: "q".into(),
            seq: 41,
            message: Rc::new(message()),
        };
        let cmds = vec![
            Command::DeclareQueue(QueueDeclare {
                name: "q".into(),
                durable: true,
                auto_delete: true,
                ..Default::default()
            }),
            Command::DeleteQueue { name: "q".into(), if_unused: true, if_empty: false },
            Command::PurgeQueue("q".into()),
            Command::BindQueue { queue: "q".into(), source: "x".into(), pattern: "#".into(), args: Table::default() },
            Command::UnbindQueue { queue: "q".into(), source: "x".into(), pattern: "#".into(), args: Table::default() },
            Command::DeclareExchange(ExchangeDeclare {
                name: "x".into(),
                kind: "topic".into(),
                internal: true,
                ..Default::default()
            }),
            Command::DeleteExchange { name: "x".into(), if_unused: true },
            Command::BindExchange {
                destination: "y".into(),
                source: "x".into(),
                pattern: "".into(),
                args: Table::default(),
            },
            Command::UnbindExchange {
                destination: "y".into(),
                source: "x".into(),
                pattern: "".into(),
                args: Table::default(),
            },
            Command::Publish { message: Box::new(message()), mandatory: true },
            Command::Consume(consume.clone()),
            Command::Cancel("c1".into()),
            Command::Get { queue: "q".into(), no_ack: true },
            Command::Ack { tag: 3, multiple: true },
            Command::Nack { tag: 4, multiple: false, requeue: true },
            Command::Reject { tag: 5, requeue: false },
            Command::Prefetch { count: 10, global: true },
            Command::Recover,
            Command::Close,
        ];
        let mut frames: Vec<Frame> =
            cmds.into_iter().enumerate().map(|(i, cmd)| Frame::Call { id: i as u32, chan: 2, cmd }).collect();
        let err = AmqpError::not_found("no queue 'q'");
        frames.extend([
            Frame::Hello { label: "tab /app".into() },
            Frame::Peek { id: 10, queue: "q".into(), count: 5 },
            Frame::OpenChannel { conn: 1, chan: 2, confirm: true },
            Frame::CloseConnection { conn: 1 },
            Frame::Stats { id: 7 },
            Frame::Flush { id: 8 },
            Frame::Resume {
                id: 9,
                conn: 1,
                chan: 2,
                state: ChannelState {
                    next_delivery_tag: 12,
                    confirm_seq: Some(5),
                    consumer_prefetch: 10,
                    channel_prefetch: 0,
                    consumers: vec![consume],
                    in_flight: vec![InFlight {
                        queue: "q".into(),
                        seq: 41,
                        delivery_tag: 9,
                        consumer_tag: Some("c1".into()),
                    }],
                    settled: vec![(
                        InFlight { queue: "q".into(), seq: 40, delivery_tag: 8, consumer_tag: None },
                        false,
                    )],
                },
            },
            Frame::Restore {
                id: 11,
                conn: 1,
                commands: vec![
                    Command::DeclareQueue(QueueDeclare {
                        name: "amq.gen-x".into(),
                        exclusive: true,
                        ..Default::default()
                    }),
                    Command::BindQueue {
                        queue: "amq.gen-x".into(),
                        source: "feed".into(),
                        pattern: "news.#".into(),
                        args: Table::default(),
                    },
                ],
            },
            Frame::Restore { id: 12, conn: 2, commands: vec![] },
            Frame::Resumed,
            Frame::QueueArguments { id: 13, queue: "outbox".into() },
            Frame::DeclareBridge { id: 14, config: bridge() },
            Frame::DeclareBridge { id: 0, config: bridge() },
            Frame::UndeclareBridge { name: "b".into() },
            Frame::BridgeStatus {
                config: bridge(),
                status: BridgeStatus {
                    state: BridgeState::Waiting,
                    error: Some("could not connect".into()),
                    since: 1_700_000_000_000,
                    retry_at: Some(1_700_000_000_500),
                    connects: 2,
                    outbound: [5, 4, 1, 0],
                    inbound: [7, 6, 1],
                },
            },
            Frame::BridgeStatus { config: bridge(), status: BridgeStatus::default() },
            Frame::BridgeGone { name: "b".into() },
            Frame::Host { since: 1_733_000_000_000 },
            Frame::Reply { id: 1, result: Ok(Answer::Done) },
            Frame::Reply { id: 2, result: Err(err.clone()) },
            Frame::Reply {
                id: 3,
                result: Ok(Answer::Queue(QueueDeclareOk { queue: "q".into(), message_count: 3, consumer_count: 1 })),
            },
            Frame::Reply { id: 4, result: Ok(Answer::Count(5)) },
            Frame::Reply { id: 5, result: Ok(Answer::Got(None)) },
            Frame::Reply { id: 6, result: Ok(Answer::Got(Some((d.clone(), 4)))) },
            Frame::Reply { id: 7, result: Ok(Answer::Resumed(vec![("c1".into(), err.clone())])) },
            Frame::Reply { id: 8, result: Ok(Answer::Stats(Box::new(stats()))) },
            Frame::Reply { id: 9, result: Ok(Answer::Peeked(vec![Rc::new(message()), Rc::new(message())])) },
            Frame::Reply { id: 10, result: Ok(Answer::Exchange("logs".into())) },
            Frame::Reply { id: 11, result: Ok(Answer::Tag("amq.ctag-1".into())) },
            Frame::Reply { id: 12, result: Ok(Answer::Arguments(None)) },
            Frame::Reply { id: 13, result: Ok(Answer::Arguments(Some(bridge().table))) },
            Frame::Event { chan: 2, event: WireEvent::Deliver(d) },
            Frame::Event { chan: 2, event: WireEvent::Confirm { seq: 3, error: None } },
            Frame::Event { chan: 2, event: WireEvent::Confirm { seq: 4, error: Some(err.clone()) } },
            Frame::Event {
                chan: 2,
                event: WireEvent::Return { code: 312, text: "NO_ROUTE".into(), message: Rc::new(message()) },
            },
            Frame::Event { chan: 2, event: WireEvent::Cancelled("c1".into()) },
            Frame::Event { chan: 2, event: WireEvent::Closed(err) },
        ]);
        frames
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = every_frame();
        let mut p = PostWriter::default();
        for f in &frames {
            p.push(42, f);
        }
        p.push(EVERYONE, &Frame::Host { since: 5 });
        p.push(43, &Frame::Hello { label: String::new() });
        let bytes = p.finish(7);
        let (from, got) = decode(&bytes, 42).unwrap();
        assert_eq!(from, 7);
        assert_eq!(got.len(), frames.len() + 1, "its own section and everyone's, not 43's");
        // Debug output covers every field: equal text, equal frames.
        for (a, b) in frames.iter().zip(&got) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        let (_, other) = decode(&bytes, 43).unwrap();
        assert_eq!(other.len(), 2);
    }

    #[test]
    fn a_directory_read_from_a_short_head_asks_for_more_and_names_only_our_sections() {
        let mut p = PostWriter::default();
        for i in 0..40 {
            p.push(100 + i, &Frame::Hello { label: format!("context {i}") });
        }
        p.push(7, &Frame::Host { since: 5 });
        let bytes = p.finish(3);
        let mut len = 1;
        let d = loop {
            match directory(&bytes[..len], bytes.len(), 7).unwrap() {
                Some(d) => break d,
                None => len += 1,
            }
        };
        assert!(len < 150, "the directory is at the front: {len} bytes");
        assert_eq!(d.from, 3);
        assert_eq!(d.sections.len(), 1);
        let (n, start, end) = d.sections[0];
        assert!(matches!(section(&bytes[start..end], n).unwrap()[..], [Frame::Host { since: 5 }]));
        assert_eq!(directory(&[MAGIC], 1, 7), Err(Dropped::Version(0)));
    }

    /// The bytes of frame `f`.
    fn frame_bytes(f: &Frame) -> Vec<u8> {
        let mut w = Writer::new();
        frame(&mut w, f);
        w.as_bytes().to_vec()
    }

    #[test]
    fn malformed_bridge_frames_are_refused_whole() {
        let decodes = |bytes: &[u8]| section(bytes, 1);
        // A name bridgeConfig would refuse: empty, or over 100 bytes.
        for name in [String::new(), "n".repeat(101)] {
            let bad = Frame::DeclareBridge { id: 1, config: BridgeConfig { name, ..bridge() } };
            let e = decodes(&frame_bytes(&bad)).unwrap_err();
            assert!(matches!(e, Dropped::Corrupt(DecodeError { what: "bridge name of 0 or over 100 bytes", .. })));
        }
        assert!(decodes(&frame_bytes(&Frame::DeclareBridge { id: 1, config: bridge() })).is_ok());
        // A state past the four there are.
        let status = Frame::BridgeStatus { config: bridge(), status: BridgeStatus::default() };
        let mut bytes = frame_bytes(&status);
        // Its tag, the configuration, then the state (a declaration has an id byte more).
        let at = frame_bytes(&Frame::DeclareBridge { id: 0, config: bridge() }).len() - 1;
        assert_eq!(bytes[at], 0, "the state follows the configuration");
        bytes[at] = 4;
        let e = decodes(&bytes).unwrap_err();
        assert!(matches!(e, Dropped::Corrupt(DecodeError { what: "unknown bridge state", .. })), "{e:?}");
        // A configuration that is no table, and an option flag that is neither 0 nor 1.
        let mut bytes = frame_bytes(&Frame::DeclareBridge { id: 1, config: bridge() });
        bytes.truncate(4);
        bytes.push(0xFF);
        assert!(decodes(&bytes).is_err());
        let mut bytes = frame_bytes(&status);
        let retry = bytes.len() - 9;
        assert_eq!(bytes[retry], 0, "retry_at: None");
        bytes[retry] = 2;
        assert!(decodes(&bytes).is_err());
    }

    #[test]
    fn foreign_and_other_versions_are_told_apart() {
        assert_eq!(decode(b"", 1).unwrap_err(), Dropped::NotOurs);
        assert_eq!(decode(b"{\"x\":1}", 1).unwrap_err(), Dropped::NotOurs);
        assert_eq!(decode(&[MAGIC, 9, 0, 0], 1).unwrap_err(), Dropped::Version(9));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_frame_never_a_panic() {
        let mut p = PostWriter::default();
        for f in &every_frame() {
            p.push(1, f);
        }
        let bytes = p.finish(3);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], 1).is_err(), "a post cut at {n} bytes decodes");
        }
        for i in 0..bytes.len() {
            for bit in [1u8, 0x40, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let _ = decode(&b, 1);
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // What any script of the origin could post, after our header (so that the bytes
        // reach the frame decoder): an error or frames, never a panic, and frames that
        // encode again to a post that decodes to the same.
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn any_bytes_after_the_header_decode_or_fail_cleanly(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            frames in 1u8..4,
            framed in any::<bool>(),
        ) {
            let mut bytes = vec![MAGIC, VERSION];
            if framed {
                // A well-formed section around random frame bytes, so they reach the frame decoder.
                let mut w = Writer::new();
                w.uvar(3);
                w.uvar(1);
                w.uvar(1);
                w.uvar(frames as u64);
                w.bytes(&body);
                bytes.extend_from_slice(w.as_bytes());
            } else {
                bytes.extend_from_slice(&body);
            }
            if let Ok((from, frames)) = decode(&bytes, 1) {
                let mut p = PostWriter::default();
                for f in &frames {
                    p.push(1, f);
                }
                let again = p.finish(from);
                let (from2, frames2) = decode(&again, 1).expect("what decoded encodes to a valid post");
                prop_assert_eq!(from, from2);
                prop_assert_eq!(format!("{frames:?}"), format!("{frames2:?}"));
            }
        }
    }
}
