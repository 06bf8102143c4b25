//! [`Message`]s: the bits of the property presence mask, and how a message is written and read.

use super::{DecodeError, Reader, Writer};
use crate::core::{Message, Properties};

/// The bits of a message's property presence mask, commonest first so that typical
/// messages need a one-byte mask.
pub mod prop {
    pub const PERSISTENT: u16 = 1 << 0;
    pub const CONTENT_TYPE: u16 = 1 << 1;
    pub const HEADERS: u16 = 1 << 2;
    pub const PRIORITY: u16 = 1 << 3;
    pub const CORRELATION_ID: u16 = 1 << 4;
    pub const REPLY_TO: u16 = 1 << 5;
    pub const MESSAGE_ID: u16 = 1 << 6;
    pub const TIMESTAMP: u16 = 1 << 7;
    pub const EXPIRATION: u16 = 1 << 8;
    pub const CONTENT_ENCODING: u16 = 1 << 9;
    pub const KIND: u16 = 1 << 10;
    pub const USER_ID: u16 = 1 << 11;
    pub const APP_ID: u16 = 1 << 12;
    /// Every defined bit; any other bit makes a record corrupt.
    pub const ALL: u16 = (1 << 13) - 1;
}

impl Writer {
    /// The property mask, exchange, routing key, the present properties, the body.
    pub fn message(&mut self, m: &Message) {
        let p = &m.properties;
        let mut mask = 0u16;
        let mut set = |bit: u16, present: bool| {
            if present {
                mask |= bit;
            }
        };
        set(prop::PERSISTENT, p.persistent);
        set(prop::CONTENT_TYPE, p.content_type.is_some());
        set(prop::HEADERS, !p.headers.is_empty());
        set(prop::PRIORITY, p.priority.is_some());
        set(prop::CORRELATION_ID, p.correlation_id.is_some());
        set(prop::REPLY_TO, p.reply_to.is_some());
        set(prop::MESSAGE_ID, p.message_id.is_some());
        set(prop::TIMESTAMP, p.timestamp.is_some());
        set(prop::EXPIRATION, p.expiration.is_some());
        set(prop::CONTENT_ENCODING, p.content_encoding.is_some());
        set(prop::KIND, p.kind.is_some());
        set(prop::USER_ID, p.user_id.is_some());
        set(prop::APP_ID, p.app_id.is_some());
        self.uvar(mask as u64);
        self.str(&m.exchange);
        self.str(&m.routing_key);
        if let Some(s) = &p.content_type {
            self.str(s);
        }
        if !p.headers.is_empty() {
            self.table(&p.headers);
        }
        if let Some(v) = p.priority {
            self.u8(v);
        }
        for s in [&p.correlation_id, &p.reply_to, &p.message_id].into_iter().flatten() {
            self.str(s);
        }
        if let Some(t) = p.timestamp {
            self.uvar(t);
        }
        for s in [&p.expiration, &p.content_encoding, &p.kind, &p.user_id, &p.app_id].into_iter().flatten() {
            self.str(s);
        }
        self.bytes(&m.body);
    }
}

impl<'a> Reader<'a> {
    fn string(&mut self) -> Result<String, DecodeError> {
        Ok(self.str()?.to_owned())
    }

    /// A message as [`Writer::message`] wrote it.
    pub fn message(&mut self) -> Result<Message, DecodeError> {
        let at = self.pos;
        let m = self.uvar()?;
        if m > prop::ALL as u64 {
            return self.err("unknown property bits", at);
        }
        let mask = m as u16;
        let has = |bit: u16| mask & bit != 0;
        let exchange = self.string()?;
        let routing_key = self.string()?;
        let mut p = Properties { persistent: has(prop::PERSISTENT), ..Properties::default() };
        if has(prop::CONTENT_TYPE) {
            p.content_type = Some(self.string()?);
        }
        if has(prop::HEADERS) {
            let at = self.pos;
            p.headers = self.table_at(1)?;
            if p.headers.is_empty() {
                return self.err("empty headers marked present", at);
            }
        }
        if has(prop::PRIORITY) {
            p.priority = Some(self.u8()?);
        }
        if has(prop::CORRELATION_ID) {
            p.correlation_id = Some(self.string()?);
        }
        if has(prop::REPLY_TO) {
            p.reply_to = Some(self.string()?);
        }
        if has(prop::MESSAGE_ID) {
            p.message_id = Some(self.string()?);
        }
        if has(prop::TIMESTAMP) {
            p.timestamp = Some(self.uvar()?);
        }
        if has(prop::EXPIRATION) {
            p.expiration = Some(self.string()?);
        }
        if has(prop::CONTENT_ENCODING) {
            p.content_encoding = Some(self.string()?);
        }
        if has(prop::KIND) {
            p.kind = Some(self.string()?);
        }
        if has(prop::USER_ID) {
            p.user_id = Some(self.string()?);
        }
        if has(prop::APP_ID) {
            p.app_id = Some(self.string()?);
        }
        let body = self.bytes()?.to_vec();
        Ok(Message { exchange, routing_key, properties: p, body })
    }
}
