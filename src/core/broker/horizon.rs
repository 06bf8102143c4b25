//! The delivery horizon of a durable queue (README, fault schedules, bug 3).
//!
//! The mark that a stored message was handed out ([`StoreOp::Delivered`]) is written with
//! the commit after the delivery, so a crash in between would bring the message back with
//! `redelivered` false although a consumer may have seen it. Holding every first delivery
//! until its mark commits costs a commit per `get`. Instead, each durable queue has a
//! horizon H, stored in its ack record: no stored message with `seq` above H has been
//! handed out. A stored message goes out for the first time only if its `seq` is at most
//! the stored H; when demand (a consumer with room, or `get`) reaches H, the broker asks
//! for a higher one ([`StoreOp::Horizon`]), stored with the next commit, and only the
//! deliveries beyond the old H wait for it. A reopened broker brings back an unacked
//! message at or below H flagged `redelivered` ("may have been delivered", as AMQP's flag
//! means), one above it unflagged.
//!
//! The new horizon covers what the demand can take now (the consumers' room, or one
//! message for `get`) plus a lookahead, which grows fourfold each time demand catches up
//! with the horizon again (1, 4, 16, ... up to [`MAX_LOOKAHEAD`]) and starts from 0 again
//! after a second without first deliveries; when a delivery comes within half a lookahead
//! of H, a higher one is asked for ahead of time. So a steady stream that lets commits
//! happen waits for none, a loop of `await get()` that never yields to the event loop
//! (no commit completes meanwhile) waits for about log4(n) + n / 4096 commits, and a crash
//! flags at most the demand plus a lookahead of messages that were never delivered (at most
//! three times as many as went out in the burst, and at most 4,096). Order does not matter: with priorities (or
//! delayed messages) a message beyond H at the head raises H past it, covering every
//! lower `seq`, delivered or not.

use super::{Broker, Queue, QueueId};
use crate::core::effect::{Effect, StoreOp};
use crate::core::sort;

/// The largest lookahead beyond demand, in messages.
pub const MAX_LOOKAHEAD: u64 = 4096;
/// After this long without first deliveries (ms), the lookahead starts from 0 again.
pub const IDLE_MS: u64 = 1000;

/// Why a `get` must wait before it can take the head of a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetWait {
    /// The head is paged out: page it in ([`Broker::head_paged`]).
    Paged,
    /// The head would go out for the first time beyond the stored horizon: a higher one
    /// is asked for; wait for the next commit ([`Broker::horizon_stored`]).
    Horizon,
}

impl Broker {
    /// Whether the head of `q`, if it went out now, would be a first delivery beyond the
    /// stored horizon (an expired head is not: it is dropped, not delivered).
    pub(super) fn waits_for_horizon(&self, q: &Queue, now: u64) -> bool {
        self.delivery_horizon
            && !self.horizons_free
            && q.ready.front().is_some_and(|e| {
                e.durable && !e.redelivered && e.seq > q.horizon && e.expires_at.is_none_or(|t| t >= now)
            })
    }

    /// How many messages the consumers of `q` with room would take now.
    pub(super) fn demand(&self, q: &Queue) -> u64 {
        let mut room: u64 = 0;
        for id in &q.consumers {
            let c = &self.consumers[id];
            if c.no_ack || c.prefetch == 0 {
                return q.ready.len() as u64;
            }
            room += c.prefetch.saturating_sub(c.unacked) as u64;
        }
        room.min(q.ready.len() as u64)
    }

    /// The head of queue `qid` waits for the horizon: ask for one that covers it and
    /// `demand` messages from it on, plus the lookahead (unless one asked for already
    /// covers that). Demand catching up with what was asked for multiplies the lookahead by four.
    pub(super) fn ask_horizon(&mut self, qid: QueueId, demand: u64, now: u64) {
        let Some(q) = self.queues.get_mut(&qid) else { return };
        let Some(seq) = q.ready.front().map(|e| e.seq) else { return };
        if !q.horizon_blocked {
            // Demand caught up with the stored horizon (once per stored horizon).
            q.horizon_blocked = true;
            let idle = q.first_delivered_at.is_none_or(|t| now.saturating_sub(t) > IDLE_MS);
            q.lookahead = if idle { 0 } else { (q.lookahead * 4).clamp(1, MAX_LOOKAHEAD) };
        }
        let want = seq - 1 + demand.max(1);
        if want <= q.horizon_asked {
            return;
        }
        let through = want + q.lookahead;
        q.horizon_asked = through;
        let op = StoreOp::Horizon { queue: q.name.clone(), through };
        self.effects.push_back(Effect::Store(op));
    }

    /// A stored message (position `seq`) of `qid` went out for the first time: within half
    /// a lookahead of the horizon, ask for the next one ahead of time.
    pub(super) fn handed_out(&mut self, qid: QueueId, seq: u64, now: u64) {
        if !self.delivery_horizon {
            return;
        }
        let Some(q) = self.queues.get_mut(&qid) else { return };
        q.first_delivered_at = Some(now);
        q.handed_through = q.handed_through.max(seq);
        if self.horizons_free {
            // Nothing waits; the log learns what the write that puts the fence back must
            // store (counted as stored already: the fence goes back with it or not at all).
            if seq > q.horizon_asked {
                let through = seq + q.lookahead;
                (q.horizon, q.horizon_asked) = (through, through);
                let op = StoreOp::Horizon { queue: q.name.clone(), through };
                self.effects.push_back(Effect::Store(op));
            }
            return;
        }
        if q.lookahead > 0 && q.horizon_asked == q.horizon && seq + q.lookahead / 2 >= q.horizon {
            let through = seq + q.lookahead;
            if through > q.horizon_asked {
                q.horizon_asked = through;
                let op = StoreOp::Horizon { queue: q.name.clone(), through };
                self.effects.push_back(Effect::Store(op));
            }
        }
    }

