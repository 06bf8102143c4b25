#![cfg(not(target_arch = "wasm32"))]
//! The Web-STOMP server session (`src/bridge/server.rs`), natively, against the real broker
//! engine: sessions as contexts of a `HostState` over an `Engine` with a store
//! (`tests/common/stomp.rs`). Login and its refusal, each destination kind, receipts that
//! wait for the store, ack modes and prefetch, nack, a session's end giving its unacked
//! messages to another flagged redelivered, the ERROR frames (malformed, too large, too
//! many subscriptions, bad ack id, ...) that close one session and leave the others
//! served, heart-beats, and random bytes into a session.

#[path = "common/stomp.rs"]
mod edge;

use edge::{ack, bodies, commands, nack, send, subscribe, Edge};
use tabbit::bridge::stomp::Frame as Stomp;
use tabbit::core::{ExchangeDeclare, QueueDeclare};
use tabbit::mesh::frame::Command;

fn error_of(frames: &[Stomp]) -> (String, String) {
    let e = frames.iter().find(|f| f.command == "ERROR").unwrap_or_else(|| panic!("no ERROR in {frames:?}"));
    (e.get("message").unwrap_or_default().to_owned(), String::from_utf8_lossy(&e.body).into_owned())
}

/// Another session still publishes and consumes: the broker serves on.
fn still_serving(m: &mut Edge) {
    let c = m.connect();
    m.frame(c, subscribe("alive", "/queue/alive", "auto"));
    m.frame(c, send("/queue/alive", "ping"));
    assert_eq!(bodies(&m.take(c)), ["ping"]);
}

/// Two new sessions, each having sent its frame.
fn two_sessions(m: &mut Edge, fa: Stomp, fb: Stomp) -> (u64, u64) {
    let (a, b) = (m.connect(), m.connect());
    m.frame(a, fa);
    m.frame(b, fb);
    (a, b)
}

#[test]
fn connect_answers_connected_and_wrong_credentials_get_an_error_and_close() {
    let mut m = Edge::new();
    let c = m.open();
    m.frame(
        c,
        Stomp::new("CONNECT").header("accept-version", "1.1,1.2").header("login", "guest").header("passcode", "guest"),
    );
    let got = m.take(c);
    assert_eq!(commands(&got), ["CONNECTED"]);
    assert_eq!(got[0].get("version"), Some("1.2"));
    assert_eq!(got[0].get("session"), Some(format!("session-{c}").as_str()));
    assert_eq!(got[0].get("heart-beat"), Some("0,0"));
    assert!(got[0].get("server").unwrap().starts_with("tabbit/"));

    let bad = m.open();
    m.frame(
        bad,
        Stomp::new("CONNECT").header("accept-version", "1.2").header("login", "guest").header("passcode", "nope"),
    );
    let got = m.take(bad);
    let (message, detail) = error_of(&got);
    assert_eq!(message, "Bad CONNECT");
    assert!(detail.contains("Access refused for user 'guest'"), "{detail}");
    assert!(m.client(bad).closed && m.client(bad).s.is_closed());
    // Nothing of it reached the broker.
    assert!(m.to_host.iter().all(|(ctx, _)| *ctx != bad));

    // No login: the app's check decides (here: refused, as anonymous access is not configured).
    let anon = m.open();
    m.frame(anon, Stomp::new("STOMP").header("accept-version", "1.2"));
    assert_eq!(error_of(&m.take(anon)).0, "Bad CONNECT");
    still_serving(&mut m);
}

#[test]
fn versions_are_negotiated_as_rabbitmq_does_and_refused_clearly() {
    let mut m = Edge::new();
    for (accept, version) in [(None, "1.0"), (Some("1.0,1.1"), "1.1"), (Some("1.2, 1.1"), "1.2")] {
        let c = m.open();
        let mut f = Stomp::new("CONNECT").header("login", "guest").header("passcode", "guest");
        if let Some(a) = accept {
            f = f.header("accept-version", a);
        }
        m.frame(c, f);
        let got = m.take(c);
        assert_eq!(got[0].get("version"), Some(version), "{accept:?}");
    }
    let c = m.open();
    m.frame(c, Stomp::new("CONNECT").header("accept-version", "2.0").header("login", "guest"));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Version mismatch");
    assert!(detail.contains("Supported versions are 1.0,1.1,1.2"), "{detail}");
    assert!(m.client(c).closed);

    // Before CONNECT, any other frame is refused.
    let c = m.open();
    m.frame(c, send("/queue/q", "x"));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Illegal command");
    assert!(detail.contains("CONNECT first"), "{detail}");
}

