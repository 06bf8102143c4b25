//! A queue's messages: the ready list (FIFO per priority, requeues back in their
//! original position), delayed messages, and the counters the stats and invariants use.

use std::collections::VecDeque;
use std::rc::Rc;

use super::args::{Overflow, QueueArgs};
use super::ids::ConnId;
use super::message::Message;
use super::value::Table;

/// A message in a queue (ready, delayed, or unacked on a channel).
#[derive(Clone, Debug)]
pub struct Entry {
    /// Position in the queue: increases with every message the queue takes.
    pub seq: u64,
    /// `None` while paged out: the store holds it, and the host pages it back in
    /// before the message reaches the head of its queue (see `Broker::page_out_all`).
    pub message: Option<Rc<Message>>,
    /// The body's length, kept while the message is paged out (for byte limits and stats).
    pub body_len: u32,
    /// Absolute expiry time (ms), from the queue's and the message's TTL.
    pub expires_at: Option<u64>,
    /// Returns so far (nack/reject with requeue, or a closed channel).
    pub delivery_count: u32,
    pub redelivered: bool,
    /// Written to storage: persistent message in a durable queue.
    pub durable: bool,
    pub priority: u8,
}

impl Entry {
    pub fn body_len(&self) -> usize {
        self.body_len as usize
    }

    /// The message, which must be paged in: the broker only hands out, dead-letters or
    /// returns messages at the head of a queue, and the head is never paged out.
    pub fn loaded(&self) -> &Rc<Message> {
        self.message.as_ref().expect("a message at the head of its queue is paged in")
    }
}

/// Ready messages, highest priority first, FIFO by `seq` within a priority.
#[derive(Debug)]
pub struct ReadyList {
    /// One deque per priority level (index = priority); a single one without `x-max-priority`.
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    bytes: usize,
}

impl ReadyList {
    pub fn new(max_priority: Option<u8>) -> Self {
        let n = max_priority.map_or(1, |p| p as usize + 1);
        ReadyList { levels: (0..n).map(|_| VecDeque::new()).collect(), len: 0, bytes: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Body bytes of the ready messages.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn level(&self, priority: u8) -> usize {
        (priority as usize).min(self.levels.len() - 1)
    }

    /// Appends a newly published message.
    pub fn push_back(&mut self, e: Entry) {
        let l = self.level(e.priority);
        self.len += 1;
        self.bytes += e.body_len();
        self.levels[l].push_back(e);
    }

    /// Puts a message back at its original position (by `seq`), as RabbitMQ's classic
    /// queues do with requeued messages.
    pub fn requeue(&mut self, e: Entry) {
        let l = self.level(e.priority);
        self.len += 1;
        self.bytes += e.body_len();
        let level = &mut self.levels[l];
        // Requeues usually belong at the front: check that before a binary search.
        if level.front().is_none_or(|f| e.seq < f.seq) {
            level.push_front(e);
        } else {
            let at = level.partition_point(|x| x.seq < e.seq);
            level.insert(at, e);
        }
    }

    fn head_level(&self) -> Option<usize> {
        (0..self.levels.len()).rev().find(|&l| !self.levels[l].is_empty())
    }

    pub fn pop_front(&mut self) -> Option<Entry> {
        let l = self.head_level()?;
        let e = self.levels[l].pop_front()?;
        self.len -= 1;
        self.bytes -= e.body_len();
        Some(e)
    }

    /// The message `pop_front` would take.
    pub fn front(&self) -> Option<&Entry> {
        self.head_level().and_then(|l| self.levels[l].front())
    }

    /// Whether the queue has one priority level: only those page (their order is `seq`).
    pub fn is_single_level(&self) -> bool {
        self.levels.len() == 1
    }

    /// The entries of a single-level list from the first with `seq >= from`, in order.
    pub fn single_level_from(&mut self, from: u64) -> impl Iterator<Item = &mut Entry> {
        let level = &mut self.levels[0];
        let at = level.partition_point(|e| e.seq < from);
        level.range_mut(at..)
    }

    /// Takes out the entry with this `seq`, if ready.
    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        let level = self.levels.iter_mut().find(|l| {
            let at = l.partition_point(|e| e.seq < seq);
            l.get(at).is_some_and(|e| e.seq == seq)
        })?;
        let at = level.partition_point(|e| e.seq < seq);
        let e = level.remove(at)?;
        self.len -= 1;
        self.bytes -= e.body_len();
        Some(e)
    }

    /// The `n`th entry of a single-level list.
    pub fn single_level_nth(&self, n: usize) -> Option<&Entry> {
        self.levels[0].get(n)
    }

    /// How many ready entries of a single-level list come before `seq`.
    pub fn position_of(&self, seq: u64) -> usize {
        self.levels[0].partition_point(|e| e.seq < seq)
    }

    /// The entry with this `seq`, if ready.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        self.levels.iter_mut().find_map(|level| {
            let at = level.partition_point(|e| e.seq < seq);
            level.get_mut(at).filter(|e| e.seq == seq)
        })
    }

    /// Removes the first expired message at the head of any priority level. RabbitMQ
    /// expires messages only when they reach the head; each level is its own FIFO.
    pub fn pop_expired(&mut self, now: u64) -> Option<Entry> {
        let l = (0..self.levels.len()).rev().find(|&l| {
            self.levels[l].front().is_some_and(|e| e.message.is_some() && e.expires_at.is_some_and(|t| t <= now))
        })?;
        let e = self.levels[l].pop_front()?;
        self.len -= 1;
        self.bytes -= e.body_len();
        Some(e)
    }

    /// The earliest expiry among the heads of the levels. A paged-out head is left out:
    /// it expires once paged in (`page_in` dispatches, which expires), not at a tick, so
    /// its time, once past, would make the host's timer fire again at once until then.
    pub fn next_expiry(&self) -> Option<u64> {
        self.levels.iter().filter_map(|l| l.front().filter(|e| e.message.is_some()).and_then(|e| e.expires_at)).min()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Entry> + '_ {
        self.len = 0;
        self.bytes = 0;
        self.levels.iter_mut().rev().flat_map(|l| l.drain(..))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.levels.iter().rev().flat_map(|l| l.iter())
    }
}

