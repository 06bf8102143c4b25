//! The stored layout and its bookkeeping, sans-IO: [`Log`] turns the broker's
//! [`StoreOp`]s into record writes, one [`Batch`] per event-loop turn (one transaction),
//! and turns stored records back into a broker ([`Log::recover`], [`restore`]; streamed
//! a chunk of segments at a time: [`Recovery`]).
//!
//! Layout, one collection (IndexedDB object store) each:
//! - `exchanges`, `queues`: one record per durable exchange / queue, keyed by name. A
//!   queue record carries the queue's store id, new for every declaration, so that a
//!   queue deleted and declared again never sees the old one's messages.
//! - `bindings`: one record per binding between durable things, keyed by a number.
//! - `segments`: the message log. Every turn appends segments of up to
//!   [`SEGMENT_ENTRIES`] entries; an entry names a queue id, the message's position
//!   (`seq`) in that queue, and a message body stored once per segment however many
//!   queues it reached. A segment is deleted when none of its entries is live.
//! - `acks`: per queue id, what left the queue as ranges of `seq` (everything below
//!   `floor`, plus ranges above it), which stored messages were handed out, and the
//!   delivery counts of returned ones. Rewritten whole when it changes: its size grows
//!   with gaps between acks, not with the number of messages.
//! - `meta`: `clock`, the time of the last write, from which `x-expires` leases restart;
//!   `fence`, present while the delivery horizons in the ack records may be trusted.
//!
//! The fence: a first delivery of a stored message goes out only once its queue's stored
//! horizon covers it (`StoreOp::Horizon`), and a horizon is a put. Storage that is full
//! refuses puts but takes deletes, so a driver whose write failed while a delivery waits
//! for a horizon deletes the fence ([`Log::unfence_batch`]) and frees the broker's
//! horizons ([`Broker::set_horizons_free`]): without a fence, recovery brings every stored
//! message back flagged `redelivered` and raises each horizon over them. The next batch
//! that commits puts the fence back with the horizons of everything handed out meanwhile.
//! [`start_write`] and [`end_write`] are that protocol, for every driver.
//!
//! The ack record is the truth about what is live; segments carry bodies. So a segment
//! whose deletion was lost is harmless, and so is an entry of a queue that is gone.

use std::collections::VecDeque;
use std::rc::Rc;

use super::range_set::RangeSet;
use crate::codec::{DecodeError, Reader, Writer};
use crate::core::fxhash::FxMap;
use crate::core::sort;
use crate::core::{Broker, Message, StoreDestination, StoreOp, StoredMessage, Table};

/// Entries per segment, at most; a segment of ~100 messages writes 10–30× faster than
/// one record per message (DESIGN.md's measurement).
pub const SEGMENT_ENTRIES: usize = 256;
/// Body bytes per segment before a new one starts.
pub const SEGMENT_BYTES: usize = 256 << 10;

/// One collection of records (an IndexedDB object store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    Meta,
    Exchanges,
    Queues,
    Bindings,
    Segments,
    Acks,
}

impl Collection {
    pub const ALL: [Collection; 6] = [
        Collection::Meta,
        Collection::Exchanges,
        Collection::Queues,
        Collection::Bindings,
        Collection::Segments,
        Collection::Acks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Meta => "meta",
            Collection::Exchanges => "exchanges",
            Collection::Queues => "queues",
            Collection::Bindings => "bindings",
            Collection::Segments => "segments",
            Collection::Acks => "acks",
        }
    }

    pub fn from_name(name: &str) -> Option<Collection> {
        Collection::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A record key: a name, or a number below 2^53 (IndexedDB keys are JS numbers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Str(Rc<str>),
    Num(u64),
}

/// One record write: `value: None` deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub collection: Collection,
    pub key: Key,
    pub value: Option<Vec<u8>>,
}

impl Write {
    fn put(collection: Collection, key: Key, value: Vec<u8>) -> Write {
        Write { collection, key, value: Some(value) }
    }
    fn delete(collection: Collection, key: Key) -> Write {
        Write { collection, key, value: None }
    }
}

/// A stored record as loaded.
#[derive(Clone, Debug)]
pub struct Record {
    pub collection: Collection,
    pub key: Key,
    pub value: Vec<u8>,
}

/// What one transaction writes, and what to undo in the bookkeeping if it fails.
#[derive(Debug, Default)]
pub struct Batch {
    pub writes: Vec<Write>,
    /// Segments this batch writes.
    segments: Vec<u64>,
    /// Writes other than segments and ack records: written again if this batch fails.
    retry: Vec<Write>,
    /// Queues whose ack records this batch writes.
    acks: Vec<Rc<str>>,
    /// The messages its segments hold: (queue store id, seq).
    messages: Vec<(u64, u64)>,
    /// The delivery horizons its ack records hold: (queue name, store id, horizon).
    horizons: Vec<(Rc<str>, u64, u64)>,
    /// Puts the fence (`Some(true)`) or deletes it (`Some(false)`).
    fence: Option<bool>,
    /// Empties every collection before the writes (the first batch of [`Log::rebuilt`]).
    pub clear: bool,
}

const META_CLOCK: &str = "clock";
const META_FENCE: &str = "fence";
const SEGMENT_FORMAT: u8 = 1;
const ACKS_FORMAT: u8 = 1;
/// An ack record with a delivery horizon after the rest (written when it is above 0).
const ACKS_FORMAT_HORIZON: u8 = 2;

/// A run of one queue's positions stored in one segment.
#[derive(Clone, Copy, Debug)]
struct Span {
    lo: u64,
    hi: u64,
    segment: u64,
    /// Entries of this queue in the segment not yet removed.
    live: u32,
}

