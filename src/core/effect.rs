//! What the broker asks its driver to do: the output side of the state machine.

use std::rc::Rc;

use super::error::AmqpError;
use super::ids::{ChannelRef, QueueId};
use super::message::Message;
use super::value::Table;

/// One effect, in the order the broker produced it. Drivers apply effects in order.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Hand a message to a consumer.
    Deliver(Delivery),
    /// A mandatory message could not be routed: give it back to its publisher.
    Return(Returned),
    /// A publisher confirm for a channel in confirm mode.
    Confirm(Confirm),
    /// The broker cancelled a consumer (its queue was deleted): tell the client, as
    /// RabbitMQ's `basic.cancel` notification does (amqplib calls the consumer with `null`).
    ConsumerCancelled { channel: ChannelRef, consumer_tag: Rc<str> },
    /// The broker closed a channel after a channel error; its unacked deliveries were
    /// requeued and its consumers cancelled. Operations on it now fail with 504.
    ChannelClosed { channel: ChannelRef, error: AmqpError },
    /// Make durable state match the broker's: the store layer applies these in order.
    Store(StoreOp),
}

/// A message handed to a consumer (or returned by `get`).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub channel: ChannelRef,
    /// `None` for a message fetched with `get`.
    pub consumer_tag: Option<Rc<str>>,
    /// Per channel, from 1. `noAck` deliveries take a tag too, as in RabbitMQ, but need no ack.
    pub delivery_tag: u64,
    pub redelivered: bool,
    /// How many times the message came back before this delivery (nack/reject with
    /// requeue, or its consumer's channel closing). The binding adds it to the headers
    /// as `x-delivery-count` when it is not zero, as RabbitMQ's quorum queues do.
    pub delivery_count: u32,
    pub queue: QueueId,
    /// The queue's name, which a client keeps for a new host after failover.
    pub queue_name: Rc<str>,
    /// The message's position in its queue; with `queue`, it names the message.
    pub seq: u64,
    pub message: Rc<Message>,
}

/// A mandatory message that no queue took, with AMQP's reply code and text.
#[derive(Clone, Debug)]
pub struct Returned {
    pub channel: ChannelRef,
    pub reply_code: u16,
    pub reply_text: &'static str,
    pub message: Rc<Message>,
}

/// A publisher confirm: `ack` is false when a queue refused the message
/// (`x-overflow: reject-publish`). When `durable` is true the message was written to
/// storage in this turn, and the driver must hold the confirm until that write commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    pub channel: ChannelRef,
    pub seq: u64,
    pub ack: bool,
    pub durable: bool,
    /// For a nack: the first refusing queue's reason, naming the limit (see `Refusal`).
    pub refused: Option<Rc<str>>,
}

/// A change to durable state. Records are keyed by names, which is what survives a
/// restart; a message is named by its queue and its position (`seq`) in that queue.
#[derive(Clone, Debug)]
pub enum StoreOp {
    PutExchange {
        name: Rc<str>,
        kind: &'static str,
        auto_delete: bool,
        internal: bool,
        arguments: Table,
    },
    DeleteExchange {
        name: Rc<str>,
    },
    PutQueue {
        name: Rc<str>,
        auto_delete: bool,
        arguments: Table,
    },
    DeleteQueue {
        name: Rc<str>,
    },
    PutBinding {
        source: Rc<str>,
        destination: StoreDestination,
        routing_key: String,
        arguments: Table,
    },
    DeleteBinding {
        source: Rc<str>,
        destination: StoreDestination,
        routing_key: String,
        arguments: Table,
    },
    /// A persistent message entered a durable queue. `expires_at` and `ready_at` are
    /// absolute times in ms, so that a reopened broker honours them.
    PutMessage {
        queue: Rc<str>,
        seq: u64,
        message: Rc<Message>,
        expires_at: Option<u64>,
        ready_at: Option<u64>,
    },
    /// The message left the queue for good (acked, expired, dead-lettered, dropped, purged).
    RemoveMessage {
        queue: Rc<str>,
        seq: u64,
    },
    /// A stored message went to a consumer (or `get`) for the first time, to be acked:
    /// a reopened broker hands it out again flagged `redelivered`, as RabbitMQ does.
    Delivered {
        queue: Rc<str>,
        seq: u64,
    },
    /// A promise about the queue's stored messages: none with `seq` above `through` has
    /// been handed out (to a consumer or `get`, acked or not). The broker hands a stored
    /// message out for the first time only once a horizon at or above its `seq` is stored
    /// (the driver calls [`crate::core::Broker::horizon_stored`] after the commit), so that
    /// a reopened broker brings back every unacked message at or below it flagged
    /// `redelivered` ("may have been delivered") and those above it not. The horizon
    /// grows by demand, with a lookahead, so that deliveries wait for a commit only now
    /// and then, not one per message.
    Horizon {
        queue: Rc<str>,
        through: u64,
    },
    /// The message came back to the queue; `delivery_count` returns so far.
    ReturnMessage {
        queue: Rc<str>,
        seq: u64,
        delivery_count: u32,
    },
}

/// The far end of a stored binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreDestination {
    Queue(Rc<str>),
    Exchange(Rc<str>),
}