/// Why a message left a queue without being acked; the `reason` RabbitMQ writes in
/// `x-death` for the dead-lettering ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::Expired => "expired",
            DropReason::MaxLen => "maxlen",
            DropReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// Which length limit refused a message (a publisher confirm's nack says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The queue's `x-max-length`, with `x-overflow: reject-publish(-dlx)`.
    MaxLength(u64),
    /// The queue's `x-max-length-bytes`, with `x-overflow: reject-publish(-dlx)`.
    MaxLengthBytes(u64),
    /// The broker's `limits.maxQueueLength`, for a queue without `x-max-length`.
    DefaultMaxLength(u64),
}

impl Refusal {
    /// Why queue `queue` refused the message and what to change, for the nack.
    pub fn describe(self, queue: &str) -> String {
        match self {
            Refusal::MaxLength(m) => format!(
                "queue '{queue}' is full: it holds {m} ready messages, its x-max-length (x-overflow reject-publish); consume or purge it, or declare it with a larger x-max-length"
            ),
            Refusal::MaxLengthBytes(m) => format!(
                "queue '{queue}' is full: its ready messages would exceed {m} bytes, its x-max-length-bytes (x-overflow reject-publish); consume or purge it, or declare it with a larger x-max-length-bytes"
            ),
            Refusal::DefaultMaxLength(m) => format!(
                "queue '{queue}' is full: it holds {m} ready messages, the default maximum for queues without x-max-length (limits.maxQueueLength); consume or purge it, declare it with its own x-max-length, or raise limits.maxQueueLength in connect()"
            ),
        }
    }
}

/// Where every message a queue took has gone: the invariant is that `enqueued` equals
/// the sum of the rest plus what is ready, delayed and unacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounters {
    pub enqueued: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub acked: u64,
    /// Delivered with `noAck`: gone at delivery.
    pub auto_acked: u64,
    pub dead_lettered: u64,
    /// Expired, rejected, dropped by overflow or delivery limit, with no dead-letter exchange.
    pub discarded: u64,
    pub purged: u64,
}

impl QueueCounters {
    /// The counters in their wire order (the frame codec's), and back.
    pub fn to_array(&self) -> [u64; 8] {
        [
            self.enqueued,
            self.delivered,
            self.redelivered,
            self.acked,
            self.auto_acked,
            self.dead_lettered,
            self.discarded,
            self.purged,
        ]
    }

    pub fn from_array(c: [u64; 8]) -> QueueCounters {
        let [enqueued, delivered, redelivered, acked, auto_acked, dead_lettered, discarded, purged] = c;
        QueueCounters { enqueued, delivered, redelivered, acked, auto_acked, dead_lettered, discarded, purged }
    }
}

/// Delayed messages, the earliest (ready time, then `seq`) first out: a binary min-heap in a
/// `Vec`, not a `BTreeMap` (the B-tree's code for one more key/value type was ~3 KB of gzipped
/// wasm; the heap is a few hundred bytes). Keys are distinct (`seq` is), so the order in
/// which messages come out does not depend on the heap's layout.
#[derive(Clone, Debug, Default)]
pub struct Delayed {
    heap: Vec<(u64, Entry)>,
}

