//! The broker's durable state as store ops, for a store that lost what it held: the
//! browser deleted the database under a running broker (the user cleared the site's data,
//! or the origin's storage was evicted), and the host writes it all again from memory so
//! that what it confirmed survives the next restart after all.

use std::rc::Rc;

use super::{Broker, DropReason, Entry, QueueId};
use crate::core::effect::StoreOp;
use crate::core::sort;

/// One stored message of a queue, wherever the broker holds it.
struct Held {
    seq: u64,
    message: Rc<crate::core::message::Message>,
    expires_at: Option<u64>,
    ready_at: Option<u64>,
    /// Handed out at least once (unacked now, or returned flagged).
    delivered: bool,
    delivery_count: u32,
}

impl Broker {
    /// Everything the store should hold, as the ops that build it: durable exchanges
    /// (not the built-in ones), durable queues (not exclusive ones), bindings between
    /// durable things, and every stored message of those queues, ready, delayed or
    /// unacked on a channel, in `seq` order per queue, with its handed-out mark, its
    /// delivery count and the queue's delivery horizon. A message whose body is paged out
    /// cannot be written again (the store that held it is gone): it leaves its queue,
    /// counted as discarded, and the second value counts them.
    pub fn durable_ops(&mut self, now: u64) -> (Vec<StoreOp>, usize) {
        let mut ops = Vec::new();
        let mut exchanges: Vec<_> = self.exchanges.values().filter(|x| x.durable && !x.builtin).collect();
        sort::sort_by(&mut exchanges, |a, b| a.name.cmp(&b.name));
        for x in exchanges {
            ops.push(StoreOp::PutExchange {
                name: x.name.clone(),
                kind: x.kind.as_str(),
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: x.arguments.clone(),
            });
        }
        let mut queues: Vec<(QueueId, Rc<str>)> = self
            .queues
            .iter()
            .filter(|(_, q)| q.durable && q.exclusive_owner.is_none())
            .map(|(id, q)| (*id, q.name.clone()))
            .collect();
        sort::sort_by(&mut queues, |a, b| a.1.cmp(&b.1));
        for (id, name) in &queues {
            let q = &self.queues[id];
            ops.push(StoreOp::PutQueue {
                name: name.clone(),
                auto_delete: q.auto_delete,
                arguments: q.raw_args.clone(),
            });
        }
        let mut bindings = Vec::new();
        for (&source, x) in self.exchanges.iter().filter(|(_, x)| !x.name.is_empty()) {
            for ((dest, key), tables) in &x.bindings {
                for args in tables {
                    bindings.extend(self.binding_op(source, *dest, key, args, true));
                }
            }
        }
        ops.append(&mut bindings);

        let mut lost = 0;
        for (id, name) in queues {
            let mut held: Vec<Held> = Vec::new();
            let mut paged = Vec::new();
            // An entry whose body is in memory, ready at `ready_at`, handed out if `delivered`
            // or flagged redelivered.
            let mut hold = |e: &Entry, ready_at: Option<u64>, delivered: bool| {
                if let Some(m) = &e.message {
                    held.push(Held {
                        seq: e.seq,
                        message: m.clone(),
                        expires_at: e.expires_at,
                        ready_at,
                        delivered: delivered || e.redelivered,
                        delivery_count: e.delivery_count,
                    });
                }
            };
            let q = &self.queues[&id];
            for e in q.ready.iter().filter(|e| e.durable) {
                match e.message {
                    Some(_) => hold(e, None, false),
                    None => paged.push(e.seq),
                }
            }
            for (at, e) in q.delayed.iter().filter(|(_, e)| e.durable) {
                hold(e, Some(at), false);
            }
            for c in self.channels.values() {
                for (_, u) in c.unacked.iter().filter(|(_, u)| u.queue == id && u.entry.durable) {
                    hold(&u.entry, None, true);
                }
            }
            // The log takes a queue's messages in position order.
            sort::sort_by(&mut held, |a, b| a.seq.cmp(&b.seq));
            for h in &held {
                let (queue, seq) = (name.clone(), h.seq);
                ops.push(StoreOp::PutMessage {
                    queue: queue.clone(),
                    seq,
                    message: h.message.clone(),
                    expires_at: h.expires_at,
                    ready_at: h.ready_at,
                });
                if h.delivery_count > 0 {
                    ops.push(StoreOp::ReturnMessage { queue, seq, delivery_count: h.delivery_count });
                } else if h.delivered {
                    ops.push(StoreOp::Delivered { queue, seq });
                }
            }
            // The horizon asked for too: the write that carried it went to the lost store, and
            // first deliveries wait for it (a higher horizon only flags more after a crash).
            let q = &self.queues[&id];
            let through = q.horizon.max(q.horizon_asked);
            if through > 0 {
                ops.push(StoreOp::Horizon { queue: name.clone(), through });
            }
            // Paged out: the body was only in the store that is gone.
            let q = self.queues.get_mut(&id).expect("listed queue exists");
            let gone: Vec<_> = paged.into_iter().filter_map(|seq| q.ready.remove(seq)).collect();
            q.paged -= gone.len();
            if q.paged == 0 {
                q.paged_from = u64::MAX;
                self.paged_queues.remove(&id);
            }
            lost += gone.len();
            for e in gone {
                self.discard(id, e, DropReason::Expired, now);
            }
        }
        (ops, lost)
    }
}
