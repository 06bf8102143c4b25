//! Messages as published: routing information, AMQP basic properties and the body.

use super::value::{table_size, Table};

/// The AMQP basic properties of a message, with amqplib's names in the docs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    /// `contentType`
    pub content_type: Option<String>,
    /// `contentEncoding`
    pub content_encoding: Option<String>,
    /// `headers`
    pub headers: Table,
    /// `persistent` (delivery mode 2): written to storage when routed to a durable queue.
    pub persistent: bool,
    /// `priority`: 0–255; only queues declared with `x-max-priority` order by it.
    pub priority: Option<u8>,
    /// `correlationId`
    pub correlation_id: Option<String>,
    /// `replyTo`
    pub reply_to: Option<String>,
    /// `expiration`: the per-message TTL in milliseconds, a decimal string as in AMQP.
    pub expiration: Option<String>,
    /// `messageId`
    pub message_id: Option<String>,
    /// `timestamp`: seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// `type`
    pub kind: Option<String>,
    /// `userId`
    pub user_id: Option<String>,
    /// `appId`
    pub app_id: Option<String>,
}

/// A message as routed: immutable once published, shared by every queue it reaches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// The exchange it was published to (`""` is the default exchange).
    pub exchange: String,
    pub routing_key: String,
    pub properties: Properties,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(exchange: impl Into<String>, routing_key: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Message {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            properties: Properties::default(),
            body: body.into(),
        }
    }

    /// The bytes a message occupies for size limits: body plus headers and the strings
    /// that travel with it. `x-max-length-bytes` counts the body only, as RabbitMQ does.
    pub fn approx_size(&self) -> usize {
        let p = &self.properties;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.body.len()
            + self.exchange.len()
            + self.routing_key.len()
            + table_size(&p.headers)
            + opt(&p.content_type)
            + opt(&p.content_encoding)
            + opt(&p.correlation_id)
            + opt(&p.reply_to)
            + opt(&p.expiration)
            + opt(&p.message_id)
            + opt(&p.kind)
            + opt(&p.user_id)
            + opt(&p.app_id)
    }
}
