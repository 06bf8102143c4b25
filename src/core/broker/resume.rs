//! Resuming a channel after failover: when the host tab dies, another tab's broker
//! recovers the store, and each live client announces its channels again with the
//! deliveries it holds unacked. The new broker rebuilds each channel so that nothing
//! the client holds is delivered again, its later acks work, and its delivery tags and
//! confirm numbers go on from where they were. Deliveries whose messages did not
//! survive (transient queues, non-persistent messages) are forgiven: the client may
//! still settle them, and that does nothing.

use super::{first_delivery, Broker, ChannelRef, ConnId, Consume, QueueId, Result, Settle, Unacked};
use crate::core::error::AmqpError;
use crate::core::sort;

/// A delivery a client holds unacked, as it announces it when resuming its channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub queue: String,
    /// The message's position in its queue ([`crate::core::Delivery::seq`]).
    pub seq: u64,
    pub delivery_tag: u64,
    /// The consumer it went to; `None` when it came from `get`.
    pub consumer_tag: Option<String>,
}

/// A channel as a client had it on the broker that died.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// The tag the channel's next delivery takes: above every tag in `in_flight`.
    pub next_delivery_tag: u64,
    /// `Some(next confirm sequence number)` when the channel is in confirm mode.
    pub confirm_seq: Option<u64>,
    /// `prefetch(n, false)`.
    pub consumer_prefetch: u32,
    /// `prefetch(n, true)`.
    pub channel_prefetch: u32,
    /// Its consumers, each with the tag the client knows it by.
    pub consumers: Vec<Consume>,
    pub in_flight: Vec<InFlight>,
}

/// What [`Broker::resume_channel`] made of a [`Resume`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// The new channel: its number may differ from the one the client had.
    pub channel: ChannelRef,
    /// Delivery tags taken back: they wait for their ack as before.
    pub adopted: Vec<u64>,
    /// Delivery tags whose messages are gone: settling them is a no-op.
    pub forgiven: Vec<u64>,
    /// Consumers that could not be registered (queue gone, exclusive conflict, …), by
    /// tag, with why: tell the client they were cancelled. The channel stays open.
    pub cancelled: Vec<(String, AmqpError)>,
}

impl Broker {
    /// Opens a channel on `conn` that continues one the client had on an earlier broker:
    /// its prefetch, confirm mode and numbering, consumers, and unacked deliveries.
    ///
    /// Each in-flight delivery whose message is ready here (restored from the store) is
    /// taken out of its queue into the channel's window under the client's tag, counted
    /// against its consumer's and the channel's prefetch as a delivery is; the others
    /// are forgiven. Consumers are registered first and their queues dispatched only
    /// once every delivery is taken back, so that none goes out twice. A consumer that
    /// cannot be registered is reported in [`Resumed::cancelled`] rather than closing
    /// the channel: the rest of it is still worth keeping.
    ///
    /// Fails, changing nothing, when `r` contradicts itself (a tag of 0 or repeated, a
    /// tag not below `next_delivery_tag`, a confirm number of 0, a tag or confirm number
    /// above 2^53 − 1) or no channel can open.
    pub fn resume_channel(&mut self, conn: ConnId, r: Resume, now: u64) -> Result<Resumed> {
        let Resume { next_delivery_tag, confirm_seq, consumer_prefetch, channel_prefetch, consumers, mut in_flight } =
            r;
        // The window takes tags in increasing order.
        sort::sort_by_key(&mut in_flight, |f| f.delivery_tag);
        check_resume(next_delivery_tag, confirm_seq, &in_flight)?;
        let ch = self.open_channel(conn)?;
        // A position the client names is one an earlier broker gave: no new message may
        // take it here, or a later announcement of the same delivery (to the broker after
        // this one) would name that new message (a transient one's position is not stored,
        // so recovery alone may give it again).
        for f in &in_flight {
            if let Some(q) = self.queue_ids.get(f.queue.as_str()).and_then(|id| self.queues.get_mut(id)) {
                q.next_seq = q.next_seq.max(f.seq + 1);
            }
        }
        let channel = self.channels.get_mut(&ch).expect("just opened");
        channel.consumer_prefetch = consumer_prefetch;
        channel.channel_prefetch = channel_prefetch;
        channel.confirm_seq = confirm_seq;
        channel.next_delivery_tag = next_delivery_tag;

        let mut out = Resumed { channel: ch, adopted: Vec::new(), forgiven: Vec::new(), cancelled: Vec::new() };
        let mut consumed: Vec<QueueId> = Vec::new();
        for c in consumers {
            let tag = c.consumer_tag.clone();
            match self.resume_consumer(ch, c, now) {
                Ok(q) if !consumed.contains(&q) => consumed.push(q),
                Ok(_) => {}
                Err(e) => out.cancelled.push((tag, e)),
            }
        }
        for f in &in_flight {
            if self.adopt(ch, f) {
                out.adopted.push(f.delivery_tag);
            } else {
                out.forgiven.push(f.delivery_tag);
            }
        }
        // Sorted already: `in_flight` is in tag order.
        self.channels.get_mut(&ch).expect("open").forgiven = out.forgiven.clone();
        self.fit_prefetch(ch);
        for q in consumed {
            self.dispatch(q, now);
        }
        Ok(out)
    }

