#![cfg(not(target_arch = "wasm32"))]
//! Property tests: random command sequences over a small fixed universe (3 connections
//! × 2 channels, 4 queues with assorted arguments, a topic and a fanout exchange).
//! After every command the broker's own invariants must hold, nothing may panic, and
//! the effects must be consistent with what the test has seen so far:
//!
//! - no message (queue id + seq) is delivered while it is out unacked on some channel;
//! - a message delivered before comes again only with `redelivered` set;
//! - delivery tags increase on each channel;
//! - confirms on a channel come one per successful publish, numbered 1, 2, 3, … with no gap;
//! - store ops put each message once, and remove or return only stored ones;
//! - `tick` returns the broker's next deadline, which lies in the future.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use proptest::prelude::*;
use proptest::test_runner::Config;
use tabbit::core::*;

// ---- the universe ------------------------------------------------------------------------

const QUEUES: [&str; 4] = ["q0", "q1", "q2", "q3"];
/// Exchanges for publishing: the default one, the two declared ones and a missing one.
const PUBLISH_EXCHANGES: [&str; 4] = ["", "t", "f", "missing"];
/// Exchanges for binding: the two declared ones, plus two that fail (403, 404).
const BIND_EXCHANGES: [&str; 4] = ["t", "f", "", "missing"];
const KEYS: [&str; 8] = ["q0", "q1", "q2", "q3", "a.b", "a.*", "#", "x"];
const EXPIRATIONS: [&str; 7] = ["0", "10", "100", "1000", "bad", "-5", "1.5"];
const SLOTS: usize = 6; // 3 connections × 2 channels

fn int(i: i64) -> FieldValue {
    FieldValue::Int(i)
}
fn s(v: &str) -> FieldValue {
    FieldValue::Str(v.to_owned())
}

/// Each queue's full arguments: TTLs, length limits with every overflow mode, dead-letter
/// chains through the default exchange and the fanout, priorities, SAC, delivery limit.
fn queue_args(q: usize) -> Table {
    let pairs: Vec<(&str, FieldValue)> = match q {
        0 => vec![
            ("x-message-ttl", int(100)),
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s("q1")),
            ("x-max-priority", int(3)),
        ],
        1 => vec![
            ("x-max-length", int(3)),
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s("q2")),
            ("x-delivery-limit", int(2)),
        ],
        2 => vec![
            ("x-max-length", int(2)),
            ("x-overflow", s("reject-publish-dlx")),
            ("x-dead-letter-exchange", s("f")),
            ("x-single-active-consumer", FieldValue::Bool(true)),
        ],
        _ => vec![
            ("x-max-length-bytes", int(20)),
            ("x-overflow", s("reject-publish")),
            ("x-message-ttl", int(300)),
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s("q0")),
            ("x-expires", int(2000)),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn queue_durable(q: usize) -> bool {
    q == 0 || q == 2
}

// ---- commands --------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum How {
    Ack,
    Nack { requeue: bool },
    Reject { requeue: bool },
}

#[derive(Clone, Copy, Debug)]
enum TagPick {
    /// One of the channel's unacked tags, by index (no command when there are none).
    Known(usize),
    /// Any number: mostly invalid.
    Raw(u64),
}