#[derive(Debug)]
struct QueueLog {
    id: u64,
    /// Every position below it has left the queue.
    floor: u64,
    removed: RangeSet,
    delivered: RangeSet,
    /// Delivery counts of returned messages by position (a hash map of a type the log has
    /// already, not a BTreeMap of its own: ~2 KB of wasm); sorted when encoded.
    counts: FxMap<u64, u32>,
    spans: VecDeque<Span>,
    /// The highest position the store has heard of.
    max_seq: u64,
    /// The highest position written by a committed transaction.
    committed_hi: u64,
    /// The delivery horizon: no message above it has been handed out (`StoreOp::Horizon`).
    horizon: u64,
    dirty: bool,
}

impl QueueLog {
    fn new(id: u64) -> Self {
        QueueLog {
            id,
            floor: 1,
            removed: RangeSet::new(),
            delivered: RangeSet::new(),
            counts: FxMap::default(),
            spans: VecDeque::new(),
            max_seq: 0,
            committed_hi: 0,
            horizon: 0,
            dirty: false,
        }
    }

    fn is_removed(&self, seq: u64) -> bool {
        seq < self.floor || self.removed.contains(seq)
    }

    fn span_of(&mut self, seq: u64) -> Option<&mut Span> {
        let i = self.spans.partition_point(|s| s.hi < seq);
        self.spans.get_mut(i).filter(|s| s.lo <= seq)
    }

    /// Drops leading spans with nothing live, raises the floor past them and forgets
    /// what is below it.
    fn advance_floor(&mut self) {
        while self.spans.front().is_some_and(|s| s.live == 0) {
            self.spans.pop_front();
        }
        let floor = self.spans.front().map_or(self.max_seq + 1, |s| s.lo);
        if floor > self.floor {
            self.floor = floor;
            self.removed.remove_below(floor);
            self.delivered.remove_below(floor);
            self.counts.retain(|&seq, _| seq >= floor);
            self.dirty = true;
        }
    }

    fn encode_acks(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(if self.horizon > 0 { ACKS_FORMAT_HORIZON } else { ACKS_FORMAT });
        w.uvar(self.floor);
        for set in [&self.removed, &self.delivered] {
            w.uvar(set.ranges().len() as u64);
            let mut prev = self.floor;
            for &(a, b) in set.ranges() {
                w.uvar(a - prev);
                w.uvar(b - a);
                prev = b;
            }
        }
        let mut counts: Vec<(u64, u32)> = self.counts.iter().map(|(&seq, &n)| (seq, n)).collect();
        sort::sort(&mut counts);
        w.uvar(counts.len() as u64);
        for (seq, n) in counts {
            w.uvar(seq);
            w.uvar(n as u64);
        }
        if self.horizon > 0 {
            w.uvar(self.horizon);
        }
        w.into_bytes()
    }

    fn decode_acks(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(bytes);
        let format = r.u8()?;
        if format != ACKS_FORMAT && format != ACKS_FORMAT_HORIZON {
            return Err(DecodeError { what: "unknown ack record format", at: 0 });
        }
        self.floor = r.uvar()?.max(1);
        let mut sets = [RangeSet::new(), RangeSet::new()];
        for set in &mut sets {
            let n = r.uvar()?;
            let mut ranges = Vec::new();
            let mut prev = self.floor;
            for _ in 0..n {
                let at = r.pos();
                let bad = || DecodeError { what: "ack ranges out of order", at };
                let a = prev.checked_add(r.uvar()?).ok_or_else(bad)?;
                let b = a.checked_add(r.uvar()?).ok_or_else(bad)?;
                ranges.push((a, b));
                prev = b;
            }
            *set = RangeSet::from_ranges(ranges).ok_or(DecodeError { what: "ack ranges out of order", at: r.pos() })?;
        }
        let n = r.uvar()?;
        for _ in 0..n {
            let seq = r.uvar()?;
            let count = u32::try_from(r.uvar()?).map_err(|_| DecodeError { what: "delivery count", at: r.pos() })?;
            self.counts.insert(seq, count);
        }
        if format == ACKS_FORMAT_HORIZON {
            self.horizon = r.uvar()?;
        }
        r.finish()?;
        let [removed, delivered] = sets;
        self.removed = removed;
        self.delivered = delivered;
        self.max_seq = self.max_seq.max(self.floor - 1).max(self.removed.max().unwrap_or(0));
        Ok(())
    }
}

/// The segment being filled in this turn.
#[derive(Debug)]
struct OpenSegment {
    id: u64,
    messages: Vec<Rc<Message>>,
    entries: Vec<SegmentEntry>,
    bytes: usize,
}

#[derive(Clone, Debug)]
struct SegmentEntry {
    queue: u64,
    seq: u64,
    message: usize,
    expires_at: Option<u64>,
    ready_at: Option<u64>,
}

impl OpenSegment {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.bytes + 64 * self.messages.len() + 16);
        w.u8(SEGMENT_FORMAT);
        w.uvar(self.messages.len() as u64);
        for m in &self.messages {
            w.message(m);
        }
        w.uvar(self.entries.len() as u64);
        for e in &self.entries {
            w.uvar(e.queue);
            w.uvar(e.seq);
            w.uvar(e.message as u64);
            w.opt_uvar(e.expires_at);
            w.opt_uvar(e.ready_at);
        }
        w.into_bytes()
    }

    fn decode(id: u64, bytes: &[u8]) -> Result<OpenSegment, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != SEGMENT_FORMAT {
            return Err(DecodeError { what: "unknown segment format", at: 0 });
        }
        let n = r.uvar()?;
        let mut messages = Vec::new();
        for _ in 0..n {
            messages.push(Rc::new(r.message()?));
        }
        let n = r.uvar()?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let (queue, seq, at) = (r.uvar()?, r.uvar()?, r.pos());
            let message = r.uvar()? as usize;
            if message >= messages.len() {
                return Err(DecodeError { what: "segment entry names a missing message", at });
            }
            entries.push(SegmentEntry { queue, seq, message, expires_at: r.opt_uvar()?, ready_at: r.opt_uvar()? });
        }
        r.finish()?;
        Ok(OpenSegment { id, messages, entries, bytes: bytes.len() })
    }
}