#[test]
fn frames_sent_while_the_login_is_checked_wait_for_the_verdict() {
    let mut m = Edge::new();
    m.auto_auth = false;
    let c = m.open();
    let mut bytes = Stomp::new("CONNECT")
        .header("accept-version", "1.2")
        .header("login", "ann")
        .header("passcode", "pw")
        .header("host", "edge")
        .encode();
    bytes.extend(subscribe("s", "/queue/held", "auto").encode());
    bytes.extend(send("/queue/held", "early").encode());
    m.bytes(c, &bytes);
    assert_eq!(m.client(c).asked, Some((Some("ann".into()), Some("pw".into()), "edge".into())));
    assert!(m.take(c).is_empty());
    assert!(m.to_host.is_empty(), "nothing reaches the broker before the verdict");
    m.verdict(c, Ok(()));
    let got = m.take(c);
    assert_eq!(commands(&got), ["CONNECTED", "MESSAGE"]);
    assert_eq!(bodies(&got), ["early"]);
}

#[test]
fn queue_destinations_declare_a_durable_queue_shared_by_subscribers() {
    let mut m = Edge::new();
    let p = m.connect();
    m.frame(p, send("/queue/jobs", "j1"));
    let q = m.e.core().queue_info("jobs").unwrap();
    assert!(q.durable && !q.exclusive && !q.auto_delete);
    assert_eq!(q.ready, 1);
    let (a, b) = two_sessions(&mut m, subscribe("1", "/queue/jobs", "auto"), subscribe("1", "/queue/jobs", "auto"));
    m.frame(p, send("/queue/jobs", "j2"));
    m.frame(p, send("/queue/jobs", "j3"));
    let (ga, gb) = (m.take(a), m.take(b));
    // Each message to one subscriber.
    let mut all = [bodies(&ga), bodies(&gb)].concat();
    all.sort();
    assert_eq!(all, ["j1", "j2", "j3"]);
    let f = &ga[0];
    assert_eq!(f.get("destination"), Some("/queue/jobs"));
    assert_eq!(f.get("subscription"), Some("1"));
    assert_eq!(f.get("redelivered"), Some("false"));
    assert!(f.get("message-id").unwrap().starts_with(&format!("T_1@@session-{a}@@")));
    assert_eq!(f.get("ack"), None, "no ack header with ack:auto");
}

#[test]
fn amq_queue_destinations_use_an_existing_queue_and_refuse_a_missing_one() {
    let mut m = Edge::new();
    let c = m.connect();
    m.frame(c, subscribe("1", "/amq/queue/missing", "auto"));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "not_found");
    assert!(detail.starts_with("NOT_FOUND - ") && detail.contains("missing"), "{detail}");
    assert!(m.client(c).closed);
    assert!(m.e.core().queue_info("missing").is_none(), "not declared");

    m.app(Command::DeclareQueue(QueueDeclare { name: "existing".into(), ..Default::default() }));
    let c = m.connect();
    m.frame(c, subscribe("1", "/amq/queue/existing", "auto"));
    m.frame(c, send("/amq/queue/existing", "hello"));
    let got = m.take(c);
    assert_eq!(bodies(&got), ["hello"]);
    assert_eq!(got[0].get("destination"), Some("/queue/existing"));
    assert!(!m.e.core().queue_info("existing").unwrap().durable, "left as declared");
}

#[test]
fn topic_destinations_copy_to_every_matching_subscriber_and_drop_when_none() {
    let mut m = Edge::new();
    let p = m.connect();
    m.frame(p, send("/topic/news.sport", "before anyone listens").header("receipt", "dropped"));
    // Unroutable, and still confirmed, as RabbitMQ confirms it.
    assert_eq!(m.take(p)[0].get("receipt-id"), Some("dropped"));
    let (a, b) = two_sessions(&mut m, subscribe("a", "/topic/news.*", "auto"), subscribe("b", "/topic/news.#", "auto"));
    m.frame(p, send("/topic/news.sport", "goal"));
    m.frame(p, send("/topic/news.sport.late", "late goal"));
    let ga = m.take(a);
    assert_eq!(bodies(&ga), ["goal"]);
    assert_eq!(ga[0].get("destination"), Some("/topic/news.sport"));
    assert_eq!(bodies(&m.take(b)), ["goal", "late goal"]);
    // The subscription queues are the sessions' own: gone with them.
    let before = m.e.core().queue_names().len();
    m.drop_socket(a);
    assert_eq!(m.e.core().queue_names().len(), before - 1);
}

