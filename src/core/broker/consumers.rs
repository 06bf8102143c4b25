//! Consumers and dispatch: prefetch, consume and cancel, picking a consumer, handing
//! ready messages out, holding deliveries during failover, and `get`.

use std::rc::Rc;

use super::horizon::GetWait;
use super::{closed, first_delivery, limit_error, Broker, Consumer};
use crate::core::channel::{Channel, Unacked};
use crate::core::effect::{Delivery, Effect, StoreOp};
use crate::core::error::{AmqpError, ReplyCode, Result};
use crate::core::ids::{ChannelRef, QueueId};
use crate::core::names;
use crate::core::queue::{DropReason, Queue};
use crate::core::value::Table;

/// `consume`.
#[derive(Clone, Debug, Default)]
pub struct Consume {
    pub queue: String,
    /// `""` asks for a generated tag.
    pub consumer_tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority` (consumer priority) and other arguments.
    pub arguments: Table,
}

/// What `get` answers when a message was there.
#[derive(Clone, Debug)]
pub struct GetOk {
    pub delivery: Delivery,
    /// Ready messages left after this one.
    pub message_count: u32,
}

impl Broker {
    /// `prefetch(count, global)`: without `global`, the limit of each consumer created
    /// after it on this channel; with `global`, one limit for the channel's consumers
    /// together (RabbitMQ's reading of `basic.qos`). 0 is unlimited.
    pub fn prefetch(&mut self, ch: ChannelRef, count: u32, global: bool, now: u64) -> Result<()> {
        let c = self.channels.get_mut(&ch).ok_or_else(|| closed(ch))?;
        if global {
            c.channel_prefetch = count;
            // A higher limit may let waiting messages through now.
            self.dispatch_channel(ch, now);
        } else {
            c.consumer_prefetch = count;
        }
        Ok(())
    }

    /// `consume(queue, fn, options)` → the consumer tag.
    pub fn consume(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<Rc<str>> {
        self.on_channel(ch, now, |b| b.consume_inner(ch, c, now))
    }

    fn consume_inner(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<Rc<str>> {
        let (tag, qid) = self.register_consumer(ch, c, now)?;
        self.dispatch(qid, now);
        Ok(tag)
    }

    /// Adds a consumer to an open channel and its queue without dispatching, so that a
    /// resumed channel can take back its deliveries before new ones flow. Checks
    /// everything before changing anything: on an error the broker is as it was.
    pub(super) fn register_consumer(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<(Rc<str>, QueueId)> {
        names::check("queue name", &c.queue)?;
        names::check("consumer tag", &c.consumer_tag)?;
        let qid = self.queue_id(&c.queue)?;
        self.check_exclusive(qid, ch.conn)?;
        let priority = match c.arguments.get("x-priority") {
            None => 0,
            Some(v) => v.as_int().ok_or_else(|| {
                AmqpError::precondition(format!(
                    "invalid arg 'x-priority' for consumer on queue '{}': expected an integer, got {}",
                    c.queue,
                    v.type_name()
                ))
            })?,
        };
        let channel = &self.channels[&ch];
        let tag: Rc<str> = if c.consumer_tag.is_empty() {
            self.names.next("amq.ctag-").into()
        } else {
            if channel.consumer(&c.consumer_tag).is_some() {
                return Err(AmqpError::new(
                    ReplyCode::NotAllowed,
                    format!(
                        "attempt to reuse consumer tag '{}' on this channel: use a new tag, or omit it",
                        c.consumer_tag
                    ),
                ));
            }
            c.consumer_tag.as_str().into()
        };
        let q = &self.queues[&qid];
        if let Some(first) = q.consumers.first().and_then(|id| self.consumers.get(id)) {
            if first.exclusive {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' has an exclusive consumer: wait for it to cancel",
                    c.queue
                )));
            }
            if c.exclusive {
                return Err(AmqpError::access_refused(format!(
                    "queue '{}' has {} consumers: an exclusive consumer needs a queue with none",
                    c.queue,
                    q.consumers.len()
                )));
            }
        }
        if self.consumers.len() >= self.limits.max_consumers {
            return Err(limit_error("consumers", self.limits.max_consumers, "maxConsumers"));
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        let prefetch = channel.consumer_prefetch;
        self.consumers.insert(
            id,
            Consumer {
                channel: ch,
                tag: tag.clone(),
                queue: qid,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
                priority,
                prefetch,
                unacked: 0,
            },
        );
        self.channels.get_mut(&ch).expect("open").consumers.push((tag.clone(), id));
        let q = self.queues.get_mut(&qid).expect("exists");
        q.consumers.push(id);
        q.had_consumer = true;
        q.last_used = now;
        q.mixed_priorities = {
            let consumers = &self.consumers;
            let mut ps = q.consumers.iter().map(|c| consumers[c].priority);
            let first = ps.next();
            ps.any(|p| Some(p) != first)
        };
        Ok((tag, qid))
    }

    /// `cancel(consumerTag)`. Its unacked deliveries stay unacked on the channel.
    /// Cancelling an unknown tag succeeds, as in RabbitMQ.
    pub fn cancel(&mut self, ch: ChannelRef, consumer_tag: &str, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let channel = b.channels.get_mut(&ch).expect("open");
            if let Some(i) = channel.consumers.iter().position(|(t, _)| &**t == consumer_tag) {
                let (_, id) = channel.consumers.remove(i);
                if let Some(q) = b.remove_consumer(id, now) {
                    b.dispatch(q, now);
                }
            }
            Ok(())
        })
    }

    /// Removes a consumer from its queue; an auto-delete queue goes with its last
    /// consumer. Returns the queue if it still exists.
    pub(super) fn remove_consumer(&mut self, id: u32, now: u64) -> Option<QueueId> {
        let c = self.consumers.remove(&id)?;
        let q = self.queues.get_mut(&c.queue)?;
        // In use until now: an `x-expires` lease starts when the last consumer goes.
        q.last_used = now;
        if let Some(i) = q.consumers.iter().position(|x| *x == id) {
            q.consumers.remove(i);
            if q.cursor > i {
                q.cursor -= 1;
            }
        }
        if q.cursor >= q.consumers.len() {
            q.cursor = 0;
        }
        if q.auto_delete && q.had_consumer && q.consumers.is_empty() {
            self.delete_queue_inner(c.queue);
            return None;
        }
        Some(c.queue)
    }

    /// Picks the consumer for the next message: among those with room under their
    /// prefetch, the highest priority; round-robin among equals. A single-active-consumer
    /// queue uses only its first consumer.
    fn pick_consumer(&self, q: &Queue) -> Option<usize> {
        let n = q.consumers.len();
        let room = |i: usize| {
            let c = &self.consumers[&q.consumers[i]];
            c.has_capacity() && (c.no_ack || self.channels.get(&c.channel).is_some_and(Channel::has_capacity))
        };
        if q.args.single_active_consumer {
            return (n > 0 && room(0)).then_some(0);
        }
        let mut best: Option<(usize, i64)> = None;
        for k in 0..n {
            let i = (q.cursor + k) % n;
            if !room(i) {
                continue;
            }
            let p = self.consumers[&q.consumers[i]].priority;
            if !q.mixed_priorities {
                return Some(i);
            }
            if best.is_none_or(|(_, bp)| p > bp) {
                best = Some((i, p));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Hands ready messages to consumers while both exist.
    pub(super) fn dispatch(&mut self, qid: QueueId, now: u64) {
        if self.holding {
            return;
        }
        let mut expired = Vec::new();
        while let Some(q) = self.queues.get(&qid) {
            // A paged-out head waits for the host to page it in (`page_in` dispatches).
            if q.ready.is_empty() || q.consumers.is_empty() || q.head_paged() {
                break;
            }
            let Some(i) = self.pick_consumer(q) else { break };
            // A first delivery beyond the stored horizon waits for a higher one.
            if self.waits_for_horizon(q, now) {
                let demand = self.demand(q);
                self.ask_horizon(qid, demand, now);
                break;
            }
            let q = self.queues.get_mut(&qid).expect("exists");
            let entry = q.ready.pop_front().expect("not empty");
            // Dead once in the queue for longer than its TTL (ttl.md): a message whose
            // TTL ends this very ms still goes to a waiting consumer, which is how a TTL
            // of 0 delivers now or never.
            if entry.expires_at.is_some_and(|t| t < now) {
                expired.push(entry);
                continue;
            }
            let (first, seq) = (entry.durable && !entry.redelivered, entry.seq);
            let cid = q.consumers[i];
            q.cursor = (i + 1) % q.consumers.len();
            q.counters.delivered += 1;
            q.counters.redelivered += entry.redelivered as u64;
            let c = self.consumers.get_mut(&cid).expect("listed consumer exists");
            let channel = self.channels.get_mut(&c.channel).expect("consumer's channel is open");
            let tag = channel.next_delivery_tag;
            channel.next_delivery_tag += 1;
            let delivery = Delivery {
                channel: c.channel,
                consumer_tag: Some(c.tag.clone()),
                delivery_tag: tag,
                redelivered: entry.redelivered,
                delivery_count: entry.delivery_count,
                queue: qid,
                queue_name: q.name.clone(),
                seq: entry.seq,
                message: entry.loaded().clone(),
            };
            if c.no_ack {
                q.counters.auto_acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    self.effects.push_back(Effect::Store(op));
                }
            } else {
                c.unacked += 1;
                channel.consumer_unacked += 1;
                q.unacked += 1;
                if let Some(op) = first_delivery(&q.name, &entry) {
                    self.effects.push_back(Effect::Store(op));
                }
                channel.unacked.push(tag, Unacked { queue: qid, consumer: Some(cid), entry });
            }
            self.effects.push_back(Effect::Deliver(delivery));
            if first {
                self.handed_out(qid, seq, now);
            }
        }
        for e in expired {
            self.discard(qid, e, DropReason::Expired, now);
        }
        // A dead message the deliveries uncovered at the head goes now, as RabbitMQ
        // drops expired messages after every fetch.
        self.expire(qid, now);
    }

    /// Dispatches every queue a channel consumes from (its channel-wide prefetch freed up).
    pub(super) fn dispatch_channel(&mut self, ch: ChannelRef, now: u64) {
        let Some(c) = self.channels.get(&ch) else { return };
        let queues: Vec<QueueId> =
            c.consumers.iter().filter_map(|(_, id)| self.consumers.get(id).map(|c| c.queue)).collect();
        for q in queues {
            self.dispatch(q, now);
        }
    }

    /// Holds every delivery to consumers until [`Broker::release_deliveries`]: a new host
    /// takes back the deliveries each client still holds (`resume_channel`) before any
    /// message can go to someone else. `get` is not held.
    pub fn hold_deliveries(&mut self) {
        self.holding = true;
    }

    /// Deliveries flow again: every queue with consumers dispatches.
    pub fn release_deliveries(&mut self, now: u64) {
        self.holding = false;
        let ids: Vec<QueueId> =
            self.queues.iter().filter(|(_, q)| !q.consumers.is_empty()).map(|(id, _)| *id).collect();
        for id in ids {
            self.dispatch(id, now);
        }
    }

    /// `get(queue, {noAck})`: one message, or `None` when the queue has none ready.
    ///
    /// With a delivery horizon, a driver calls [`Broker::get_wait`] first and waits while
    /// it says so: a `get` whose message is beyond the stored horizon fails with
    /// INTERNAL_ERROR (leaving the channel open) and asks for a higher horizon.
    pub fn get(&mut self, ch: ChannelRef, queue: &str, no_ack: bool, now: u64) -> Result<Option<GetOk>> {
        if self.channels.contains_key(&ch) && self.get_wait(queue, now) == Some(GetWait::Horizon) {
            return Err(AmqpError::new(
                ReplyCode::InternalError,
                format!("the head of queue '{queue}' waits for its delivery horizon to be stored: wait (get_wait) before get"),
            ));
        }
        self.on_channel(ch, now, |b| {
            names::check("queue name", queue)?;
            let qid = b.queue_id(queue)?;
            b.check_exclusive(qid, ch.conn)?;
            b.queues.get_mut(&qid).expect("exists").last_used = now;
            b.expire(qid, now);
            let q = b.queues.get_mut(&qid).expect("exists");
            if q.head_paged() {
                return Err(AmqpError::new(
                    ReplyCode::InternalError,
                    format!("the head of queue '{queue}' is paged out: page it in before get"),
                ));
            }
            let Some(entry) = q.ready.pop_front() else { return Ok(None) };
            let (first, seq) = (entry.durable && !entry.redelivered, entry.seq);
            q.counters.delivered += 1;
            q.counters.redelivered += entry.redelivered as u64;
            let channel = b.channels.get_mut(&ch).expect("open");
            let tag = channel.next_delivery_tag;
            channel.next_delivery_tag += 1;
            let delivery = Delivery {
                channel: ch,
                consumer_tag: None,
                delivery_tag: tag,
                redelivered: entry.redelivered,
                delivery_count: entry.delivery_count,
                queue: qid,
                queue_name: q.name.clone(),
                seq: entry.seq,
                message: entry.loaded().clone(),
            };
            let message_count = q.ready.len() as u32;
            if no_ack {
                q.counters.auto_acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    b.effects.push_back(Effect::Store(op));
                }
            } else {
                q.unacked += 1;
                if let Some(op) = first_delivery(&q.name, &entry) {
                    b.effects.push_back(Effect::Store(op));
                }
                channel.unacked.push(tag, Unacked { queue: qid, consumer: None, entry });
            }
            if first {
                b.handed_out(qid, seq, now);
            }
            Ok(Some(GetOk { delivery, message_count }))
        })
    }
}