#[derive(Clone, Debug)]
enum Cmd {
    Declare {
        slot: usize,
        q: usize,
        plain: bool,
        exclusive: bool,
        auto_delete: bool,
    },
    Delete {
        slot: usize,
        q: usize,
        if_unused: bool,
        if_empty: bool,
    },
    Purge {
        slot: usize,
        q: usize,
    },
    Bind {
        slot: usize,
        q: usize,
        ex: usize,
        key: usize,
    },
    Unbind {
        slot: usize,
        q: usize,
        ex: usize,
        key: usize,
    },
    Publish {
        slot: usize,
        ex: usize,
        key: usize,
        persistent: bool,
        priority: Option<u8>,
        expiration: Option<usize>,
        delay: Option<i64>,
        mandatory: bool,
        size: usize,
    },
    Consume {
        slot: usize,
        q: usize,
        no_ack: bool,
        exclusive: bool,
        priority: Option<i64>,
        tag: Option<u8>,
    },
    Cancel {
        slot: usize,
        which: usize,
    },
    Get {
        slot: usize,
        q: usize,
        no_ack: bool,
    },
    Settle {
        slot: usize,
        how: How,
        tag: TagPick,
        multiple: bool,
    },
    Recover {
        slot: usize,
    },
    Prefetch {
        slot: usize,
        count: u32,
        global: bool,
    },
    ConfirmSelect {
        slot: usize,
    },
    Close {
        slot: usize,
    },
    Disconnect {
        conn: usize,
    },
    Tick {
        ms: u64,
    },
}

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        3 => Just(How::Ack),
        2 => any::<bool>().prop_map(|requeue| How::Nack { requeue }),
        1 => any::<bool>().prop_map(|requeue| How::Reject { requeue }),
    ]
}