impl Delayed {
    #[inline]
    fn key(&self, i: usize) -> (u64, u64) {
        (self.heap[i].0, self.heap[i].1.seq)
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    /// Adds `entry`, ready at `at`.
    pub fn insert(&mut self, at: u64, entry: Entry) {
        self.heap.push((at, entry));
        self.sift_up(self.heap.len() - 1);
    }
    /// When the earliest message is ready.
    pub fn next_time(&self) -> Option<u64> {
        self.heap.first().map(|e| e.0)
    }
    /// Takes out the earliest message if it is ready at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Entry> {
        if self.next_time()? > now {
            return None;
        }
        Some(self.take(0))
    }
    /// Takes out the message with this `seq`.
    pub fn remove_seq(&mut self, seq: u64) -> Option<Entry> {
        let i = self.heap.iter().position(|e| e.1.seq == seq)?;
        Some(self.take(i))
    }
    /// The messages, in no particular order.
    /// Every entry with its ready time, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.heap.iter().map(|(at, e)| (*at, e))
    }

    pub fn values(&self) -> impl Iterator<Item = &Entry> {
        self.heap.iter().map(|e| &e.1)
    }
    /// Takes out every message, earliest first.
    pub fn drain_sorted(&mut self) -> Vec<Entry> {
        let mut all = std::mem::take(&mut self.heap);
        crate::core::sort::sort_by(&mut all, |a, b| (a.0, a.1.seq).cmp(&(b.0, b.1.seq)));
        all.into_iter().map(|e| e.1).collect()
    }
    fn take(&mut self, i: usize) -> Entry {
        let (_, e) = self.heap.swap_remove(i);
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
        e
    }
    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.key(parent) <= self.key(i) {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
    }
    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.key(l) < self.key(least) {
                least = l;
            }
            if r < self.heap.len() && self.key(r) < self.key(least) {
                least = r;
            }
            if least == i {
                return;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }
}

#[derive(Debug)]
pub struct Queue {
    pub name: Rc<str>,
    pub durable: bool,
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub raw_args: Table,
    pub args: QueueArgs,
    pub ready: ReadyList,
    /// Delayed messages by (ready time, seq).
    pub delayed: Delayed,
    pub unacked: usize,
    /// Consumers in round-robin order.
    pub consumers: Vec<u32>,
    /// Where the next round-robin search starts.
    pub cursor: usize,
    /// Whether consumers have different `x-priority` values (else the first with room wins).
    pub mixed_priorities: bool,
    /// Auto-delete applies only to a queue that has had a consumer.
    pub had_consumer: bool,
    /// Ready messages whose bodies are paged out.
    pub paged: usize,
    /// Ready messages up to this `seq` have been considered for paging out.
    pub paged_through: u64,
    /// No paged-out message comes before this `seq`.
    pub paged_from: u64,
    /// The stored delivery horizon, as far as the broker knows (see
    /// [`crate::core::StoreOp::Horizon`]): a stored message goes out for the first time
    /// only if its `seq` is at most this.
    pub horizon: u64,
    /// The highest horizon asked for (at least `horizon`); above it while a write is due.
    pub horizon_asked: u64,
    /// Demand waits for a horizon above `horizon` (the lookahead grew for it).
    pub horizon_blocked: bool,
    /// How far beyond the current demand the next horizon reaches: grows fourfold each
    /// time demand catches up with the horizon, back to 0 after a second without deliveries.
    pub lookahead: u64,
    /// The highest `seq` of a stored message that went out for the first time (or the
    /// horizon recovered from the store): a horizon is never lowered below it.
    pub handed_through: u64,
    /// When a stored message last went out for the first time.
    pub first_delivered_at: Option<u64>,
    /// Last use for `x-expires`: declare, consume, get, a consumer leaving.
    pub last_used: u64,
    pub next_seq: u64,
    /// Positions below this came back from the store when the broker recovered (1 when
    /// nothing did). Only those can be in flight on a client that resumes a channel
    /// here: later positions may reuse those of messages lost with the old broker
    /// (non-persistent ones are never stored), so a resumed delivery must not claim them.
    pub stored_below: u64,
    pub counters: QueueCounters,
}

impl Queue {
    pub fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The length limit that refuses one more message of `body_len` bytes, if one does:
    /// the queue's own `x-max-length` / `x-max-length-bytes` when its `x-overflow` is a
    /// `reject-publish` one, else `default_max` (the broker's `limits.maxQueueLength`)
    /// when the queue has no `x-max-length` of its own. The default always refuses, whatever
    /// the queue's `x-overflow`: dropping the head would lose messages nobody asked to lose.
    pub fn refusal(&self, body_len: usize, default_max: Option<u64>) -> Option<Refusal> {
        let len = self.ready.len() as u64;
        if self.args.overflow != Overflow::DropHead {
            if let Some(m) = self.args.max_length.filter(|&m| len >= m) {
                return Some(Refusal::MaxLength(m));
            }
            if let Some(m) = self.args.max_length_bytes.filter(|&m| (self.ready.bytes() + body_len) as u64 > m) {
                return Some(Refusal::MaxLengthBytes(m));
            }
        }
        match (self.args.max_length, default_max) {
            (None, Some(m)) if len >= m => Some(Refusal::DefaultMaxLength(m)),
            _ => None,
        }
    }