    /// The driver stored horizon `through` of durable queue `queue` (or gave up storing
    /// it: see the host): first deliveries up to it may go out now.
    pub fn horizon_stored(&mut self, queue: &str, through: u64, now: u64) {
        let Some(&qid) = self.queue_ids.get(queue) else { return };
        let q = self.queues.get_mut(&qid).expect("listed queue exists");
        // Above what was asked for: a write from before a retraction, no longer the
        // store's last word (see `retract_horizons`).
        if !q.durable || through <= q.horizon || through > q.horizon_asked {
            return;
        }
        q.horizon = through;
        q.horizon_asked = q.horizon_asked.max(through);
        q.horizon_blocked = false;
        self.dispatch(qid, now);
    }

    /// What a `get` of `queue` must wait for, if anything; asks for a higher horizon when
    /// that is it. Expires what is dead at the head first, as `get` does.
    pub fn get_wait(&mut self, queue: &str, now: u64) -> Option<GetWait> {
        let &qid = self.queue_ids.get(queue)?;
        self.expire(qid, now);
        let q = self.queues.get(&qid)?;
        if q.head_paged() {
            return Some(GetWait::Paged);
        }
        if !self.waits_for_horizon(q, now) {
            return None;
        }
        self.ask_horizon(qid, 1, now);
        Some(GetWait::Horizon)
    }

    /// Whether a `get` of `queue` would take its head now (no paged-out head, none beyond
    /// the horizon), without changing anything: the driver's cheap check before
    /// [`Broker::get_wait`]. (A head that expires first may uncover one that must wait:
    /// `get` then fails and leaves the channel open.)
    pub fn get_ready(&self, queue: &str, now: u64) -> bool {
        let Some(q) = self.queue_ids.get(queue).and_then(|id| self.queues.get(id)) else { return true };
        !q.head_paged() && !self.waits_for_horizon(q, now)
    }

    /// The horizon of durable queue `queue` as its store holds it (recovery). Messages
    /// at or below it come back flagged without a stored mark, so it is never lowered
    /// below it again (`retract_horizons`).
    pub fn restore_horizon(&mut self, queue: &str, through: u64) {
        let Some(&qid) = self.queue_ids.get(queue) else { return };
        let q = self.queues.get_mut(&qid).expect("listed queue exists");
        q.horizon = q.horizon.max(through);
        q.horizon_asked = q.horizon_asked.max(through);
        q.handed_through = q.handed_through.max(through);
    }

    /// Lowers every horizon to what was handed out (the highest `seq` that went out for
    /// the first time), and the lookahead to 0, for `flush()`: once that write commits,
    /// a crash flags exactly the messages that may have been seen, none beyond. Demand
    /// waiting meanwhile asks again at once (in the same write). A write of a higher
    /// horizon already under way is no longer taken when it commits (`horizon_stored`
    /// ignores horizons above what was asked for), since the lower one follows it.
    pub fn retract_horizons(&mut self, now: u64) {
        if !self.delivery_horizon {
            return;
        }
        let mut retracted = Vec::new();
        for (&qid, q) in self.queues.iter_mut() {
            q.lookahead = 0;
            if !q.durable || q.horizon_asked <= q.handed_through {
                continue;
            }
            q.horizon = q.horizon.min(q.handed_through);
            q.horizon_asked = q.handed_through;
            q.horizon_blocked = false;
            let op = StoreOp::Horizon { queue: q.name.clone(), through: q.handed_through };
            self.effects.push_back(Effect::Store(op));
            retracted.push(qid);
        }
        sort::sort(&mut retracted);
        for qid in retracted {
            self.dispatch(qid, now);
        }
    }

    /// Whether first deliveries may go out with no stored horizon: the driver says so
    /// while the store holds no fence (`store::Log`), since a crash then brings every
    /// stored message back flagged. While free, each first delivery beyond the highest
    /// horizon asked for asks for one (for the log to store with the fence), counted as
    /// stored at once. Set free again (`false`) when the driver takes the write that
    /// puts the fence back: the horizons asked for until then go with it, and first
    /// deliveries beyond them wait for the next commit as usual. Freeing dispatches.
    pub fn set_horizons_free(&mut self, free: bool, now: u64) {
        if !self.delivery_horizon || free == self.horizons_free {
            return;
        }
        self.horizons_free = free;
        if !free {
            return;
        }
        let mut freed = Vec::new();
        for (&qid, q) in self.queues.iter_mut() {
            if q.durable {
                q.horizon = q.horizon_asked;
                q.horizon_blocked = false;
                freed.push(qid);
            }
        }
        sort::sort(&mut freed);
        for qid in freed {
            self.dispatch(qid, now);
        }
    }

    /// Whether a first delivery waits for a horizon asked for and not yet stored (so
    /// that a driver whose writes fail might free the horizons, see
    /// [`Broker::set_horizons_free`]).
    pub fn waits_for_store(&self) -> bool {
        !self.horizons_free && self.queues.values().any(|q| q.horizon_blocked && q.horizon_asked > q.horizon)
    }

    /// The stored horizon of `queue` as the broker knows it, and the highest asked for.
    pub fn horizon(&self, queue: &str) -> Option<(u64, u64)> {
        let q = self.queues.get(self.queue_ids.get(queue)?)?;
        Some((q.horizon, q.horizon_asked))
    }
}
