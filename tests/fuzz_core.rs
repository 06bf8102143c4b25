#![cfg(not(target_arch = "wasm32"))]
//! Fuzz target: the broker core, driven through the host's engine (`host::Engine`) as the
//! browser driver drives it, with random command sequences that are mostly wrong: unknown
//! and reserved and over-long names, arguments of the wrong type or range, unknown exchange
//! kinds, publishes to internal and missing exchanges, bad expirations and `x-delay`s, junk
//! `x-death` headers, unknown and already-settled and zero delivery tags, settles on closed
//! channels, calls on stale and made-up channel references, deletes of queues with consumers
//! and unacked deliveries, limits of 0 or 1, time jumps (forward and back), prefetch
//! changes, `recover`, holds, `resume_channel` with random and self-contradicting in-flight
//! lists, and the store: the engine's transactions committed or failed (storage full, other
//! errors, a newer version's upgrade, after which every write fails so), the timer's
//! wake-ups, bodies paged out and in (reads failing too), and crashes after which a new
//! broker recovers from what was committed and every client re-announces its channels (as
//! `ChannelState`s, sometimes mangled), then settles again what it settled lately, as the
//! mesh does on failover.
//!
//! After every command: nothing panicked; `Broker::check_invariants` holds; a command on a
//! channel that is not open fails with 504 and changes nothing; a failed channel command
//! closes its channel with `ChannelClosed`; a settle succeeds exactly when its tag is
//! outstanding (delivered and not settled, or forgiven by a resume); no message is delivered
//! while it is out unacked, a message delivered before comes back flagged `redelivered`
//! (unless the engine abandoned the fence), delivery tags increase on each channel,
//! deliveries come only from known consumers; confirms come one per publish in confirm mode,
//! numbered without gaps, and the engine gives each once: at once if it was not stored, else
//! only when a transaction started after it ended, a nack if that failed; `resume_channel`
//! fails exactly when its input contradicts itself or no channel can open, and accounts for
//! every tag it was given; each channel's unacked count is what the test saw delivered and
//! not settled; store ops put each message once and remove or return only stored ones;
//! `tick` returns the next deadline, in the future. At the end, closing every connection
//! returns every delivery.
//!
//! Inputs (sequences of up to 150 commands): `FUZZ_CASES` (default 500: about 2 s in a
//! debug build); `scripts/fuzz core` runs many more. See `tests/common/fuzz.rs`.

#[path = "common/fuzz.rs"]
mod fuzz;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use tabbit::core::*;
use tabbit::host::engine::{Engine, Event, Paging, Transaction, WriteOutcome};
use tabbit::store::{finish_restore, restore_message, restore_topology, Collection, Key, Log, MemoryStore};

// ---- the universe ------------------------------------------------------------------------------

const LONG: &str = concat!(
    "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL",
    "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL",
    "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL",
    "LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL",
); // 256 bytes: one over the limit of names

/// Connections and channels per connection the commands address.
const CONNS: usize = 3;
const CHANS: usize = 3;

fn queue_name() -> BoxedStrategy<QName> {
    prop_oneof![
        24 => select(vec!["q0", "q0", "q1", "q1", "q2", "q3", "d0", "d1"]).prop_map(QName::Fixed),
        3 => (0u8..4).prop_map(QName::Generated),
        1 => select(vec!["", "amq.q", LONG, "é😀", "missing"]).prop_map(QName::Fixed),
    ]
    .boxed()
}

fn exchange_name() -> BoxedStrategy<&'static str> {
    prop_oneof![
        24 => select(vec!["x0", "x0", "x1", "x1", "x2", "amq.topic", "amq.fanout", "amq.direct", "amq.headers"]),
        1 => select(vec!["", "x3", "amq.match", "missing", "amq.mine", LONG]),
    ]
    .boxed()
}

/// Names to declare exchanges by: mostly ours, rarely reserved or invalid ones.
fn declared_exchange() -> BoxedStrategy<&'static str> {
    prop_oneof![
        8 => select(vec!["x0", "x1", "x2", "x3"]),
        1 => select(vec!["", "amq.topic", "amq.match", "amq.mine", LONG]),
    ]
    .boxed()
}

fn routing_key() -> BoxedStrategy<&'static str> {
    select(vec!["q0", "q1", "q2", "q3", "d0", "d1", "", "a.b", "a.*", "#", "*.#", "a..b", "x", LONG]).boxed()
}

fn int(i: i64) -> FieldValue {
    FieldValue::Int(i)
}
fn s(v: &str) -> FieldValue {
    FieldValue::Str(v.to_owned())
}

/// Values of the wrong type or range, for any argument or header.
fn junk_value() -> BoxedStrategy<FieldValue> {
    select(vec![
        int(-1),
        int(0),
        int(i64::MAX),
        int(i64::MIN),
        int(u32::MAX as i64 + 1),
        FieldValue::Float(1.5),
        FieldValue::Float(f64::NAN),
        s(""),
        s("x"),
        FieldValue::Bool(true),
        FieldValue::Void,
        FieldValue::Bytes(vec![0xff]),
        FieldValue::Timestamp(5),
        FieldValue::Array(vec![int(1), s("a")]),
        FieldValue::Table(Table::new()),
    ])
    .boxed()
}

/// An argument: mostly a value that key takes, sometimes junk.
fn argument() -> BoxedStrategy<(String, FieldValue)> {
    let good: Vec<(&str, Vec<FieldValue>)> = vec![
        ("x-message-ttl", vec![int(0), int(10), int(100), int(1000)]),
        ("x-expires", vec![int(1), int(100), int(2000)]),
        ("x-max-length", vec![int(0), int(1), int(2), int(3)]),
        ("x-max-length-bytes", vec![int(0), int(5), int(20), int(100)]),
        ("x-overflow", vec![s("drop-head"), s("reject-publish"), s("reject-publish-dlx")]),
        ("x-dead-letter-exchange", vec![s(""), s("x0"), s("x1"), s("amq.fanout"), s("missing")]),
        ("x-dead-letter-routing-key", vec![s("q0"), s("q1"), s("q2"), s("a.b")]),
        ("x-max-priority", vec![int(1), int(3), int(10), int(255)]),
        ("x-single-active-consumer", vec![FieldValue::Bool(true), FieldValue::Bool(false)]),
        ("x-delivery-limit", vec![int(0), int(1), int(2)]),
        ("x-queue-type", vec![s("classic")]),
        ("x-unknown", vec![int(1)]),
        ("alternate-exchange", vec![s("x0"), s("x1"), s("x2"), s("missing")]),
        ("x-match", vec![s("all"), s("any"), s("all-with-x"), s("any-with-x")]),
        ("format", vec![s("pdf"), int(1)]),
        ("x-priority", vec![int(-1), int(0), int(1), int(5)]),
    ];
    (select(good), any::<prop::sample::Index>(), prop::option::weighted(0.06, junk_value()))
        .prop_map(|((key, values), i, junk)| (key.to_owned(), junk.unwrap_or_else(|| i.get(&values).clone())))
        .boxed()
}

fn arguments() -> BoxedStrategy<Table> {
    prop_oneof![2 => Just(Table::new()), 3 => vec(argument(), 1..4).prop_map(|v| v.into_iter().collect())].boxed()
}

/// Message headers: `x-delay`s, `x-death` histories (well-formed or junk), headers to match.
fn headers() -> BoxedStrategy<Table> {
    let death = |count: FieldValue| {
        let t: Table = [("count".into(), count), ("queue".into(), s("q0")), ("reason".into(), s("expired"))].into();
        FieldValue::Array(vec![FieldValue::Table(t)])
    };
    let header = prop_oneof![
        3 => prop_oneof![
                6 => select(vec![int(0), int(50), int(300), int(-5), int(i64::MAX)]),
                1 => select(vec![s("5"), FieldValue::Float(2.0)]),
            ]
            .prop_map(|v| ("x-delay".to_owned(), v)),
        2 => prop_oneof![
            Just(death(int(1))),
            Just(death(s("many"))),
            Just(death(int(i64::MAX))),
            junk_value(),
            Just(FieldValue::Array(vec![int(3)])),
        ]
        .prop_map(|v| ("x-death".to_owned(), v)),
        3 => (
            select(vec!["format", "type", "x-match", "x-other"]),
            prop_oneof![Just(s("pdf")), Just(s("report")), Just(int(1)), junk_value()],
        )
            .prop_map(|(k, v)| (k.to_owned(), v)),
    ];
    prop_oneof![3 => Just(Table::new()), 2 => vec(header, 1..3).prop_map(|v| v.into_iter().collect())].boxed()
}

/// The queues of the starting topology.
const QUEUES: [&str; 6] = ["q0", "q1", "q2", "q3", "d0", "d1"];

