//! The bridge to a RabbitMQ server over Web-STOMP: the frame codec ([`stomp`]) and how a
//! message's AMQP properties map to STOMP headers and back, the way RabbitMQ's STOMP plugin
//! maps them (checked against RabbitMQ 3.10 with pika on the other side: see the README's
//! table). The connection itself (WebSocket, receipts, acks, reconnects) is driven from
//! `js/bridge.js` in the hosting context.

pub mod server;
pub mod stomp;

use crate::core::message::Properties;
use crate::core::value::{FieldValue, Table};

use stomp::Frame;

/// Headers that belong to the STOMP frame, not to the message: never taken from a
/// MESSAGE into the message's headers, and never sent from them.
const FRAME_HEADERS: &[&str] = &[
    "destination",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "content-length",
    "receipt",
    "receipt-id",
    "transaction",
    "id",
    "persistent",
    "content-type",
    "content-encoding",
    "correlation-id",
    "reply-to",
    "expiration",
    "priority",
    "type",
    "user-id",
    "app-id",
    "timestamp",
    "amqp-message-id",
    "host",
    "login",
    "passcode",
    "heart-beat",
    "accept-version",
    "version",
    "server",
    "session",
    "prefetch-count",
];

/// What RabbitMQ shows in a MESSAGE's `reply-to` for a plain queue name given by an AMQP client.
const REPLY_QUEUE: &str = "/reply-queue/";

/// Appends to `out` a SEND frame for a message: AMQP properties become the headers RabbitMQ's
/// STOMP plugin turns back into the same properties, custom headers become text headers.
/// `message_id` is the `amqp-message-id` (the message's own messageId, or one the bridge made
/// for it). `user-id` is not sent: RabbitMQ refuses a message whose user-id is not the user
/// logged in. Answers how many custom headers were left out (see [`put_properties`]).
pub fn encode_send(
    out: &mut Vec<u8>,
    destination: &str,
    receipt: &str,
    message_id: &str,
    p: &Properties,
    body: &[u8],
) -> u32 {
    let mut f = Frame::new("SEND").header("destination", destination).header("receipt", receipt);
    if !message_id.is_empty() {
        f.headers.push(("amqp-message-id".into(), message_id.to_owned()));
    }
    let skipped = put_properties(&mut f, p);
    f.encode_into(out, body);
    skipped
}

/// Adds the headers for a message's AMQP properties to `f`, as [`encode_send`] sends
/// them and RabbitMQ's MESSAGE frames carry them (`persistent:true` for delivery mode
/// 2); neither `user-id` nor `amqp-message-id`, which differ between the two. Answers
/// how many custom headers were left out: those whose name STOMP or RabbitMQ reads itself
/// (`FRAME_HEADERS`), and those whose value (bytes, an array, a table, void) has no text form.
pub fn put_properties(f: &mut Frame, p: &Properties) -> u32 {
    let texts = [
        ("content-type", &p.content_type),
        ("content-encoding", &p.content_encoding),
        ("correlation-id", &p.correlation_id),
        ("reply-to", &p.reply_to),
        ("expiration", &p.expiration),
        ("type", &p.kind),
        ("app-id", &p.app_id),
    ];
    for (name, v) in texts {
        if let Some(v) = v {
            f.headers.push((name.into(), v.clone()));
        }
    }
    for (name, n) in [("priority", p.priority.map(u64::from)), ("timestamp", p.timestamp)] {
        if let Some(n) = n {
            f.headers.push((name.into(), n.to_string()));
        }
    }
    if p.persistent {
        f.headers.push(("persistent".into(), "true".into()));
    }
    let mut skipped = 0;
    for (k, v) in &p.headers {
        match text(v) {
            Some(t) if !FRAME_HEADERS.contains(&k.as_str()) => f.headers.push((k.clone(), t)),
            _ => skipped += 1,
        }
    }
    skipped
}

fn text(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::Str(s) => Some(s.clone()),
        FieldValue::Bool(b) => Some(b.to_string()),
        FieldValue::Int(i) => Some(i.to_string()),
        FieldValue::Float(x) if x.is_finite() => Some(float_text(*x)),
        FieldValue::Timestamp(t) => Some(t.to_string()),
        _ => None,
    }
}

/// A float header's text: in the browser JavaScript's `String(x)`, so the package ships no
/// float formatting of its own (Rust's would be ~10 KB of wasm); the two differ only past
/// 1e21 and below 1e-6, where JavaScript writes an exponent.
fn float_text(x: f64) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Number::from(x).to_string_with_radix(10).map(String::from).unwrap_or_default();
    #[cfg(not(target_arch = "wasm32"))]
    return x.to_string();
}

