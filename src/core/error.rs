//! Errors with AMQP reply codes, each with a message that says what to change.

use std::fmt;

/// AMQP 0-9-1 reply codes tabbit uses, as RabbitMQ sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    /// 312: a mandatory message could not be routed (carried by a return, not an error).
    NoRoute = 312,
    /// 320: the broker went away (here: the context hosting it died or left) before the
    /// outcome of a call was known.
    ConnectionForced = 320,
    /// 403: the operation is not allowed on this object (reserved name, internal exchange).
    AccessRefused = 403,
    /// 404: the exchange or queue does not exist.
    NotFound = 404,
    /// 405: an exclusive queue belongs to another connection, or has an exclusive consumer.
    ResourceLocked = 405,
    /// 406: the request conflicts with the current state or has invalid arguments.
    PreconditionFailed = 406,
    /// 501: a frame from a peer could not be read (here: a STOMP frame from RabbitMQ).
    FrameError = 501,
    /// 503: the request is malformed (e.g. an unknown exchange type).
    CommandInvalid = 503,
    /// 506: the broker lacks a resource to complete the request (storage is full or
    /// cannot be opened).
    ResourceError = 506,
    /// 504: the channel is not open.
    ChannelError = 504,
    /// 530: the operation is not allowed (e.g. a broker limit would be exceeded).
    NotAllowed = 530,
    /// 541: a bug in tabbit; please report it.
    InternalError = 541,
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The AMQP name of the code, as RabbitMQ prints it.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// A failed operation: the AMQP reply code and a message that says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    pub code: ReplyCode,
    pub message: String,
    /// The AMQP method that failed, as (class id, method id) (e.g. (50, 10) for
    /// queue.declare), as RabbitMQ's `channel.close` names it; (0, 0) when none did.
    pub method: (u16, u16),
}

impl AmqpError {
    pub fn new(code: ReplyCode, message: impl Into<String>) -> Self {
        AmqpError { code, message: message.into(), method: (0, 0) }
    }

    /// The error, as of AMQP method `method` (class id, method id), unless it names one
    /// already.
    pub fn in_method(mut self, method: (u16, u16)) -> Self {
        if self.method == (0, 0) {
            self.method = method;
        }
        self
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, message)
    }
    pub fn access_refused(message: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, message)
    }
    pub fn locked(message: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, message)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.code.name(), self.message)
    }
}

impl std::error::Error for AmqpError {}

pub type Result<T, E = AmqpError> = std::result::Result<T, E>;