    /// Registers one consumer of a resumed channel under the tag the client knows.
    fn resume_consumer(&mut self, ch: ChannelRef, c: Consume, now: u64) -> Result<QueueId> {
        if c.consumer_tag.is_empty() {
            // A generated tag would be one the client never learns.
            return Err(AmqpError::precondition(format!(
                "cannot resume a consumer of queue '{}' without its tag: announce the tag it was given",
                c.queue
            )));
        }
        self.register_consumer(ch, c, now).map(|(_, q)| q)
    }

    /// Takes one in-flight delivery back into the channel's window (tags must come in
    /// increasing order). Returns whether it did; if not, the message is gone or is not
    /// one this broker can vouch for, and the tag is to be forgiven.
    fn adopt(&mut self, ch: ChannelRef, f: &InFlight) -> bool {
        let Some(&qid) = self.queue_ids.get(f.queue.as_str()) else { return false };
        let horizons = self.delivery_horizon;
        let q = self.queues.get_mut(&qid).expect("listed queue exists");
        // Only a position that came from the store names the message the client has: a
        // later one may be a new message that reuses the position of a lost one.
        // A paged-out message stays (it has no body to hand back if the client
        // returns it before a page-in); it is delivered again later instead.
        // With delivery horizons, the store flags every stored message that may have been
        // handed out (see `horizon`): one it does not flag never went out, and a client
        // that says it holds it is wrong. Adopted, it would go out again (after a requeue)
        // as a redelivery with no stored trace, and a crash would bring it back unflagged.
        let vouched = |e: &mut super::Entry| e.message.is_some() && !(horizons && e.durable && !e.redelivered);
        if f.seq >= q.stored_below || !q.ready.get_mut(f.seq).is_some_and(vouched) {
            return false;
        }
        let Some(entry) = q.ready.remove(f.seq) else { return false };
        // Its TTL no longer applies: the message was delivered, as in RabbitMQ.
        q.unacked += 1;
        // As a delivery does: after another crash it comes back flagged redelivered.
        if let Some(op) = first_delivery(&q.name, &entry) {
            self.store(op);
        }
        let channel = self.channels.get_mut(&ch).expect("open");
        // The consumer it went to, if that is registered again here for the same queue;
        // `noAck` consumers' deliveries never count, so those are taken as from `get`.
        let consumer = f
            .consumer_tag
            .as_deref()
            .and_then(|t| channel.consumer(t))
            .filter(|id| self.consumers.get(id).is_some_and(|c| c.queue == qid && !c.no_ack));
        if let Some(c) = consumer.and_then(|id| self.consumers.get_mut(&id)) {
            c.unacked += 1;
            channel.consumer_unacked += 1;
        }
        channel.unacked.push(f.delivery_tag, Unacked { queue: qid, consumer, entry });
        true
    }