/// The stored identity of a binding.
type BindingKey = (Rc<str>, bool, Rc<str>, String, Vec<u8>);

/// The store's bookkeeping: which records exist, where each stored message lives, and
/// the writes of the current turn.
#[derive(Debug, Default)]
pub struct Log {
    queues: FxMap<Rc<str>, QueueLog>,
    bindings: FxMap<BindingKey, u64>,
    next_binding: u64,
    next_queue: u64,
    /// Live entries of every written (or open) segment.
    segments: FxMap<u64, u32>,
    next_segment: u64,
    open: Option<OpenSegment>,
    sealed: Vec<OpenSegment>,
    /// Writes of this turn other than segments and ack records, in order.
    pending: Vec<Write>,
    /// Queue names by store id, while recovering.
    names_by_id: FxMap<u64, Rc<str>>,
    /// The store holds the fence (as of the last batch that committed): its horizons
    /// may be trusted.
    fenced: bool,
    /// The next batch empties the store first ([`Log::rebuilt`]).
    clear: bool,
}

fn table_bytes(t: &Table) -> Vec<u8> {
    let mut w = Writer::new();
    w.table(t);
    w.into_bytes()
}

fn binding_key(source: &Rc<str>, destination: &StoreDestination, routing_key: &str, arguments: &Table) -> BindingKey {
    let (to_queue, dest) = match destination {
        StoreDestination::Queue(q) => (true, q.clone()),
        StoreDestination::Exchange(e) => (false, e.clone()),
    };
    (source.clone(), to_queue, dest, routing_key.to_owned(), table_bytes(arguments))
}

impl Log {
    pub fn new() -> Log {
        Log { next_binding: 1, next_queue: 1, next_segment: 1, ..Default::default() }
    }