/// Durability and arguments of a queue of the starting topology: TTLs, length limits with
/// each overflow mode, dead-letter chains through the default exchange and a fanout,
/// priorities, single active consumer, a delivery limit, an `x-expires`; `d0` and `d1`
/// can page.
fn standard_queue(name: &str) -> Option<(bool, Table)> {
    let (durable, args): (bool, Vec<(&str, FieldValue)>) = match name {
        "q0" => (
            true,
            vec![
                ("x-message-ttl", int(100)),
                ("x-dead-letter-exchange", s("")),
                ("x-dead-letter-routing-key", s("q1")),
                ("x-max-priority", int(3)),
            ],
        ),
        "q1" => (
            false,
            vec![
                ("x-max-length", int(3)),
                ("x-dead-letter-exchange", s("")),
                ("x-dead-letter-routing-key", s("q2")),
                ("x-delivery-limit", int(2)),
            ],
        ),
        "q2" => (
            true,
            vec![
                ("x-max-length", int(2)),
                ("x-overflow", s("reject-publish-dlx")),
                ("x-dead-letter-exchange", s("x1")),
                ("x-single-active-consumer", FieldValue::Bool(true)),
            ],
        ),
        "q3" => (
            false,
            vec![
                ("x-max-length-bytes", int(20)),
                ("x-overflow", s("reject-publish")),
                ("x-message-ttl", int(300)),
                ("x-dead-letter-exchange", s("")),
                ("x-dead-letter-routing-key", s("q0")),
                ("x-expires", int(20_000)),
            ],
        ),
        "d0" => (true, vec![]),
        "d1" => (true, vec![("x-dead-letter-exchange", s("x0"))]),
        _ => return None,
    };
    Some((durable, args.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

#[derive(Clone, Copy, Debug)]
enum QName {
    Fixed(&'static str),
    /// The n-th server-named queue of this sequence (`amq.gen-…`), if there is one.
    Generated(u8),
}

#[derive(Clone, Copy, Debug)]
enum ChanPick {
    /// The k-th channel of the c-th connection, opened (and connected) as needed.
    Slot(u8, u8),
    /// A channel that was closed (by number: it may have been reopened since).
    Stale(u8),
    /// A made-up reference.
    Bogus(u32, u16),
}

fn chan() -> BoxedStrategy<ChanPick> {
    prop_oneof![
        40 => (0..CONNS as u8, 0..CHANS as u8).prop_map(|(c, k)| ChanPick::Slot(c, k)),
        2 => any::<u8>().prop_map(ChanPick::Stale),
        1 => (0u32..6, 0u16..4).prop_map(|(c, n)| ChanPick::Bogus(c, n)),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug)]
enum How {
    Ack,
    Nack { requeue: bool },
    Reject { requeue: bool },
}

#[derive(Clone, Copy, Debug)]
enum TagPick {
    /// An outstanding tag of the channel, by index (the last one when past the end).
    Outstanding(u8),
    /// A tag the channel settled already.
    Settled(u8),
    /// The tag after the channel's last delivery: never given.
    Next,
    Raw(u64),
}

fn tag_pick() -> BoxedStrategy<TagPick> {
    prop_oneof![
        24 => any::<u8>().prop_map(TagPick::Outstanding),
        2 => any::<u8>().prop_map(TagPick::Settled),
        1 => Just(TagPick::Next),
        1 => select(vec![0u64, 1, 2, 3, 7, 1000, u64::MAX]).prop_map(TagPick::Raw),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
struct MsgSpec {
    persistent: bool,
    priority: Option<u8>,
    expiration: Option<&'static str>,
    headers: Table,
    body: usize,
    /// Fill the string properties too (for size limits).
    props: bool,
}

fn msg() -> BoxedStrategy<MsgSpec> {
    (
        prop::bool::weighted(0.6),
        prop::option::weighted(0.3, prop_oneof![0u8..12, Just(255u8)]),
        prop::option::weighted(
            0.3,
            prop_oneof![
                8 => select(vec!["0", "10", "100", "1000", "18446744073709551615"]),
                1 => select(vec!["bad", "-5", "1.5", "+5", "", "99999999999999999999"]),
            ],
        ),
        headers(),
        prop_oneof![6 => 0usize..12, 1 => 12usize..80],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(persistent, priority, expiration, headers, body, props)| MsgSpec {
            persistent,
            priority,
            expiration,
            headers,
            body,
            props,
        })
        .boxed()
}

#[derive(Clone, Debug)]
enum FlightPick {
    /// A message out unacked on some channel (the i-th, by key order).
    Held(u8),
    /// A message some queue may hold: ready, delivered or gone.
    Seq(QName, u64),
}

#[derive(Clone, Copy, Debug)]
enum TagStep {
    /// The previous tag plus this (0: the same tag again).
    Gap(u8),
    Raw(u64),
}

#[derive(Clone, Debug)]
struct ResumeSpec {
    /// `None`: one above the highest tag in flight.
    next_delivery_tag: Option<u64>,
    confirm_seq: Option<u64>,
    consumer_prefetch: u32,
    channel_prefetch: u32,
    /// Queue, tag, noAck, exclusive, `x-priority`.
    consumers: Vec<(QName, &'static str, bool, bool, Option<i64>)>,
    in_flight: Vec<(FlightPick, TagStep, Option<&'static str>)>,
}

/// JavaScript's `Number.MAX_SAFE_INTEGER`: a resume may start its tags and confirms up to it.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// Large tags for resumes: far apart from small ones (a window once took a slot per tag
/// between two deliveries), and about the largest a resume may start from.
const BIG_TAGS: [u64; 8] = [100_000, 1 << 40, MAX_SAFE - 1, MAX_SAFE, MAX_SAFE + 1, 1 << 62, u64::MAX - 1, u64::MAX];

fn resume_spec() -> BoxedStrategy<ResumeSpec> {
    let consumer = (
        queue_name(),
        select(vec!["r0", "r1", "c0", "", LONG]),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.2, -1i64..3),
    );
    let flight = (
        prop_oneof![
            3 => any::<u8>().prop_map(FlightPick::Held),
            3 => (queue_name(), prop_oneof![9 => 0u64..12, 1 => Just(u64::MAX)])
                .prop_map(|(q, s)| FlightPick::Seq(q, s)),
        ],
        prop_oneof![12 => (0u8..4).prop_map(TagStep::Gap), 1 => select(BIG_TAGS.to_vec()).prop_map(TagStep::Raw)],
        prop::option::weighted(0.5, select(vec!["r0", "r1", "c0", "gone"])),
    );
    (
        prop_oneof![
            6 => Just(None),
            1 => select([&[0u64, 1, 2, 5, MAX_SAFE - 1][..], &BIG_TAGS[..]].concat()).prop_map(Some),
        ],
        prop_oneof![
            3 => Just(None),
            3 => (1u64..20).prop_map(Some),
            1 => select(vec![0, MAX_SAFE, MAX_SAFE + 1, u64::MAX - 1, u64::MAX]).prop_map(Some),
        ],
        select(vec![0u32, 0, 1, 2, u32::MAX]),
        select(vec![0u32, 0, 1, 3]),
        vec(consumer, 0..3),
        vec(flight, 0..6),
    )
        .prop_map(|(next_delivery_tag, confirm_seq, consumer_prefetch, channel_prefetch, consumers, in_flight)| {
            ResumeSpec { next_delivery_tag, confirm_seq, consumer_prefetch, channel_prefetch, consumers, in_flight }
        })
        .boxed()
}

/// How a client's re-announcement after a crash goes wrong.
#[derive(Clone, Copy, Debug)]
enum Mangle {
    DropFlight(u8),
    /// The i-th in-flight entry takes the tag of the one before (a repeated tag).
    RepeatTag(u8),
    SeqPlus(u8),
    NextTag(u64),
    ConfirmZero,
    NoConsumerTag(u8),
    ForgetConsumer(u8),
}

fn mangle() -> BoxedStrategy<Mangle> {
    prop_oneof![
        any::<u8>().prop_map(Mangle::DropFlight),
        any::<u8>().prop_map(Mangle::RepeatTag),
        any::<u8>().prop_map(Mangle::SeqPlus),
        select(vec![0u64, 1, u64::MAX]).prop_map(Mangle::NextTag),
        Just(Mangle::ConfirmZero),
        any::<u8>().prop_map(Mangle::NoConsumerTag),
        any::<u8>().prop_map(Mangle::ForgetConsumer),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum Cmd {
    /// `like`: as the queue is, when it exists (a redeclaration that works), or as the
    /// starting topology has it.
    DeclareQueue {
        ch: ChanPick,
        name: QName,
        like: bool,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        args: Table,
    },
    DeleteQueue {
        ch: ChanPick,
        name: QName,
        if_unused: bool,
        if_empty: bool,
    },
    PurgeQueue {
        ch: ChanPick,
        name: QName,
    },
    DeclareExchange {
        ch: ChanPick,
        name: &'static str,
        like: bool,
        kind: &'static str,
        flags: [bool; 4],
        args: Table,
    },
    DeleteExchange {
        ch: ChanPick,
        name: &'static str,
        if_unused: bool,
    },
    BindQueue {
        ch: ChanPick,
        queue: QName,
        exchange: &'static str,
        key: &'static str,
        args: Table,
        unbind: bool,
    },
    BindExchange {
        ch: ChanPick,
        dest: &'static str,
        source: &'static str,
        key: &'static str,
        args: Table,
        unbind: bool,
    },
    Publish {
        ch: ChanPick,
        exchange: &'static str,
        key: &'static str,
        msg: MsgSpec,
        mandatory: bool,
    },
    /// `ensure`: declare the queue first (as it is, or as the topology has it), as apps do.
    Consume {
        ch: ChanPick,
        ensure: bool,
        queue: QName,
        tag: &'static str,
        no_ack: bool,
        exclusive: bool,
        args: Table,
    },
    Cancel {
        ch: ChanPick,
        which: u8,
        tag: Option<&'static str>,
    },
    Get {
        ch: ChanPick,
        ensure: bool,
        queue: QName,
        no_ack: bool,
    },
    Settle {
        ch: ChanPick,
        how: How,
        tag: TagPick,
        multiple: bool,
    },
    Recover {
        ch: ChanPick,
    },
    Prefetch {
        ch: ChanPick,
        count: u32,
        global: bool,
    },
    ConfirmSelect {
        ch: ChanPick,
    },
    Close {
        ch: ChanPick,
    },
    /// `open_channel` on a connection that was closed.
    OpenOnClosed,
    Disconnect {
        conn: u8,
    },
    Tick {
        ms: u64,
    },
    /// The clock goes back (as `Date.now()` may) with no tick.
    ClockBack {
        ms: u64,
    },
    Hold,
    Release,
    Resume {
        conn: u8,
        slot: u8,
        spec: ResumeSpec,
    },
    /// The host takes the transaction the engine has to write (this turn's writes as one
    /// batch, or the fence's deletion) and starts writing it.
    StartWrite,
    /// `flush()`: delivery horizons go down to what was handed out.
    Flush,
    /// The write in flight ends: committed (then bodies page out), or failed (withdrawn).
    EndWrite {
        outcome: WriteOutcome,
    },
    /// The host's timer fires at the engine's next wake-up (the clock runs to it).
    Wake,
    /// The host reads back the bodies the engine wants paged in, or the read fails.
    PageIn {
        fail: bool,
    },
    /// `redeclare`: once resumed, the apps declare their (transient) topology again.
    Crash {
        commit_first: bool,
        redeclare: bool,
        mangles: Vec<(u8, Mangle)>,
    },
    Inspect {
        queue: QName,
        max: usize,
    },
}

fn b(p: f64) -> prop::bool::Weighted {
    prop::bool::weighted(p)
}

/// Binding or consumer arguments: mostly none.
fn few_arguments() -> BoxedStrategy<Table> {
    prop_oneof![3 => Just(Table::new()), 1 => arguments()].boxed()
}

fn declare_queue() -> impl Strategy<Value = Cmd> {
    (chan(), queue_name(), b(0.75), [b(0.1), b(0.5), b(0.05), b(0.1)], arguments()).prop_map(
        |(ch, name, like, [passive, durable, exclusive, auto_delete], args)| Cmd::DeclareQueue {
            ch,
            name,
            like,
            passive,
            durable,
            exclusive,
            auto_delete,
            args,
        },
    )
}

fn declare_exchange() -> impl Strategy<Value = Cmd> {
    let kind = prop_oneof![
        12 => select(vec!["direct", "fanout", "topic", "headers"]),
        1 => select(vec!["x-delayed-message", ""]),
    ];
    (chan(), declared_exchange(), b(0.75), kind, [b(0.1), b(0.4), b(0.15), b(0.15)], arguments())
        .prop_map(|(ch, name, like, kind, flags, args)| Cmd::DeclareExchange { ch, name, like, kind, flags, args })
}

fn bind_queue() -> impl Strategy<Value = Cmd> {
    (chan(), queue_name(), exchange_name(), routing_key(), few_arguments(), b(0.2))
        .prop_map(|(ch, queue, exchange, key, args, unbind)| Cmd::BindQueue { ch, queue, exchange, key, args, unbind })
}

fn bind_exchange() -> impl Strategy<Value = Cmd> {
    (chan(), exchange_name(), exchange_name(), routing_key(), few_arguments(), b(0.25))
        .prop_map(|(ch, dest, source, key, args, unbind)| Cmd::BindExchange { ch, dest, source, key, args, unbind })
}

fn publish() -> impl Strategy<Value = Cmd> {
    (chan(), prop_oneof![3 => Just(""), 4 => exchange_name()], routing_key(), msg(), b(0.3))
        .prop_map(|(ch, exchange, key, msg, mandatory)| Cmd::Publish { ch, exchange, key, msg, mandatory })
}

fn consume() -> impl Strategy<Value = Cmd> {
    let tag = select(vec!["", "", "c0", "c1", LONG]);
    (chan(), b(0.5), queue_name(), tag, b(0.25), b(0.1), few_arguments()).prop_map(
        |(ch, ensure, queue, tag, no_ack, exclusive, args)| Cmd::Consume {
            ch,
            ensure,
            queue,
            tag,
            no_ack,
            exclusive,
            args,
        },
    )
}

fn settle() -> impl Strategy<Value = Cmd> {
    let how = prop_oneof![
        4 => Just(How::Ack),
        2 => any::<bool>().prop_map(|requeue| How::Nack { requeue }),
        1 => any::<bool>().prop_map(|requeue| How::Reject { requeue }),
    ];
    (chan(), how, tag_pick(), b(0.25)).prop_map(|(ch, how, tag, multiple)| Cmd::Settle { ch, how, tag, multiple })
}

fn tick() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        8 => select(vec![0u64, 1, 10, 50, 100, 300, 1000, 2500]),
        1 => select(vec![1u64 << 32, u64::MAX]),
    ]
    .prop_map(|ms| Cmd::Tick { ms })
}

/// Mostly committed; storage full, other failures, and rarely a newer version's upgrade.
fn write_outcome() -> impl Strategy<Value = WriteOutcome> {
    prop_oneof![
        85 => Just(WriteOutcome::Committed),
        9 => Just(WriteOutcome::QuotaExceeded("QuotaExceededError".into())),
        4 => Just(WriteOutcome::Failed("UnknownError".into())),
        2 => Just(WriteOutcome::Upgraded("VersionError".into())),
    ]
}

fn crash() -> impl Strategy<Value = Cmd> {
    (b(0.7), b(0.8), vec((0u8..16, mangle()), 0..3)).prop_map(|(commit_first, redeclare, mangles)| Cmd::Crash {
        commit_first,
        redeclare,
        mangles,
    })
}

fn cmd() -> BoxedStrategy<Cmd> {
    let cancel_tag = prop::option::weighted(0.2, select(vec!["", "c0", "none", LONG]));
    prop_oneof![
        5 => declare_queue(),
        1 => (chan(), queue_name(), b(0.3), b(0.3))
            .prop_map(|(ch, name, if_unused, if_empty)| Cmd::DeleteQueue { ch, name, if_unused, if_empty }),
        1 => (chan(), queue_name()).prop_map(|(ch, name)| Cmd::PurgeQueue { ch, name }),
        3 => declare_exchange(),
        1 => (chan(), exchange_name(), b(0.3))
            .prop_map(|(ch, name, if_unused)| Cmd::DeleteExchange { ch, name, if_unused }),
        5 => bind_queue(),
        2 => bind_exchange(),
        16 => publish(),
        5 => consume(),
        2 => (chan(), any::<u8>(), cancel_tag).prop_map(|(ch, which, tag)| Cmd::Cancel { ch, which, tag }),
        4 => (chan(), b(0.5), queue_name(), b(0.3))
            .prop_map(|(ch, ensure, queue, no_ack)| Cmd::Get { ch, ensure, queue, no_ack }),
        10 => settle(),
        1 => chan().prop_map(|ch| Cmd::Recover { ch }),
        2 => (chan(), select(vec![0u32, 1, 2, 5, u32::MAX]), b(0.3))
            .prop_map(|(ch, count, global)| Cmd::Prefetch { ch, count, global }),
        2 => chan().prop_map(|ch| Cmd::ConfirmSelect { ch }),
        1 => chan().prop_map(|ch| Cmd::Close { ch }),
        1 => Just(Cmd::OpenOnClosed),
        1 => (0..CONNS as u8).prop_map(|conn| Cmd::Disconnect { conn }),
        5 => tick(),
        1 => select(vec![1u64, 100, 5000]).prop_map(|ms| Cmd::ClockBack { ms }),
        1 => Just(Cmd::Hold),
        1 => Just(Cmd::Release),
        2 => (0..CONNS as u8, 0..CHANS as u8, resume_spec())
            .prop_map(|(conn, slot, spec)| Cmd::Resume { conn, slot, spec }),
        4 => Just(Cmd::StartWrite),
        1 => Just(Cmd::Flush),
        4 => write_outcome().prop_map(|outcome| Cmd::EndWrite { outcome }),
        1 => Just(Cmd::Wake),
        4 => b(0.1).prop_map(|fail| Cmd::PageIn { fail }),
        1 => crash(),
        1 => (queue_name(), 0usize..4).prop_map(|(queue, max)| Cmd::Inspect { queue, max }),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
struct Setup {
    /// Default limits, or small ones that the commands reach.
    limits: Limits,
    seed: u64,
    start: u64,
    /// Declare a topology first (exchanges and queues with assorted arguments).
    topology: bool,
}

fn setup() -> BoxedStrategy<Setup> {
    let small = (0usize..60, 0usize..5, 0usize..3, 0usize..6, 0usize..4, 1usize..4, proptest::option::of(1u64..4))
        .prop_map(|(m, q, x, b, c, ch, ql)| Limits {
            max_message_bytes: m,
            max_queues: q,
            max_exchanges: x,
            max_bindings: b,
            max_consumers: c,
            max_channels: ch,
            max_queue_length: ql,
        });
    (
        prop_oneof![6 => Just(Limits::default()), 1 => small],
        any::<u64>(),
        prop_oneof![6 => Just(1_700_000_000_000u64), 1 => Just(0u64), 1 => Just(u64::MAX - 5_000)],
        prop::bool::weighted(0.9),
    )
        .prop_map(|(limits, seed, start, topology)| Setup { limits, seed, start, topology })
        .boxed()
}

// ---- the model: what the test has seen ------------------------------------------------------

/// A delivery a channel holds: what names its message, and whether the broker holds it
/// too (`queue` is `None` for a tag a resume forgave: settling it works, once).
#[derive(Clone, Debug)]
struct Out {
    queue: Option<QueueId>,
    name: Rc<str>,
    seq: u64,
    consumer: Option<Rc<str>>,
}

#[derive(Clone, Debug)]
struct Spec {
    queue: String,
    no_ack: bool,
    exclusive: bool,
    args: Table,
}

/// A channel as its client knows it.
#[derive(Clone, Debug, Default)]
struct Chan {
    window: BTreeMap<u64, Out>,
    last_tag: u64,
    confirm_next: Option<u64>,
    consumer_prefetch: u32,
    channel_prefetch: u32,
    consumers: BTreeMap<Rc<str>, Spec>,
    /// Tags settled (the last few), for double settles.
    settled: Vec<u64>,
    /// Settled since the last commit: (delivery, ack), as the mesh re-announces them.
    recently: Vec<(InFlight, bool)>,
}

struct World {
    /// The host's engine: the broker, its log, confirms held for commits, the fence.
    e: Engine,
    limits: Limits,
    now: u64,
    conns: [Option<ConnId>; CONNS],
    slots: [[Option<ChannelRef>; CHANS]; CONNS],
    stale: Vec<ChannelRef>,
    closed_conns: Vec<ConnId>,
    model: HashMap<ChannelRef, Chan>,
    /// Messages out unacked: by (queue, seq), the channel and tag.
    held: HashMap<(QueueId, u64), (ChannelRef, u64)>,
    /// Messages delivered before (since the last crash).
    seen: HashSet<(QueueId, u64)>,
    /// Messages the store ops put and did not remove.
    stored: HashSet<(Rc<str>, u64)>,
    /// Messages the store ops put (removed or not), since the last crash.
    put: HashSet<(Rc<str>, u64)>,
    /// Stored messages handed out (to a consumer or `get`), since the last crash: after a
    /// crash, those that come back must come flagged `redelivered`.
    handed: HashSet<(Rc<str>, u64)>,
    generated: Vec<String>,
    disk: MemoryStore,
    /// The transaction the test took from the engine and has not ended.
    writing: Option<Transaction>,
    /// Transactions taken since the start.
    started: u64,
    /// The last transaction that ended: its number among those started, and whether it committed.
    ended: Option<(u64, bool)>,
    /// Durable confirms the engine holds, with the number of transactions started before
    /// each: it may settle only with the end of one started after.
    held_confirms: HashMap<(ChannelRef, u64), u64>,
    /// Confirms the engine gives at once.
    immediate: HashSet<(ChannelRef, u64)>,
    /// A newer version upgraded the database: every write fails so, until the next crash.
    upgraded: bool,
    seed: u64,
    crashes: u64,
}

/// Paging as the host pages, with small numbers that the commands reach.
const PAGING: Paging = Paging { keep_loaded: 2, window: 4 };

/// An engine over `b` as the host makes one, keeping the effects for the checks.
fn engine(b: Broker, log: Log) -> Engine {
    let mut e = Engine::new(b, Some(log), Some(PAGING));
    e.keep_effects();
    e
}

type Check = Result<(), TestCaseError>;

/// A channel as its client re-announces it after a crash: the channel it was, the resume,
/// and the deliveries it settled lately (to settle again).
type Announced = (ChannelRef, Resume, Vec<(InFlight, bool)>);

fn fail<T>(why: impl Into<String>) -> Result<T, TestCaseError> {
    Err(TestCaseError::fail(why.into()))
}

impl World {
    fn new(setup: &Setup) -> Result<World, TestCaseError> {
        let b = Broker::new(BrokerConfig { seed: setup.seed, limits: setup.limits.clone(), delivery_horizon: true });
        let mut w = World {
            e: engine(b, Log::new()),
            limits: setup.limits.clone(),
            now: setup.start,
            conns: [None; CONNS],
            slots: [[None; CHANS]; CONNS],
            stale: Vec::new(),
            closed_conns: Vec::new(),
            model: HashMap::new(),
            held: HashMap::new(),
            seen: HashSet::new(),
            stored: HashSet::new(),
            put: HashSet::new(),
            handed: HashSet::new(),
            generated: Vec::new(),
            disk: MemoryStore::new(),
            writing: None,
            started: 0,
            ended: None,
            held_confirms: HashMap::new(),
            immediate: HashSet::new(),
            upgraded: false,
            seed: setup.seed,
            crashes: 0,
        };
        if setup.topology {
            w.topology()?;
            w.commit();
        }
        Ok(w)
    }

    /// The starting topology, declared by a connection of its own (as an app would).
    fn topology(&mut self) -> Check {
        let c = self.e.core_mut().connect();
        let mut ch = ChannelRef { conn: c, channel: 0 };
        for i in 0..14 {
            // A failure closes the channel: the next declaration opens another.
            if !self.e.core().has_channel(ch) {
                ch = self.e.core_mut().open_channel(c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let now = self.now;
            let _ = match i {
                0..=2 => {
                    let (name, kind, durable) =
                        [("x0", "topic", true), ("x1", "fanout", false), ("x2", "headers", true)][i];
                    let arguments =
                        if name == "x1" { [("alternate-exchange".to_owned(), s("x0"))].into() } else { Table::new() };
                    let d = ExchangeDeclare {
                        name: name.into(),
                        kind: kind.into(),
                        durable,
                        arguments,
                        ..Default::default()
                    };
                    self.e.core_mut().declare_exchange(ch, d, now)
                }
                3..=8 => {
                    let name = QUEUES[i - 3];
                    let (durable, arguments) = standard_queue(name).expect("a standard queue");
                    let d = QueueDeclare { name: name.into(), durable, arguments, ..Default::default() };
                    self.e.core_mut().declare_queue(ch, d, now).map(drop)
                }
                _ => {
                    let (q, x, k) =
                        [("q0", "x0", "a.*"), ("d0", "x0", "#"), ("q1", "x1", ""), ("d1", "x1", ""), ("q3", "x2", "")]
                            [i - 9];
                    self.e.core_mut().bind_queue(ch, q, x, k, Table::new(), now)
                }
            };
        }
        self.e.core_mut().disconnect(c, self.now);
        self.effects(None)?;
        Ok(())
    }

    fn queue(&self, q: QName) -> String {
        match q {
            QName::Fixed(n) => n.to_owned(),
            QName::Generated(i) => match self.generated.len() {
                0 => "q0".to_owned(),
                n => self.generated[i as usize % n].clone(),
            },
        }
    }

    fn conn(&mut self, c: usize) -> ConnId {
        *self.conns[c].get_or_insert_with(|| self.e.core_mut().connect())
    }

    /// The channel a command addresses; opens it (as a client would) when its slot has
    /// none open. Returns whether it is open.
    fn channel(&mut self, pick: ChanPick) -> (ChannelRef, bool) {
        let ch = match pick {
            ChanPick::Slot(c, k) => {
                let (c, k) = (c as usize, k as usize);
                match self.slots[c][k] {
                    Some(ch) if self.e.core().has_channel(ch) => ch,
                    _ => {
                        let conn = self.conn(c);
                        match self.e.core_mut().open_channel(conn) {
                            Ok(ch) => {
                                self.model.insert(ch, Chan::default());
                                self.slots[c][k] = Some(ch);
                                ch
                            }
                            // At the channel limit: the command goes to a channel that is not open.
                            Err(_) => ChannelRef { conn, channel: 0 },
                        }
                    }
                }
            }
            ChanPick::Stale(i) if !self.stale.is_empty() => self.stale[i as usize % self.stale.len()],
            ChanPick::Stale(_) => ChannelRef { conn: ConnId(999), channel: 1 },
            ChanPick::Bogus(c, n) => ChannelRef { conn: ConnId(c), channel: n },
        };
        (ch, self.e.core().has_channel(ch))
    }

    fn message(&self, exchange: &str, key: &str, m: &MsgSpec) -> Message {
        let mut msg = Message::new(exchange, key, vec![b'b'; m.body]);
        let p = &mut msg.properties;
        p.persistent = m.persistent;
        p.priority = m.priority;
        p.expiration = m.expiration.map(str::to_owned);
        p.headers = m.headers.clone();
        if m.props {
            for v in [&mut p.content_type, &mut p.correlation_id, &mut p.reply_to, &mut p.message_id, &mut p.app_id] {
                *v = Some("property".to_owned());
            }
            p.timestamp = Some(1);
        }
        msg
    }

    // ---- effects and the model ----

    /// Takes a message out: it must not be out already, and comes flagged if seen before.
    fn delivered(&mut self, d: &Delivery, needs_ack: bool) -> Check {
        if !self.e.core().has_channel(d.channel) {
            return Ok(()); // its channel closed in this command: the message went back
        }
        let key = (d.queue, d.seq);
        if let Some(at) = self.held.get(&key) {
            return fail(format!("message {key:?} delivered on {:?} while out unacked on {at:?}", d.channel));
        }
        if self.seen.contains(&key) && !d.redelivered {
            return fail(format!("message {key:?} delivered again without redelivered"));
        }
        self.seen.insert(key);
        count(Stat::Deliveries, 1);
        let name = self.e.core().queue_name(d.queue).unwrap_or_else(|| "gone".into());
        if self.put.contains(&(name.clone(), d.seq)) {
            self.handed.insert((name.clone(), d.seq));
        }
        let Some(c) = self.model.get_mut(&d.channel) else {
            return fail(format!("delivery to unknown {:?}", d.channel));
        };
        if d.delivery_tag <= c.last_tag {
            return fail(format!("delivery tag {} after {} on {:?}", d.delivery_tag, c.last_tag, d.channel));
        }
        c.last_tag = d.delivery_tag;
        if needs_ack {
            let out = Out { queue: Some(d.queue), name, seq: d.seq, consumer: d.consumer_tag.clone() };
            c.window.insert(d.delivery_tag, out);
            self.held.insert(key, (d.channel, d.delivery_tag));
        }
        Ok(())
    }

    /// Forgets settled (or returned) deliveries of a channel.
    fn release(&mut self, ch: ChannelRef, tags: &[u64]) {
        let Some(c) = self.model.get_mut(&ch) else { return };
        for t in tags {
            if let Some(out) = c.window.remove(t) {
                if let Some(q) = out.queue {
                    self.held.remove(&(q, out.seq));
                }
                c.settled.push(*t);
            }
        }
        let n = c.settled.len();
        if n > 8 {
            c.settled.drain(..n - 8);
        }
    }

    /// Channels that closed: their deliveries went back, their consumers are gone.
    fn forget_closed(&mut self) {
        let closed: Vec<ChannelRef> = self.model.keys().copied().filter(|ch| !self.e.core().has_channel(*ch)).collect();
        for ch in closed {
            let tags: Vec<u64> = self.model[&ch].window.keys().copied().collect();
            self.release(ch, &tags);
            self.model.remove(&ch);
            self.stale.push(ch);
        }
        if self.stale.len() > 16 {
            self.stale.drain(..self.stale.len() - 16);
        }
    }

    /// Checks one command's effects; returns its confirms and returns (by channel).
    fn effects(&mut self, publisher: Option<ChannelRef>) -> Result<(Vec<Confirm>, usize), TestCaseError> {
        self.forget_closed();
        self.e.pump(self.now);
        let effects: Vec<Effect> = self.e.take_effects();
        let (mut confirms, mut returns) = (Vec::new(), 0);
        for e in effects {
            match e {
                Effect::Deliver(d) => {
                    let Some(tag) = d.consumer_tag.clone() else { return fail("a pushed delivery without consumer") };
                    let spec = self.model.get(&d.channel).map(|c| c.consumers.get(&tag).map(|s| s.no_ack));
                    match spec {
                        None => {} // to a channel closed since: checked below (it is not open)
                        Some(None) => return fail(format!("delivery from unknown consumer {tag} on {:?}", d.channel)),
                        Some(Some(no_ack)) => self.delivered(&d, !no_ack)?,
                    }
                    if spec.is_none() && self.e.core().has_channel(d.channel) {
                        return fail(format!("delivery to an open channel the test never saw: {:?}", d.channel));
                    }
                }
                Effect::Confirm(c) => {
                    count(Stat::Confirms, 1);
                    if c.ack && c.durable {
                        self.held_confirms.insert((c.channel, c.seq), self.started);
                    } else {
                        self.immediate.insert((c.channel, c.seq));
                    }
                    confirms.push(c)
                }
                Effect::Return(r) => {
                    if Some(r.channel) != publisher {
                        return fail(format!("a return to {:?}, which did not publish", r.channel));
                    }
                    returns += 1;
                    count(Stat::Returns, 1);
                }
                Effect::ConsumerCancelled { channel, consumer_tag } => {
                    if let Some(c) = self.model.get_mut(&channel) {
                        c.consumers.remove(&consumer_tag);
                    }
                }
                Effect::ChannelClosed { channel, .. } => {
                    count(Stat::ChannelErrors, 1);
                    if self.e.core().has_channel(channel) {
                        return fail(format!("{channel:?} reported closed but open"));
                    }
                }
                Effect::Store(op) => self.store(op)?,
            }
        }
        self.events()?;
        Ok((confirms, returns))
    }

    /// The engine's events: the confirms of the effects above, those not stored at once,
    /// a stored one only once a transaction started after it ended (a nack if it failed).
    /// The rest are the effects, checked above.
    fn events(&mut self) -> Check {
        while self.e.poll_done().is_some() {}
        while let Some(event) = self.e.poll_event() {
            let Event::Confirm { channel, seq, result } = event else { continue };
            if self.immediate.remove(&(channel, seq)) {
                continue;
            }
            let Some(before) = self.held_confirms.remove(&(channel, seq)) else {
                return fail(format!("confirm {seq} on {channel:?} given twice, or never published"));
            };
            match self.ended {
                Some((n, ok)) if n > before && ok == result.is_ok() => {}
                ended => {
                    return fail(format!(
                        "stored confirm {seq} on {channel:?} ({result:?}) after {before} transactions started, \
                         the last ended {ended:?}"
                    ))
                }
            }
        }
        Ok(())
    }

    fn store(&mut self, op: StoreOp) -> Check {
        count(Stat::StoreOps, 1);
        match op {
            StoreOp::PutMessage { queue, seq, .. } if !self.stored.insert((queue.clone(), seq)) => {
                fail(format!("message {queue}/{seq} stored twice"))
            }
            StoreOp::PutMessage { queue, seq, .. } => {
                self.put.insert((queue, seq));
                Ok(())
            }
            StoreOp::RemoveMessage { queue, seq } if !self.stored.remove(&(queue.clone(), seq)) => {
                fail(format!("removing {queue}/{seq}, which is not stored"))
            }
            StoreOp::ReturnMessage { queue, seq, .. } | StoreOp::Delivered { queue, seq }
                if !self.stored.contains(&(queue.clone(), seq)) =>
            {
                fail(format!("marking {queue}/{seq}, which is not stored"))
            }
            StoreOp::DeleteQueue { name } => {
                self.stored.retain(|(q, _)| *q != name);
                self.put.retain(|(q, _)| *q != name);
                self.handed.retain(|(q, _)| *q != name);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// After every command: the broker's invariants, and the model's view of each channel.
    fn after(&mut self) -> Check {
        if let Err(e) = self.e.core().check_invariants() {
            return fail(format!("invariant broken: {e}"));
        }
        let mut out = 0;
        for (ch, c) in &self.model {
            let held = c.window.values().filter(|o| o.queue.is_some()).count();
            out += held;
            if self.e.core().channel_unacked(*ch) != Some(held) {
                return fail(format!(
                    "{ch:?}: broker has {:?} unacked, the test saw {held}",
                    self.e.core().channel_unacked(*ch)
                ));
            }
        }
        if out != self.held.len() {
            return fail(format!("{out} deliveries in windows, {} held", self.held.len()));
        }
        Ok(())
    }

    /// A channel command's outcome: on a channel that is not open it fails with 504 and
    /// changes nothing; a failure closes an open channel.
    fn outcome<T>(&mut self, ch: ChannelRef, was_open: bool, r: &Result<T>) -> Check {
        match r {
            Err(e) if !was_open => {
                count(Stat::CallsOnClosed, 1);
                if e.code != ReplyCode::ChannelError {
                    return fail(format!("a call on a channel that is not open failed with {e}"));
                }
                if self.e.core_mut().drain_effects().next().is_some() {
                    return fail("a call on a channel that is not open had effects");
                }
            }
            Ok(_) if !was_open => return fail(format!("a call on {ch:?}, which is not open, worked")),
            Err(e) => {
                if self.e.core().has_channel(ch) {
                    return fail(format!("a failed command ({e}) left its channel open"));
                }
            }
            Ok(_) => {}
        }
        Ok(())
    }

    /// Ends the transaction in flight committed, then writes what the engine has to
    /// write, committed (nothing during the wait after a failure, as a host).
    fn commit(&mut self) {
        if let Some(t) = self.writing.take() {
            self.end_write(t, WriteOutcome::Committed);
        }
        // A batch, or the fence's deletion and nothing after it.
        if let Some(t) = self.start_write() {
            self.end_write(t, WriteOutcome::Committed);
        }
    }

    fn start_write(&mut self) -> Option<Transaction> {
        let t = self.e.poll_write(self.now)?;
        self.started += 1;
        Some(t)
    }

    /// A transaction ends, as the host's driver ends it: committed (then the store holds
    /// its writes and the engine pages bodies out), or failed (the engine withdraws its
    /// messages, and if a first delivery waits for a horizon, the fence's deletion is the
    /// next transaction). Once a newer version upgraded the database, every write fails so.
    fn end_write(&mut self, t: Transaction, outcome: WriteOutcome) {
        let outcome = if self.upgraded { WriteOutcome::Upgraded("VersionError".into()) } else { outcome };
        let ok = outcome == WriteOutcome::Committed;
        if ok {
            self.disk.write(&t.writes);
            count(Stat::Commits, 1);
            count(
                Stat::Unfenced,
                t.writes.iter().any(|w| w.value.is_none() && w.collection == Collection::Meta) as u64,
            );
            self.model.values_mut().for_each(|c| c.recently.clear());
        } else {
            count(Stat::FailedWrites, 1);
        }
        if matches!(outcome, WriteOutcome::Upgraded(_)) {
            count(Stat::Upgraded, 1);
            self.upgraded = true;
        }
        self.ended = Some((self.started, ok));
        self.e.write_done(t.id, outcome, self.now);
    }

    // ---- commands ----

    fn run(&mut self, cmd: &Cmd) -> Check {
        let now = self.now;
        let mut publisher = None;
        let mut confirm_expected: Option<(ChannelRef, u64)> = None;
        match cmd {
            Cmd::DeclareQueue { ch, name, like, passive, durable, exclusive, auto_delete, args } => {
                let (ch, open) = self.channel(*ch);
                let mut d = QueueDeclare {
                    name: self.queue(*name),
                    passive: *passive,
                    durable: *durable,
                    exclusive: *exclusive,
                    auto_delete: *auto_delete,
                    arguments: args.clone(),
                };
                if *like {
                    if let Some(q) = self.e.core().queue_info(&d.name) {
                        (d.durable, d.exclusive, d.auto_delete, d.arguments) =
                            (q.durable, q.exclusive, q.auto_delete, q.arguments);
                    } else if let Some((durable, arguments)) = standard_queue(&d.name) {
                        (d.durable, d.exclusive, d.auto_delete, d.arguments) = (durable, false, false, arguments);
                    }
                }
                let asked = d.name.clone();
                let r = self.e.core_mut().declare_queue(ch, d, now);
                self.outcome(ch, open, &r)?;
                if let Ok(ok) = r {
                    if asked.is_empty() && !*passive {
                        self.generated.push(ok.queue.to_string());
                    } else if *ok.queue != *asked {
                        return fail(format!("declared '{asked}', got '{}'", ok.queue));
                    }
                }
            }
            Cmd::DeleteQueue { ch, name, if_unused, if_empty } => {
                let (ch, open) = self.channel(*ch);
                let name = self.queue(*name);
                let r = self.e.core_mut().delete_queue(ch, &name, *if_unused, *if_empty, now);
                self.outcome(ch, open, &r)?;
            }
            Cmd::PurgeQueue { ch, name } => {
                let (ch, open) = self.channel(*ch);
                let name = self.queue(*name);
                let r = self.e.core_mut().purge_queue(ch, &name, now);
                self.outcome(ch, open, &r)?;
            }
            Cmd::DeclareExchange { ch, name, like, kind, flags, args } => {
                let (ch, open) = self.channel(*ch);
                let mut d = ExchangeDeclare {
                    name: (*name).into(),
                    kind: (*kind).into(),
                    passive: flags[0],
                    durable: flags[1],
                    auto_delete: flags[2],
                    internal: flags[3],
                    arguments: args.clone(),
                };
                if let Some(x) =
                    self.e.core().exchange_infos().into_iter().find(|x| *x.name == **name).filter(|_| *like)
                {
                    (d.kind, d.durable, d.auto_delete, d.internal, d.arguments) =
                        (x.kind.into(), x.durable, x.auto_delete, x.internal, x.arguments);
                }
                let r = self.e.core_mut().declare_exchange(ch, d, now);
                self.outcome(ch, open, &r)?;
            }
            Cmd::DeleteExchange { ch, name, if_unused } => {
                let (ch, open) = self.channel(*ch);
                let r = self.e.core_mut().delete_exchange(ch, name, *if_unused, now);
                self.outcome(ch, open, &r)?;
            }
            Cmd::BindQueue { ch, queue, exchange, key, args, unbind } => {
                let (ch, open) = self.channel(*ch);
                let q = self.queue(*queue);
                let r = if *unbind {
                    self.e.core_mut().unbind_queue(ch, &q, exchange, key, args.clone(), now)
                } else {
                    self.e.core_mut().bind_queue(ch, &q, exchange, key, args.clone(), now)
                };
                self.outcome(ch, open, &r)?;
            }
            Cmd::BindExchange { ch, dest, source, key, args, unbind } => {
                let (ch, open) = self.channel(*ch);
                let r = if *unbind {
                    self.e.core_mut().unbind_exchange(ch, dest, source, key, args.clone(), now)
                } else {
                    self.e.core_mut().bind_exchange(ch, dest, source, key, args.clone(), now)
                };
                self.outcome(ch, open, &r)?;
            }
            Cmd::Publish { ch, exchange, key, msg, mandatory } => {
                let (ch, open) = self.channel(*ch);
                let m = self.message(exchange, key, msg);
                let r = self.e.core_mut().publish(ch, m, *mandatory, now);
                self.outcome(ch, open, &r)?;
                publisher = Some(ch).filter(|_| *mandatory);
                if r.is_ok() {
                    if let Some(n) = self.model.get(&ch).and_then(|c| c.confirm_next) {
                        confirm_expected = Some((ch, n));
                    }
                }
            }
            Cmd::Consume { ch, ensure, queue, tag, no_ack, exclusive, args } => {
                let (ch, open) = self.channel(*ch);
                let open = if *ensure { self.ensure_queue(ch, open, &self.queue(*queue))? } else { open };
                let spec =
                    Spec { queue: self.queue(*queue), no_ack: *no_ack, exclusive: *exclusive, args: args.clone() };
                let c = Consume {
                    queue: spec.queue.clone(),
                    consumer_tag: (*tag).into(),
                    no_ack: *no_ack,
                    exclusive: *exclusive,
                    arguments: args.clone(),
                };
                // The consumer is known before its first deliveries are checked.
                let r = self.e.core_mut().consume(ch, c, now);
                self.outcome(ch, open, &r)?;
                if let Ok(tag) = r {
                    let c = self.model.get_mut(&ch).expect("open channel modelled");
                    if c.consumers.insert(tag.clone(), spec).is_some() {
                        return fail(format!("consumer tag {tag} given twice on {ch:?}"));
                    }
                }
            }
            Cmd::Cancel { ch, which, tag } => {
                let (ch, open) = self.channel(*ch);
                let tag: String = match (tag, self.model.get(&ch)) {
                    (None, Some(c)) if !c.consumers.is_empty() => {
                        c.consumers.keys().nth(*which as usize % c.consumers.len()).expect("in range").to_string()
                    }
                    (Some(t), _) => (*t).to_owned(),
                    _ => "none".to_owned(),
                };
                let r = self.e.core_mut().cancel(ch, &tag, now);
                self.outcome(ch, open, &r)?;
                if r.is_ok() {
                    if let Some(c) = self.model.get_mut(&ch) {
                        c.consumers.remove(tag.as_str());
                    }
                }
            }
            Cmd::Get { ch, ensure, queue, no_ack } => {
                let (ch, open) = self.channel(*ch);
                let open = if *ensure { self.ensure_queue(ch, open, &self.queue(*queue))? } else { open };
                // As the host does: a get whose head is beyond the stored delivery horizon
                // waits (asks for a higher one) instead, and one whose head is paged out
                // waits for a page-in.
                let name = self.queue(*queue);
                if open && self.e.get_wait(&name, now).is_some() {
                    count(Stat::GetWaits, 1);
                    self.effects(None)?;
                    return self.after();
                }
                let r = self.e.core_mut().get(ch, &name, *no_ack, now);
                self.outcome(ch, open, &r)?;
                self.effects(None)?;
                if let Ok(Some(g)) = r {
                    if g.delivery.channel != ch || g.delivery.consumer_tag.is_some() {
                        return fail(format!("get on {ch:?} answered {:?}", g.delivery));
                    }
                    self.delivered(&g.delivery, !*no_ack)?;
                }
                return self.after();
            }
            Cmd::Settle { ch, how, tag, multiple } => {
                let (ch, open) = self.channel(*ch);
                let none = Chan::default();
                let c = self.model.get(&ch).unwrap_or(&none);
                let tag = match *tag {
                    // Nothing to settle: as a client, no call.
                    TagPick::Outstanding(_) if c.window.is_empty() => return self.after(),
                    TagPick::Outstanding(i) => {
                        *c.window.keys().nth(i as usize).or(c.window.keys().last()).expect("not empty")
                    }
                    TagPick::Settled(i) if !c.settled.is_empty() => c.settled[i as usize % c.settled.len()],
                    TagPick::Settled(_) => return self.after(),
                    TagPick::Next => c.last_tag.saturating_add(1),
                    TagPick::Raw(t) => t,
                };
                let multiple = *multiple && !matches!(how, How::Reject { .. });
                self.settle(ch, open, *how, tag, multiple)?;
            }
            Cmd::Recover { ch } => {
                let (ch, open) = self.channel(*ch);
                let r = self.e.core_mut().recover(ch, now);
                self.outcome(ch, open, &r)?;
                if r.is_ok() {
                    let tags: Vec<u64> = self.model[&ch].window.keys().copied().collect();
                    self.release(ch, &tags);
                }
            }
            Cmd::Prefetch { ch, count, global } => {
                let (ch, open) = self.channel(*ch);
                let r = self.e.core_mut().prefetch(ch, *count, *global, now);
                self.outcome(ch, open, &r)?;
                if let (Ok(()), Some(c)) = (r, self.model.get_mut(&ch)) {
                    if *global {
                        c.channel_prefetch = *count;
                    } else {
                        c.consumer_prefetch = *count;
                    }
                }
            }
            Cmd::ConfirmSelect { ch } => {
                let (ch, open) = self.channel(*ch);
                let r = self.e.core_mut().confirm_select(ch);
                self.outcome(ch, open, &r)?;
                if let (Ok(()), Some(c)) = (r, self.model.get_mut(&ch)) {
                    c.confirm_next.get_or_insert(1);
                }
            }
            Cmd::Close { ch } => {
                let (ch, open) = self.channel(*ch);
                let r = self.e.core_mut().close_channel(ch, now);
                if r.is_ok() != open || self.e.core().has_channel(ch) {
                    return fail(format!("closing {ch:?} (open: {open}): {r:?}"));
                }
            }
            Cmd::OpenOnClosed => {
                if let Some(&c) = self.closed_conns.last() {
                    if self.e.core_mut().open_channel(c).is_ok() {
                        return fail(format!("a channel opened on closed connection {c:?}"));
                    }
                }
            }
            Cmd::Disconnect { conn } => {
                if let Some(c) = self.conns[*conn as usize].take() {
                    self.e.core_mut().disconnect(c, now);
                    self.e.core_mut().disconnect(c, now); // twice: the second does nothing
                    self.closed_conns.push(c);
                    if self.e.core().connection_info(c).is_some() {
                        return fail("a closed connection is listed");
                    }
                }
            }
            Cmd::Tick { ms } => {
                self.now = self.now.saturating_add(*ms);
                let next = self.e.core_mut().tick(self.now);
                if next != self.e.core().next_deadline() {
                    return fail(format!("tick returned {next:?}, next_deadline {:?}", self.e.core().next_deadline()));
                }
                if next.is_some_and(|t| t <= self.now) {
                    return fail(format!("tick({}) left work due at {next:?}", self.now));
                }
            }
            Cmd::ClockBack { ms } => self.now = self.now.saturating_sub(*ms),
            Cmd::Hold => self.e.core_mut().hold_deliveries(),
            Cmd::Release => self.e.core_mut().release_deliveries(now),
            Cmd::Resume { conn, slot, spec } => {
                let conn_id = self.conn(*conn as usize);
                let r = self.resume_spec(spec);
                if let Some(ch) = self.resume(conn_id, r, Vec::new())? {
                    self.slots[*conn as usize][*slot as usize] = Some(ch);
                }
            }
            Cmd::Flush => {
                self.e.flush(now);
            }
            Cmd::StartWrite => {
                if self.writing.is_none() {
                    self.writing = self.start_write();
                }
            }
            Cmd::EndWrite { outcome } => {
                if let Some(t) = self.writing.take() {
                    self.end_write(t, outcome.clone());
                }
            }
            Cmd::Wake => {
                // The driver's timer: at the next wake-up, or now if it is past.
                if let Some(t) = self.e.next_wakeup() {
                    self.now = self.now.max(t);
                    self.e.wake(self.now);
                }
            }
            Cmd::PageIn { fail } => self.page_in(*fail),
            Cmd::Crash { commit_first, redeclare, mangles } => {
                if *commit_first {
                    self.commit();
                }
                self.crash(mangles)?;
                if *redeclare {
                    self.topology()?;
                }
                return self.after();
            }
            Cmd::Inspect { queue, max } => {
                let q = self.queue(*queue);
                let _ = (
                    self.e.core().peek(&q, *max),
                    self.e.core().queue_info(&q),
                    self.e.core().exchange_infos(),
                    self.e.core().binding_infos(),
                );
                let _ = (
                    self.e.core().can_page(&q),
                    self.e.core().head_paged(&q),
                    self.e.core().queue_names(),
                    self.e.core().has_exchange(&q),
                );
                for c in self.conns.iter().flatten() {
                    let _ = self.e.core().connection_info(*c);
                }
            }
        }
        let (confirms, returns) = self.effects(publisher)?;
        match confirm_expected {
            Some((ch, n)) if self.e.core().has_channel(ch) => {
                if confirms.len() != 1 || confirms[0].channel != ch || confirms[0].seq != n {
                    return fail(format!("publish on {ch:?} expected confirm {n}, got {confirms:?}"));
                }
                self.model.get_mut(&ch).expect("open").confirm_next = Some(n + 1);
            }
            _ if !confirms.is_empty() => {
                return fail(format!("confirms without a publish in confirm mode: {confirms:?}"))
            }
            _ => {}
        }
        if returns > 1 {
            return fail(format!("{returns} returns for one publish"));
        }
        self.after()
    }

    /// Declares a queue as it is, or as the starting topology has it; returns whether the
    /// channel is still open.
    fn ensure_queue(&mut self, ch: ChannelRef, open: bool, name: &str) -> Result<bool, TestCaseError> {
        let spec = match self.e.core().queue_info(name) {
            Some(q) => Some((q.durable, q.exclusive, q.auto_delete, q.arguments)),
            None => standard_queue(name).map(|(durable, arguments)| (durable, false, false, arguments)),
        };
        let Some((durable, exclusive, auto_delete, arguments)) = spec.filter(|_| open) else { return Ok(open) };
        let d = QueueDeclare { name: name.into(), passive: false, durable, exclusive, auto_delete, arguments };
        let r = self.e.core_mut().declare_queue(ch, d, self.now);
        self.outcome(ch, open, &r)?;
        self.effects(None)?;
        Ok(self.e.core().has_channel(ch))
    }

    fn settle(&mut self, ch: ChannelRef, open: bool, how: How, tag: u64, multiple: bool) -> Check {
        let now = self.now;
        let r = match how {
            How::Ack => self.e.core_mut().ack(ch, tag, multiple, now),
            How::Nack { requeue } => self.e.core_mut().nack(ch, tag, multiple, requeue, now),
            How::Reject { requeue } => self.e.core_mut().reject(ch, tag, requeue, now),
        };
        self.outcome(ch, open, &r)?;
        if !open {
            return Ok(());
        }
        let c = &self.model[&ch];
        let tags: Option<Vec<u64>> = match (multiple, tag) {
            (true, 0) => Some(c.window.keys().copied().collect()),
            (true, t) if c.window.contains_key(&t) => Some(c.window.range(..=t).map(|(t, _)| *t).collect()),
            (false, t) if c.window.contains_key(&t) => Some(vec![t]),
            _ => None,
        };
        match (&r, tags) {
            (Ok(()), Some(tags)) => {
                count(Stat::Settled, 1);
                if !multiple {
                    let ack = match how {
                        How::Ack => Some(true),
                        How::Reject { requeue: false } | How::Nack { requeue: false } => Some(false),
                        _ => None,
                    };
                    let c = self.model.get_mut(&ch).expect("open");
                    if let (Some(ack), Some(out)) = (ack, c.window.get(&tag)) {
                        let f = InFlight {
                            queue: out.name.to_string(),
                            seq: out.seq,
                            delivery_tag: tag,
                            consumer_tag: out.consumer.as_deref().map(str::to_owned),
                        };
                        c.recently.push((f, ack));
                    }
                }
                self.release(ch, &tags);
            }
            (Err(e), None) if e.code == ReplyCode::PreconditionFailed => count(Stat::SettleRefused, 1),
            (r, tags) => {
                return fail(format!("settling tag {tag} (multiple {multiple}) on {ch:?}: {r:?}, outstanding {tags:?}"))
            }
        }
        Ok(())
    }

    /// Reads back what the engine wants paged in (or fails to: it asks again later).
    fn page_in(&mut self, fail: bool) {
        for page in self.e.page_ins_wanted() {
            let read = (!fail).then(|| self.disk.segments(&page.segments));
            count(Stat::PagedIn, 1);
            self.e.page_in_done(page, read, self.now);
        }
    }

    // ---- resume and failover ----

    /// Queue ids by name (ids count up from 1 and are never reused).
    fn queue_ids(&self) -> HashMap<Rc<str>, QueueId> {
        let (mut out, mut misses, mut id) = (HashMap::new(), 0, 1);
        while misses < 256 {
            match self.e.core().queue_name(QueueId(id)) {
                Some(n) => {
                    out.insert(n, QueueId(id));
                    misses = 0;
                }
                None => misses += 1,
            }
            id += 1;
        }
        out
    }

    fn resume_spec(&self, spec: &ResumeSpec) -> Resume {
        let mut held: Vec<(QueueId, u64)> = self.held.keys().copied().collect();
        held.sort();
        let mut tag = 0u64;
        let mut in_flight = Vec::new();
        for (pick, step, consumer) in &spec.in_flight {
            tag = match step {
                TagStep::Gap(g) => tag.saturating_add(*g as u64),
                TagStep::Raw(t) => *t,
            };
            let (queue, seq) = match pick {
                FlightPick::Held(i) if !held.is_empty() => {
                    let (q, seq) = &held[*i as usize % held.len()];
                    (self.e.core().queue_name(*q).map_or("gone".to_owned(), |n| n.to_string()), *seq)
                }
                FlightPick::Held(i) => ("q0".to_owned(), *i as u64),
                FlightPick::Seq(q, seq) => (self.queue(*q), *seq),
            };
            in_flight.push(InFlight { queue, seq, delivery_tag: tag, consumer_tag: consumer.map(str::to_owned) });
        }
        let top = in_flight.iter().map(|f| f.delivery_tag).max().unwrap_or(0);
        Resume {
            next_delivery_tag: spec.next_delivery_tag.unwrap_or(top.saturating_add(1)),
            confirm_seq: spec.confirm_seq,
            consumer_prefetch: spec.consumer_prefetch,
            channel_prefetch: spec.channel_prefetch,
            consumers: spec
                .consumers
                .iter()
                .map(|(q, tag, no_ack, exclusive, priority)| Consume {
                    queue: self.queue(*q),
                    consumer_tag: (*tag).to_owned(),
                    no_ack: *no_ack,
                    exclusive: *exclusive,
                    arguments: priority.map(|p| [("x-priority".to_owned(), int(p))].into()).unwrap_or_default(),
                })
                .collect(),
            in_flight,
        }
    }

    /// Resumes a channel on `conn` and checks the outcome; `settled` are settled again
    /// after, as the mesh does. Returns the new channel.
    fn resume(
        &mut self,
        conn: ConnId,
        mut r: Resume,
        settled: Vec<(InFlight, bool)>,
    ) -> Result<Option<ChannelRef>, TestCaseError> {
        // The same tag twice names one consumer: make its duplicates identical, so that
        // which of them registered does not matter.
        for i in 0..r.consumers.len() {
            if let Some(j) = (0..i).find(|&j| r.consumers[j].consumer_tag == r.consumers[i].consumer_tag) {
                r.consumers[i] = r.consumers[j].clone();
            }
        }
        let mut tags: Vec<u64> = r.in_flight.iter().map(|f| f.delivery_tag).collect();
        tags.sort_unstable();
        let contradicts = r.confirm_seq == Some(0)
            || r.confirm_seq.is_some_and(|s| s > MAX_SAFE)
            || r.next_delivery_tag == 0
            || r.next_delivery_tag > MAX_SAFE
            || tags.first() == Some(&0)
            || tags.windows(2).any(|w| w[0] == w[1])
            || tags.last().is_some_and(|t| *t >= r.next_delivery_tag)
            || r.in_flight.iter().any(|f| f.seq > MAX_SAFE);
        let can_open = self.e.core().connection_info(conn).is_some_and(|c| c.channels < self.limits.max_channels);
        let before = self.e.core().connection_info(conn);
        let copy = r.clone();
        let result = self.e.core_mut().resume_channel(conn, r, self.now);
        let r = copy;
        let resumed = match result {
            Err(e) => {
                if !contradicts && can_open {
                    return fail(format!("resume refused: {e}"));
                }
                if self.e.core().connection_info(conn) != before || self.e.core_mut().drain_effects().next().is_some() {
                    return fail("a refused resume changed something");
                }
                count(Stat::ResumesRefused, 1);
                return self.after().map(|()| None);
            }
            Ok(resumed) => resumed,
        };
        if contradicts || !can_open {
            return fail(format!("resume accepted though contradictory ({contradicts}) or no room ({can_open})"));
        }
        let ch = resumed.channel;
        count(Stat::ResumesAccepted, 1);
        count(Stat::Adopted, resumed.adopted.len() as u64);
        count(Stat::Forgiven, resumed.forgiven.len() as u64);
        let mut accounted: Vec<u64> = resumed.adopted.iter().chain(&resumed.forgiven).copied().collect();
        accounted.sort_unstable();
        if accounted != tags {
            return fail(format!("resume accounted for {accounted:?} of {tags:?}"));
        }
        let ids = self.queue_ids();
        let mut c = Chan {
            last_tag: r.next_delivery_tag - 1,
            confirm_next: r.confirm_seq,
            consumer_prefetch: r.consumer_prefetch,
            channel_prefetch: r.channel_prefetch,
            ..Chan::default()
        };
        for f in &r.in_flight {
            let adopted = resumed.adopted.contains(&f.delivery_tag);
            let name: Rc<str> = f.queue.as_str().into();
            let queue = if adopted { ids.get(&name).copied() } else { None };
            if adopted {
                let Some(q) = queue else {
                    return fail(format!("adopted a message of '{name}', which does not exist"));
                };
                if let Some(at) = self.held.insert((q, f.seq), (ch, f.delivery_tag)) {
                    return fail(format!("adopted {name}/{} while out unacked on {at:?}", f.seq));
                }
                self.seen.insert((q, f.seq));
            }
            let out = Out { queue, name, seq: f.seq, consumer: f.consumer_tag.as_deref().map(Into::into) };
            c.window.insert(f.delivery_tag, out);
        }
        for spec in &r.consumers {
            let tag = spec.consumer_tag.as_str();
            let given = r.consumers.iter().filter(|c| c.consumer_tag == tag).count();
            let refused = resumed.cancelled.iter().filter(|(t, _)| t == tag).count();
            if refused < given && !c.consumers.contains_key(tag) {
                let s = Spec {
                    queue: spec.queue.clone(),
                    no_ack: spec.no_ack,
                    exclusive: spec.exclusive,
                    args: spec.arguments.clone(),
                };
                c.consumers.insert(tag.into(), s);
            }
        }
        self.model.insert(ch, c);
        self.effects(None)?;
        self.after()?;
        for (f, ack) in settled {
            let how = if ack { How::Ack } else { How::Reject { requeue: false } };
            let open = self.e.core().has_channel(ch);
            self.settle(ch, open, how, f.delivery_tag, false)?;
            self.effects(None)?;
            self.after()?;
        }
        Ok(Some(ch))
    }

    /// The host dies: a new broker recovers what the store committed, and every client
    /// re-announces its channels while deliveries are held.
    fn crash(&mut self, mangles: &[(u8, Mangle)]) -> Check {
        // What each client knows of its channels, by connection.
        let mut clients: BTreeMap<ConnId, Vec<Announced>> = BTreeMap::new();
        let mut chans: Vec<(&ChannelRef, &Chan)> = self.model.iter().collect();
        chans.sort_by_key(|(ch, _)| **ch);
        for (ch, c) in chans {
            let in_flight: Vec<InFlight> = c
                .window
                .iter()
                .map(|(tag, o)| InFlight {
                    queue: o.name.to_string(),
                    seq: o.seq,
                    delivery_tag: *tag,
                    consumer_tag: o.consumer.as_deref().map(str::to_owned),
                })
                .collect();
            let consumers = c
                .consumers
                .iter()
                .map(|(tag, s)| Consume {
                    queue: s.queue.clone(),
                    consumer_tag: tag.to_string(),
                    no_ack: s.no_ack,
                    exclusive: s.exclusive,
                    arguments: s.args.clone(),
                })
                .collect();
            // As `resume_of` does: the ones settled lately are taken back with no consumer.
            let settled = c.recently.clone();
            let mut r = Resume {
                next_delivery_tag: c.last_tag.saturating_add(1),
                confirm_seq: c.confirm_next,
                consumer_prefetch: c.consumer_prefetch,
                channel_prefetch: c.channel_prefetch,
                consumers,
                in_flight,
            };
            r.in_flight.extend(settled.iter().map(|(f, _)| InFlight { consumer_tag: None, ..f.clone() }));
            clients.entry(ch.conn).or_default().push((*ch, r, settled));
        }
        for (i, (_, list)) in clients.iter_mut().enumerate() {
            for (k, (_, r, _)) in list.iter_mut().enumerate() {
                for (which, m) in mangles {
                    if *which as usize == i * CHANS + k {
                        mangle_resume(r, *m);
                    }
                }
            }
        }

        // The new host.
        let now = self.now;
        let (log, mut recovered) = Log::recover(self.disk.records());
        // Bugs 3 and 4: a stored message handed out before the crash comes back flagged,
        // failed writes or not; unless the engine abandoned the fence (a newer version
        // upgraded the database: first deliveries went on from memory, past the stored
        // horizons, with the fence standing).
        let fence =
            self.disk.records().iter().any(|r| r.collection == Collection::Meta && r.key == Key::Str("fence".into()));
        let abandoned = fence && !self.e.log().is_some_and(Log::is_fenced);
        for q in recovered.queues.iter().filter(|_| !abandoned) {
            for m in &q.messages {
                if self.handed.contains(&(q.name.clone(), m.seq)) && !m.delivered {
                    return fail(format!("message {}/{} was handed out, but comes back unflagged", q.name, m.seq));
                }
            }
        }
        self.handed.clear();
        self.writing = None;
        self.upgraded = false;
        self.held_confirms.clear();
        self.immediate.clear();
        // A new seed, as the host gives one: generated names must differ from the last broker's.
        self.crashes += 1;
        count(Stat::Crashes, 1);
        let seed = self.seed ^ self.crashes.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut b = Broker::new(BrokerConfig { seed, limits: self.limits.clone(), delivery_horizon: true });
        let _problems = restore_topology(&mut b, &mut recovered, now);
        self.stored.clear();
        for q in &recovered.queues {
            if b.queue_info(&q.name).is_some() {
                self.stored.extend(q.messages.iter().map(|m| (q.name.clone(), m.seq)));
            }
        }
        self.put = self.stored.clone();
        let mut problems = Vec::new();
        for q in recovered.queues {
            for m in q.messages {
                restore_message(&mut b, &q.name, m, now, &mut problems);
            }
        }
        finish_restore(&mut b, now);
        self.e = engine(b, log);
        self.model.clear();
        self.held.clear();
        self.seen.clear();
        self.stale.clear();
        self.closed_conns.clear();
        self.effects(None)?;
        self.after()?;

        self.e.core_mut().hold_deliveries();
        let old_conns = self.conns;
        let old_slots = self.slots;
        self.conns = [None; CONNS];
        self.slots = [[None; CHANS]; CONNS];
        for (old, list) in clients {
            let conn = self.e.core_mut().connect();
            if let Some(c) = old_conns.iter().position(|c| *c == Some(old)) {
                self.conns[c] = Some(conn);
            }
            for (old_ch, r, settled) in list {
                let Some(ch) = self.resume(conn, r, settled)? else { continue };
                for (old, new) in old_slots.iter().flatten().zip(self.slots.iter_mut().flatten()) {
                    if *old == Some(old_ch) {
                        *new = Some(ch);
                    }
                }
            }
        }
        self.e.core_mut().release_deliveries(now);
        self.effects(None)?;
        self.after()
    }

    /// Closes everything: every delivery goes back, nothing stays unacked.
    fn finish(&mut self) -> Check {
        let dead: u64 = self
            .e
            .core()
            .queue_names()
            .iter()
            .filter_map(|n| self.e.core().queue_info(n))
            .map(|q| q.counters.dead_lettered)
            .sum();
        count(Stat::DeadLettered, dead);
        for c in self.conns.iter_mut().filter_map(Option::take) {
            self.e.core_mut().disconnect(c, self.now);
        }
        let open: Vec<ConnId> = self.model.keys().map(|ch| ch.conn).collect();
        for c in open {
            self.e.core_mut().disconnect(c, self.now);
        }
        self.effects(None)?;
        self.after()?;
        if !self.held.is_empty() {
            return fail(format!("still held after closing everything: {:?}", self.held));
        }
        for name in self.e.core().queue_names() {
            let info = self.e.core().queue_info(&name).expect("listed");
            if info.unacked != 0 || info.consumers != 0 {
                return fail(format!("queue {name} keeps {} unacked, {} consumers", info.unacked, info.consumers));
            }
        }
        Ok(())
    }
}

fn mangle_resume(r: &mut Resume, m: Mangle) {
    let n = r.in_flight.len();
    match m {
        Mangle::DropFlight(i) if n > 0 => {
            r.in_flight.remove(i as usize % n);
        }
        Mangle::RepeatTag(i) if n > 1 => {
            let i = 1 + i as usize % (n - 1);
            r.in_flight[i].delivery_tag = r.in_flight[i - 1].delivery_tag;
        }
        Mangle::SeqPlus(i) if n > 0 => {
            let f = &mut r.in_flight[i as usize % n];
            f.seq = f.seq.wrapping_add(1);
        }
        Mangle::NextTag(t) => r.next_delivery_tag = t,
        Mangle::ConfirmZero => r.confirm_seq = Some(0),
        Mangle::NoConsumerTag(i) if !r.consumers.is_empty() => {
            let k = i as usize % r.consumers.len();
            r.consumers[k].consumer_tag.clear();
        }
        Mangle::ForgetConsumer(i) if !r.consumers.is_empty() => {
            let k = i as usize % r.consumers.len();
            r.consumers.remove(k);
        }
        _ => {}
    }
}

/// Commands run, over all inputs.
static COMMANDS: AtomicU64 = AtomicU64::new(0);

/// What the inputs made happen, over all of them: evidence that they reach deep states.
#[derive(Clone, Copy)]
enum Stat {
    Deliveries,
    Settled,
    SettleRefused,
    ChannelErrors,
    CallsOnClosed,
    Confirms,
    Returns,
    StoreOps,
    ResumesAccepted,
    ResumesRefused,
    Adopted,
    Forgiven,
    Crashes,
    Commits,
    PagedIn,
    FailedWrites,
    DeadLettered,
    Upgraded,
    GetWaits,
    Unfenced,
}

const STATS: [&str; 20] = [
    "deliveries",
    "settles",
    "settles refused",
    "channel errors",
    "calls on closed channels",
    "confirms",
    "returns",
    "store ops",
    "resumes accepted",
    "resumes refused",
    "tags adopted",
    "tags forgiven",
    "crashes",
    "writes committed",
    "page-ins",
    "failed writes",
    "dead-lettered",
    "writes refused by a newer version",
    "gets waiting (horizon or page-in)",
    "fences deleted",
];
static COUNTS: [AtomicU64; 20] = [const { AtomicU64::new(0) }; 20];

fn count(s: Stat, n: u64) {
    COUNTS[s as usize].fetch_add(n, Relaxed);
}

fn run((setup, cmds): (Setup, Vec<Cmd>)) -> Check {
    let mut w = World::new(&setup)?;
    for c in &cmds {
        w.run(c)?;
    }
    COMMANDS.fetch_add(cmds.len() as u64, Relaxed);
    w.finish()
}

#[test]
fn core_survives_random_command_sequences() {
    let report = fuzz::run("core", 500, || (setup(), vec(cmd(), 1..150)), run);
    let stats: Vec<String> = STATS.iter().zip(&COUNTS).map(|(name, n)| format!("{} {name}", n.load(Relaxed))).collect();
    eprintln!("fuzz core: {} sequences, {} commands; {}", report.inputs, COMMANDS.load(Relaxed), stats.join(", "));
}

// ---- regressions the fuzz found -------------------------------------------------------------

fn broker() -> (Broker, ChannelRef) {
    let mut b = Broker::new(BrokerConfig::default());
    let c = b.connect();
    let ch = b.open_channel(c).expect("a channel");
    (b, ch)
}

fn declare(b: &mut Broker, ch: ChannelRef, name: &str, durable: bool, args: &[(&str, FieldValue)]) {
    let arguments = args.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    b.declare_queue(ch, QueueDeclare { name: name.into(), durable, arguments, ..Default::default() }, 0)
        .expect("declared");
}

/// A broker that recovered durable queue `q` with `n` stored messages at positions 1..=n.
fn recovered(n: u64) -> Broker {
    recovered_flagged(BrokerConfig::default(), &vec![false; n as usize])
}

/// A broker that recovered durable queue `q` with a stored message at each position from 1
/// on, flagged as the store says (`delivered`).
fn recovered_flagged(config: BrokerConfig, delivered: &[bool]) -> Broker {
    let mut b = Broker::new(config);
    b.restore_queue("q", false, Table::new(), delivered.len() as u64 + 1, 0, 0).expect("restored");
    for (seq, &delivered) in (1..).zip(delivered) {
        let mut m = Message::new("", "q", b"m".to_vec());
        m.properties.persistent = true;
        let stored = StoredMessage {
            seq,
            message: Some(Rc::new(m)),
            body_len: 1,
            priority: 0,
            expires_at: None,
            ready_at: None,
            delivery_count: 0,
            delivered,
        };
        b.restore_message("q", stored, 0).expect("restored");
    }
    b.end_recovery(0);
    b
}

/// Dead-lettering a message whose `x-death` history (the publisher's header) already
/// counts `i64::MAX` for this queue and reason overflowed (a panic with overflow checks).
#[test]
fn an_x_death_count_at_its_maximum_stays_there() {
    let (mut b, ch) = broker();
    declare(&mut b, ch, "a", false, &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("b"))]);
    declare(&mut b, ch, "b", false, &[]);
    let death: Table =
        [("count".into(), int(i64::MAX)), ("queue".into(), s("a")), ("reason".into(), s("rejected"))].into();
    let mut m = Message::new("", "a", b"m".to_vec());
    m.properties.headers.insert("x-death".into(), FieldValue::Array(vec![FieldValue::Table(death)]));
    b.publish(ch, m, false, 0).unwrap();
    let tag = b.get(ch, "a", false, 0).unwrap().expect("a message").delivery.delivery_tag;
    b.reject(ch, tag, false, 0).unwrap();
    let got = b.get(ch, "b", true, 0).unwrap().expect("dead-lettered");
    let Some(FieldValue::Array(deaths)) = got.delivery.message.properties.headers.get("x-death") else {
        panic!("no x-death")
    };
    let FieldValue::Table(t) = &deaths[0] else { panic!("not a table") };
    assert_eq!(t.get("count"), Some(&int(i64::MAX)));
    b.check_invariants().unwrap();
}

/// A resume may name any numbers (any script of the origin can post one): a channel that
/// went on from `next_delivery_tag` or `confirm_seq` `u64::MAX` overflowed at its next
/// delivery or publish. Numbers above 2^53 − 1 (what a JS client can hold) are refused.
#[test]
fn a_resume_refuses_tags_and_confirm_numbers_past_what_javascript_can_hold() {
    let mut b = recovered(2);
    let c = b.connect();
    for (next_delivery_tag, confirm_seq) in
        [(u64::MAX, None), (MAX_SAFE + 1, None), (1, Some(u64::MAX)), (1, Some(MAX_SAFE + 1))]
    {
        let r = Resume { next_delivery_tag, confirm_seq, ..Default::default() };
        let e = b.resume_channel(c, r, 0).expect_err("refused");
        assert_eq!(e.code, ReplyCode::PreconditionFailed, "{e}");
    }
    assert_eq!(b.connection_info(c).expect("open").channels, 0, "no channel opened");
    let r = Resume { next_delivery_tag: MAX_SAFE, confirm_seq: Some(MAX_SAFE), ..Default::default() };
    let ch = b.resume_channel(c, r, 0).expect("the largest numbers are fine").channel;
    let tags: Vec<u64> =
        (0..2).map(|_| b.get(ch, "q", false, 0).unwrap().expect("a message").delivery.delivery_tag).collect();
    assert_eq!(tags, [MAX_SAFE, MAX_SAFE + 1]);
    b.publish(ch, Message::new("", "q", b"x".to_vec()), false, 0).unwrap();
    let confirms: Vec<u64> =
        b.drain_effects().filter_map(|e| if let Effect::Confirm(c) = e { Some(c.seq) } else { None }).collect();
    assert_eq!(confirms, [MAX_SAFE]);
    b.ack(ch, 0, true, 0).unwrap();
    b.check_invariants().unwrap();
}

/// With delivery horizons the store flags every stored message that may have been handed
/// out, so a client that re-announces one the store does not flag as in flight is wrong (the
/// fuzz makes such claims up). Adopting it anyway let it go out again after a requeue as a
/// redelivery with no stored trace, and a crash before the next commit brought it back
/// unflagged. It is forgiven instead, and stays in the queue; a flagged one is adopted.
#[test]
fn a_resume_does_not_adopt_a_stored_message_the_store_never_flagged() {
    let config = BrokerConfig { delivery_horizon: true, ..Default::default() };
    let mut b = recovered_flagged(config, &[false, true]);
    let c = b.connect();
    let in_flight = |seq: u64| InFlight { queue: "q".into(), seq, delivery_tag: seq, consumer_tag: None };
    let r = Resume { next_delivery_tag: 3, in_flight: vec![in_flight(1), in_flight(2)], ..Default::default() };
    let resumed = b.resume_channel(c, r, 0).expect("resumed");
    assert_eq!((resumed.adopted, resumed.forgiven), (vec![2], vec![1]));
    assert_eq!(b.queue_info("q").map(|q| (q.ready, q.unacked)), Some((1, 1)));
    b.check_invariants().unwrap();
}

/// The unacked window kept a slot per tag from its oldest delivery on: a resume that took
/// back tag 1 and went on from a tag near 2^53 made the next delivery allocate that many
/// slots (out of memory: one post could take the hosting tab down).
#[test]
fn a_resumed_channel_far_ahead_of_its_oldest_delivery_takes_no_memory_per_tag() {
    let mut b = recovered(2);
    let c = b.connect();
    let held = InFlight { queue: "q".into(), seq: 1, delivery_tag: 1, consumer_tag: None };
    let r = Resume { next_delivery_tag: MAX_SAFE - 1, in_flight: vec![held], ..Default::default() };
    let resumed = b.resume_channel(c, r, 0).unwrap();
    assert_eq!(resumed.adopted, [1]);
    let ch = resumed.channel;
    let g = b.get(ch, "q", false, 0).unwrap().expect("message 2");
    assert_eq!(g.delivery.delivery_tag, MAX_SAFE - 1);
    assert_eq!(b.channel_unacked(ch), Some(2));
    b.ack(ch, MAX_SAFE - 1, true, 0).unwrap();
    assert_eq!(b.channel_unacked(ch), Some(0));
    b.check_invariants().unwrap();
}

/// A paged-out head whose TTL passed cannot expire before it is paged in, but its time
/// stayed the broker's next deadline: `tick` returned a time already past, and the host's
/// timer fired again at once, until the page-in.
#[test]
fn an_expired_head_paged_out_is_no_deadline_until_paged_in() {
    let (mut b, ch) = broker();
    declare(&mut b, ch, "p", true, &[]);
    let mut stored = Vec::new();
    for body in ["m1", "m2"] {
        let mut m = Message::new("", "p", body.as_bytes().to_vec());
        m.properties.persistent = true;
        m.properties.expiration = Some("10".into());
        b.publish(ch, m, false, 0).unwrap();
    }
    for e in b.drain_effects() {
        if let Effect::Store(StoreOp::PutMessage { seq, message, .. }) = e {
            stored.push((seq, message));
        }
    }
    assert_eq!(b.page_out_all(0, |_, _| true), 2);
    assert_eq!(b.next_deadline(), None, "nothing a tick can do");
    let next = b.tick(100);
    assert!(next.is_none_or(|t| t > 100), "tick(100) left work due at {next:?}");
    // Paged in, they expire.
    b.page_in("p", stored, &[], 100);
    let info = b.queue_info("p").expect("queue");
    assert_eq!((info.ready, info.counters.discarded), (0, 2));
    b.check_invariants().unwrap();
}