#[test]
fn exchange_destinations_route_with_the_key_and_refuse_a_missing_exchange() {
    let mut m = Edge::new();
    m.app(Command::DeclareExchange(ExchangeDeclare {
        name: "logs".into(),
        kind: "direct".into(),
        ..Default::default()
    }));
    let c = m.connect();
    m.frame(c, subscribe("e", "/exchange/logs/info", "client-individual"));
    m.frame(c, send("/exchange/logs/info", "i1"));
    m.frame(c, send("/exchange/logs/debug", "d1"));
    let got = m.take(c);
    assert_eq!(bodies(&got), ["i1"]);
    assert_eq!(got[0].get("destination"), Some("/exchange/logs/info"));
    let q = m.e.core().queue_names().into_iter().find(|n| n.starts_with("stomp-subscription-")).unwrap();
    let info = m.e.core().queue_info(&q).unwrap();
    assert!(info.exclusive && info.auto_delete && !info.durable);

    m.frame(c, send("/exchange/nowhere/k", "x"));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "not_found");
    assert!(detail.contains("nowhere"), "{detail}");
    assert!(m.client(c).closed);
    still_serving(&mut m);
}

#[test]
fn temp_queue_reply_to_makes_a_private_queue_and_replies_reach_it() {
    let mut m = Edge::new();
    let request = send("/queue/requests", "what time is it").header("reply-to", "/temp-queue/answers");
    let (server, client) = two_sessions(&mut m, subscribe("req", "/queue/requests", "auto"), request);
    let got = m.take(server);
    assert_eq!(bodies(&got), ["what time is it"]);
    let reply_to = got[0].get("reply-to").unwrap().to_owned();
    assert!(reply_to.starts_with("/reply-queue/stomp.gen-"), "{reply_to}");
    m.frame(server, send(&reply_to, "noon"));
    let got = m.take(client);
    assert_eq!(bodies(&got), ["noon"]);
    assert_eq!(got[0].get("subscription"), Some("/temp-queue/answers"));
    // The same temp queue for the same name in the session.
    m.frame(client, send("/queue/requests", "again").header("reply-to", "/temp-queue/answers"));
    assert_eq!(m.take(server)[0].get("reply-to"), Some(reply_to.as_str()));
    // Not a destination to SEND or SUBSCRIBE to.
    m.frame(client, send("/temp-queue/answers", "x"));
    assert!(error_of(&m.take(client)).1.contains("reply-to"));
}

/// A broker that commits when told, and a session that sent a persistent message with receipt `r1`.
fn persistent_send(destination: &str, body: &str) -> (Edge, u64) {
    let mut m = Edge::new();
    m.auto_commit = false;
    let c = m.connect();
    m.frame(c, send(destination, body).header("persistent", "true").header("receipt", "r1"));
    (m, c)
}

#[test]
fn a_persistent_send_is_receipted_only_once_the_store_committed_it() {
    let (mut m, c) = persistent_send("/queue/durable", "keep me");
    assert!(m.take(c).is_empty(), "no RECEIPT before the commit");
    m.commit();
    let got = m.take(c);
    assert_eq!(commands(&got), ["RECEIPT"]);
    assert_eq!(got[0].get("receipt-id"), Some("r1"));
    // What was receipted is in the store: a broker recovered from it has it.
    let (_, recovered) = tabbit::store::Log::recover(m.store.records());
    let mut b = tabbit::core::Broker::new(Default::default());
    assert!(tabbit::store::restore(&mut b, recovered, m.now).is_empty());
    assert_eq!(b.queue_info("durable").unwrap().ready, 1);

    // A transient message is confirmed once routed: its RECEIPT needs no commit.
    m.frame(c, send("/queue/durable", "transient").header("receipt", "r2"));
    let got = m.take(c);
    assert_eq!(got.iter().map(|f| f.get("receipt-id").unwrap()).collect::<Vec<_>>(), ["r2"]);
}

#[test]
fn a_send_whose_store_write_fails_gets_an_error_not_a_receipt() {
    let (mut m, c) = persistent_send("/queue/full", "lost");
    m.fail_write();
    let got = m.take(c);
    assert_eq!(commands(&got), ["ERROR"]);
    let (message, detail) = error_of(&got);
    assert_eq!(message, "Message rejected");
    assert!(detail.contains("storage is full"), "{detail}");
    assert_eq!(got[0].get("receipt-id"), Some("r1"));
    assert!(m.client(c).closed);
}

#[test]
fn receipts_on_other_frames_and_disconnect_waits_for_the_receipts_before_it() {
    let mut m = Edge::new();
    m.auto_commit = false;
    let c = m.connect();
    m.frame(c, subscribe("s", "/queue/r", "client").header("receipt", "sub"));
    m.commit();
    assert_eq!(m.take(c)[0].get("receipt-id"), Some("sub"));
    m.frame(c, send("/queue/r", "m").header("persistent", "true").header("receipt", "send"));
    m.commit();
    let got = m.take(c);
    let msg = got.iter().find(|f| f.command == "MESSAGE").unwrap().clone();
    m.frame(c, ack(&msg).header("receipt", "ack"));
    m.frame(c, send("/queue/r", "n").header("persistent", "true").header("receipt", "send2"));
    m.frame(c, Stomp::new("DISCONNECT").header("receipt", "bye"));
    let early: Vec<String> = m.take(c).iter().filter_map(|f| f.get("receipt-id").map(str::to_owned)).collect();
    assert!(!early.contains(&"bye".to_owned()) && !early.contains(&"send2".to_owned()), "{early:?}");
    assert!(!m.client(c).closed);
    m.commit();
    let late: Vec<String> = m.take(c).iter().filter_map(|f| f.get("receipt-id").map(str::to_owned)).collect();
    assert_eq!(late.last().map(String::as_str), Some("bye"));
    assert!(late.contains(&"send2".to_owned()));
    assert!(m.client(c).closed);
}