    /// Takes one op of the broker's, in order.
    pub fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::PutExchange { name, kind, auto_delete, internal, arguments } => {
                let mut w = Writer::new();
                w.str(kind);
                w.u8(*auto_delete as u8 | (*internal as u8) << 1);
                w.table(arguments);
                self.pending.push(Write::put(Collection::Exchanges, Key::Str(name.clone()), w.into_bytes()));
            }
            StoreOp::DeleteExchange { name } => {
                self.pending.push(Write::delete(Collection::Exchanges, Key::Str(name.clone())));
            }
            StoreOp::PutQueue { name, auto_delete, arguments } => {
                let id = self.next_queue;
                self.next_queue += 1;
                self.drop_queue(name);
                self.queues.insert(name.clone(), QueueLog::new(id));
                let mut w = Writer::new();
                w.uvar(id);
                w.bool(*auto_delete);
                w.table(arguments);
                self.pending.push(Write::put(Collection::Queues, Key::Str(name.clone()), w.into_bytes()));
            }
            StoreOp::DeleteQueue { name } => {
                self.drop_queue(name);
                self.pending.push(Write::delete(Collection::Queues, Key::Str(name.clone())));
            }
            StoreOp::PutBinding { source, destination, routing_key, arguments } => {
                let key = binding_key(source, destination, routing_key, arguments);
                if self.bindings.contains_key(&key) {
                    return;
                }
                let id = self.next_binding;
                self.next_binding += 1;
                let mut w = Writer::new();
                w.str(source);
                w.bool(key.1);
                w.str(&key.2);
                w.str(routing_key);
                w.table(arguments);
                self.bindings.insert(key, id);
                self.pending.push(Write::put(Collection::Bindings, Key::Num(id), w.into_bytes()));
            }
            StoreOp::DeleteBinding { source, destination, routing_key, arguments } => {
                if let Some(id) = self.bindings.remove(&binding_key(source, destination, routing_key, arguments)) {
                    self.pending.push(Write::delete(Collection::Bindings, Key::Num(id)));
                }
            }
            StoreOp::PutMessage { queue, seq, message, expires_at, ready_at } => {
                self.put_message(queue, *seq, message, *expires_at, *ready_at);
            }
            StoreOp::RemoveMessage { queue, seq } => self.remove_message(queue, *seq),
            StoreOp::Delivered { queue, seq } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if !q.is_removed(*seq) {
                        q.delivered.insert(*seq);
                        q.dirty = true;
                    }
                }
            }
            StoreOp::Horizon { queue, through } => {
                // Lower too: the broker retracts a horizon to what it handed out.
                if let Some(q) = self.queues.get_mut(queue) {
                    if *through != q.horizon {
                        q.horizon = *through;
                        q.dirty = true;
                    }
                }
            }
            StoreOp::ReturnMessage { queue, seq, delivery_count } => {
                if let Some(q) = self.queues.get_mut(queue) {
                    if !q.is_removed(*seq) {
                        q.delivered.insert(*seq);
                        q.counts.insert(*seq, *delivery_count);
                        q.dirty = true;
                    }
                }
            }
        }
    }

    fn drop_queue(&mut self, name: &str) {
        let Some(q) = self.queues.remove(name) else { return };
        for span in q.spans {
            self.release(span.segment, span.live);
        }
        self.pending.push(Write::delete(Collection::Acks, Key::Num(q.id)));
    }

    /// `n` entries of a segment are no longer live; a segment with none left goes.
    fn release(&mut self, segment: u64, n: u32) {
        let Some(live) = self.segments.get_mut(&segment) else { return };
        *live -= n.min(*live);
        if *live == 0 {
            self.segments.remove(&segment);
            // The open segment is simply not written; a sealed or written one is deleted.
            if self.open.as_ref().is_none_or(|o| o.id != segment) {
                self.pending.push(Write::delete(Collection::Segments, Key::Num(segment)));
            }
        }
    }

    fn put_message(
        &mut self,
        queue: &Rc<str>,
        seq: u64,
        message: &Rc<Message>,
        expires_at: Option<u64>,
        ready_at: Option<u64>,
    ) {
        let Some(q) = self.queues.get_mut(queue) else { return };
        let full = self.open.as_ref().is_some_and(|o| o.entries.len() >= SEGMENT_ENTRIES || o.bytes >= SEGMENT_BYTES);
        if full {
            self.sealed.extend(self.open.take());
        }
        let open = self.open.get_or_insert_with(|| {
            let id = self.next_segment;
            self.next_segment += 1;
            OpenSegment { id, messages: Vec::new(), entries: Vec::new(), bytes: 0 }
        });
        // A message routed to several queues comes as consecutive ops: store it once.
        if !open.messages.last().is_some_and(|m| Rc::ptr_eq(m, message)) {
            open.bytes += message.approx_size();
            open.messages.push(message.clone());
        }
        let at = open.messages.len() - 1;
        open.entries.push(SegmentEntry { queue: q.id, seq, message: at, expires_at, ready_at });
        *self.segments.entry(open.id).or_default() += 1;
        match q.spans.back_mut() {
            Some(s) if s.segment == open.id => {
                s.hi = s.hi.max(seq);
                s.live += 1;
            }
            _ => q.spans.push_back(Span { lo: seq, hi: seq, segment: open.id, live: 1 }),
        }
        q.max_seq = q.max_seq.max(seq);
    }

    fn remove_message(&mut self, queue: &str, seq: u64) {
        let Some(q) = self.queues.get_mut(queue) else { return };
        if q.is_removed(seq) {
            return;
        }
        q.removed.insert(seq);
        q.max_seq = q.max_seq.max(seq);
        q.dirty = true;
        let segment = q.span_of(seq).map(|s| {
            s.live -= 1;
            s.segment
        });
        q.advance_floor();
        if let Some(segment) = segment {
            self.release(segment, 1);
        }
    }

    /// Whether the log keeps durable queue `name`.
    pub fn has_queue(&self, name: &str) -> bool {
        self.queues.contains_key(name)
    }

    /// A log for a store that lost everything it held (the browser deleted the database
    /// under the broker): `ops` ([`crate::core::Broker::durable_ops`]) build it again, and
    /// its first batch empties the store before it writes them, so that nothing a
    /// transaction in flight at the time left there stays. Ids go on from `old`'s.
    pub fn rebuilt(old: &Log, ops: &[StoreOp]) -> Log {
        let mut log = Log {
            next_binding: old.next_binding,
            next_queue: old.next_queue,
            next_segment: old.next_segment,
            clear: true,
            ..Default::default()
        };
        for op in ops {
            log.apply(op);
        }
        log
    }

    /// Whether this turn has anything to write.
    pub fn has_pending(&self) -> bool {
        self.clear
            || !self.pending.is_empty()
            || self.open.is_some()
            || !self.sealed.is_empty()
            || self.queues.values().any(|q| q.dirty)
    }

    /// Everything this turn wrote, as one batch; `None` when there is nothing. `now`
    /// goes in `meta.clock`.
    pub fn take_batch(&mut self, now: u64) -> Option<Batch> {
        if !self.has_pending() {
            return None;
        }
        let mut batch = Batch { clear: std::mem::take(&mut self.clear), ..Batch::default() };
        self.sealed.extend(self.open.take());
        let retry = std::mem::take(&mut self.pending);
        batch.writes.extend(retry.iter().cloned());
        for seg in std::mem::take(&mut self.sealed) {
            if self.segments.contains_key(&seg.id) {
                batch.writes.push(Write::put(Collection::Segments, Key::Num(seg.id), seg.encode()));
                batch.segments.push(seg.id);
                batch.messages.extend(seg.entries.iter().map(|e| (e.queue, e.seq)));
            }
        }
        let mut dirty: Vec<(&Rc<str>, &mut QueueLog)> = self.queues.iter_mut().filter(|(_, q)| q.dirty).collect();
        sort::sort_by(&mut dirty, |a, b| a.0.cmp(b.0));
        for (name, q) in dirty {
            q.dirty = false;
            batch.writes.push(Write::put(Collection::Acks, Key::Num(q.id), q.encode_acks()));
            batch.acks.push(name.clone());
            if q.horizon > 0 {
                batch.horizons.push((name.clone(), q.id, q.horizon));
            }
        }
        let mut w = Writer::new();
        w.uvar(now);
        batch.writes.push(Write::put(Collection::Meta, Key::Str(META_CLOCK.into()), w.into_bytes()));
        if !self.fenced {
            batch.writes.push(Write::put(Collection::Meta, Key::Str(META_FENCE.into()), vec![1]));
            batch.fence = Some(true);
        }
        batch.retry = retry;
        Some(batch)
    }

    /// The delivery horizons the batch writes, by queue name, for the queues the log
    /// still has under the same store id (not deleted and declared again since): once the
    /// batch commits, the broker may hand out first deliveries up to them
    /// ([`Broker::horizon_stored`]).
    pub fn horizons(&self, batch: &Batch) -> Vec<(Rc<str>, u64)> {
        batch
            .horizons
            .iter()
            .filter(|(name, id, _)| self.queues.get(name).is_some_and(|q| q.id == *id))
            .map(|(name, _, h)| (name.clone(), *h))
            .collect()
    }

    /// The batch's transaction failed (e.g. storage is full): its messages are not
    /// stored, so forget them; its other writes go again with the next batch. Returns
    /// the messages it held, by queue name, so that the broker can withdraw them.
    pub fn batch_failed(&mut self, batch: Batch) -> Vec<(Rc<str>, Vec<u64>)> {
        let mut lost: Vec<(Rc<str>, Vec<u64>)> = Vec::new();
        for (name, q) in &self.queues {
            let seqs: Vec<u64> = batch.messages.iter().filter(|m| m.0 == q.id).map(|m| m.1).collect();
            if !seqs.is_empty() {
                lost.push((name.clone(), seqs));
            }
        }
        sort::sort_by(&mut lost, |a, b| a.0.cmp(&b.0));
        for seg in &batch.segments {
            self.segments.remove(seg);
        }
        for q in self.queues.values_mut() {
            let before = q.spans.len();
            q.spans.retain(|s| !batch.segments.contains(&s.segment));
            if q.spans.len() != before {
                q.advance_floor();
            }
        }
        for name in &batch.acks {
            if let Some(q) = self.queues.get_mut(name) {
                q.dirty = true;
            }
        }
        let mut retry = batch.retry;
        retry.append(&mut self.pending);
        self.pending = retry;
        lost
    }

    /// Builds the bookkeeping from stored records and says what to restore. Records that
    /// do not decode are skipped and reported in [`Recovered::problems`].
    pub fn recover(records: impl IntoIterator<Item = Record>) -> (Log, Recovered) {
        let (segments, rest): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| r.collection == Collection::Segments);
        let (mut log, mut out) = Log::recover_meta(rest);
        let mut segments: Vec<(u64, Vec<u8>)> = segments
            .into_iter()
            .filter_map(|r| match r.key {
                Key::Num(id) => Some((id, r.value)),
                Key::Str(_) => None,
            })
            .collect();
        sort::sort_by_key(&mut segments, |s| s.0);
        let index: FxMap<Rc<str>, usize> = out.queues.iter().enumerate().map(|(i, q)| (q.name.clone(), i)).collect();
        let mut problems = Vec::new();
        for (id, bytes) in segments {
            log.recover_segment(id, &bytes, &mut problems, &mut |queue, m| out.queues[index[queue]].messages.push(m));
        }
        out.problems.extend(problems);
        for (name, horizon) in log.finish_recovery() {
            if let Some(q) = out.queues.iter_mut().find(|q| q.name == name) {
                q.horizon = horizon;
            }
        }
        (log, out)
    }

    /// Recovery, step 1 of 3 (steps 2 and 3 are [`Log::recover_segment`], for every
    /// segment in key order, and [`Log::finish_recovery`]); in steps so that a large
    /// store can stream its segments. Takes every record but segments.
    pub fn recover_meta(records: impl IntoIterator<Item = Record>) -> (Log, Recovered) {
        let mut log = Log::new();
        let mut out = Recovered::default();
        // An array, not a map by collection: one BTreeMap type fewer in the wasm.
        let mut by_collection: [Vec<Record>; Collection::ALL.len()] = Default::default();
        for r in records {
            by_collection[r.collection as usize].push(r);
        }
        let mut take = |c: Collection| {
            let mut v = std::mem::take(&mut by_collection[c as usize]);
            sort::sort_by(&mut v, |a, b| a.key.cmp(&b.key));
            v
        };
        let (meta, exchanges, queues) = (take(Collection::Meta), take(Collection::Exchanges), take(Collection::Queues));
        let (bindings, acks) = (take(Collection::Bindings), take(Collection::Acks));

        for r in meta {
            if r.key == Key::Str(META_CLOCK.into()) {
                out.clock = Reader::new(&r.value).uvar().ok();
            }
            log.fenced |= r.key == Key::Str(META_FENCE.into());
        }
        for r in exchanges {
            let Key::Str(name) = &r.key else { continue };
            let decoded = (|| {
                let mut rd = Reader::new(&r.value);
                let kind = rd.str()?.to_owned();
                let flags = rd.u8()?;
                let arguments = rd.table()?;
                rd.finish()?;
                Ok::<_, DecodeError>((kind, flags, arguments))
            })();
            match decoded {
                Ok((kind, flags, arguments)) => out.exchanges.push(StoredExchange {
                    name: name.clone(),
                    kind,
                    auto_delete: flags & 1 != 0,
                    internal: flags & 2 != 0,
                    arguments,
                }),
                Err(e) => out.problems.push(format!("exchange record '{name}' skipped: {e}")),
            }
        }
        for r in queues {
            let Key::Str(name) = &r.key else { continue };
            let decoded = (|| {
                let mut rd = Reader::new(&r.value);
                let (id, auto_delete, arguments) = (rd.uvar()?, rd.bool()?, rd.table()?);
                rd.finish()?;
                Ok::<_, DecodeError>((id, auto_delete, arguments))
            })();
            match decoded {
                Ok((id, auto_delete, arguments)) => {
                    log.next_queue = log.next_queue.max(id + 1);
                    log.names_by_id.insert(id, name.clone());
                    log.queues.insert(name.clone(), QueueLog::new(id));
                    out.queues.push(StoredQueue {
                        name: name.clone(),
                        auto_delete,
                        arguments,
                        next_seq: 1,
                        horizon: 0,
                        messages: Vec::new(),
                    });
                }
                Err(e) => out.problems.push(format!("queue record '{name}' skipped with its messages: {e}")),
            }
        }
        for r in acks {
            let Key::Num(id) = r.key else { continue };
            let Some(name) = log.names_by_id.get(&id) else {
                log.pending.push(Write::delete(Collection::Acks, Key::Num(id)));
                continue;
            };
            let q = log.queues.get_mut(name).expect("named by id");
            if let Err(e) = q.decode_acks(&r.value) {
                // Without it every stored message of the queue comes back: duplicates, not loss.
                *q = QueueLog::new(id);
                out.problems.push(format!("ack record of queue '{name}' skipped (acked messages may come back): {e}"));
            }
        }
        for q in &mut out.queues {
            let ql = &log.queues[&q.name];
            // Above the horizon too: a new message is not one that may have been handed out.
            q.next_seq = ql.max_seq.max(ql.floor - 1).max(ql.horizon) + 1;
            q.horizon = ql.horizon;
        }
        for r in bindings {
            let Key::Num(id) = r.key else { continue };
            log.next_binding = log.next_binding.max(id + 1);
            let decoded = (|| {
                let mut rd = Reader::new(&r.value);
                let source: Rc<str> = rd.str()?.into();
                let to_queue = rd.bool()?;
                let dest: Rc<str> = rd.str()?.into();
                let routing_key = rd.str()?.to_owned();
                let arguments = rd.table()?;
                rd.finish()?;
                Ok::<_, DecodeError>((source, to_queue, dest, routing_key, arguments))
            })();
            match decoded {
                Ok((source, to_queue, dest, routing_key, arguments)) => {
                    let destination =
                        if to_queue { StoreDestination::Queue(dest) } else { StoreDestination::Exchange(dest) };
                    log.bindings.insert(binding_key(&source, &destination, &routing_key, &arguments), id);
                    out.bindings.push(StoredBinding { source, destination, routing_key, arguments });
                }
                Err(e) => out.problems.push(format!("binding record {id} skipped: {e}")),
            }
        }
        (log, out)
    }

    /// Recovery, step 2: one segment, in key order. Each live message goes to `sink`
    /// with its queue's name, in `seq` order per queue.
    pub fn recover_segment(
        &mut self,
        id: u64,
        bytes: &[u8],
        problems: &mut Vec<String>,
        sink: &mut dyn FnMut(&Rc<str>, StoredMessage),
    ) {
        self.next_segment = self.next_segment.max(id + 1);
        let seg = match OpenSegment::decode(id, bytes) {
            Ok(seg) => seg,
            Err(e) => {
                problems.push(format!("segment {id} skipped, its messages are lost: {e}"));
                return;
            }
        };
        let mut live = 0;
        for e in seg.entries {
            let Some(name) = self.names_by_id.get(&e.queue) else { continue };
            let q = self.queues.get_mut(name).expect("named by id");
            if q.is_removed(e.seq) {
                continue;
            }
            match q.spans.back_mut() {
                Some(s) if e.seq <= s.hi => {
                    problems.push(format!("segment {id}: message {} of '{name}' out of order, skipped", e.seq));
                    continue;
                }
                Some(s) if s.segment == id => {
                    s.hi = e.seq;
                    s.live += 1;
                }
                _ => q.spans.push_back(Span { lo: e.seq, hi: e.seq, segment: id, live: 1 }),
            }
            live += 1;
            q.max_seq = q.max_seq.max(e.seq);
            q.committed_hi = q.max_seq;
            let message = seg.messages[e.message].clone();
            sink(
                name,
                StoredMessage {
                    seq: e.seq,
                    body_len: message.body.len() as u32,
                    priority: message.properties.priority.unwrap_or(0),
                    message: Some(message),
                    expires_at: e.expires_at,
                    ready_at: e.ready_at,
                    delivery_count: q.counts.get(&e.seq).copied().unwrap_or(0),
                    // At or below the horizon it may have been handed out after the last
                    // commit, before its mark was stored; with no fence, anything may.
                    delivered: q.delivered.contains(e.seq) || e.seq <= q.horizon || !self.fenced,
                },
            );
        }
        if live == 0 {
            self.pending.push(Write::delete(Collection::Segments, Key::Num(id)));
        } else {
            self.segments.insert(id, live);
        }
    }

    /// Recovery, step 3: leading spans with nothing live are forgotten. With no fence
    /// stored, every message came back flagged: each queue's horizon rises over its
    /// messages, to be stored with the fence by the first batch, so that they stay
    /// flagged after the next crash. Returns the raised horizons, for
    /// [`Broker::restore_horizon`].
    pub fn finish_recovery(&mut self) -> Vec<(Rc<str>, u64)> {
        let mut raised = Vec::new();
        for (name, q) in self.queues.iter_mut() {
            q.advance_floor();
            if !self.fenced && q.max_seq > q.horizon {
                q.horizon = q.max_seq;
                q.dirty = true;
                raised.push((name.clone(), q.horizon));
            }
        }
        sort::sort(&mut raised);
        self.names_by_id.clear();
        raised
    }

    /// Whether the store holds the fence (see the module's documentation).
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }

    /// The store will take no write from this broker again (a newer tabbit upgraded its
    /// database): the fence counts as gone, though it stands, so that first deliveries go
    /// on from memory. A crash would then bring back unflagged those that went out beyond
    /// the stored horizons; if a write commits after all, it puts the fence back.
    pub fn abandon_fence(&mut self) {
        self.fenced = false;
    }

    /// A batch that deletes the fence: it commits even when storage is full.
    pub fn unfence_batch(&self) -> Batch {
        Batch {
            writes: vec![Write::delete(Collection::Meta, Key::Str(META_FENCE.into()))],
            fence: Some(false),
            ..Batch::default()
        }
    }

    /// Whether the message at `seq` of `queue` is in a committed segment (so that its
    /// body may be paged out of memory).
    pub fn is_committed(&self, queue: &str, seq: u64) -> bool {
        let Some(q) = self.queues.get(queue) else { return false };
        if seq > q.committed_hi || q.is_removed(seq) {
            return false;
        }
        let i = q.spans.partition_point(|s| s.hi < seq);
        q.spans.get(i).is_some_and(|s| s.lo <= seq)
    }

    /// The batch's transaction completed: its messages may now be paged out.
    pub fn batch_committed(&mut self, batch: &Batch) {
        if let Some(fence) = batch.fence {
            self.fenced = fence;
        }
        for q in self.queues.values_mut() {
            if let Some(s) = q.spans.iter().rev().find(|s| batch.segments.contains(&s.segment)) {
                q.committed_hi = q.committed_hi.max(s.hi);
            }
        }
    }

    /// The segments holding the given positions of `queue` (to page them in).
    pub fn segments_for(&self, queue: &str, seqs: &[u64]) -> Vec<u64> {
        let Some(q) = self.queues.get(queue) else { return Vec::new() };
        let mut out: Vec<u64> = seqs
            .iter()
            .filter_map(|&seq| {
                let i = q.spans.partition_point(|s| s.hi < seq);
                q.spans.get(i).filter(|s| s.lo <= seq).map(|s| s.segment)
            })
            .collect();
        out.dedup();
        out
    }

    /// The live messages of `queue` in segment records read back (to page in), in `seq`
    /// order: every one of the queue's in those segments, since the broker will soon
    /// want the neighbours of the ones it asked for.
    pub fn messages_in(&self, queue: &str, segments: &[(u64, Vec<u8>)]) -> Vec<(u64, Rc<Message>)> {
        let Some(q) = self.queues.get(queue) else { return Vec::new() };
        let mut out = Vec::new();
        for (id, bytes) in segments {
            let Ok(seg) = OpenSegment::decode(*id, bytes) else { continue };
            for e in &seg.entries {
                if e.queue == q.id && !q.is_removed(e.seq) {
                    out.push((e.seq, seg.messages[e.message].clone()));
                }
            }
        }
        out
    }

    /// A page-in of positions `seqs` of `queue` from the segment records read back (those
    /// `segments_for` named): the messages found ([`Log::messages_in`]), and the positions
    /// asked for that the log no longer finds (a corrupt or deleted segment), gone for good.
    /// Both as `Broker::page_in` takes them.
    pub fn paged_in(
        &self,
        queue: &str,
        seqs: &[u64],
        segments: &[(u64, Vec<u8>)],
    ) -> (Vec<(u64, Rc<Message>)>, Vec<u64>) {
        let found = self.messages_in(queue, segments);
        let lost = seqs.iter().copied().filter(|s| found.binary_search_by_key(s, |f| f.0).is_err()).collect();
        (found, lost)
    }
}

