//! Exchange types: each is a small routing index behind one interface, so a new
//! type touches one file. The broker keeps the bindings themselves (for listing and
//! storage); an exchange type only answers "where does this message go".

mod direct;
mod fanout;
mod headers;
mod topic;

pub use direct::DirectRouter;
pub use fanout::FanoutRouter;
pub use headers::HeadersRouter;
pub use topic::TopicRouter;

use super::error::{AmqpError, ReplyCode, Result};
use super::ids::Destination;
use super::value::Table;

/// The routing behaviour every exchange type implements.
pub trait Routing {
    /// Checks a binding's key and arguments before it is added (e.g. a headers
    /// binding's `x-match` value); the error says what to change.
    fn validate_binding(&self, key: &str, args: &Table) -> Result<()>;
    /// Adds a binding that passed `validate_binding`. The broker never adds the same
    /// (destination, key, args) twice.
    fn add_binding(&mut self, dest: Destination, key: &str, args: &Table);
    /// Removes one binding added before with the same (destination, key, args).
    fn remove_binding(&mut self, dest: Destination, key: &str, args: &Table);
    /// Appends the destinations a message with this routing key and these headers goes
    /// to. May append a destination more than once; the broker removes duplicates.
    fn route(&self, routing_key: &str, headers: &Table, out: &mut Vec<Destination>);
}

/// The four AMQP exchange types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Result<ExchangeKind> {
        match s {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("unknown exchange type '{other}': use one of 'direct', 'fanout', 'topic', 'headers'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }

    pub fn new_router(self) -> Router {
        match self {
            ExchangeKind::Direct => Router::Direct(DirectRouter::default()),
            ExchangeKind::Fanout => Router::Fanout(FanoutRouter::default()),
            ExchangeKind::Topic => Router::Topic(TopicRouter::default()),
            ExchangeKind::Headers => Router::Headers(HeadersRouter::default()),
        }
    }
}

/// The routing index of one exchange, dispatching to its type.
#[derive(Debug)]
pub enum Router {
    Direct(DirectRouter),
    Fanout(FanoutRouter),
    Topic(TopicRouter),
    Headers(HeadersRouter),
}

impl Router {
    fn inner(&self) -> &dyn Routing {
        match self {
            Router::Direct(r) => r,
            Router::Fanout(r) => r,
            Router::Topic(r) => r,
            Router::Headers(r) => r,
        }
    }
    fn inner_mut(&mut self) -> &mut dyn Routing {
        match self {
            Router::Direct(r) => r,
            Router::Fanout(r) => r,
            Router::Topic(r) => r,
            Router::Headers(r) => r,
        }
    }
}

impl Routing for Router {
    fn validate_binding(&self, key: &str, args: &Table) -> Result<()> {
        self.inner().validate_binding(key, args)
    }
    fn add_binding(&mut self, dest: Destination, key: &str, args: &Table) {
        self.inner_mut().add_binding(dest, key, args)
    }
    fn remove_binding(&mut self, dest: Destination, key: &str, args: &Table) {
        self.inner_mut().remove_binding(dest, key, args)
    }
    fn route(&self, routing_key: &str, headers: &Table, out: &mut Vec<Destination>) {
        self.inner().route(routing_key, headers, out)
    }
}