    /// A delivery a resumed channel's app settled lately (`ack`, or rejected) that another
    /// channel holds unacked: settled there, as the app settled it, and that channel's tag
    /// forgiven (its app may still settle it: a no-op). In the resume window another
    /// channel can hold the message only by a stale re-announcement (its context never
    /// learned that the old broker had taken it back and handed it to the settling app);
    /// after the window, also as the redelivery this broker made when the settling
    /// context re-announced late. Returns whether it was held.
    pub fn settle_held_elsewhere(&mut self, queue: &str, seq: u64, ack: bool, now: u64) -> bool {
        let Some(&qid) = self.queue_ids.get(queue) else { return false };
        let held = self.channels.iter().find_map(|(ch, c)| {
            c.unacked.iter().find(|(_, u)| u.queue == qid && u.entry.seq == seq).map(|(tag, _)| (*ch, tag))
        });
        let Some((ch, tag)) = held else { return false };
        let channel = self.channels.get_mut(&ch).expect("listed");
        let Some(u) = channel.unacked.take(tag) else { return false };
        if let Err(i) = channel.forgiven.binary_search(&tag) {
            channel.forgiven.insert(i, tag);
        }
        self.settle_entry(ch, u, if ack { Settle::Ack } else { Settle::Reject }, now);
        self.dispatch(qid, now);
        true
    }

    /// Raises a resumed consumer's prefetch to the deliveries it took back, if below:
    /// `prefetch(n, false)` only applies to consumers created after it, so the channel's
    /// value may be lower than the limit the old broker gave this consumer, which was
    /// at least what the consumer holds. (The channel-wide limit needs no fitting: it
    /// simply has no room until enough acks come.)
    fn fit_prefetch(&mut self, ch: ChannelRef) {
        let Some(channel) = self.channels.get(&ch) else { return };
        for (_, id) in &channel.consumers {
            if let Some(c) = self.consumers.get_mut(id) {
                if c.prefetch > 0 && c.unacked > c.prefetch {
                    c.prefetch = c.unacked;
                }
            }
        }
    }
}

/// JavaScript's `Number.MAX_SAFE_INTEGER`: the largest delivery tag or confirm number a
/// resumed channel may start from.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Refuses a [`Resume`] that contradicts itself; `in_flight` is sorted by tag.
fn check_resume(next_delivery_tag: u64, confirm_seq: Option<u64>, in_flight: &[InFlight]) -> Result<()> {
    let refuse = |what: String| Err(AmqpError::precondition(format!("cannot resume the channel: {what}")));
    if confirm_seq == Some(0) {
        return refuse("confirm sequence numbers start at 1".into());
    }
    if next_delivery_tag == 0 {
        return refuse("delivery tags start at 1: give next_delivery_tag as the next tag".into());
    }
    // Numbers from a client (any script of the origin can post a resume): the channel
    // counts up from them, and a JS client cannot name a number above this one exactly.
    if next_delivery_tag > MAX_SAFE_INTEGER || confirm_seq.is_some_and(|s| s > MAX_SAFE_INTEGER) {
        return refuse(format!("delivery tags and confirm sequence numbers end at {MAX_SAFE_INTEGER}"));
    }
    if let Some(f) = in_flight.iter().find(|f| f.seq > MAX_SAFE_INTEGER) {
        return refuse(format!("position {} of queue '{}' is above {MAX_SAFE_INTEGER}", f.seq, f.queue));
    }
    if in_flight.first().is_some_and(|f| f.delivery_tag == 0) {
        return refuse("delivery tag 0 names no delivery".into());
    }
    if let Some(w) = in_flight.windows(2).find(|w| w[0].delivery_tag == w[1].delivery_tag) {
        return refuse(format!("delivery tag {} is in flight twice", w[0].delivery_tag));
    }
    if let Some(f) = in_flight.last().filter(|f| f.delivery_tag >= next_delivery_tag) {
        return refuse(format!(
            "delivery tag {} is not below next_delivery_tag {next_delivery_tag}: give the tag after the last one delivered",
            f.delivery_tag
        ));
    }
    Ok(())
}