fn fill(m: &mut Edge, queue: &str, n: usize) {
    let p = m.connect();
    for i in 0..n {
        m.frame(p, send(&format!("/queue/{queue}"), &format!("m{i}")));
    }
}

/// A broker with `n` messages in `queue` and a session subscribed to it: what it got first.
fn consumer(queue: &str, n: usize, ack: &str, prefetch: u16) -> (Edge, u64, Vec<Stomp>) {
    let mut m = Edge::new();
    fill(&mut m, queue, n);
    let c = m.connect();
    let f = subscribe("1", &format!("/queue/{queue}"), ack).header("prefetch-count", prefetch.to_string());
    m.frame(c, f);
    let got = m.take(c);
    (m, c, got)
}

#[test]
fn client_individual_acks_one_message_and_prefetch_bounds_what_is_unacked() {
    let (mut m, c, got) = consumer("w", 5, "client-individual", 2);
    assert_eq!(bodies(&got), ["m0", "m1"]);
    m.frame(c, ack(&got[1]));
    let more = m.take(c);
    assert_eq!(bodies(&more), ["m2"]);
    assert_eq!(m.e.core().queue_info("w").unwrap().unacked, 2);
    m.frame(c, ack(&got[0]));
    assert_eq!(bodies(&m.take(c)), ["m3"]);
    // Acking the same message twice is an error that says so.
    m.frame(c, ack(&got[0]));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Message not found");
    assert!(detail.contains("unacknowledged"), "{detail}");
    assert!(m.client(c).closed);
    // Its unacked messages went back.
    assert_eq!(m.e.core().queue_info("w").unwrap().ready, 3);
}

#[test]
fn client_acks_are_cumulative() {
    let (mut m, c, got) = consumer("c", 6, "client", 3);
    assert_eq!(bodies(&got), ["m0", "m1", "m2"]);
    m.frame(c, ack(&got[2]));
    assert_eq!(bodies(&m.take(c)), ["m3", "m4", "m5"]);
    let q = m.e.core().queue_info("c").unwrap();
    assert_eq!((q.unacked, q.counters.acked), (3, 3));
}

#[test]
fn auto_ack_delivers_everything_with_no_ack_needed() {
    let (m, _, got) = consumer("a", 5, "auto", 1);
    assert_eq!(bodies(&got).len(), 5);
    let q = m.e.core().queue_info("a").unwrap();
    assert_eq!((q.ready, q.unacked), (0, 0));
}

#[test]
fn nack_requeues_by_default_flagged_redelivered_or_drops_with_requeue_false() {
    let (mut m, c, got) = consumer("n", 2, "client-individual", 1);
    assert_eq!(bodies(&got), ["m0"]);
    m.frame(c, nack(&got[0]));
    let again = m.take(c);
    assert_eq!(bodies(&again), ["m0"]);
    assert_eq!(again[0].get("redelivered"), Some("true"));
    m.frame(c, nack(&again[0]).header("requeue", "false"));
    let next = m.take(c);
    assert_eq!(bodies(&next), ["m1"]);
    assert_eq!(next[0].get("redelivered"), Some("false"));
    m.frame(c, ack(&next[0]));
    let q = m.e.core().queue_info("n").unwrap();
    assert_eq!((q.ready, q.unacked), (0, 0));
    m.frame(c, nack(&next[0]).header("requeue", "maybe"));
    assert!(error_of(&m.take(c)).1.contains("true or false"));
}

#[test]
fn a_session_that_ends_with_unacked_messages_gives_them_to_another_flagged_redelivered() {
    for disconnect in [false, true] {
        let mut m = Edge::new();
        fill(&mut m, "u", 2);
        let a = m.connect();
        m.frame(a, subscribe("1", "/queue/u", "client"));
        assert_eq!(bodies(&m.take(a)), ["m0", "m1"]);
        let b = m.connect();
        m.frame(b, subscribe("1", "/queue/u", "client-individual"));
        assert!(m.take(b).is_empty());
        match disconnect {
            true => m.frame(a, Stomp::new("DISCONNECT")),
            false => m.drop_socket(a),
        }
        let got = m.take(b);
        assert_eq!(bodies(&got), ["m0", "m1"]);
        assert!(got.iter().all(|f| f.get("redelivered") == Some("true")));
    }
}