fn tag_pick() -> impl Strategy<Value = TagPick> {
    prop_oneof![
        6 => (0usize..8).prop_map(TagPick::Known),
        1 => (0u64..30).prop_map(TagPick::Raw),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let slot = 0..SLOTS;
    let q = 0..QUEUES.len();
    prop_oneof![
        4 => (slot.clone(), q.clone(), prop::bool::weighted(0.2), prop::bool::weighted(0.1), prop::bool::weighted(0.05))
            .prop_map(|(slot, q, plain, exclusive, auto_delete)| Cmd::Declare { slot, q, plain, exclusive, auto_delete }),
        1 => (slot.clone(), q.clone(), prop::bool::weighted(0.3), prop::bool::weighted(0.3))
            .prop_map(|(slot, q, if_unused, if_empty)| Cmd::Delete { slot, q, if_unused, if_empty }),
        1 => (slot.clone(), q.clone()).prop_map(|(slot, q)| Cmd::Purge { slot, q }),
        3 => (slot.clone(), q.clone(), prop::sample::select(vec![0usize, 0, 1, 1, 1, 2, 3]), 0..KEYS.len())
            .prop_map(|(slot, q, ex, key)| Cmd::Bind { slot, q, ex, key }),
        1 => (slot.clone(), q.clone(), 0usize..2, 0..KEYS.len()).prop_map(|(slot, q, ex, key)| Cmd::Unbind { slot, q, ex, key }),
        12 => (
            slot.clone(),
            prop::sample::select(vec![0usize, 0, 0, 0, 1, 2, 2, 3]),
            prop::sample::select(vec![0usize, 0, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7]),
            any::<bool>(),
            prop::option::weighted(0.4, 0u8..8),
            prop::option::weighted(0.3, prop::sample::select(vec![0usize, 1, 1, 2, 2, 3, 4, 5, 6])),
            prop::option::weighted(0.1, prop::sample::select(vec![0i64, 50, 300])),
            prop::bool::weighted(0.3),
            0usize..12,
        )
            .prop_map(|(slot, ex, key, persistent, priority, expiration, delay, mandatory, size)| Cmd::Publish {
                slot,
                ex,
                key,
                persistent,
                priority,
                expiration,
                delay,
                mandatory,
                size
            }),
        4 => (
            slot.clone(),
            q.clone(),
            prop::bool::weighted(0.25),
            prop::bool::weighted(0.05),
            prop::option::weighted(0.2, -1i64..3),
            prop::option::weighted(0.2, 0u8..2),
        )
            .prop_map(|(slot, q, no_ack, exclusive, priority, tag)| Cmd::Consume { slot, q, no_ack, exclusive, priority, tag }),
        2 => (slot.clone(), 0usize..4).prop_map(|(slot, which)| Cmd::Cancel { slot, which }),
        3 => (slot.clone(), q.clone(), prop::bool::weighted(0.3)).prop_map(|(slot, q, no_ack)| Cmd::Get { slot, q, no_ack }),
        8 => (slot.clone(), how(), tag_pick(), prop::bool::weighted(0.3))
            .prop_map(|(slot, how, tag, multiple)| Cmd::Settle { slot, how, tag, multiple }),
        1 => slot.clone().prop_map(|slot| Cmd::Recover { slot }),
        2 => (slot.clone(), 0u32..4, prop::bool::weighted(0.3)).prop_map(|(slot, count, global)| Cmd::Prefetch { slot, count, global }),
        2 => slot.clone().prop_map(|slot| Cmd::ConfirmSelect { slot }),
        1 => slot.clone().prop_map(|slot| Cmd::Close { slot }),
        1 => (0usize..3).prop_map(|conn| Cmd::Disconnect { conn }),
        5 => prop::sample::select(vec![0u64, 1, 10, 50, 100, 300, 1000, 2500]).prop_map(|ms| Cmd::Tick { ms }),
    ]
}

// ---- the world: the broker plus what the test has seen ----------------------------------------

#[derive(Default)]
struct ChannelTrack {
    /// Unacked deliveries by tag.
    unacked: BTreeMap<u64, (QueueId, u64)>,
    last_tag: u64,
    /// The next confirm number, once in confirm mode.
    confirm_next: Option<u64>,
}

struct World {
    b: Broker,
    now: u64,
    conns: [Option<ConnId>; 3],
    chans: [[Option<ChannelRef>; 2]; 3],
    /// Messages out unacked, and on which channel.
    out: HashMap<(QueueId, u64), ChannelRef>,
    /// Every message ever delivered.
    seen: HashSet<(QueueId, u64)>,
    tracks: HashMap<ChannelRef, ChannelTrack>,
    /// Live consumers by (channel, tag): `no_ack` and the queue's name.
    consumers: HashMap<(ChannelRef, String), (bool, &'static str)>,
    /// Published messages by their `id` header: publish time and `expiration` (ms).
    published: Vec<(u64, Option<u64>)>,
    /// Stored messages by (queue name, seq).
    stored: HashSet<(Rc<str>, u64)>,
}

type Check = Result<(), TestCaseError>;

impl World {
    fn new() -> World {
        let mut w = World {
            b: Broker::new(BrokerConfig { seed: 7, ..Default::default() }),
            now: 1_700_000_000_000,
            conns: [None; 3],
            chans: [[None; 2]; 3],
            out: HashMap::new(),
            seen: HashSet::new(),
            tracks: HashMap::new(),
            consumers: HashMap::new(),
            published: Vec::new(),
            stored: HashSet::new(),
        };
        let c = w.b.connect();
        let ch = w.b.open_channel(c).unwrap();
        for (name, kind, durable) in [("t", "topic", false), ("f", "fanout", true)] {
            let d = ExchangeDeclare { name: name.into(), kind: kind.into(), durable, ..Default::default() };
            w.b.declare_exchange(ch, d, w.now).unwrap();
        }
        for (q, name) in QUEUES.iter().enumerate() {
            let d = QueueDeclare {
                name: (*name).into(),
                durable: queue_durable(q),
                arguments: queue_args(q),
                ..Default::default()
            };
            w.b.declare_queue(ch, d, w.now).unwrap();
        }
        w.b.disconnect(c, w.now);
        w.b.drain_effects().for_each(drop);
        w
    }

    /// The channel of a slot, connecting and opening as needed.
    fn channel(&mut self, slot: usize) -> ChannelRef {
        let (c, k) = (slot / 2, slot % 2);
        let conn = *self.conns[c].get_or_insert_with(|| self.b.connect());
        if let Some(ch) = self.chans[c][k] {
            if self.b.has_channel(ch) {
                return ch;
            }
        }
        let ch = self.b.open_channel(conn).expect("open channel");
        assert!(!self.tracks.contains_key(&ch), "a reused channel number was not released");
        self.tracks.insert(ch, ChannelTrack::default());
        self.chans[c][k] = Some(ch);
        ch
    }

    /// Forgets the channels the broker closed: their unacked deliveries went back.
    fn release_closed(&mut self) {
        let closed: Vec<ChannelRef> = self.tracks.keys().copied().filter(|ch| !self.b.has_channel(*ch)).collect();
        for ch in closed {
            let t = self.tracks.remove(&ch).expect("tracked");
            for key in t.unacked.values() {
                self.out.remove(key);
            }
            self.consumers.retain(|(c, _), _| *c != ch);
        }
    }

    fn settled(&mut self, ch: ChannelRef, tags: &[u64]) {
        let t = self.tracks.get_mut(&ch).expect("open channel is tracked");
        for tag in tags {
            if let Some(key) = t.unacked.remove(tag) {
                self.out.remove(&key);
            }
        }
    }

    /// Checks a delivery from queue `queue` (by name, when the channel is open).
    fn on_delivery(&mut self, d: &Delivery, needs_ack: bool, queue: Option<&str>) -> Check {
        let key = (d.queue, d.seq);
        // A message still in the queue it was published to (not dead-lettered) is never
        // delivered after its expiry: publish time + the lower of queue TTL and expiration.
        let id = d.message.properties.headers.get("id").and_then(FieldValue::as_int);
        if let (Some(id), Some(queue), false) = (id, queue, d.message.properties.headers.contains_key("x-death")) {
            let (at, expiration) = self.published[id as usize];
            let info = self.b.queue_info(queue).expect("a delivering queue exists");
            let queue_ttl = info.arguments.get("x-message-ttl").and_then(FieldValue::as_int).map(|t| t as u64);
            let ttl = match (queue_ttl, expiration) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(ttl) = ttl {
                prop_assert!(
                    self.now <= at + ttl,
                    "message {key:?} delivered at {} after its expiry at {}",
                    self.now,
                    at + ttl
                );
            }
        }
        prop_assert!(
            !self.out.contains_key(&key),
            "message {key:?} delivered to {:?} while out unacked on {:?}",
            d.channel,
            self.out[&key]
        );
        if !self.seen.insert(key) {
            prop_assert!(d.redelivered, "message {key:?} delivered again without redelivered");
        }
        // A delivery to a channel this command closed went back to its queue already.
        if let Some(t) = self.tracks.get_mut(&d.channel) {
            prop_assert!(
                d.delivery_tag > t.last_tag,
                "delivery tag {} after {} on {:?}",
                d.delivery_tag,
                t.last_tag,
                d.channel
            );
            t.last_tag = d.delivery_tag;
            if needs_ack {
                t.unacked.insert(d.delivery_tag, key);
                self.out.insert(key, d.channel);
            }
        }
        Ok(())
    }

    /// Checks the effects of one command; returns the confirms per channel.
    fn effects(&mut self) -> Result<Vec<Confirm>, TestCaseError> {
        let effects: Vec<Effect> = self.b.drain_effects().collect();
        let mut confirms = Vec::new();
        for e in effects {
            match e {
                Effect::Deliver(d) => {
                    let tag = d.consumer_tag.as_deref().expect("pushed deliveries come from consumers").to_owned();
                    let (no_ack, queue) = if self.b.has_channel(d.channel) {
                        let (no_ack, queue) = *self
                            .consumers
                            .get(&(d.channel, tag.clone()))
                            .ok_or_else(|| TestCaseError::fail(format!("delivery from unknown consumer {tag}")))?;
                        (no_ack, Some(queue))
                    } else {
                        (true, None)
                    };
                    self.on_delivery(&d, !no_ack, queue)?;
                }
                Effect::Confirm(c) => confirms.push(c),
                Effect::ConsumerCancelled { channel, consumer_tag } => {
                    self.consumers.remove(&(channel, consumer_tag.to_string()));
                }
                Effect::ChannelClosed { channel, .. } => {
                    prop_assert!(!self.b.has_channel(channel));
                }
                Effect::Return(_) => {}
                Effect::Store(op) => self.store(op)?,
            }
        }
        Ok(confirms)
    }

    fn store(&mut self, op: StoreOp) -> Check {
        match op {
            StoreOp::PutMessage { queue, seq, .. } => {
                prop_assert!(self.stored.insert((queue.clone(), seq)), "message {queue}/{seq} stored twice");
            }
            StoreOp::RemoveMessage { queue, seq } => {
                prop_assert!(self.stored.remove(&(queue.clone(), seq)), "removing {queue}/{seq}, which is not stored");
            }
            StoreOp::ReturnMessage { queue, seq, delivery_count } => {
                prop_assert!(
                    self.stored.contains(&(queue.clone(), seq)),
                    "returning {queue}/{seq}, which is not stored"
                );
                prop_assert!(delivery_count > 0);
            }
            StoreOp::DeleteQueue { name } => self.stored.retain(|(q, _)| *q != name),
            _ => {}
        }
        Ok(())
    }

    fn run(&mut self, cmd: &Cmd) -> Check {
        let now = self.now;
        let mut confirm_expected: Option<ChannelRef> = None;
        match *cmd {
            Cmd::Declare { slot, q, plain, exclusive, auto_delete } => {
                let ch = self.channel(slot);
                let d = QueueDeclare {
                    name: QUEUES[q].into(),
                    durable: queue_durable(q),
                    exclusive,
                    auto_delete,
                    arguments: if plain { Table::new() } else { queue_args(q) },
                    ..Default::default()
                };
                let _ = self.b.declare_queue(ch, d, now);
            }
            Cmd::Delete { slot, q, if_unused, if_empty } => {
                let ch = self.channel(slot);
                let _ = self.b.delete_queue(ch, QUEUES[q], if_unused, if_empty, now);
            }
            Cmd::Purge { slot, q } => {
                let ch = self.channel(slot);
                let _ = self.b.purge_queue(ch, QUEUES[q], now);
            }
            Cmd::Bind { slot, q, ex, key } => {
                let ch = self.channel(slot);
                let _ = self.b.bind_queue(ch, QUEUES[q], BIND_EXCHANGES[ex], KEYS[key], Table::new(), now);
            }
            Cmd::Unbind { slot, q, ex, key } => {
                let ch = self.channel(slot);
                let _ = self.b.unbind_queue(ch, QUEUES[q], BIND_EXCHANGES[ex], KEYS[key], Table::new(), now);
            }
            Cmd::Publish { slot, ex, key, persistent, priority, expiration, delay, mandatory, size } => {
                let ch = self.channel(slot);
                let mut m = Message::new(PUBLISH_EXCHANGES[ex], KEYS[key], vec![b'x'; size]);
                m.properties.persistent = persistent;
                m.properties.priority = priority;
                m.properties.expiration = expiration.map(|i| EXPIRATIONS[i].to_owned());
                m.properties.headers.insert("id".into(), int(self.published.len() as i64));
                self.published.push((now, m.properties.expiration.as_deref().and_then(|e| e.parse().ok())));
                if let Some(d) = delay {
                    m.properties.headers.insert("x-delay".into(), int(d));
                }
                if self.b.publish(ch, m, mandatory, now).is_ok() {
                    confirm_expected = Some(ch);
                } else {
                    prop_assert!(!self.b.has_channel(ch), "a failed publish closes the channel");
                }
            }
            Cmd::Consume { slot, q, no_ack, exclusive, priority, tag } => {
                let ch = self.channel(slot);
                let mut c = Consume {
                    queue: QUEUES[q].into(),
                    consumer_tag: tag.map_or(String::new(), |t| format!("c{t}")),
                    no_ack,
                    exclusive,
                    ..Default::default()
                };
                if let Some(p) = priority {
                    c.arguments.insert("x-priority".into(), int(p));
                }
                // The consumer is known before its first deliveries are checked.
                if let Ok(tag) = self.b.consume(ch, c, now) {
                    prop_assert!(
                        self.consumers.insert((ch, tag.to_string()), (no_ack, QUEUES[q])).is_none(),
                        "consumer tag {tag} reused"
                    );
                }
            }
            Cmd::Cancel { slot, which } => {
                let ch = self.channel(slot);
                let mut mine: Vec<String> =
                    self.consumers.keys().filter(|(c, _)| *c == ch).map(|(_, t)| t.clone()).collect();
                mine.sort();
                let tag = if mine.is_empty() { "none".to_owned() } else { mine[which % mine.len()].clone() };
                if self.b.cancel(ch, &tag, now).is_ok() {
                    self.consumers.remove(&(ch, tag));
                }
            }
            Cmd::Get { slot, q, no_ack } => {
                let ch = self.channel(slot);
                let r = self.b.get(ch, QUEUES[q], no_ack, now);
                self.release_closed();
                self.effects()?;
                if let Ok(Some(g)) = r {
                    prop_assert_eq!(g.delivery.channel, ch);
                    prop_assert!(g.delivery.consumer_tag.is_none());
                    self.on_delivery(&g.delivery, !no_ack, Some(QUEUES[q]))?;
                }
                return self.after();
            }
            Cmd::Settle { slot, how, tag, multiple } => {
                let ch = self.channel(slot);
                let known: Vec<u64> = self.tracks[&ch].unacked.keys().copied().collect();
                let tag = match tag {
                    TagPick::Known(i) if !known.is_empty() => known[i % known.len()],
                    TagPick::Known(_) => return self.after(), // nothing to settle
                    TagPick::Raw(t) => t,
                };
                let r = match how {
                    How::Ack => self.b.ack(ch, tag, multiple, now),
                    How::Nack { requeue } => self.b.nack(ch, tag, multiple, requeue, now),
                    How::Reject { requeue } => self.b.reject(ch, tag, requeue, now),
                };
                let multiple = multiple && !matches!(how, How::Reject { .. });
                match r {
                    Ok(()) => {
                        let tags: Vec<u64> = if multiple {
                            known.iter().copied().filter(|t| tag == 0 || *t <= tag).collect()
                        } else {
                            prop_assert!(known.contains(&tag), "settling unknown tag {tag} succeeded");
                            vec![tag]
                        };
                        self.settled(ch, &tags);
                    }
                    Err(e) => {
                        prop_assert_eq!(e.code, ReplyCode::PreconditionFailed);
                        prop_assert!(!self.b.has_channel(ch), "a failed settle closes the channel");
                        let valid = if multiple { tag == 0 || known.contains(&tag) } else { known.contains(&tag) };
                        prop_assert!(!valid, "settling tag {tag} (multiple {multiple}) failed: {e}");
                    }
                }
            }
            Cmd::Recover { slot } => {
                let ch = self.channel(slot);
                if self.b.recover(ch, now).is_ok() {
                    let tags: Vec<u64> = self.tracks[&ch].unacked.keys().copied().collect();
                    self.settled(ch, &tags);
                }
            }
            Cmd::Prefetch { slot, count, global } => {
                let ch = self.channel(slot);
                self.b.prefetch(ch, count, global, now).expect("prefetch on an open channel");
            }
            Cmd::ConfirmSelect { slot } => {
                let ch = self.channel(slot);
                self.b.confirm_select(ch).expect("confirm_select on an open channel");
                self.tracks.get_mut(&ch).expect("tracked").confirm_next.get_or_insert(1);
            }
            Cmd::Close { slot } => {
                let ch = self.channel(slot);
                self.b.close_channel(ch, now).expect("closing an open channel");
            }
            Cmd::Disconnect { conn } => {
                if let Some(c) = self.conns[conn].take() {
                    self.b.disconnect(c, now);
                    prop_assert!(self.b.open_channel(c).is_err(), "a closed connection opens no channel");
                }
            }
            Cmd::Tick { ms } => {
                self.now += ms;
                let next = self.b.tick(self.now);
                prop_assert_eq!(next, self.b.next_deadline());
                if let Some(t) = next {
                    prop_assert!(t > self.now, "tick({}) left work due at {t}", self.now);
                }
            }
        }
        self.release_closed();
        let confirms = self.effects()?;
        match confirm_expected.and_then(|ch| self.tracks.get_mut(&ch).map(|t| (ch, t))) {
            Some((ch, t)) if t.confirm_next.is_some() => {
                let n = t.confirm_next.expect("confirm mode");
                prop_assert_eq!(confirms.len(), 1, "one confirm per publish");
                prop_assert_eq!((confirms[0].channel, confirms[0].seq), (ch, n), "confirms numbered without gaps");
                t.confirm_next = Some(n + 1);
            }
            _ => prop_assert!(confirms.is_empty(), "confirms outside confirm mode: {confirms:?}"),
        }
        self.after()
    }

    fn after(&mut self) -> Check {
        if let Err(e) = self.b.check_invariants() {
            return Err(TestCaseError::fail(format!("invariant broken: {e}")));
        }
        let unacked: usize = self.tracks.values().map(|t| t.unacked.len()).sum();
        prop_assert_eq!(unacked, self.out.len());
        for (ch, t) in &self.tracks {
            prop_assert_eq!(self.b.channel_unacked(*ch), Some(t.unacked.len()), "unacked count of {:?}", ch);
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn random_command_sequences_keep_the_broker_consistent(cmds in prop::collection::vec(cmd(), 1..200)) {
        let mut w = World::new();
        for c in &cmds {
            w.run(c)?;
        }
        // Closing everything returns every delivery and leaves the accounting whole.
        for conn in 0..3 {
            if let Some(c) = w.conns[conn].take() {
                w.b.disconnect(c, w.now);
            }
        }
        w.release_closed();
        w.effects()?;
        prop_assert!(w.out.is_empty());
        w.after()?;
        for name in w.b.queue_names() {
            prop_assert_eq!(w.b.queue_info(&name).expect("listed").unacked, 0);
        }
        // Every stored message is still in its queue: purging every queue removes them all.
        let c = w.b.connect();
        let ch = w.b.open_channel(c).expect("open channel");
        for name in w.b.queue_names() {
            w.b.purge_queue(ch, &name, w.now).expect("purge");
        }
        w.effects()?;
        prop_assert!(w.stored.is_empty(), "stored but in no queue: {:?}", w.stored);
    }
}

// ---- regressions the property test found ---------------------------------------------------

/// A `noAck` delivery takes a delivery tag too (as in RabbitMQ), so the tags of a
/// channel's unacked deliveries can have gaps; acking across a gap must work.
#[test]
fn no_ack_deliveries_leave_gaps_in_the_unacked_tags() {
    let mut b = Broker::new(BrokerConfig::default());
    let c = b.connect();
    let ch = b.open_channel(c).unwrap();
    b.declare_queue(ch, QueueDeclare { name: "q".into(), ..Default::default() }, 0).unwrap();
    for _ in 0..4 {
        b.publish(ch, Message::new("", "q", b"m".to_vec()), false, 0).unwrap();
    }
    let tags: Vec<u64> = [false, true, false, false]
        .iter()
        .map(|&no_ack| b.get(ch, "q", no_ack, 0).unwrap().unwrap().delivery.delivery_tag)
        .collect();
    assert_eq!(tags, [1, 2, 3, 4]);
    assert_eq!(b.channel_unacked(ch), Some(3));
    b.ack(ch, 3, false, 0).unwrap();
    assert_eq!(code(b.ack(ch, 2, false, 0)), 406, "the noAck delivery's tag is not ackable");
    let ch = b.open_channel(c).unwrap();
    for _ in 0..3 {
        b.publish(ch, Message::new("", "q", b"m".to_vec()), false, 0).unwrap();
    }
    b.get(ch, "q", false, 0).unwrap().unwrap();
    b.get(ch, "q", true, 0).unwrap().unwrap();
    b.get(ch, "q", false, 0).unwrap().unwrap();
    b.nack(ch, 3, true, true, 0).unwrap();
    assert_eq!(b.channel_unacked(ch), Some(0));
    b.check_invariants().unwrap();
}

fn code(r: Result<()>) -> u16 {
    r.expect_err("expected an error").code.code()
}
