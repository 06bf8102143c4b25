#![cfg(not(target_arch = "wasm32"))]
//! Fuzz target: the mesh's frame decoder (`tabbit::mesh::frame`), which reads whatever any
//! script of the origin posts to the `BroadcastChannel`. Each input is one of:
//!
//! - random bytes, after our header or not;
//! - random bytes as the frames of a well-formed directory (so they reach the frame decoder);
//! - a valid post built with `PostWriter` from random frames (every frame, command, answer,
//!   event and `ChannelState`; messages with random properties and nested tables), for a
//!   few receivers, then mutated or not (bit flips, bytes set to edge values, truncation,
//!   insertion, deletion, duplication of a range);
//! - two valid posts spliced (the head of one, the tail of the other), then mutated;
//! - a valid post whose message headers nest around the codec's depth limit.
//!
//! For every input: `decode`, `directory` and `section` never panic; a directory read from
//! any prefix of the post (as the receiver reads it) asks for more or says what the whole
//! post says; each section that decodes re-encodes to exactly its bytes; `decode` succeeds
//! exactly when the directory and every section for the receiver do, with their frames;
//! whatever decodes encodes to a post that decodes to the same frames (compared by their
//! `Debug` text, which shows every field). An unmutated post decodes to exactly the frames
//! put in for the receiver (its own and `EVERYONE`'s, in order), and nothing of others'.
//!
//! Inputs: `FUZZ_CASES` (default 10,000: about 2 s in a debug build); `scripts/fuzz
//! frames` runs 1,000,000. See `tests/common/fuzz.rs` for `FUZZ_SECONDS`, `FUZZ_SEED`.

#[path = "common/fuzz.rs"]
mod fuzz;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestCaseError;
use tabbit::codec::{Writer, MAX_DEPTH};
use tabbit::core::*;
use tabbit::mesh::frame::*;

// ---- values ----------------------------------------------------------------------------------

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(vec!["", "q", "a.b", "#", "*.x", "amq.gen-Xy", "logs", "é€😀", "x-match", "c1"])
            .prop_map(str::to_owned),
        2 => "[a-z.#*-]{0,8}",
        1 => vec(any::<char>(), 0..6).prop_map(|c| c.into_iter().collect()),
    ]
    .boxed()
}

fn rc_text() -> BoxedStrategy<Rc<str>> {
    text().prop_map(Into::into).boxed()
}

fn int() -> BoxedStrategy<i64> {
    let edges = select(vec![i64::MIN, i64::MAX, -1 << 32, 1 << 53]);
    prop_oneof![3 => -3i64..300, 1 => any::<i64>(), 1 => edges].boxed()
}

fn uint() -> BoxedStrategy<u64> {
    // Around the varint's byte boundaries, and the largest.
    let edges = select(vec![127u64, 128, 16_383, 16_384, u64::MAX, u64::MAX >> 1]);
    prop_oneof![4 => 0u64..300, 1 => any::<u64>(), 1 => edges].boxed()
}

fn u32v() -> BoxedStrategy<u32> {
    prop_oneof![4 => 0u32..300, 1 => any::<u32>(), 1 => Just(u32::MAX)].boxed()
}

fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => select(vec![
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001), // a signalling NaN with a payload
        ]),
    ]
    .boxed()
}

fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    vec(any::<u8>(), 0..max).boxed()
}