/// A durable exchange as stored.
#[derive(Clone, Debug)]
pub struct StoredExchange {
    pub name: Rc<str>,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

/// A durable queue as stored, with its live messages in `seq` order.
#[derive(Clone, Debug)]
pub struct StoredQueue {
    pub name: Rc<str>,
    pub auto_delete: bool,
    pub arguments: Table,
    pub next_seq: u64,
    /// The delivery horizon ([`StoreOp::Horizon`]); 0 when none was stored.
    pub horizon: u64,
    pub messages: Vec<StoredMessage>,
}

/// A binding between durable things as stored.
#[derive(Clone, Debug)]
pub struct StoredBinding {
    pub source: Rc<str>,
    pub destination: StoreDestination,
    pub routing_key: String,
    pub arguments: Table,
}

/// What a store held, ready to go back into a broker.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<StoredExchange>,
    pub queues: Vec<StoredQueue>,
    pub bindings: Vec<StoredBinding>,
    /// The time of the last write before the store was closed.
    pub clock: Option<u64>,
    /// Records that were skipped, each with why.
    pub problems: Vec<String>,
}

/// Puts what a store held into a new broker, then runs its clock to `now`: messages
/// whose TTL passed while it was closed expire (and are dead-lettered if so configured)
/// and queues unused for their `x-expires` since the last write go. The store ops this
/// produces are left in the broker's effects for the log. Returns what could not be
/// restored, each with why.
pub fn restore(broker: &mut Broker, mut recovered: Recovered, now: u64) -> Vec<String> {
    let mut problems = restore_topology(broker, &mut recovered, now);
    for q in recovered.queues {
        for m in q.messages {
            restore_message(broker, &q.name, m, now, &mut problems);
        }
    }
    finish_restore(broker, now);
    problems
}