#[test]
fn malformed_and_oversized_frames_get_an_error_and_close_leaving_others_served() {
    let mut m = Edge::new();
    m.cfg.max_frame_bytes = 1024;
    let c = m.connect();
    m.bytes(c, b"SEND\ndestination:/queue/x\nno colon here\n\nbody\0");
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Malformed frame");
    assert!(detail.contains("no colon here"), "{detail}");
    assert!(m.client(c).closed);

    let c = m.connect();
    m.frame(c, send("/queue/x", &"x".repeat(2000)));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Frame too large");
    assert!(detail.contains("1024 bytes"), "{detail}");
    assert!(m.client(c).closed);
    assert!(m.e.core().queue_info("x").is_none_or(|q| q.ready == 0));

    for (f, expect) in [
        (Stomp::new("SEND"), "'destination'"),
        (send("/nowhere/x", "b"), "Valid destination types are"),
        (Stomp::new("FROB"), "FROB"),
        (Stomp::new("BEGIN").header("transaction", "t"), "transactions are not supported"),
        (Stomp::new("ACK").header("id", "bogus"), "'ack' header of a MESSAGE"),
        (Stomp::new("ACK"), "'id'"),
        (Stomp::new("UNSUBSCRIBE").header("id", "none"), "no subscription 'none'"),
        (subscribe("s", "/queue/q", "sometimes"), "auto, client or client-individual"),
        (subscribe("s", "/queue/q", "client").header("prefetch-count", "-1"), "prefetch-count"),
        (send("/queue/q", "b").header("message-id", "mine"), "'message-id' is not allowed"),
    ] {
        let c = m.connect();
        m.frame(c, f.header("receipt", "bad"));
        let got = m.take(c);
        let (_, detail) = error_of(&got);
        assert!(detail.contains(expect), "{detail} lacks {expect}");
        assert_eq!(got.last().unwrap().get("receipt-id"), Some("bad"));
        assert!(m.client(c).closed);
    }
    still_serving(&mut m);
}

#[test]
fn too_many_subscriptions_and_a_duplicate_id_are_refused() {
    let mut m = Edge::new();
    m.cfg.max_subscriptions = 2;
    let c = m.connect();
    m.frame(c, subscribe("1", "/queue/a", "auto"));
    m.frame(c, subscribe("2", "/topic/b", "auto"));
    m.frame(c, subscribe("3", "/queue/c", "auto"));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Too many subscriptions");
    assert!(detail.contains("2 subscriptions"), "{detail}");
    assert!(m.client(c).closed);
    // UNSUBSCRIBE makes room.
    let c = m.connect();
    m.frame(c, subscribe("1", "/queue/a", "auto"));
    m.frame(c, subscribe("2", "/queue/b", "auto"));
    m.frame(c, Stomp::new("UNSUBSCRIBE").header("id", "1").header("receipt", "u"));
    m.frame(c, subscribe("3", "/queue/c", "auto"));
    m.frame(c, subscribe("3", "/queue/d", "auto"));
    let got = m.take(c);
    assert_eq!(got[0].get("receipt-id"), Some("u"));
    assert_eq!(error_of(&got).0, "Duplicated subscription identifier");
    still_serving(&mut m);
}

#[test]
fn heart_beats_are_negotiated_sent_and_enforced() {
    let mut m = Edge::new();
    let c = m.open();
    // The client sends every 500 ms and wants one every 2000; the server's floor is 1000.
    m.frame(
        c,
        Stomp::new("CONNECT")
            .header("accept-version", "1.2")
            .header("login", "guest")
            .header("passcode", "guest")
            .header("heart-beat", "500,2000"),
    );
    assert_eq!(m.take(c)[0].get("heart-beat"), Some("2000,1000"));
    m.advance(1000);
    assert_eq!(m.client(c).heartbeats, 0);
    m.bytes(c, b"\n");
    m.advance(1000);
    assert_eq!(m.client(c).heartbeats, 1);
    for _ in 0..6 {
        m.bytes(c, b"\n");
        m.advance(900);
    }
    assert!(!m.client(c).closed, "a client that beats stays");
    assert!(m.client(c).heartbeats >= 2);
    m.advance(1000);
    assert!(!m.client(c).closed, "within twice the interval");
    m.advance(200);
    let (message, _) = error_of(&m.take(c));
    assert_eq!(message, "Heart-beat timeout");
    assert!(m.client(c).closed);

    // 0,0: none either way.
    let c = m.connect();
    assert_eq!(m.client(c).s.next_wakeup(), None);
    // A socket that never sends CONNECT is closed after the connect timeout.
    let c = m.open();
    m.advance(m.cfg.connect_timeout_ms);
    assert_eq!(error_of(&m.take(c)).0, "Connect timeout");
}