fn value() -> BoxedStrategy<FieldValue> {
    let leaf = prop_oneof![
        Just(FieldValue::Void),
        any::<bool>().prop_map(FieldValue::Bool),
        int().prop_map(FieldValue::Int),
        float().prop_map(FieldValue::Float),
        text().prop_map(FieldValue::Str),
        bytes(6).prop_map(FieldValue::Bytes),
        uint().prop_map(FieldValue::Timestamp),
    ];
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(FieldValue::Array),
            btree_map(text(), inner, 0..3).prop_map(|m| FieldValue::Table(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn table() -> BoxedStrategy<Table> {
    prop_oneof![2 => Just(Table::new()), 1 => btree_map(text(), value(), 1..4).prop_map(|m| m.into_iter().collect())]
        .boxed()
}

fn opt_text() -> BoxedStrategy<Option<String>> {
    proptest::option::weighted(0.3, text()).boxed()
}

fn message() -> BoxedStrategy<Message> {
    let props = (
        (any::<bool>(), opt_text(), table(), proptest::option::weighted(0.3, any::<u8>())),
        (opt_text(), opt_text(), opt_text(), proptest::option::weighted(0.3, uint())),
        (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
    )
        .prop_map(|(a, b, c)| Properties {
            persistent: a.0,
            content_type: a.1,
            headers: a.2,
            priority: a.3,
            correlation_id: b.0,
            reply_to: b.1,
            message_id: b.2,
            timestamp: b.3,
            expiration: c.0,
            content_encoding: c.1,
            kind: c.2,
            user_id: c.3,
            app_id: c.4,
        });
    (text(), text(), props, bytes(24))
        .prop_map(|(exchange, routing_key, properties, body)| Message { exchange, routing_key, properties, body })
        .boxed()
}

fn error() -> BoxedStrategy<AmqpError> {
    use ReplyCode::*;
    let codes = vec![
        NoRoute,
        ConnectionForced,
        AccessRefused,
        NotFound,
        ResourceLocked,
        PreconditionFailed,
        CommandInvalid,
        ResourceError,
        ChannelError,
        NotAllowed,
        InternalError,
    ];
    (select(codes), text(), any::<(u16, u16)>())
        .prop_map(|(code, m, method)| AmqpError::new(code, m).in_method(method))
        .boxed()
}

fn consume() -> BoxedStrategy<Consume> {
    (text(), text(), any::<bool>(), any::<bool>(), table())
        .prop_map(|(queue, consumer_tag, no_ack, exclusive, arguments)| Consume {
            queue,
            consumer_tag,
            no_ack,
            exclusive,
            arguments,
        })
        .boxed()
}

fn in_flight() -> BoxedStrategy<InFlight> {
    (text(), uint(), uint(), opt_text())
        .prop_map(|(queue, seq, delivery_tag, consumer_tag)| InFlight { queue, seq, delivery_tag, consumer_tag })
        .boxed()
}

fn channel_state() -> BoxedStrategy<ChannelState> {
    (
        uint(),
        proptest::option::of(uint()),
        u32v(),
        u32v(),
        vec(consume(), 0..3),
        vec(in_flight(), 0..4),
        vec((in_flight(), any::<bool>()), 0..3),
    )
        .prop_map(
            |(next_delivery_tag, confirm_seq, consumer_prefetch, channel_prefetch, consumers, in_flight, settled)| {
                ChannelState {
                    next_delivery_tag,
                    confirm_seq,
                    consumer_prefetch,
                    channel_prefetch,
                    consumers,
                    in_flight,
                    settled,
                }
            },
        )
        .boxed()
}

fn delivery() -> BoxedStrategy<WireDelivery> {
    (proptest::option::of(rc_text()), uint(), any::<bool>(), u32v(), rc_text(), uint(), message())
        .prop_map(|(consumer_tag, delivery_tag, redelivered, delivery_count, queue, seq, m)| WireDelivery {
            consumer_tag,
            delivery_tag,
            redelivered,
            delivery_count,
            queue,
            seq,
            message: Rc::new(m),
        })
        .boxed()
}

fn four() -> BoxedStrategy<(String, String, String, Table)> {
    (text(), text(), text(), table()).boxed()
}

fn command() -> BoxedStrategy<Command> {
    let flags4 = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    prop_oneof![
        1 => (text(), flags4, table()).prop_map(|(name, f, arguments)| Command::DeclareQueue(QueueDeclare {
            name,
            passive: f.0,
            durable: f.1,
            exclusive: f.2,
            auto_delete: f.3,
            arguments
        })),
        1 => (text(), any::<bool>(), any::<bool>())
            .prop_map(|(name, if_unused, if_empty)| Command::DeleteQueue { name, if_unused, if_empty }),
        1 => text().prop_map(Command::PurgeQueue),
        1 => four().prop_map(|(queue, source, pattern, args)| Command::BindQueue { queue, source, pattern, args }),
        1 => four().prop_map(|(queue, source, pattern, args)| Command::UnbindQueue { queue, source, pattern, args }),
        1 => (text(), text(), flags4, table()).prop_map(|(name, kind, f, arguments)| Command::DeclareExchange(
            ExchangeDeclare { name, kind, passive: f.0, durable: f.1, auto_delete: f.2, internal: f.3, arguments }
        )),
        1 => (text(), any::<bool>()).prop_map(|(name, if_unused)| Command::DeleteExchange { name, if_unused }),
        1 => four().prop_map(|(destination, source, pattern, args)| Command::BindExchange {
            destination,
            source,
            pattern,
            args
        }),
        1 => four().prop_map(|(destination, source, pattern, args)| Command::UnbindExchange {
            destination,
            source,
            pattern,
            args
        }),
        4 => (message(), any::<bool>()).prop_map(|(message, mandatory)| Command::Publish { message: Box::new(message), mandatory }),
        1 => consume().prop_map(Command::Consume),
        1 => text().prop_map(Command::Cancel),
        1 => (text(), any::<bool>()).prop_map(|(queue, no_ack)| Command::Get { queue, no_ack }),
        2 => (uint(), any::<bool>()).prop_map(|(tag, multiple)| Command::Ack { tag, multiple }),
        1 => (uint(), any::<bool>(), any::<bool>())
            .prop_map(|(tag, multiple, requeue)| Command::Nack { tag, multiple, requeue }),
        1 => (uint(), any::<bool>()).prop_map(|(tag, requeue)| Command::Reject { tag, requeue }),
        1 => (u32v(), any::<bool>()).prop_map(|(count, global)| Command::Prefetch { count, global }),
        1 => Just(Command::Recover),
        1 => Just(Command::Close),
    ]
    .boxed()
}

fn counters() -> BoxedStrategy<QueueCounters> {
    prop::array::uniform8(uint()).prop_map(QueueCounters::from_array).boxed()
}

fn stats() -> BoxedStrategy<Stats> {
    let queue = (
        rc_text(),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        table(),
        vec(0usize..1000, 6),
        counters(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(name, f, arguments, v, counters, effective_max_length)| QueueInfo {
            name,
            durable: f.0,
            exclusive: f.1,
            auto_delete: f.2,
            arguments,
            effective_max_length,
            ready: v[0],
            ready_bytes: v[1],
            paged: v[2],
            delayed: v[3],
            unacked: v[4],
            consumers: v[5],
            counters,
        });
    let exchange = (
        rc_text(),
        select(vec!["direct", "fanout", "topic", "headers"]),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        table(),
    )
        .prop_map(|(name, kind, f, arguments)| ExchangeInfo {
            name,
            kind,
            durable: f.0,
            auto_delete: f.1,
            internal: f.2,
            arguments,
        });
    let binding = (rc_text(), rc_text(), any::<bool>(), text(), table()).prop_map(
        |(source, destination, to_exchange, routing_key, arguments)| BindingInfo {
            source,
            destination,
            to_exchange,
            routing_key,
            arguments,
        },
    );
    let context = (uint(), text(), u32v(), u32v(), u32v(), u32v()).prop_map(
        |(id, label, connections, channels, consumers, unacked)| ContextInfo {
            id,
            label,
            connections,
            channels,
            consumers,
            unacked,
        },
    );
    (
        (uint(), uint(), text(), uint()),
        vec(queue, 0..3),
        vec(exchange, 0..3),
        vec(binding, 0..3),
        vec(context, 0..3),
        (vec(float(), 6), vec(uint(), 6), (0..3u64, 1..u64::MAX, 0..1u64 << 60, any::<bool>())),
    )
        .prop_map(|((at, host, storage, dropped_posts), queues, exchanges, bindings, contexts, (r, t, e))| Stats {
            at,
            host,
            storage,
            queues,
            exchanges,
            bindings,
            contexts,
            rates: r.try_into().expect("6 rates"),
            totals: t.try_into().expect("6 totals"),
            dropped_posts,
            // Never emptied, or when, with the messages lost (or not known).
            storage_emptied: (e.0 > 0).then_some((e.1, e.3.then_some(e.2))),
        })
        .boxed()
}

fn answer() -> BoxedStrategy<Answer> {
    prop_oneof![
        2 => Just(Answer::Done),
        1 => (rc_text(), u32v(), u32v()).prop_map(|(queue, message_count, consumer_count)| Answer::Queue(
            QueueDeclareOk { queue, message_count, consumer_count }
        )),
        1 => u32v().prop_map(Answer::Count),
        1 => Just(Answer::Got(None)),
        2 => (delivery(), u32v()).prop_map(|d| Answer::Got(Some(d))),
        1 => stats().prop_map(|s| Answer::Stats(Box::new(s))),
        1 => vec((text(), error()), 0..3).prop_map(Answer::Resumed),
        1 => vec(message().prop_map(Rc::new), 0..3).prop_map(Answer::Peeked),
        1 => text().prop_map(Answer::Exchange),
        1 => text().prop_map(Answer::Tag),
    ]
    .boxed()
}

fn event() -> BoxedStrategy<WireEvent> {
    prop_oneof![
        3 => delivery().prop_map(WireEvent::Deliver),
        2 => (uint(), proptest::option::weighted(0.3, error()))
            .prop_map(|(seq, error)| WireEvent::Confirm { seq, error }),
        1 => (any::<u16>(), text(), message())
            .prop_map(|(code, text, m)| WireEvent::Return { code, text, message: Rc::new(m) }),
        1 => rc_text().prop_map(WireEvent::Cancelled),
        1 => error().prop_map(WireEvent::Closed),
    ]
    .boxed()
}

fn frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        1 => text().prop_map(|label| Frame::Hello { label }),
        1 => (u32v(), u32v(), any::<bool>())
            .prop_map(|(conn, chan, confirm)| Frame::OpenChannel { conn, chan, confirm }),
        1 => u32v().prop_map(|conn| Frame::CloseConnection { conn }),
        8 => (u32v(), u32v(), command()).prop_map(|(id, chan, cmd)| Frame::Call { id, chan, cmd }),
        1 => u32v().prop_map(|id| Frame::Stats { id }),
        1 => u32v().prop_map(|id| Frame::Flush { id }),
        1 => (u32v(), text(), u32v()).prop_map(|(id, queue, count)| Frame::Peek { id, queue, count }),
        2 => (u32v(), u32v(), u32v(), channel_state())
            .prop_map(|(id, conn, chan, state)| Frame::Resume { id, conn, chan, state }),
        1 => Just(Frame::Resumed),
        1 => any::<u64>().prop_map(|since| Frame::Host { since }),
        5 => (u32v(), prop_oneof![4 => answer().prop_map(Ok), 1 => error().prop_map(Err)])
            .prop_map(|(id, result)| Frame::Reply { id, result }),
        6 => (u32v(), event()).prop_map(|(chan, event)| Frame::Event { chan, event }),
    ]
    .boxed()
}

// ---- posts and inputs ------------------------------------------------------------------------

/// The receiver that decodes; sections go to it, to everyone (0) or to others.
const ME: u64 = 5;

fn receiver() -> BoxedStrategy<u64> {
    prop_oneof![3 => Just(ME), 2 => Just(EVERYONE), 1 => Just(7), 1 => Just(u64::MAX)].boxed()
}

/// A post as built: the sender and (receiver, frame) in the order pushed.
#[derive(Clone, Debug)]
struct PostSpec {
    from: u64,
    frames: Vec<(u64, Frame)>,
}

impl PostSpec {
    fn bytes(&self) -> Vec<u8> {
        let mut p = PostWriter::default();
        for (to, f) in &self.frames {
            p.push(*to, f);
        }
        p.finish(self.from)
    }

    /// The frames receiver `me` must decode: its sections and `EVERYONE`'s, each section
    /// where the first frame for its receiver was pushed.
    fn expected(&self, me: u64) -> Vec<&Frame> {
        let mut order: Vec<u64> = Vec::new();
        let mut by: BTreeMap<u64, Vec<&Frame>> = BTreeMap::new();
        for (to, f) in &self.frames {
            if !order.contains(to) {
                order.push(*to);
            }
            by.entry(*to).or_default().push(f);
        }
        order
            .into_iter()
            .filter(|t| *t == me || *t == EVERYONE)
            .flat_map(|t| by.remove(&t).unwrap_or_default())
            .collect()
    }
}

fn post() -> BoxedStrategy<PostSpec> {
    (uint(), vec((receiver(), frame()), 0..6)).prop_map(|(from, frames)| PostSpec { from, frames }).boxed()
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, u8),
    Duplicate(Index, u8),
}

fn mutation() -> BoxedStrategy<Mutation> {
    let edge = prop_oneof![any::<u8>(), select(vec![0u8, 1, 0x7f, 0x80, 0xff, MAGIC, VERSION])];
    prop_oneof![
        4 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, 1 << b)),
        3 => (any::<Index>(), edge).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), bytes(6)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<Index>(), 1u8..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1u8..12).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
    .boxed()
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Flip(i, bit) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] ^= bit;
        }
        Mutation::Set(i, b) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            bytes[i] = *b;
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::Insert(i, b) => {
            let i = at(i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Delete(i, n) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            let end = (i + *n as usize).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Duplicate(i, n) if !bytes.is_empty() => {
            let i = at(i, bytes.len());
            let end = (i + *n as usize).min(bytes.len());
            let copy: Vec<u8> = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Input {
    /// Random bytes, after our header when `header`.
    Raw { header: bool, body: Vec<u8> },
    /// A well-formed directory of one section for `to` around random frame bytes.
    Framed { to: u64, frames: u8, body: Vec<u8> },
    /// A valid post, mutated (not at all when `mutations` is empty).
    Post { post: PostSpec, mutations: Vec<Mutation> },
    /// The head of one valid post and the tail of another, mutated.
    Splice { a: PostSpec, b: PostSpec, cut_a: Index, cut_b: Index, mutations: Vec<Mutation> },
    /// A message whose headers nest `depth` tables deep, in a post to `ME`.
    Deep { depth: u32, arrays: bool },
}

fn input() -> BoxedStrategy<Input> {
    prop_oneof![
        2 => (any::<bool>(), bytes(96)).prop_map(|(header, body)| Input::Raw { header, body }),
        2 => (receiver(), 0u8..5, bytes(64)).prop_map(|(to, frames, body)| Input::Framed { to, frames, body }),
        3 => post().prop_map(|post| Input::Post { post, mutations: Vec::new() }),
        8 => (post(), vec(mutation(), 1..4)).prop_map(|(post, mutations)| Input::Post { post, mutations }),
        2 => (post(), post(), any::<Index>(), any::<Index>(), vec(mutation(), 0..2))
            .prop_map(|(a, b, cut_a, cut_b, mutations)| Input::Splice { a, b, cut_a, cut_b, mutations }),
        1 => (MAX_DEPTH - 3..MAX_DEPTH + 3, any::<bool>()).prop_map(|(depth, arrays)| Input::Deep { depth, arrays }),
    ]
    .boxed()
}

// ---- the checks -------------------------------------------------------------------------------

type Check = Result<(), TestCaseError>;

fn debug<T: std::fmt::Debug>(v: &[T]) -> String {
    format!("{v:?}")
}

/// Everything that must hold for any bytes a receiver `me` gets.
fn check_any(bytes: &[u8], me: u64) -> Check {
    let total = bytes.len();
    let full = directory(bytes, total, me);
    prop_assert!(!matches!(full, Ok(None)), "the whole post asks for more bytes");
    // As the receiver reads it: growing heads ask for more, then agree with the whole post.
    let mut k = 1;
    while k < total {
        match directory(&bytes[..k], total, me) {
            Ok(None) => {}
            other => prop_assert_eq!(&other, &full, "directory of a {}-byte head of {}", k, total),
        }
        k = if k < 16 { k + 1 } else { k * 2 };
    }
    let decoded = decode(bytes, me);
    let Ok(Some(dir)) = &full else {
        prop_assert!(decoded.is_err(), "decoded a post whose directory fails: {:?}", full);
        return Ok(());
    };
    let mut frames = Vec::new();
    let mut section_error = None;
    for &(n, start, end) in &dir.sections {
        prop_assert!(start <= end && end <= total, "section {}..{} of a {}-byte post", start, end, total);
        match section(&bytes[start..end], n) {
            Ok(fs) => {
                prop_assert_eq!(fs.len(), n);
                // The encoding is canonical: what decodes encodes to the same bytes.
                let mut w = Writer::new();
                for f in &fs {
                    tabbit::mesh::frame::frame(&mut w, f);
                }
                prop_assert!(w.as_bytes() == &bytes[start..end], "section {}..{} re-encodes differently", start, end);
                frames.extend(fs);
            }
            Err(e) => section_error = section_error.or(Some(e)),
        }
    }
    match (&decoded, section_error) {
        (Ok((from, got)), None) => {
            prop_assert_eq!(*from, dir.from);
            prop_assert_eq!(debug(got), debug(&frames));
        }
        (Err(e), Some(first)) => prop_assert_eq!(e, &first),
        (d, s) => return Err(TestCaseError::fail(format!("decode {d:?} but sections {s:?}"))),
    }
    if let Ok((from, got)) = decoded {
        // What decoded encodes to a valid post with the same frames, to us or to everyone.
        for to in [me, EVERYONE] {
            let mut p = PostWriter::default();
            for f in &got {
                p.push(to, f);
            }
            let again = p.finish(from);
            let (from2, got2) = decode(&again, me).map_err(|e| TestCaseError::fail(format!("re-encoded: {e:?}")))?;
            prop_assert_eq!(from2, from);
            prop_assert_eq!(debug(&got2), debug(&got));
        }
    }
    Ok(())
}

/// A post as built decodes to what was put in for each receiver.
fn check_valid(post: &PostSpec, bytes: &[u8]) -> Check {
    for me in [ME, 7, 12345] {
        let (from, got) = decode(bytes, me).map_err(|e| TestCaseError::fail(format!("valid post for {me}: {e:?}")))?;
        prop_assert_eq!(from, post.from);
        prop_assert_eq!(debug(&got), debug(&post.expected(me)), "frames for receiver {}", me);
    }
    Ok(())
}

fn nested(depth: u32, arrays: bool) -> Table {
    let mut v = FieldValue::Int(1);
    for _ in 1..depth {
        v = if arrays { FieldValue::Array(vec![v]) } else { FieldValue::Table([("k".to_owned(), v)].into()) };
    }
    [("h".to_owned(), v)].into()
}

/// Inputs by kind (raw, framed, valid, mutated, spliced, deep), and of those that decoded.
static SEEN: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static DECODED: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn run(input: Input) -> Check {
    let kind = match &input {
        Input::Raw { .. } => 0,
        Input::Framed { .. } => 1,
        Input::Post { mutations, .. } if mutations.is_empty() => 2,
        Input::Post { .. } => 3,
        Input::Splice { .. } => 4,
        Input::Deep { .. } => 5,
    };
    SEEN[kind].fetch_add(1, Relaxed);
    let bytes = check(input)?;
    if decode(&bytes, ME).is_ok() {
        DECODED[kind].fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Runs the checks; returns the bytes checked.
fn check(input: Input) -> Result<Vec<u8>, TestCaseError> {
    match input {
        Input::Raw { header, body } => {
            let mut bytes = if header { vec![MAGIC, VERSION] } else { Vec::new() };
            bytes.extend(body);
            check_any(&bytes, ME)?;
            Ok(bytes)
        }
        Input::Framed { to, frames, body } => {
            let mut w = Writer::new();
            for b in [MAGIC, VERSION] {
                w.u8(b);
            }
            for v in [3, 1, to, frames as u64] {
                w.uvar(v);
            }
            w.bytes(&body);
            check_any(w.as_bytes(), ME)?;
            Ok(w.into_bytes())
        }
        Input::Post { post, mutations } => {
            let mut bytes = post.bytes();
            if mutations.is_empty() {
                check_valid(&post, &bytes)?;
            }
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            check_any(&bytes, ME)?;
            Ok(bytes)
        }
        Input::Splice { a, b, cut_a, cut_b, mutations } => {
            let (a, b) = (a.bytes(), b.bytes());
            let mut bytes = a[..cut_a.index(a.len() + 1)].to_vec();
            bytes.extend_from_slice(&b[cut_b.index(b.len() + 1)..]);
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            check_any(&bytes, ME)?;
            Ok(bytes)
        }
        Input::Deep { depth, arrays } => {
            let mut m = Message::new("x", "k", b"b".to_vec());
            m.properties.headers = nested(depth, arrays);
            let post = PostSpec {
                from: 1,
                frames: vec![(
                    ME,
                    Frame::Call { id: 1, chan: 1, cmd: Command::Publish { message: Box::new(m), mandatory: false } },
                )],
            };
            let bytes = post.bytes();
            check_any(&bytes, ME)?;
            // The headers table is level 1: `depth` levels in all, `depth - 1` below it.
            match decode(&bytes, ME) {
                Ok(_) => prop_assert!(depth <= MAX_DEPTH, "{} levels decoded", depth),
                Err(e) => {
                    prop_assert!(depth > MAX_DEPTH, "{} levels refused: {:?}", depth, e);
                    prop_assert!(matches!(e, Dropped::Corrupt(ref d) if d.what == "nesting too deep"), "{:?}", e);
                }
            }
            Ok(bytes)
        }
    }
}

#[test]
fn frame_decoder_survives_any_post() {
    let report = fuzz::run("frames", 10_000, input, run);
    let kinds =
        ["random bytes", "framed random bytes", "valid posts", "mutated posts", "spliced posts", "deep headers"];
    let parts: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} {k} ({} decoded)", SEEN[i].load(Relaxed), DECODED[i].load(Relaxed)))
        .collect();
    eprintln!("fuzz frames: of {} inputs: {}", report.inputs, parts.join(", "));
}