/// The AMQP properties of a MESSAGE frame, as RabbitMQ sent them: the mapped headers back
/// into properties (`reply-to: /reply-queue/q` back to `q`), every other header that is not
/// the frame's own into the message's headers, as text.
pub fn properties(frame: &Frame) -> Properties {
    let mut p = Properties::default();
    let mut headers = Table::new();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in &frame.headers {
        // The first copy of a header is the one that counts.
        if seen.contains(&k.as_str()) {
            continue;
        }
        seen.push(k);
        let v = v.clone();
        match k.as_str() {
            "content-type" => p.content_type = Some(v),
            "content-encoding" => p.content_encoding = Some(v),
            "correlation-id" => p.correlation_id = Some(v),
            "reply-to" => p.reply_to = Some(v.strip_prefix(REPLY_QUEUE).map(str::to_owned).unwrap_or(v)),
            "expiration" => p.expiration = Some(v),
            "type" => p.kind = Some(v),
            "user-id" => p.user_id = Some(v),
            "app-id" => p.app_id = Some(v),
            "amqp-message-id" => p.message_id = Some(v),
            "priority" => p.priority = v.parse().ok(),
            "timestamp" => p.timestamp = v.parse().ok(),
            "persistent" => p.persistent = v == "true",
            k if FRAME_HEADERS.contains(&k) => {}
            _ => {
                headers.insert(k.clone(), FieldValue::Str(v));
            }
        }
    }
    p.headers = headers;
    p
}

/// The routing key a MESSAGE came with, from its `destination` header: RabbitMQ writes
/// `/exchange/<x>/<key>` for a message from an exchange and `/queue/<q>` (or
/// `/amq/queue/<q>`) for one from a queue by name; for a `/topic/<key>` destination, `<key>`.
pub fn routing_key(destination: &str) -> &str {
    if let Some(rest) = destination.strip_prefix("/exchange/") {
        return rest.split_once('/').map_or("", |(_, key)| key);
    }
    for prefix in ["/amq/queue/", "/queue/", "/topic/", "/reply-queue/"] {
        if let Some(rest) = destination.strip_prefix(prefix) {
            return rest;
        }
    }
    destination
}