#[test]
fn message_headers_carry_the_properties_as_rabbitmq_maps_them() {
    let mut m = Edge::new();
    let c = m.connect();
    m.frame(c, subscribe("1", "/queue/p", "client"));
    let f = send("/queue/p", "body\0with nul")
        .header("content-type", "text/plain")
        .header("correlation-id", "c-1")
        .header("persistent", "true")
        .header("priority", "3")
        .header("amqp-message-id", "m-1")
        .header("x-trace", "a:b")
        .header("user-id", "guest");
    m.frame(c, f);
    let got = m.take(c);
    let msg = &got[0];
    assert_eq!(msg.body, b"body\0with nul");
    for (k, v) in [
        ("content-type", "text/plain"),
        ("correlation-id", "c-1"),
        ("persistent", "true"),
        ("priority", "3"),
        ("amqp-message-id", "m-1"),
        ("x-trace", "a:b"),
        ("user-id", "guest"),
    ] {
        assert_eq!(msg.get(k), Some(v), "{k}");
    }
    assert!(msg.get("ack").is_some());
    let q = m.e.core().peek("p", 1);
    assert!(q.is_empty(), "delivered");
    // A user-id that is not the login is refused, as RabbitMQ does.
    m.frame(c, send("/queue/p", "x").header("user-id", "mallory"));
    assert!(error_of(&m.take(c)).1.contains("authenticated user was 'guest'"));
}

#[test]
fn stomp_1_1_acks_by_message_id() {
    let mut m = Edge::new();
    fill(&mut m, "old", 1);
    let c = m.open();
    m.frame(
        c,
        Stomp::new("CONNECT").header("accept-version", "1.1").header("login", "guest").header("passcode", "guest"),
    );
    m.take(c);
    m.frame(c, subscribe("1", "/queue/old", "client"));
    let got = m.take(c);
    assert_eq!(got[0].get("ack"), None, "1.1 has no ack header");
    let id = got[0].get("message-id").unwrap().to_owned();
    m.frame(c, Stomp::new("ACK").header("message-id", &id).header("subscription", "1").header("receipt", "ok"));
    assert_eq!(m.take(c)[0].get("receipt-id"), Some("ok"));
    assert_eq!(m.e.core().queue_info("old").unwrap().unacked, 0);
}

#[test]
fn durable_topic_subscriptions_keep_messages_across_sessions() {
    let mut m = Edge::new();
    let c = m.connect();
    let sub = || {
        subscribe("d1", "/topic/alerts", "client-individual").header("durable", "true").header("auto-delete", "false")
    };
    m.frame(c, sub());
    m.frame(c, Stomp::new("DISCONNECT"));
    let p = m.connect();
    m.frame(p, send("/topic/alerts", "while away"));
    let c = m.connect();
    m.frame(c, sub());
    assert_eq!(bodies(&m.take(c)), ["while away"]);
    m.frame(c, Stomp::new("UNSUBSCRIBE").header("id", "d1").header("durable", "true").header("receipt", "gone"));
    assert_eq!(m.take(c)[0].get("receipt-id"), Some("gone"));
    assert!(m.e.core().queue_names().iter().all(|n| !n.starts_with("stomp-subscription-")));
    // A durable subscription needs an id.
    m.frame(c, Stomp::new("SUBSCRIBE").header("destination", "/topic/x").header("durable", "true"));
    assert!(error_of(&m.take(c)).1.contains("'id' is required"));
}

#[test]
fn messages_of_a_cancelled_subscription_can_still_be_acked() {
    let mut m = Edge::new();
    let (c, _) = two_sessions(&mut m, subscribe("t", "/topic/x", "client-individual"), send("/topic/x", "a"));
    let got = m.take(c);
    assert_eq!(bodies(&got), ["a"]);
    m.frame(c, Stomp::new("UNSUBSCRIBE").header("id", "t"));
    assert!(m.e.core().queue_names().is_empty(), "the subscription's queue went with it");
    m.frame(c, ack(&got[0]).header("receipt", "r"));
    assert_eq!(commands(&m.take(c)), ["RECEIPT"]);
    let conn = m.h.connection(c, 1).unwrap();
    assert_eq!(m.e.core().connection_info(conn).unwrap().unacked, 0);
}

