//! Paging: deep in a durable queue, persistent messages that the store holds keep only
//! their place (seq, length, flags) in memory and drop their bodies. The host pages
//! bodies back in before messages reach the head, so delivery, expiry and
//! dead-lettering always see them. Queues with priorities or a length limit do not page.

use std::rc::Rc;

use super::{Broker, DropReason, Queue};
use crate::core::message::Message;
use crate::core::sort;

impl Broker {
    /// Drops the bodies of ready messages beyond the first `keep` of each queue that can
    /// page, for those the store holds (`stored(queue, seq)`). Returns how many it
    /// dropped. Each message is considered once, so repeated calls cost only what
    /// arrived since.
    pub fn page_out_all(&mut self, keep: usize, stored: impl Fn(&str, u64) -> bool) -> usize {
        let mut dropped = 0;
        for (id, q) in self.queues.iter_mut().filter(|(_, q)| q.ready.len() > keep) {
            let name = q.name.clone();
            let n = page_out_queue(q, keep, |seq| stored(&name, seq));
            if n > 0 {
                self.paged_queues.insert(*id);
            }
            dropped += n;
        }
        dropped
    }

    /// Queues with paged-out messages among their first `window` ready ones, with the
    /// positions to page in, in order. Cheap when there are none: the host asks after
    /// every command. Queues for which `skip` is true (a page-in under way) are left out.
    pub fn page_in_wanted(&self, window: usize, skip: impl Fn(&str) -> bool) -> Vec<(Rc<str>, Vec<u64>)> {
        let mut out: Vec<(Rc<str>, Vec<u64>)> = self
            .paged_queues
            .iter()
            .filter_map(|id| self.queues.get(id))
            .filter(|q| q.paged > 0 && q.ready.position_of(q.paged_from) < window && !skip(&q.name))
            .filter_map(|q| {
                let seqs: Vec<u64> =
                    q.ready.iter().take(window).filter(|e| e.message.is_none()).map(|e| e.seq).collect();
                (!seqs.is_empty()).then(|| (q.name.clone(), seqs))
            })
            .collect();
        sort::sort_by(&mut out, |a, b| a.0.cmp(&b.0));
        out
    }

    /// Takes back messages the store failed to write (their publishers were nacked):
    /// those still ready or delayed leave the queue, counted as discarded, so that a
    /// publisher that sends again makes no duplicate. One a consumer already has (handed
    /// out before the transaction ended: its delivery horizon was stored earlier, or the
    /// fence was gone) cannot be taken back: it stays with the consumer as a transient
    /// message, which is what it now is. Its ack, or its return to the queue, writes
    /// nothing, and a crash loses it, as its publisher was told. Returns how many left.
    pub fn withdraw(&mut self, queue: &str, seqs: &[u64]) -> usize {
        let Some(&id) = self.queue_ids.get(queue) else { return 0 };
        let q = self.queues.get_mut(&id).expect("listed queue exists");
        let mut n = 0;
        let mut held = Vec::new();
        for &seq in seqs {
            let ready = q.ready.remove(seq).is_some();
            let delayed = !ready && q.delayed.remove_seq(seq).is_some();
            n += (ready || delayed) as usize;
            if !ready && !delayed {
                held.push(seq);
            }
        }
        q.counters.discarded += n as u64;
        if !held.is_empty() {
            for channel in self.channels.values_mut() {
                for u in channel.unacked.iter_mut() {
                    if u.queue == id && held.contains(&u.entry.seq) {
                        u.entry.durable = false;
                    }
                }
            }
        }
        n
    }

    /// Whether messages of this queue may be paged out (a single priority level, no length limit).
    pub fn can_page(&self, queue: &str) -> bool {
        self.queue_ids.get(queue).is_some_and(|id| self.queues[id].can_page())
    }

    /// Whether `get` on this queue must wait for a page-in.
    pub fn head_paged(&self, queue: &str) -> bool {
        self.queue_ids.get(queue).is_some_and(|id| self.queues[id].head_paged())
    }

    /// Gives paged-out messages their bodies back, then dispatches. Positions in
    /// `lost` could not be read from the store: they leave the queue as discarded.
    pub fn page_in(&mut self, queue: &str, messages: Vec<(u64, Rc<Message>)>, lost: &[u64], now: u64) {
        let Some(&id) = self.queue_ids.get(queue) else { return };
        let q = self.queues.get_mut(&id).expect("listed queue exists");
        for (seq, m) in messages {
            if let Some(e) = q.ready.get_mut(seq).filter(|e| e.message.is_none()) {
                e.message = Some(m);
                q.paged -= 1;
            }
        }
        let mut gone = Vec::new();
        for &seq in lost {
            if q.ready.get_mut(seq).is_some_and(|e| e.message.is_none()) {
                gone.push(seq);
            }
        }
        let gone: Vec<_> = gone.into_iter().filter_map(|seq| q.ready.remove(seq)).collect();
        q.paged -= gone.len();
        // The first paged-out message is now further on: find it (each step once).
        let from = q.paged_from;
        q.paged_from = match q.paged {
            0 => u64::MAX,
            _ => q.ready.single_level_from(from).find(|e| e.message.is_none()).map_or(u64::MAX, |e| e.seq),
        };
        if q.paged == 0 {
            self.paged_queues.remove(&id);
        }
        for e in gone {
            // No body to dead-letter: counted as discarded, its store record removed.
            self.discard(id, e, DropReason::Expired, now);
        }
        self.dispatch(id, now);
    }
}

/// Pages out one queue: see [`Broker::page_out_all`].
fn page_out_queue(q: &mut Queue, keep: usize, stored: impl Fn(u64) -> bool) -> usize {
    if !q.can_page() || q.ready.len() <= keep {
        return 0;
    }
    // The first `keep` stay in memory: start past them, or past what was considered.
    let start = q.ready.single_level_nth(keep).map_or(u64::MAX, |e| e.seq).max(q.paged_through + 1);
    let mut dropped = 0;
    let mut through = q.paged_through;
    for e in q.ready.single_level_from(start) {
        if e.message.is_some() && e.durable {
            if !stored(e.seq) {
                break; // not committed yet: this and later ones wait for the next call
            }
            e.message = None;
            q.paged_from = q.paged_from.min(e.seq);
            dropped += 1;
        }
        through = e.seq;
    }
    q.paged += dropped;
    q.paged_through = through;
    dropped
}
