//! Settlement: ack, nack, reject and recover, and what each does to a delivery: removed,
//! requeued (flagged redelivered, up to the delivery limit) or dead-lettered.

use super::Broker;
use crate::core::channel::Unacked;
use crate::core::effect::{Effect, StoreOp};
use crate::core::error::{AmqpError, Result};
use crate::core::ids::{ChannelRef, QueueId};
use crate::core::queue::DropReason;

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settle {
    Ack,
    Requeue,
    Reject,
}

impl Broker {
    /// `ack(message, allUpTo)`. With `multiple`, every delivery up to `delivery_tag`;
    /// `multiple` with tag 0 acks all (`ackAll`).
    pub fn ack(&mut self, ch: ChannelRef, delivery_tag: u64, multiple: bool, now: u64) -> Result<()> {
        self.settle(ch, delivery_tag, multiple, Settle::Ack, now)
    }

    /// `nack(message, allUpTo, requeue)`. Without requeue the message is dead-lettered
    /// (reason `rejected`) or dropped.
    pub fn nack(&mut self, ch: ChannelRef, delivery_tag: u64, multiple: bool, requeue: bool, now: u64) -> Result<()> {
        self.settle(ch, delivery_tag, multiple, if requeue { Settle::Requeue } else { Settle::Reject }, now)
    }

    /// `reject(message, requeue)`: `nack` of one message.
    pub fn reject(&mut self, ch: ChannelRef, delivery_tag: u64, requeue: bool, now: u64) -> Result<()> {
        self.nack(ch, delivery_tag, false, requeue, now)
    }

    /// `recover()`: every unacked delivery of the channel goes back to its queue.
    pub fn recover(&mut self, ch: ChannelRef, now: u64) -> Result<()> {
        self.settle(ch, 0, true, Settle::Requeue, now)
    }

    fn settle(&mut self, ch: ChannelRef, tag: u64, multiple: bool, how: Settle, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let channel = b.channels.get_mut(&ch).expect("open");
            let global = channel.channel_prefetch > 0;
            if !multiple {
                let Some(u) = channel.unacked.take(tag) else {
                    // A delivery lost with an earlier broker (see `resume_channel`): nothing to do.
                    return if channel.settle_forgiven(tag) { Ok(()) } else { Err(unknown_tag(tag)) };
                };
                let q = u.queue;
                b.settle_entry(ch, u, how, now);
                // The settled message's queue first: the room it freed goes there.
                b.dispatch(q, now);
                if global {
                    b.dispatch_channel(ch, now);
                }
                return Ok(());
            }
            if tag != 0 && !channel.unacked.contains(tag) && !channel.is_forgiven(tag) {
                return Err(unknown_tag(tag));
            }
            let mut taken = Vec::new();
            if tag == 0 {
                channel.unacked.take_all(&mut taken);
                channel.forgiven.clear();
            } else {
                channel.unacked.take_up_to(tag, &mut taken);
                channel.settle_forgiven_up_to(tag);
            }
            let mut touched: Vec<QueueId> = Vec::new();
            for (_, u) in taken {
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
                b.settle_entry(ch, u, how, now);
            }
            for q in touched {
                b.dispatch(q, now);
            }
            if global {
                b.dispatch_channel(ch, now);
            }
            Ok(())
        })
    }

    /// Settles one delivery taken from its channel's window (no dispatch).
    pub(super) fn settle_entry(&mut self, ch: ChannelRef, u: Unacked, how: Settle, now: u64) {
        if let Some(cid) = u.consumer {
            // The consumer may be cancelled already; its deliveries still count on the channel.
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.unacked -= 1;
            }
            if let Some(channel) = self.channels.get_mut(&ch) {
                channel.consumer_unacked -= 1;
            }
        }
        let Some(q) = self.queues.get_mut(&u.queue) else { return };
        q.unacked -= 1;
        let mut entry = u.entry;
        match how {
            Settle::Ack => {
                q.counters.acked += 1;
                if entry.durable {
                    let op = StoreOp::RemoveMessage { queue: q.name.clone(), seq: entry.seq };
                    self.store(op);
                }
            }
            Settle::Reject => self.discard(u.queue, entry, DropReason::Rejected, now),
            Settle::Requeue => {
                entry.redelivered = true;
                entry.delivery_count += 1;
                if q.args.delivery_limit.is_some_and(|limit| entry.delivery_count > limit) {
                    self.discard(u.queue, entry, DropReason::DeliveryLimit, now);
                    return;
                }
                if entry.durable {
                    let op = StoreOp::ReturnMessage {
                        queue: q.name.clone(),
                        seq: entry.seq,
                        delivery_count: entry.delivery_count,
                    };
                    self.effects.push_back(Effect::Store(op));
                }
                q.ready.requeue(entry);
                // As RabbitMQ's requeue does: a drop-head queue drops down to its limit.
                self.enforce_max_length(u.queue, now);
            }
        }
    }
}

fn unknown_tag(tag: u64) -> AmqpError {
    AmqpError::precondition(format!(
        "unknown delivery tag {tag}: it was already acked, or came on another channel; settle each delivery once, on its own channel"
    ))
}
