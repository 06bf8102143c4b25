//! A message in its queue: entering it under TTL, delay and length limits, leaving it
//! without an ack (dropped or dead-lettered), and time (expiry, delayed messages coming
//! due, queues unused for their `x-expires`).

use std::rc::Rc;

use super::Broker;
use crate::core::args::Overflow;
use crate::core::dead_letter::{dead_lettered, is_cycle};
use crate::core::effect::{Effect, StoreOp};
use crate::core::ids::{Destination, QueueId};
use crate::core::message::Message;
use crate::core::queue::{DropReason, Entry};
use crate::core::sort;

impl Broker {
    /// Puts a message in a queue, applying TTL, delay, length limits and overflow.
    pub(super) fn enqueue(
        &mut self,
        qid: QueueId,
        message: &Rc<Message>,
        ttl: Option<u64>,
        ready_at: Option<u64>,
        now: u64,
    ) -> Enqueued {
        let default_max = self.limits.max_queue_length;
        let Some(q) = self.queues.get_mut(&qid) else { return Enqueued::Refused(None) };
        let body_len = message.body.len();
        if let Some(refusal) = q.refusal(body_len, default_max) {
            let reason: Rc<str> = refusal.describe(&q.name).into();
            if q.args.overflow == Overflow::RejectPublishDlx {
                let (name, dlx, dlrk) =
                    (q.name.clone(), q.args.dead_letter_exchange.clone(), q.args.dead_letter_routing_key.clone());
                if let Some(dlx) = dlx {
                    // Not counted: the refused message never entered this queue's accounting.
                    self.dead_letter(&name, message, DropReason::MaxLen, &dlx, dlrk.as_deref(), now);
                }
            }
            return Enqueued::Refused(Some(reason));
        }
        let expires_at = match (q.args.message_ttl, ttl) {
            (Some(a), Some(b)) => Some(now.saturating_add(a.min(b))),
            (a, b) => a.or(b).map(|t| now.saturating_add(t)),
        };
        let durable = q.durable && message.properties.persistent && q.exclusive_owner.is_none();
        let priority = message.properties.priority.unwrap_or(0);
        let seq = q.take_seq();
        q.counters.enqueued += 1;
        let entry = Entry {
            seq,
            message: Some(message.clone()),
            body_len: body_len as u32,
            expires_at,
            delivery_count: 0,
            redelivered: false,
            durable,
            priority,
        };
        if durable {
            let op = StoreOp::PutMessage {
                queue: q.name.clone(),
                seq,
                message: message.clone(),
                expires_at,
                ready_at: ready_at.filter(|t| *t > now),
            };
            self.effects.push_back(Effect::Store(op));
        }
        match ready_at {
            Some(t) if t > now => {
                q.delayed.insert(t, entry);
            }
            _ => {
                q.ready.push_back(entry);
                self.dispatch(qid, now);
                if expires_at.is_some_and(|t| t <= now) {
                    // A TTL of 0 means "deliver now or never".
                    self.expire(qid, now);
                }
                self.enforce_max_length(qid, now);
            }
        }
        Enqueued::Accepted { durable }
    }

    /// `x-overflow: drop-head`: drop (or dead-letter) the oldest ready messages while over a limit.
    pub(super) fn enforce_max_length(&mut self, qid: QueueId, now: u64) {
        let mut dropped = false;
        loop {
            let Some(q) = self.queues.get_mut(&qid) else { return };
            if q.args.overflow != Overflow::DropHead || !q.is_over_limit() {
                break;
            }
            let Some(e) = q.ready.pop_front() else { break };
            self.discard(qid, e, DropReason::MaxLen, now);
            dropped = true;
        }
        if dropped {
            // The new head may be dead already; RabbitMQ checks it after dropping too.
            self.expire(qid, now);
        }
    }

    /// A message leaves its queue without an ack: dead-lettered when the queue has a
    /// dead-letter exchange, else dropped.
    pub(super) fn discard(&mut self, qid: QueueId, entry: Entry, reason: DropReason, now: u64) {
        let Some(q) = self.queues.get_mut(&qid) else { return };
        let name = q.name.clone();
        let dl = q.args.dead_letter_exchange.clone().map(|x| (x, q.args.dead_letter_routing_key.clone()));
        if dl.is_some() {
            q.counters.dead_lettered += 1;
        } else {
            q.counters.discarded += 1;
        }
        if entry.durable {
            self.store(StoreOp::RemoveMessage { queue: name.clone(), seq: entry.seq });
        }
        if let Some((dlx, dlrk)) = dl {
            if let Some(message) = &entry.message {
                self.dead_letter(&name, message, reason, &dlx, dlrk.as_deref(), now);
            }
        }
    }

    /// Republishes a copy of the message to the dead-letter exchange. A missing exchange
    /// drops it, as in RabbitMQ; so does a cycle with no rejection in it.
    fn dead_letter(
        &mut self,
        queue: &str,
        message: &Message,
        reason: DropReason,
        dlx: &str,
        dlrk: Option<&str>,
        now: u64,
    ) {
        let Some(&exchange) = self.exchange_ids.get(dlx) else { return };
        let copy = dead_lettered(message, queue, reason, now, dlx, dlrk);
        let mut targets = Vec::new();
        self.route(exchange, &copy, &mut Vec::new(), &mut targets);
        let ttl = None; // the copy carries no expiration; the target queue's TTL applies
        let copy = Rc::new(copy);
        for d in targets {
            let Destination::Queue(t) = d else { continue };
            if self.queues.get(&t).is_some_and(|q| is_cycle(&copy, &q.name)) {
                continue;
            }
            self.enqueue(t, &copy, ttl, None, now);
        }
    }

    // ---- time ----------------------------------------------------------------------------------

    /// Expired messages at the heads of a queue's ready list leave it.
    pub(super) fn expire(&mut self, qid: QueueId, now: u64) {
        while let Some(e) = self.queues.get_mut(&qid).and_then(|q| q.ready.pop_expired(now)) {
            self.discard(qid, e, DropReason::Expired, now);
        }
    }

    /// Advances time: expires messages, releases delayed ones, deletes queues unused for
    /// their `x-expires`. Returns when it next needs to run, if ever.
    pub fn tick(&mut self, now: u64) -> Option<u64> {
        let mut ids: Vec<QueueId> = self.queues.keys().copied().collect();
        sort::sort(&mut ids);
        for qid in ids {
            let unused = self.queues.get(&qid).is_some_and(|q| {
                q.args.expires.is_some_and(|e| q.consumers.is_empty() && q.last_used.saturating_add(e) <= now)
            });
            if unused {
                self.delete_queue_inner(qid);
                continue;
            }
            let Some(q) = self.queues.get_mut(&qid) else { continue };
            let mut released = false;
            while let Some(entry) = q.delayed.pop_due(now) {
                q.ready.requeue(entry);
                released = true;
            }
            self.expire(qid, now);
            if released {
                self.dispatch(qid, now);
                self.enforce_max_length(qid, now);
            }
        }
        self.next_deadline()
    }

    /// The earliest time at which [`Broker::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.queues
            .values()
            .flat_map(|q| {
                let expiry = q.args.expires.filter(|_| q.consumers.is_empty()).map(|e| q.last_used.saturating_add(e));
                [q.ready.next_expiry(), q.delayed.next_time(), expiry]
            })
            .flatten()
            .min()
    }
}

pub(super) enum Enqueued {
    Accepted {
        durable: bool,
    },
    /// With why, unless the queue is gone.
    Refused(Option<Rc<str>>),
}