    /// The most ready messages this queue takes: its `x-max-length`, else the default.
    pub fn effective_max_length(&self, default_max: Option<u64>) -> Option<u64> {
        self.args.max_length.or(default_max)
    }

    /// Whether this queue's ready messages may be paged out: a single priority level
    /// (FIFO by `seq`) and no length limit (a bounded queue stays small, and drop-head
    /// must see the message it drops).
    pub fn can_page(&self) -> bool {
        self.durable
            && self.ready.is_single_level()
            && self.args.max_length.is_none()
            && self.args.max_length_bytes.is_none()
    }

    /// Whether the message at the head of the ready list is paged out.
    pub fn head_paged(&self) -> bool {
        self.ready.front().is_some_and(|e| e.message.is_none())
    }

    /// Whether the ready messages exceed a length limit now.
    pub fn is_over_limit(&self) -> bool {
        self.args.max_length.is_some_and(|m| self.ready.len() as u64 > m)
            || self.args.max_length_bytes.is_some_and(|m| self.ready.bytes() as u64 > m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, priority: u8) -> Entry {
        Entry {
            seq,
            message: Some(Rc::new(Message::new("", "q", vec![0u8; 3]))),
            body_len: 3,
            expires_at: None,
            delivery_count: 0,
            redelivered: false,
            durable: false,
            priority,
        }
    }

    #[test]
    fn delayed_messages_come_out_earliest_first() {
        // Random ready times (many equal), removals by seq, and releases, against a sorted
        // list of (time, seq).
        let mut d = Delayed::default();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        for seq in 0..2000u64 {
            let at = next() % 50;
            d.insert(at, entry(seq, 0));
            model.push((at, seq));
            if next() % 4 == 0 {
                let gone = next() % (seq + 1);
                let was = model.iter().position(|&(_, s)| s == gone).map(|i| model.remove(i));
                assert_eq!(d.remove_seq(gone).map(|e| e.seq), was.map(|(_, s)| s));
            }
            if next() % 8 == 0 {
                let now = next() % 50;
                model.sort();
                while model.first().is_some_and(|&(t, _)| t <= now) {
                    let (_, s) = model.remove(0);
                    assert_eq!(d.pop_due(now).map(|e| e.seq), Some(s));
                }
                assert!(d.pop_due(now).is_none());
            }
            model.sort();
            assert_eq!(d.next_time(), model.first().map(|&(t, _)| t));
            assert_eq!(d.len(), model.len());
        }
        let rest: Vec<u64> = d.drain_sorted().iter().map(|e| e.seq).collect();
        assert_eq!(rest, model.iter().map(|&(_, s)| s).collect::<Vec<_>>());
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn requeue_restores_original_position() {
        let mut r = ReadyList::new(None);
        for s in [1, 2, 3, 4] {
            r.push_back(entry(s, 0));
        }
        let a = r.pop_front().unwrap();
        let b = r.pop_front().unwrap();
        r.requeue(b);
        r.requeue(a);
        let order: Vec<u64> = r.iter().map(|e| e.seq).collect();
        assert_eq!(order, [1, 2, 3, 4]);
        assert_eq!(r.bytes(), 12);
    }

    #[test]
    fn higher_priority_first_and_fifo_within_priority() {
        let mut r = ReadyList::new(Some(5));
        r.push_back(entry(1, 0));
        r.push_back(entry(2, 9)); // above max: treated as max
        r.push_back(entry(3, 5));
        r.push_back(entry(4, 2));
        let order: Vec<u64> = std::iter::from_fn(|| r.pop_front()).map(|e| e.seq).collect();
        assert_eq!(order, [2, 3, 4, 1]);
    }

    #[test]
    fn remove_by_seq_finds_the_entry_at_any_priority() {
        let mut r = ReadyList::new(Some(5));
        for (seq, p) in [(1, 0), (2, 5), (3, 0), (4, 5)] {
            r.push_back(entry(seq, p));
        }
        assert_eq!(r.remove(3).map(|e| e.seq), Some(3));
        assert_eq!(r.remove(4).map(|e| e.seq), Some(4));
        assert!(r.remove(3).is_none() && r.remove(9).is_none());
        let order: Vec<u64> = r.iter().map(|e| e.seq).collect();
        assert_eq!(order, [2, 1]);
        assert_eq!((r.len(), r.bytes()), (2, 6));
    }
}