/// Restoring in steps, for a store that streams its messages: exchanges, queues and
/// bindings first (this takes them out of `recovered`, and its problems), then
/// [`restore_message`] for each message, then [`finish_restore`].
pub fn restore_topology(broker: &mut Broker, recovered: &mut Recovered, now: u64) -> Vec<String> {
    let mut problems = std::mem::take(&mut recovered.problems);
    let last_used = recovered.clock.unwrap_or(now).min(now);
    for e in std::mem::take(&mut recovered.exchanges) {
        if let Err(err) = broker.restore_exchange(&e.name, &e.kind, e.auto_delete, e.internal, e.arguments, now) {
            problems.push(format!("exchange '{}' not restored: {err}", e.name));
        }
    }
    for q in &mut recovered.queues {
        let args = std::mem::take(&mut q.arguments);
        match broker.restore_queue(&q.name, q.auto_delete, args, q.next_seq, last_used, now) {
            Ok(()) => broker.restore_horizon(&q.name, q.horizon),
            Err(err) => problems.push(format!("queue '{}' not restored, its messages are lost: {err}", q.name)),
        }
    }
    for b in std::mem::take(&mut recovered.bindings) {
        if let Err(err) = broker.restore_binding(&b.source, &b.destination, &b.routing_key, b.arguments, now) {
            problems.push(format!("binding from '{}' not restored: {err}", b.source));
        }
    }
    problems
}

