//! The broker's internal invariants, checked by the property tests after every command.

use super::Broker;
use crate::core::fxhash::{FxMap, FxSet};
use crate::core::ids::QueueId;
use crate::core::queue::Entry;

impl Broker {
    /// Checks the broker's internal invariants; the property tests call it after every
    /// command. Returns what is broken.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut unacked_by_queue: FxMap<QueueId, usize> = FxMap::default();
        let mut unacked_by_consumer: FxMap<u32, u32> = FxMap::default();
        let mut seen: FxSet<(QueueId, u64)> = FxSet::default();
        for (ch, channel) in &self.channels {
            let mut consumer_unacked = 0;
            for (tag, u) in channel.unacked.iter() {
                if tag >= channel.next_delivery_tag {
                    return Err(format!("{ch:?}: unacked tag {tag} is not below the next delivery tag"));
                }
                *unacked_by_queue.entry(u.queue).or_default() += 1;
                if let Some(c) = u.consumer {
                    consumer_unacked += 1;
                    *unacked_by_consumer.entry(c).or_default() += 1;
                }
                if !seen.insert((u.queue, u.entry.seq)) {
                    return Err(format!("message {:?}/{} is unacked twice", u.queue, u.entry.seq));
                }
            }
            if !channel.forgiven.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("{ch:?}: forgiven tags {:?} are not sorted and distinct", channel.forgiven));
            }
            if let Some(t) = channel.forgiven.iter().find(|t| channel.unacked.contains(**t)) {
                return Err(format!("{ch:?}: tag {t} is both forgiven and unacked"));
            }
            if channel.forgiven.last().is_some_and(|t| *t >= channel.next_delivery_tag) {
                return Err(format!("{ch:?}: a forgiven tag is not below the next delivery tag"));
            }
            if consumer_unacked != channel.consumer_unacked {
                return Err(format!(
                    "{ch:?}: consumer_unacked {} but {consumer_unacked} in window",
                    channel.consumer_unacked
                ));
            }
            for (tag, id) in &channel.consumers {
                let c = self.consumers.get(id).ok_or(format!("{ch:?} lists a missing consumer {tag}"))?;
                if c.channel != *ch || c.tag != *tag {
                    return Err(format!("consumer {tag} is listed on the wrong channel"));
                }
            }
            if !self.connections.get(&ch.conn).is_some_and(|c| c.channels.contains(&ch.channel)) {
                return Err(format!("{ch:?} is not listed by its connection"));
            }
        }
        for (id, c) in &self.consumers {
            let n = unacked_by_consumer.get(id).copied().unwrap_or(0);
            if c.unacked != n {
                return Err(format!("consumer {}: unacked {} but {n} in windows", c.tag, c.unacked));
            }
            if c.prefetch > 0 && !c.no_ack && c.unacked > c.prefetch {
                return Err(format!("consumer {} has {} unacked over prefetch {}", c.tag, c.unacked, c.prefetch));
            }
            let q = self.queues.get(&c.queue).ok_or(format!("consumer {} of a missing queue", c.tag))?;
            if !q.consumers.contains(id) {
                return Err(format!("consumer {} is not listed by its queue", c.tag));
            }
            if self.channels.get(&c.channel).is_none_or(|ch| ch.consumer(&c.tag) != Some(*id)) {
                return Err(format!("consumer {} is not listed by its channel", c.tag));
            }
        }
        for (id, q) in &self.queues {
            if self.delivery_horizon && !(q.handed_through <= q.horizon && q.horizon <= q.horizon_asked) {
                return Err(format!(
                    "queue {id:?}: handed out through {}, horizon {}, asked {}: out of order",
                    q.handed_through, q.horizon, q.horizon_asked
                ));
            }
            let n = unacked_by_queue.get(id).copied().unwrap_or(0);
            if q.unacked != n {
                return Err(format!("queue {}: unacked {} but {n} in channels", q.name, q.unacked));
            }
            for e in q.ready.iter() {
                if !seen.insert((*id, e.seq)) {
                    return Err(format!("queue {}: message {} is both ready and elsewhere", q.name, e.seq));
                }
            }
            for e in q.delayed.values() {
                if !seen.insert((*id, e.seq)) {
                    return Err(format!("queue {}: message {} is both delayed and elsewhere", q.name, e.seq));
                }
            }
            if q.stored_below > q.next_seq {
                return Err(format!("queue {}: stored_below {} above next_seq {}", q.name, q.stored_below, q.next_seq));
            }
            let paged = q.ready.iter().filter(|e| e.message.is_none()).count();
            if q.ready.iter().any(|e| e.message.is_none() && e.seq < q.paged_from) {
                return Err(format!("queue {}: a message before paged_from {} is paged out", q.name, q.paged_from));
            }
            if paged > 0 && !self.paged_queues.contains(id) {
                return Err(format!("queue {}: has paged-out messages but is not listed as paged", q.name));
            }
            if paged != q.paged || (paged > 0 && !q.can_page()) {
                return Err(format!("queue {}: {paged} ready messages paged out, {} counted", q.name, q.paged));
            }
            let bytes: usize = q.ready.iter().map(Entry::body_len).sum();
            if bytes != q.ready.bytes() {
                return Err(format!("queue {}: ready bytes {} but {bytes} counted", q.name, q.ready.bytes()));
            }
            let c = q.counters;
            let accounted = q.ready.len() as u64
                + q.delayed.len() as u64
                + q.unacked as u64
                + c.acked
                + c.auto_acked
                + c.dead_lettered
                + c.discarded
                + c.purged;
            if accounted != c.enqueued {
                return Err(format!(
                    "queue {}: {} messages entered but {accounted} accounted for ({c:?})",
                    q.name, c.enqueued
                ));
            }
            if let Some(owner) = q.exclusive_owner {
                if !self.connections.get(&owner).is_some_and(|c| c.exclusive_queues.contains(id)) {
                    return Err(format!("exclusive queue {} outlived its connection", q.name));
                }
            }
        }
        let total: usize = self.exchanges.values().map(|e| e.binding_count).sum();
        if total != self.binding_total {
            return Err(format!("binding total {} but {total} counted", self.binding_total));
        }
        Ok(())
    }
}
