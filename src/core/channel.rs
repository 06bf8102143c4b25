//! Per-channel state: prefetch, publisher-confirm numbering, consumers, and the
//! window of unacked deliveries indexed by delivery tag.

use std::collections::VecDeque;
use std::rc::Rc;

use super::ids::QueueId;
use super::queue::Entry;

/// A delivery waiting for its ack.
#[derive(Debug)]
pub struct Unacked {
    pub queue: QueueId,
    /// The consumer it went to; `None` for `get`.
    pub consumer: Option<u32>,
    pub entry: Entry,
}

/// Unacked deliveries by delivery tag. Tags increase with every delivery and acks come
/// mostly in order, so a deque of (tag, delivery) in tag order gives an ack by binary
/// search (at the front, usually) and O(k) `multiple` acks, with no tree. It holds an
/// entry per delivery, not per tag: the tags between two deliveries (`noAck` ones, or a
/// resumed channel's jump to the client's next tag) take no memory.
#[derive(Debug, Default)]
pub struct UnackedWindow {
    /// In increasing tag order; `None` once taken, until the entries before it go too.
    slots: VecDeque<(u64, Option<Unacked>)>,
    live: usize,
}

impl UnackedWindow {
    pub fn new() -> Self {
        UnackedWindow { slots: VecDeque::new(), live: 0 }
    }

    /// Live (unacked) deliveries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Records a delivery with a tag above every earlier one.
    pub fn push(&mut self, tag: u64, u: Unacked) {
        debug_assert!(self.slots.back().is_none_or(|(t, _)| *t < tag));
        self.slots.push_back((tag, Some(u)));
        self.live += 1;
    }

    fn slot(&self, tag: u64) -> Option<usize> {
        match self.slots.front() {
            Some((t, _)) if *t == tag => Some(0),
            _ => self.slots.binary_search_by_key(&tag, |(t, _)| *t).ok(),
        }
    }

    pub fn contains(&self, tag: u64) -> bool {
        self.slot(tag).is_some_and(|i| self.slots[i].1.is_some())
    }

    /// Takes one delivery by tag.
    pub fn take(&mut self, tag: u64) -> Option<Unacked> {
        let i = self.slot(tag)?;
        let u = self.slots[i].1.take()?;
        self.live -= 1;
        self.trim();
        Some(u)
    }

    /// Takes every delivery with a tag up to and including `tag`, oldest first.
    pub fn take_up_to(&mut self, tag: u64, out: &mut Vec<(u64, Unacked)>) {
        while self.slots.front().is_some_and(|(t, _)| *t <= tag) {
            let (t, u) = self.slots.pop_front().expect("checked");
            if let Some(u) = u {
                self.live -= 1;
                out.push((t, u));
            }
        }
        self.trim();
    }

