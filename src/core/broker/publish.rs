//! Publishing: confirm mode, the checks on a published message, and routing it through
//! exchanges, exchange-to-exchange bindings and alternate exchanges to its queues.

use std::rc::Rc;

use super::queues::Enqueued;
use super::{closed, Broker};
use crate::core::effect::{Confirm, Effect, Returned};
use crate::core::error::{AmqpError, ReplyCode, Result};
use crate::core::exchange::Routing;
use crate::core::ids::{ChannelRef, Destination, ExchangeId};
use crate::core::message::Message;
use crate::core::names;
use crate::core::sort;
use crate::core::value::Table;

const DEFAULT_EXCHANGE: ExchangeId = ExchangeId(0);

impl Broker {
    /// Puts a channel in confirm mode (`createConfirmChannel`): every later publish gets
    /// a [`Confirm`] with the next sequence number, from 1.
    pub fn confirm_select(&mut self, ch: ChannelRef) -> Result<()> {
        let c = self.channels.get_mut(&ch).ok_or_else(|| closed(ch))?;
        c.confirm_seq.get_or_insert(1);
        Ok(())
    }

    /// `publish(exchange, routingKey, content, options)`; the exchange is
    /// `message.exchange`. With `mandatory`, an unroutable message comes back as a
    /// [`Effect::Return`]. A header `x-delay` (milliseconds) holds the message in its
    /// queues until then (tabbit's delayed delivery).
    pub fn publish(&mut self, ch: ChannelRef, message: Message, mandatory: bool, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| b.publish_inner(ch, message, mandatory, now))
    }

    fn publish_inner(&mut self, ch: ChannelRef, message: Message, mandatory: bool, now: u64) -> Result<()> {
        let size = message.approx_size();
        if size > self.limits.max_message_bytes {
            return Err(AmqpError::precondition(format!(
                "message size {size} is larger than the maximum {} (limits.maxMessageBytes): send smaller messages, or raise it in connect()",
                self.limits.max_message_bytes
            )));
        }
        names::check("exchange name", &message.exchange)?;
        names::check("routing key", &message.routing_key)?;
        let ttl = parse_expiration(message.properties.expiration.as_deref())?;
        let ready_at = parse_delay(&message.properties.headers)?.map(|d| now.saturating_add(d));
        let exchange = self.exchange_id(&message.exchange)?;
        if self.exchanges[&exchange].internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}': publish to an exchange bound to it",
                message.exchange
            )));
        }
        let seq = self.channels.get_mut(&ch).and_then(|c| {
            let s = c.confirm_seq?;
            c.confirm_seq = Some(s + 1);
            Some(s)
        });

        let mut queues = std::mem::take(&mut self.route_scratch);
        queues.clear();
        let mut visited = Vec::new();
        self.route(exchange, &message, &mut visited, &mut queues);
        let message = Rc::new(message);
        let mut ack = true;
        let mut refused = None;
        let mut durable = false;
        for d in &queues {
            let Destination::Queue(q) = *d else { continue };
            match self.enqueue(q, &message, ttl, ready_at, now) {
                Enqueued::Accepted { durable: d } => durable |= d,
                Enqueued::Refused(why) => {
                    ack = false;
                    refused = refused.or(why);
                }
            }
        }
        let routed = !queues.is_empty();
        self.route_scratch = queues;
        if !routed && mandatory {
            self.effects.push_back(Effect::Return(Returned {
                channel: ch,
                reply_code: ReplyCode::NoRoute.code(),
                reply_text: "NO_ROUTE",
                message,
            }));
        }
        if let Some(seq) = seq {
            self.effects.push_back(Effect::Confirm(Confirm { channel: ch, seq, ack, durable, refused }));
        }
        Ok(())
    }

    /// The queues a message published to `exchange` reaches, through exchange-to-exchange
    /// bindings and alternate exchanges, each once, in id order.
    pub(super) fn route(
        &self,
        exchange: ExchangeId,
        message: &Message,
        visited: &mut Vec<ExchangeId>,
        out: &mut Vec<Destination>,
    ) {
        if exchange == DEFAULT_EXCHANGE {
            // Every queue is bound to the default exchange by its name.
            if let Some(&q) = self.queue_ids.get(message.routing_key.as_str()) {
                out.push(Destination::Queue(q));
            }
            return;
        }
        self.route_via(exchange, message, visited, out);
        if out.len() > 1 {
            sort::sort(out);
            out.dedup();
        }
    }

    fn route_via(
        &self,
        exchange: ExchangeId,
        message: &Message,
        visited: &mut Vec<ExchangeId>,
        out: &mut Vec<Destination>,
    ) {
        if visited.contains(&exchange) {
            return;
        }
        visited.push(exchange);
        let Some(ex) = self.exchanges.get(&exchange) else { return };
        let before = out.len();
        ex.router.route(&message.routing_key, &message.properties.headers, out);
        // Exchange destinations are replaced by what they route to.
        let mut i = before;
        while i < out.len() {
            if let Destination::Exchange(e) = out[i] {
                out.swap_remove(i);
                if e == DEFAULT_EXCHANGE {
                    continue;
                }
                let mut sub = Vec::new();
                self.route_via(e, message, visited, &mut sub);
                out.extend(sub);
            } else {
                i += 1;
            }
        }
        if out.len() == before {
            if let Some(ae) = ex.alternate.as_deref().and_then(|n| self.exchange_ids.get(n)) {
                self.route_via(*ae, message, visited, out);
            }
        }
    }
}

/// The per-message TTL from the `expiration` property: a decimal string of milliseconds.
fn parse_expiration(expiration: Option<&str>) -> Result<Option<u64>> {
    let Some(s) = expiration else { return Ok(None) };
    match s.parse::<u64>() {
        Ok(ms) if !s.starts_with('+') => Ok(Some(ms)),
        _ => Err(AmqpError::precondition(format!(
            "invalid expiration '{s}': use a non-negative whole number of milliseconds, such as '60000'"
        ))),
    }
}

/// The `x-delay` header (milliseconds) of tabbit's delayed delivery.
fn parse_delay(headers: &Table) -> Result<Option<u64>> {
    match headers.get("x-delay") {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(ms) if ms > 0 => Ok(Some(ms as u64)),
            Some(_) => Ok(None),
            None => Err(AmqpError::precondition(format!(
                "invalid header 'x-delay': expected a whole number of milliseconds, got {}",
                v.type_name()
            ))),
        },
    }
}