/// Puts one stored message back; a message of a queue that could not be restored is
/// reported once per queue.
pub fn restore_message(broker: &mut Broker, queue: &str, m: StoredMessage, now: u64, problems: &mut Vec<String>) {
    if let Err(err) = broker.restore_message(queue, m, now) {
        let line = format!("messages of queue '{queue}' not restored: {err}");
        if !problems.contains(&line) {
            problems.push(line);
        }
    }
}

/// Ends restoring: closes the replay channel and runs the clock to `now`.
pub fn finish_restore(broker: &mut Broker, now: u64) {
    broker.end_recovery(now);
    broker.tick(now);
}

/// Restoring a broker from a store that streams its segments (IndexedDB), so that a large
/// store is held a chunk at a time: [`Recovery::start`] with every record but segments,
/// [`Recovery::segments`] for each chunk of segments in key order, then
/// [`Recovery::finish`]. Messages beyond the first `keep_loaded` of a queue that can page
/// come back paged out: their bodies stay in the store until a page-in.
pub struct Recovery {
    log: Log,
    keep_loaded: usize,
    /// Messages restored so far, by queue.
    loaded: FxMap<Rc<str>, usize>,
    problems: Vec<String>,
    now: u64,
}

impl Recovery {
    /// Step 1: exchanges, queues and bindings from `records` (every record but segments)
    /// go into `broker`. `problems`: what reading the records skipped already.
    pub fn start(
        broker: &mut Broker,
        records: Vec<Record>,
        problems: Vec<String>,
        keep_loaded: usize,
        now: u64,
    ) -> Self {
        let (log, mut recovered) = Log::recover_meta(records);
        let mut all = problems;
        all.extend(restore_topology(broker, &mut recovered, now));
        Recovery { log, keep_loaded, loaded: FxMap::default(), problems: all, now }
    }