/// Throughput, in release mode: `cargo test --release --test stomp_server -- --ignored
/// --nocapture throughput`. Prints messages per second SEND → MESSAGE through two sessions
/// (encode, decode, the host, the engine with its log, commits every 100), against the same
/// publishes and deliveries as mesh frames straight to the host; checks that every message
/// arrived, in order.
#[test]
#[ignore]
fn throughput() {
    use tabbit::mesh::frame::Frame;
    const N: usize = 50_000;
    for persistent in [false, true] {
        let mut m = Edge::new();
        m.auto_commit = false;
        m.record = false;
        let (c, p) = two_sessions(&mut m, subscribe("1", "/queue/t", "client"), Stomp::new("NOOP"));
        let p = if m.client(p).closed { m.connect() } else { p };
        let start = std::time::Instant::now();
        let mut got = 0;
        for i in 0..N {
            let mut f = send("/queue/t", "0123456789abcdef0123456789abcdef");
            if persistent {
                f = f.header("persistent", "true").header("receipt", i.to_string());
            }
            m.frame(p, f);
            if i % 100 == 99 {
                m.commit();
                let frames = m.take(c);
                got += frames.len();
                m.frame(c, ack(frames.last().unwrap()));
                m.take(p);
            }
        }
        let stomp = start.elapsed();
        assert_eq!(got, N);

        // The same through mesh frames, no STOMP.
        let mut m = Edge::new();
        m.auto_commit = false;
        let (ctx, chan) = (900, 1);
        let q = QueueDeclare { name: "t".into(), durable: true, ..Default::default() };
        m.h.open_channel(&mut m.e, ctx, 1, chan, true, m.now).unwrap();
        m.h.call(&mut m.e, ctx, chan, Command::DeclareQueue(q), m.now).unwrap();
        m.h.call(
            &mut m.e,
            ctx,
            chan,
            Command::Consume(tabbit::core::Consume { queue: "t".into(), ..Default::default() }),
            m.now,
        )
        .unwrap();
        let start = std::time::Instant::now();
        let mut delivered = 0;
        for i in 0..N {
            let mut message = tabbit::core::Message::new("", "t", b"0123456789abcdef0123456789abcdef".to_vec());
            message.properties.persistent = persistent;
            let now = m.now;
            m.h.receive(
                &mut m.e,
                ctx,
                Frame::Call { id: 0, chan, cmd: Command::Publish { message: Box::new(message), mandatory: false } },
                now,
            );
            if i % 100 == 99 {
                while m.e.wants_write(now) {
                    let Some(t) = m.e.poll_write(now) else { break };
                    m.store.write(&t.writes);
                    m.e.write_done(t.id, tabbit::host::engine::WriteOutcome::Committed, now);
                }
                m.h.take_events(&mut m.e);
                let mut last = 0;
                while let Some(o) = m.h.poll_output() {
                    if let tabbit::mesh::host::Output::Post {
                        frame: Frame::Event { event: tabbit::mesh::frame::WireEvent::Deliver(d), .. },
                        ..
                    } = o
                    {
                        delivered += 1;
                        last = d.delivery_tag;
                    }
                }
                m.h.receive(
                    &mut m.e,
                    ctx,
                    Frame::Call { id: 0, chan, cmd: Command::Ack { tag: last, multiple: true } },
                    now,
                );
            }
        }
        let mesh = start.elapsed();
        assert_eq!(delivered, N);
        let rate = |d: std::time::Duration| N as f64 / d.as_secs_f64();
        eprintln!("persistent {persistent}: STOMP {:.0} msg/s, mesh frames {:.0} msg/s", rate(stomp), rate(mesh));
    }
}

#[test]
fn queue_headers_set_the_queues_arguments_and_name() {
    let mut m = Edge::new();
    let c = m.connect();
    m.frame(c, send("/queue/lim", "a").header("x-max-length", "2").header("x-overflow", "reject-publish"));
    let q = m.e.core().queue_info("lim").unwrap();
    assert_eq!(q.arguments.get("x-max-length"), Some(&tabbit::core::FieldValue::Int(2)));
    assert_eq!(q.arguments.get("x-overflow"), Some(&tabbit::core::FieldValue::Str("reject-publish".into())));
    m.frame(c, subscribe("t", "/topic/named", "auto").header("x-queue-name", "my-alarms").header("receipt", "s"));
    assert_eq!(m.take(c)[0].get("receipt-id"), Some("s"));
    assert!(m.e.core().queue_info("my-alarms").unwrap().exclusive);
    m.frame(c, send("/queue/other", "a").header("x-max-length", "two"));
    assert!(error_of(&m.take(c)).1.contains("'x-max-length:two' must be a whole number"));
}

#[test]
fn frames_may_come_several_to_a_message_or_split_across_messages() {
    let mut m = Edge::new();
    let c = m.connect();
    let mut bytes = subscribe("1", "/queue/split", "auto").encode();
    bytes.extend(b"\n\n");
    bytes.extend(send("/queue/split", "one").encode());
    bytes.extend(send("/queue/split", "two").encode());
    for chunk in bytes.chunks(7) {
        m.bytes(c, chunk);
    }
    assert_eq!(bodies(&m.take(c)), ["one", "two"]);
}

