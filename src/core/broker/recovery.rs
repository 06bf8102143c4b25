//! Recovery: a reopened broker takes back what its store holds. Declarations replay
//! through the ordinary declare paths on a channel of their own (so a stored record
//! gets the same validation as a live command) and their store ops are dropped: the
//! records exist already. Messages go straight into their queues.

use std::rc::Rc;

use super::{Broker, ChannelRef, Entry, ExchangeDeclare, QueueDeclare, Result};
use crate::core::effect::StoreDestination;
use crate::core::error::AmqpError;
use crate::core::message::Message;
use crate::core::value::Table;

/// A persistent message of a durable queue, as the store gives it back.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub seq: u64,
    /// `None` when recovery leaves it paged out (only deep in a queue that can page).
    pub message: Option<Rc<Message>>,
    pub body_len: u32,
    pub priority: u8,
    /// Absolute times in ms, as [`crate::core::StoreOp::PutMessage`] gave them.
    pub expires_at: Option<u64>,
    pub ready_at: Option<u64>,
    /// Returns before the broker closed.
    pub delivery_count: u32,
    /// Handed to a consumer before the broker closed, acked or not.
    pub delivered: bool,
}

impl Broker {
    /// Replays one command on the recovery channel; whatever effects it had are dropped.
    fn replay<T>(&mut self, now: u64, f: impl FnOnce(&mut Self, ChannelRef) -> Result<T>) -> Result<T> {
        let ch = match self.recovery.filter(|ch| self.channels.contains_key(ch)) {
            Some(ch) => ch,
            None => {
                let conn = self.connect();
                let ch = self.open_channel(conn)?;
                self.recovery = Some(ch);
                ch
            }
        };
        let mark = self.effects.len();
        let out = f(self, ch);
        self.effects.truncate(mark);
        if out.is_err() {
            // A failed command closed the channel: the next record gets a fresh one.
            self.disconnect(ch.conn, now);
        }
        out
    }

    /// Recreates a stored durable exchange.
    pub fn restore_exchange(
        &mut self,
        name: &str,
        kind: &str,
        auto_delete: bool,
        internal: bool,
        arguments: Table,
        now: u64,
    ) -> Result<()> {
        let d = ExchangeDeclare {
            name: name.to_owned(),
            kind: kind.to_owned(),
            durable: true,
            auto_delete,
            internal,
            arguments,
            passive: false,
        };
        self.replay(now, |b, ch| b.declare_exchange(ch, d, now))
    }

    /// Recreates a stored durable queue. `next_seq` is above every position the queue
    /// ever gave out, so that new messages never take the name of a stored one;
    /// `last_used` starts its `x-expires` lease.
    pub fn restore_queue(
        &mut self,
        name: &str,
        auto_delete: bool,
        arguments: Table,
        next_seq: u64,
        last_used: u64,
        now: u64,
    ) -> Result<()> {
        let d = QueueDeclare { name: name.to_owned(), durable: true, auto_delete, arguments, ..Default::default() };
        self.replay(now, |b, ch| b.declare_queue(ch, d, now))?;
        let q = self.queue_mut(name)?;
        q.next_seq = q.next_seq.max(next_seq);
        q.stored_below = q.stored_below.max(next_seq);
        q.last_used = last_used;
        Ok(())
    }

    /// Recreates a stored binding between durable things.
    pub fn restore_binding(
        &mut self,
        source: &str,
        destination: &StoreDestination,
        routing_key: &str,
        arguments: Table,
        now: u64,
    ) -> Result<()> {
        self.replay(now, |b, ch| match destination {
            StoreDestination::Queue(q) => b.bind_queue(ch, q, source, routing_key, arguments, now),
            StoreDestination::Exchange(e) => b.bind_exchange(ch, e, source, routing_key, arguments, now),
        })
    }

    /// Puts a stored message back in its (restored) queue, in its place by `seq`. It
    /// comes back flagged `redelivered` when it had been handed out before. Expiry,
    /// dead-lettering and length limits apply at the next [`Broker::tick`].
    pub fn restore_message(&mut self, queue: &str, m: StoredMessage, now: u64) -> Result<()> {
        let id = self.queue_id(queue)?;
        if m.message.is_none() {
            self.paged_queues.insert(id);
        }
        let q = self.queue_mut(queue)?;
        let paged = m.message.is_none();
        if paged && !q.can_page() {
            return Err(AmqpError::new(
                crate::core::ReplyCode::InternalError,
                format!("queue '{queue}' cannot page: restore its messages with their bodies"),
            ));
        }
        q.paged += paged as usize;
        if paged {
            q.paged_from = q.paged_from.min(m.seq);
        }
        let entry = Entry {
            seq: m.seq,
            message: m.message,
            body_len: m.body_len,
            priority: m.priority,
            expires_at: m.expires_at,
            delivery_count: m.delivery_count,
            redelivered: m.delivered || m.delivery_count > 0,
            durable: true,
        };
        q.next_seq = q.next_seq.max(m.seq + 1);
        q.stored_below = q.stored_below.max(m.seq + 1);
        q.counters.enqueued += 1;
        match m.ready_at {
            Some(t) if t > now => {
                q.delayed.insert(t, entry);
            }
            _ => q.ready.requeue(entry),
        }
        Ok(())
    }

    /// Ends recovery: closes the replay channel. Call [`Broker::tick`] next, so that
    /// messages whose time passed while the broker was closed expire.
    pub fn end_recovery(&mut self, now: u64) {
        if let Some(ch) = self.recovery.take() {
            let mark = self.effects.len();
            self.disconnect(ch.conn, now);
            self.effects.truncate(mark);
        }
    }

    fn queue_mut(&mut self, name: &str) -> Result<&mut super::Queue> {
        let id = self.queue_id(name)?;
        let q = self.queues.get_mut(&id).expect("listed queue exists");
        if !q.durable {
            return Err(AmqpError::precondition(format!("queue '{name}' is not durable: nothing of it is stored")));
        }
        Ok(q)
    }
}