    /// Where a reader of segments reports what it skipped, in order.
    pub fn problems(&mut self) -> &mut Vec<String> {
        &mut self.problems
    }

    /// Step 2: the next segments, in key order, and their live messages into `broker`.
    pub fn segments(&mut self, broker: &mut Broker, segments: Vec<(u64, Vec<u8>)>) {
        let (loaded, keep_loaded, now) = (&mut self.loaded, self.keep_loaded, self.now);
        let mut restore_problems = Vec::new();
        for (id, bytes) in segments {
            self.log.recover_segment(id, &bytes, &mut self.problems, &mut |queue, mut m| {
                let n = loaded.entry(queue.clone()).or_default();
                *n += 1;
                if *n > keep_loaded && broker.can_page(queue) {
                    m.message = None;
                }
                restore_message(broker, queue, m, now, &mut restore_problems);
            });
        }
        self.problems.append(&mut restore_problems);
    }

    /// Step 3: the horizons recovery raised, then the broker's clock runs to `now`.
    /// Returns the log and what could not be restored, each with why.
    pub fn finish(mut self, broker: &mut Broker) -> (Log, Vec<String>) {
        for (queue, horizon) in self.log.finish_recovery() {
            broker.restore_horizon(&queue, horizon);
        }
        finish_restore(broker, self.now);
        (self.log, self.problems)
    }
}

/// A driver takes this turn's writes as one batch to write (see the fence, in the
/// module's documentation): if it puts the fence back, the broker's horizons stop being
/// free, since they go with it.
pub fn start_write(log: &mut Log, broker: &mut Broker, now: u64) -> Option<Batch> {
    let batch = log.take_batch(now)?;
    if batch.fence == Some(true) {
        broker.set_horizons_free(false, now);
    }
    Some(batch)
}

/// A batch's write ended, `ok` or not: the log's bookkeeping, then the broker's. A
/// committed batch gives its delivery horizons to the broker (and a fence deleted
/// frees them); a failed one takes its messages out of the broker (they were nacked, so
/// a retry is no duplicate) and its other writes go again with the next batch. If
/// storage refused it while a first delivery waits for a horizon, returns the batch to
/// write next: the fence's deletion. With no fence stored, the horizons are free.
pub fn end_write(log: &mut Log, broker: &mut Broker, batch: Batch, ok: bool, now: u64) -> Option<Batch> {
    if ok {
        let horizons = log.horizons(&batch);
        log.batch_committed(&batch);
        for (queue, through) in horizons {
            broker.horizon_stored(&queue, through, now);
        }
    } else {
        for (queue, seqs) in log.batch_failed(batch) {
            broker.withdraw(&queue, &seqs);
        }
    }
    if !log.is_fenced() {
        broker.set_horizons_free(true, now);
        return None;
    }
    (!ok && broker.waits_for_store()).then(|| log.unfence_batch())
}
