//! Names: validation of exchange and queue names and routing keys, and the names
//! the broker generates for server-named queues and consumer tags.

use super::error::{AmqpError, Result};

/// AMQP short strings (names, routing keys, consumer tags) are at most 255 bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a name or routing key against AMQP's short-string limit.
pub fn check(what: &str, value: &str) -> Result<()> {
    if value.len() > MAX_NAME_BYTES {
        return Err(AmqpError::precondition(format!(
            "{what} is {} bytes of UTF-8; the limit is {MAX_NAME_BYTES}: use a shorter {what}",
            value.len()
        )));
    }
    Ok(())
}

/// Names starting with `amq.` are reserved for the broker, as in RabbitMQ.
pub fn check_not_reserved(kind: &str, name: &str) -> Result<()> {
    if name.starts_with("amq.") {
        return Err(AmqpError::access_refused(format!(
            "{kind} name '{name}' contains reserved prefix 'amq.': choose a name that does not start with 'amq.'"
        )));
    }
    Ok(())
}

/// Generates unique names from a seed given by the driver (the core reads no clock and
/// no randomness): `amq.gen-…` for server-named queues, `amq.ctag-…` for consumer tags.
#[derive(Debug)]
pub struct NameSource {
    state: u64,
}

impl NameSource {
    pub fn new(seed: u64) -> Self {
        NameSource { state: seed }
    }

    /// The next name with this prefix: 22 URL-safe base64 characters as RabbitMQ's are.
    pub fn next(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(prefix.len() + 22);
        out.push_str(prefix);
        let (mut a, mut b) = (self.step(), self.step());
        for i in 0..22 {
            let word = if i < 11 { &mut a } else { &mut b };
            out.push(ALPHABET[(*word & 63) as usize] as char);
            *word >>= 6;
        }
        out
    }

    /// splitmix64: a full-period generator, so names never repeat within 2^64 steps.
    fn step(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_over_255_bytes_are_refused_with_the_limit() {
        let long = "é".repeat(128); // 256 bytes, 128 chars: the limit is in bytes
        let err = check("queue name", &long).unwrap_err();
        assert_eq!(err.code.code(), 406);
        assert!(err.message.contains("256 bytes"), "{}", err.message);
        assert!(check("queue name", &"a".repeat(255)).is_ok());
    }

    #[test]
    fn generated_names_are_unique_and_prefixed() {
        let mut names = NameSource::new(7);
        let a = names.next("amq.gen-");
        let b = names.next("amq.gen-");
        assert!(a.starts_with("amq.gen-") && a.len() == 30, "{a}");
        assert_ne!(a, b);
    }
}
