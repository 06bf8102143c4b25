//! The broker core: a deterministic, sans-IO state machine with RabbitMQ 3.x
//! classic-queue semantics. No I/O, no async, no clock reads: every command takes
//! `now` (milliseconds since the Unix epoch) and side effects come out as [`Effect`]s.

mod args;
mod broker;
mod channel;
mod dead_letter;
pub mod effect;
pub mod error;
pub mod exchange;
pub(crate) mod fxhash;
pub mod ids;
pub mod map;
pub mod message;
pub mod names;
mod queue;
pub(crate) mod sort;
pub mod value;

pub use args::{Overflow, QueueArgs};
pub use broker::{
    BindingInfo, Broker, BrokerConfig, ConnectionInfo, Consume, ExchangeDeclare, ExchangeInfo, GetOk, GetWait,
    InFlight, Limits, QueueDeclare, QueueDeclareOk, QueueInfo, Resume, Resumed, StoredMessage,
};
pub use effect::{Confirm, Delivery, Effect, Returned, StoreDestination, StoreOp};
pub use error::{AmqpError, ReplyCode, Result};
pub use exchange::{ExchangeKind, Router, Routing};
pub use ids::{ChannelRef, ConnId, Destination, ExchangeId, QueueId};
pub use message::{Message, Properties};
pub use queue::{DropReason, QueueCounters};
pub use value::{FieldValue, Table};