    /// Takes every delivery, oldest first.
    pub fn take_all(&mut self, out: &mut Vec<(u64, Unacked)>) {
        self.take_up_to(u64::MAX, out);
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Unacked)> {
        self.slots.iter().filter_map(|(t, s)| s.as_ref().map(|u| (*t, u)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Unacked> {
        self.slots.iter_mut().filter_map(|(_, s)| s.as_mut())
    }

    /// Drops leading acked slots so memory follows the live deliveries.
    fn trim(&mut self) {
        while let Some((_, None)) = self.slots.front() {
            self.slots.pop_front();
        }
    }
}

/// One channel of a connection.
#[derive(Debug)]
pub struct Channel {
    /// Consumers of this channel by tag (few per channel: a list beats a map).
    pub consumers: Vec<(Rc<str>, u32)>,
    /// `prefetch(n, false)`: the limit given to consumers created after it.
    pub consumer_prefetch: u32,
    /// `prefetch(n, true)`: the limit for all consumers of the channel together.
    pub channel_prefetch: u32,
    /// Unacked deliveries to this channel's consumers (what `channel_prefetch` limits).
    pub consumer_unacked: u32,
    pub unacked: UnackedWindow,
    pub next_delivery_tag: u64,
    /// `Some(next sequence number)` once in confirm mode.
    pub confirm_seq: Option<u64>,
    /// Tags of deliveries a resumed channel could not take back (their messages were
    /// lost with an earlier broker), sorted: settling one is a no-op, not an error,
    /// since the client did nothing wrong. Empty unless the channel was resumed.
    pub forgiven: Vec<u64>,
}

impl Channel {
    pub fn new() -> Self {
        Channel {
            consumers: Vec::new(),
            consumer_prefetch: 0,
            channel_prefetch: 0,
            consumer_unacked: 0,
            unacked: UnackedWindow::new(),
            next_delivery_tag: 1,
            confirm_seq: None,
            forgiven: Vec::new(),
        }
    }

    pub fn consumer(&self, tag: &str) -> Option<u32> {
        self.consumers.iter().find(|(t, _)| &**t == tag).map(|(_, id)| *id)
    }

    pub fn has_capacity(&self) -> bool {
        self.channel_prefetch == 0 || self.consumer_unacked < self.channel_prefetch
    }

    pub fn is_forgiven(&self, tag: u64) -> bool {
        self.forgiven.binary_search(&tag).is_ok()
    }

    /// Settles a forgiven tag: whether it was one (each is settled once, like any tag).
    pub fn settle_forgiven(&mut self, tag: u64) -> bool {
        match self.forgiven.binary_search(&tag) {
            Ok(i) => {
                self.forgiven.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Settles every forgiven tag up to and including `tag` (a `multiple` settle).
    pub fn settle_forgiven_up_to(&mut self, tag: u64) {
        let n = self.forgiven.partition_point(|t| *t <= tag);
        self.forgiven.drain(..n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::Message;

    fn unacked(seq: u64) -> Unacked {
        Unacked {
            queue: QueueId(1),
            consumer: None,
            entry: Entry {
                seq,
                message: Some(Rc::new(Message::default())),
                body_len: 0,
                expires_at: None,
                delivery_count: 0,
                redelivered: false,
                durable: false,
                priority: 0,
            },
        }
    }

    #[test]
    fn window_takes_single_and_multiple_and_trims() {
        let mut w = UnackedWindow::new();
        for t in 1..=5 {
            w.push(t, unacked(t));
        }
        assert_eq!(w.take(3).unwrap().entry.seq, 3);
        assert!(w.take(3).is_none(), "a tag is taken once");
        let mut out = Vec::new();
        w.take_up_to(4, &mut out);
        let tags: Vec<u64> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, [1, 2, 4]);
        assert_eq!(w.len(), 1);
        assert!(w.contains(5) && !w.contains(4) && !w.contains(0) && !w.contains(6));
        assert!(w.take(5).is_some());
        assert_eq!(w.len(), 0);
        assert_eq!(w.slots.len(), 0, "acked slots are released");
    }

    /// Tags far apart (a resumed channel goes on from the client's next tag) cost an entry
    /// each, not one per tag between them: a gap of 2^52 once asked for petabytes.
    #[test]
    fn window_memory_follows_deliveries_not_tags() {
        let mut w = UnackedWindow::new();
        w.push(1, unacked(1));
        w.push(1 << 52, unacked(2));
        w.push((1 << 52) + 3, unacked(3));
        assert_eq!((w.len(), w.slots.len()), (3, 3));
        assert!(w.contains(1 << 52) && !w.contains(2) && !w.contains((1 << 52) + 1));
        assert_eq!(w.take(1 << 52).unwrap().entry.seq, 2);
        let mut out = Vec::new();
        w.take_up_to(1 << 52, &mut out);
        assert_eq!(out.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [1]);
        assert_eq!(w.iter().map(|(t, _)| t).collect::<Vec<_>>(), [(1 << 52) + 3]);
        w.take_all(&mut out);
        assert_eq!((w.len(), w.slots.len(), out.len()), (0, 0, 2));
    }
}
