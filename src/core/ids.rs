//! Small copyable handles for the broker's objects.

/// A connection (one per `connect()` call, in any tab or worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// A channel of a connection: AMQP channel numbers are per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelRef {
    pub conn: ConnId,
    pub channel: u16,
}

/// A queue. Ids are never reused while the broker lives, so a stale reference
/// (an unacked delivery of a deleted queue) can never reach a new queue of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// An exchange. Ids are never reused while the broker lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u32);

/// Where a binding leads: a queue, or another exchange (exchange-to-exchange binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(QueueId),
    Exchange(ExchangeId),
}