/// A hibernatable session (a Durable Object's): its state, kept beside the socket, makes it
/// again once the broker's memory is gone. Here the old session's end stands for the broker's
/// restart (its unacked messages go back to their queue, flagged redelivered).
#[test]
fn a_restored_session_keeps_login_and_subscriptions_and_refuses_old_ack_ids_clearly() {
    let mut m = Edge::new();
    m.cfg.saved_state_bytes = 8 * 1024;
    fill(&mut m, "w", 4);
    let c = m.open();
    m.frame(
        c,
        Stomp::new("CONNECT")
            .header("accept-version", "1.2")
            .header("host", "/v")
            .header("login", "guest")
            .header("passcode", "guest")
            .header("heart-beat", "5000,20000"),
    );
    // Heart-beats are the transport's: the server sends as often as the client does, and runs no timer.
    assert_eq!(m.take(c)[0].get("heart-beat"), Some("5000,5000"));
    assert_eq!(m.client(c).s.next_wakeup(), None);
    let sub = subscribe("s1", "/queue/w", "client-individual").header("prefetch-count", "2").header("receipt", "r1");
    m.frame(c, sub);
    let got = m.take(c);
    assert_eq!(bodies(&got), ["m0", "m1"]);
    assert_eq!(commands(&got).iter().filter(|c| **c == "RECEIPT").count(), 1);
    m.frame(c, ack(&got.iter().find(|f| f.command == "MESSAGE").unwrap().clone()));
    assert_eq!(bodies(&m.take(c)), ["m2"]);
    let saved = m.client(c).saved.clone().expect("the session said its state");
    let text = String::from_utf8_lossy(&saved).into_owned();
    assert!(text.contains("login:guest") && text.contains("host:/v") && text.contains("prefetch-count:2"), "{text}");
    assert!(!text.contains("passcode") && !text.contains("receipt"), "{text}");
    let old: Vec<Stomp> = got.into_iter().filter(|f| f.command == "MESSAGE").collect();

    // The broker's memory goes; the socket stays. The restored session says nothing to the
    // client for the restore, subscribes again with the same ack mode and prefetch, and gets
    // the unacked messages again, redelivered, under new ack ids.
    m.drop_socket(c);
    let r = m.restore(&saved).expect("restored");
    let again = m.take(r);
    assert_eq!(commands(&again), ["MESSAGE", "MESSAGE"], "{again:?}");
    assert_eq!(bodies(&again), ["m1", "m2"]);
    assert!(again.iter().all(|f| f.get("redelivered") == Some("true") && f.get("subscription") == Some("s1")));
    assert_ne!(again[0].get("ack"), old[1].get("ack"));
    // The old id of a message that went back gets an ERROR that says what happened.
    m.frame(r, ack(&old[1]));
    let (message, detail) = error_of(&m.take(r));
    assert_eq!(message, "Message not found");
    assert!(detail.contains("before the broker restarted") && detail.contains("redelivered:true"), "{detail}");
    assert!(m.client(r).closed);

    // Restored again (from the restored session's state): acks by the new ids work.
    let state = m.client(r).saved.clone().unwrap();
    let r2 = m.restore(&state).unwrap();
    let third = m.take(r2);
    assert_eq!(bodies(&third), ["m1", "m2"]);
    m.frame(r2, ack(&third[0]));
    m.frame(r2, ack(&third[1]));
    assert_eq!(bodies(&m.take(r2)), ["m3"]);
    // Publishes keep the login's checks: user-id must be the login.
    m.frame(r2, send("/queue/w", "x").header("user-id", "guest").header("receipt", "p"));
    assert!(commands(&m.take(r2)).contains(&"RECEIPT"));
    assert!(m.restore(b"garbage").unwrap_err().contains("cannot be read"));
    still_serving(&mut m);
}

#[test]
fn a_hibernatable_session_refuses_subscriptions_its_saved_state_cannot_hold() {
    let mut m = Edge::new();
    m.cfg.saved_state_bytes = 600;
    let c = m.connect();
    let long = "x".repeat(150);
    m.frame(c, subscribe("a", "/queue/a", "auto").header("x-note", long.as_str()));
    m.frame(c, subscribe("b", "/queue/b", "auto").header("x-note", long.as_str()));
    assert!(m.take(c).iter().all(|f| f.command != "ERROR"));
    m.frame(c, subscribe("c", "/queue/c", "auto").header("x-note", long.as_str()));
    let (message, detail) = error_of(&m.take(c));
    assert_eq!(message, "Too many subscriptions");
    assert!(detail.contains("over the 600 bytes"), "{detail}");
    still_serving(&mut m);
}