/// Checks a destination the bridge will SEND to or SUBSCRIBE from: one of RabbitMQ's STOMP
/// destination kinds with a name. The error says what to write instead.
pub fn check_destination(d: &str, subscribe: bool) -> Result<(), String> {
    let kinds = ["/queue/", "/amq/queue/", "/topic/", "/exchange/"];
    let Some((kind, rest)) = kinds.iter().find_map(|k| Some((*k, d.strip_prefix(*k)?))) else {
        return Err(format!(
            "'{d}' is not a RabbitMQ STOMP destination: use /amq/queue/<queue> (a queue that exists), \
             /queue/<queue> (declared durable if missing), /exchange/<exchange>[/<routing key>] or /topic/<routing key>"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("'{d}' names no {}: write {kind}<name>", kind.trim_matches('/')));
    }
    if subscribe && kind == "/exchange/" && !rest.contains('/') {
        // RabbitMQ binds with an empty key then, which a topic exchange matches only for ''.
        return Ok(());
    }
    if d.len() > 255 * 2 + 16 {
        // Its first 32 bytes or fewer, cut at a character (slicing at byte 32 would panic
        // inside a character).
        let cut = (0..=32).rev().find(|&n| d.is_char_boundary(n)).unwrap_or(0);
        return Err(format!("destination '{}…' is too long", d.get(..cut).unwrap_or_default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip_through_headers() {
        let mut p = Properties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("gzip".into()),
            persistent: true,
            priority: Some(4),
            correlation_id: Some("c:1".into()),
            reply_to: Some("replies".into()),
            expiration: Some("60000".into()),
            message_id: Some("ignored: the argument is sent".into()),
            timestamp: Some(1_700_000_000),
            kind: Some("t".into()),
            user_id: Some("not sent".into()),
            app_id: Some("app".into()),
            ..Properties::default()
        };
        p.headers.insert("x-trace".into(), FieldValue::Str("a\nb".into()));
        p.headers.insert("n".into(), FieldValue::Int(5));
        p.headers.insert("ok".into(), FieldValue::Bool(true));
        p.headers.insert("blob".into(), FieldValue::Bytes(vec![1]));
        p.headers.insert("destination".into(), FieldValue::Str("/queue/evil".into()));
        let mut bytes = b"previous frame\0".to_vec();
        let skipped = encode_send(&mut bytes, "/amq/queue/q", "r1", "tabbit-1", &p, b"body");
        assert_eq!(skipped, 2, "blob (no text form) and destination (reserved)");
        assert_eq!(&bytes[..15], b"previous frame\0", "appended");
        let f = stomp::Decoder::new(1 << 20).push(&bytes[15..]).unwrap().remove(0);
        assert_eq!(f.body, b"body");
        assert_eq!(f.get("destination"), Some("/amq/queue/q"));
        assert!(f.get("blob").is_none() && f.headers.iter().filter(|(k, _)| k == "destination").count() == 1);
        assert_eq!(f.get("amqp-message-id"), Some("tabbit-1"));
        assert_eq!(f.get("user-id"), None);
        // What RabbitMQ sends back in a MESSAGE carries the same headers.
        let back = properties(&f);
        assert_eq!(back.content_type, p.content_type);
        assert_eq!(back.content_encoding, p.content_encoding);
        assert!(back.persistent);
        assert_eq!(back.priority, Some(4));
        assert_eq!(back.correlation_id.as_deref(), Some("c:1"));
        assert_eq!(back.reply_to.as_deref(), Some("replies"));
        assert_eq!(back.expiration, p.expiration);
        assert_eq!(back.message_id.as_deref(), Some("tabbit-1"));
        assert_eq!(back.timestamp, Some(1_700_000_000));
        assert_eq!(back.kind.as_deref(), Some("t"));
        assert_eq!(back.app_id.as_deref(), Some("app"));
        assert_eq!(back.headers.get("x-trace"), Some(&FieldValue::Str("a\nb".into())));
        assert_eq!(back.headers.get("n"), Some(&FieldValue::Str("5".into())));
        assert_eq!(back.headers.get("ok"), Some(&FieldValue::Str("true".into())));
        assert!(!back.headers.contains_key("receipt") && !back.headers.contains_key("content-length"));
    }

    #[test]
    fn sends_gathered_into_one_buffer_decode_in_order() {
        // The bytes of one WebSocket message: RabbitMQ's Web-STOMP reads every frame in it.
        let mut bytes = Vec::new();
        let p = Properties { persistent: true, ..Properties::default() };
        for (i, body) in [&b"a\0b"[..], b"", b"third"].iter().enumerate() {
            encode_send(&mut bytes, "/exchange/x/k", &format!("r{i}"), &format!("id-{i}"), &p, body);
        }
        let frames = stomp::Decoder::new(1 << 20).push(&bytes).unwrap();
        let got: Vec<_> = frames.iter().map(|f| (f.get("receipt").unwrap(), f.body.as_slice())).collect();
        assert_eq!(got, [("r0", &b"a\0b"[..]), ("r1", b""), ("r2", b"third")]);
        assert!(frames.iter().all(|f| f.command == "SEND" && f.get("persistent") == Some("true")));
    }

    #[test]
    fn message_frames_from_rabbitmq() {
        // As RabbitMQ 3.10 sent it for a pika publish with properties.
        let bytes = b"MESSAGE\nsubscription:0\ndestination:/queue/hello\nmessage-id:T_0@@session-x@@1\n\
redelivered:false\nack:T_0@@session-x@@1\nx-a:1\nn:5\napp-id:app\ntype:t\ntimestamp:1700000000\n\
amqp-message-id:m1\nreply-to:/reply-queue/r\ncorrelation-id:c1\npriority:3\npersistent:true\n\
content-type:text/plain\ncontent-length:12\n\nHello World!\0\n";
        let f = stomp::Decoder::new(1 << 20).push(bytes).unwrap().remove(0);
        let p = properties(&f);
        assert_eq!(p.reply_to.as_deref(), Some("r"));
        assert_eq!(p.message_id.as_deref(), Some("m1"));
        assert_eq!(p.headers.len(), 2);
        assert_eq!(routing_key(f.get("destination").unwrap()), "hello");
        assert_eq!(f.body, b"Hello World!");
    }

    #[test]
    fn routing_keys_and_destinations() {
        assert_eq!(routing_key("/exchange/amq.topic/a.b.c"), "a.b.c");
        assert_eq!(routing_key("/exchange/logs"), "");
        assert_eq!(routing_key("/amq/queue/q"), "q");
        assert_eq!(routing_key("/topic/x.y"), "x.y");
        for ok in ["/queue/a", "/amq/queue/a", "/topic/a.#", "/exchange/x", "/exchange/x/k"] {
            assert!(check_destination(ok, true).is_ok(), "{ok}");
        }
        for bad in ["queue/a", "/queue/", "/exchange//k", "/temp-queue/x", "hello"] {
            let e = check_destination(bad, false).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_long_destination_is_quoted_up_to_a_character() {
        // Byte 32 falls inside the first 'é' (bytes 31 and 32).
        let d = format!("/queue/{}{}", "a".repeat(24), "é".repeat(300));
        let e = check_destination(&d, false).unwrap_err();
        assert_eq!(e, format!("destination '/queue/{}…' is too long", "a".repeat(24)));
        let d = format!("/queue/{}", "a".repeat(600));
        let e = check_destination(&d, false).unwrap_err();
        assert_eq!(e, format!("destination '/queue/{}…' is too long", "a".repeat(25)));
    }
}
