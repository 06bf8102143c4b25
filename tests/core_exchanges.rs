#![cfg(not(target_arch = "wasm32"))]
//! Exchanges and routing: the default exchange, the four types through the broker,
//! exchange-to-exchange bindings, alternate and internal exchanges, auto-delete.
mod common;
use common::*;
use tabbit::core::*;

#[test]
fn default_exchange_routes_by_queue_name_and_cannot_be_touched() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "hi");
    assert_eq!(h.drain(ch, "q"), ["hi"]);
    assert_eq!(code(h.bind(ch, "q", "", "q")), 403);
    let ch = h.channel();
    assert_eq!(code(h.run(|b, now| b.delete_exchange(ch, "", false, now))), 403);
    let ch = h.channel();
    assert_eq!(code(h.exchange(ch, "", "direct")), 403);
}

#[test]
fn direct_routes_on_exact_key_to_every_bound_queue() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "d", "direct").unwrap();
    for q in ["a", "b", "c"] {
        h.queue(ch, q).unwrap();
    }
    h.bind(ch, "a", "d", "red").unwrap();
    h.bind(ch, "b", "d", "red").unwrap();
    h.bind(ch, "c", "d", "blue").unwrap();
    h.publish(ch, "d", "red", "r").unwrap();
    h.publish(ch, "d", "blue", "b").unwrap();
    h.publish(ch, "d", "green", "g").unwrap();
    assert_eq!(h.drain(ch, "a"), ["r"]);
    assert_eq!(h.drain(ch, "b"), ["r"]);
    assert_eq!(h.drain(ch, "c"), ["b"]);
}

#[test]
fn fanout_ignores_the_key_and_delivers_once_per_queue() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "f", "fanout").unwrap();
    h.queue(ch, "a").unwrap();
    h.queue(ch, "b").unwrap();
    h.bind(ch, "a", "f", "").unwrap();
    h.bind(ch, "a", "f", "other").unwrap(); // a second binding to the same queue
    h.bind(ch, "b", "f", "x").unwrap();
    h.publish(ch, "f", "anything", "m").unwrap();
    assert_eq!(h.drain(ch, "a"), ["m"], "one copy per queue, however many bindings");
    assert_eq!(h.drain(ch, "b"), ["m"]);
}

#[test]
fn topic_routes_with_wildcards_through_the_broker() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "logs", "topic").unwrap();
    for (q, pattern) in [("errors", "*.error"), ("auth", "auth.#"), ("all", "#")] {
        h.queue(ch, q).unwrap();
        h.bind(ch, q, "logs", pattern).unwrap();
    }
    h.publish(ch, "logs", "auth.error", "1").unwrap();
    h.publish(ch, "logs", "db.error", "2").unwrap();
    h.publish(ch, "logs", "auth.login.ok", "3").unwrap();
    h.publish(ch, "logs", "error", "4").unwrap();
    assert_eq!(h.drain(ch, "errors"), ["1", "2"]);
    assert_eq!(h.drain(ch, "auth"), ["1", "3"]);
    assert_eq!(h.drain(ch, "all"), ["1", "2", "3", "4"]);
}

#[test]
fn headers_exchange_matches_all_and_any_through_the_broker() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "hx", "headers").unwrap();
    h.queue(ch, "all").unwrap();
    h.queue(ch, "any").unwrap();
    h.bind_args(ch, "all", "hx", "", &[("x-match", s("all")), ("format", s("pdf")), ("type", s("report"))]).unwrap();
    h.bind_args(ch, "any", "hx", "", &[("x-match", s("any")), ("format", s("pdf")), ("type", s("report"))]).unwrap();
    let mut m = Message::new("hx", "", b"both".to_vec());
    m.properties.headers = table(&[("format", s("pdf")), ("type", s("report"))]);
    h.publish_msg(ch, m, false).unwrap();
    let mut m = Message::new("hx", "", b"one".to_vec());
    m.properties.headers = table(&[("format", s("pdf"))]);
    h.publish_msg(ch, m, false).unwrap();
    assert_eq!(h.drain(ch, "all"), ["both"]);
    assert_eq!(h.drain(ch, "any"), ["both", "one"]);
}

#[test]
fn exchange_to_exchange_bindings_route_through_and_stop_at_cycles() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "front", "topic").unwrap();
    h.exchange(ch, "back", "fanout").unwrap();
    h.queue(ch, "q").unwrap();
    h.bind(ch, "q", "back", "").unwrap();
    h.run(|b, now| b.bind_exchange(ch, "back", "front", "orders.*", Table::new(), now)).unwrap();
    // A cycle back to front must not loop forever nor deliver twice.
    h.run(|b, now| b.bind_exchange(ch, "front", "back", "", Table::new(), now)).unwrap();
    h.publish(ch, "front", "orders.new", "o").unwrap();
    h.publish(ch, "front", "users.new", "u").unwrap();
    assert_eq!(h.drain(ch, "q"), ["o"]);
    h.run(|b, now| b.unbind_exchange(ch, "back", "front", "orders.*", Table::new(), now)).unwrap();
    h.publish(ch, "front", "orders.new", "o2").unwrap();
    assert!(h.drain(ch, "q").is_empty());
}

#[test]
fn alternate_exchange_takes_unroutable_messages_and_mandatory_returns_only_if_it_cannot() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "ae", "fanout").unwrap();
    h.queue(ch, "unrouted").unwrap();
    h.bind(ch, "unrouted", "ae", "").unwrap();
    h.exchange_with(
        ch,
        ExchangeDeclare {
            name: "main".into(),
            kind: "direct".into(),
            arguments: table(&[("alternate-exchange", s("ae"))]),
            ..Default::default()
        },
    )
    .unwrap();
    h.queue(ch, "known").unwrap();
    h.bind(ch, "known", "main", "k").unwrap();
    h.publish_msg(ch, Message::new("main", "k", b"1".to_vec()), true).unwrap();
    h.publish_msg(ch, Message::new("main", "nope", b"2".to_vec()), true).unwrap();
    assert!(h.returns().is_empty(), "the alternate exchange routed it: nothing to return");
    assert_eq!(h.drain(ch, "known"), ["1"]);
    assert_eq!(h.drain(ch, "unrouted"), ["2"]);

    h.exchange(ch, "plain", "direct").unwrap();
    h.publish_msg(ch, Message::new("plain", "nope", b"3".to_vec()), true).unwrap();
    h.publish_msg(ch, Message::new("plain", "nope", b"4".to_vec()), false).unwrap();
    let r = h.returns();
    assert_eq!(r.len(), 1, "only the mandatory one comes back");
    assert_eq!((r[0].reply_code, r[0].reply_text), (312, "NO_ROUTE"));
    assert_eq!(body(&r[0].message), "3");
}

#[test]
fn internal_exchanges_refuse_publishes_but_route_from_bindings() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "inner".into(), kind: "fanout".into(), internal: true, ..Default::default() },
    )
    .unwrap();
    h.exchange(ch, "outer", "fanout").unwrap();
    h.queue(ch, "q").unwrap();
    h.bind(ch, "q", "inner", "").unwrap();
    h.run(|b, now| b.bind_exchange(ch, "inner", "outer", "", Table::new(), now)).unwrap();
    h.publish(ch, "outer", "", "via").unwrap();
    assert_eq!(h.drain(ch, "q"), ["via"]);
    assert_eq!(code(h.publish(ch, "inner", "", "direct")), 403);
    assert!(!h.b.has_channel(ch), "a channel error closes the channel, as in RabbitMQ");
}

#[test]
fn redeclare_with_other_type_or_flags_is_406_and_same_is_ok() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "x".into(), kind: "direct".into(), durable: true, ..Default::default() },
    )
    .unwrap();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "x".into(), kind: "direct".into(), durable: true, ..Default::default() },
    )
    .unwrap();
    let e = h
        .exchange_with(
            ch,
            ExchangeDeclare { name: "x".into(), kind: "fanout".into(), durable: true, ..Default::default() },
        )
        .unwrap_err();
    assert_eq!(e.code.code(), 406);
    assert!(
        e.message.contains("'type'") && e.message.contains("fanout") && e.message.contains("direct"),
        "{}",
        e.message
    );
    let ch = h.channel();
    assert_eq!(code(h.exchange(ch, "x", "direct")), 406, "durable differs");
}

#[test]
fn passive_declare_and_bad_names_and_types() {
    let mut h = H::new();
    let ch = h.channel();
    assert_eq!(
        code(h.exchange_with(ch, ExchangeDeclare { name: "missing".into(), passive: true, ..Default::default() })),
        404
    );
    let ch = h.channel();
    h.exchange_with(ch, ExchangeDeclare { name: "amq.topic".into(), passive: true, ..Default::default() }).unwrap();
    let e = h.exchange(ch, "weird", "x-consistent-hash").unwrap_err();
    assert_eq!(e.code.code(), 503);
    assert!(e.message.contains("'direct', 'fanout', 'topic', 'headers'"), "{}", e.message);
    let ch = h.channel();
    assert_eq!(code(h.exchange(ch, "amq.mine", "direct")), 403, "amq. prefix is reserved");
    let ch = h.channel();
    assert_eq!(code(h.exchange(ch, &"x".repeat(256), "direct")), 406);
    let ch = h.channel();
    let e = h
        .exchange_with(
            ch,
            ExchangeDeclare {
                name: "bad-ae".into(),
                kind: "direct".into(),
                arguments: table(&[("alternate-exchange", int(5))]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code.code(), 406);
    assert!(e.message.contains("alternate-exchange"), "{}", e.message);
}

#[test]
fn delete_exchange_if_unused_builtin_and_missing() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "x", "direct").unwrap();
    h.queue(ch, "q").unwrap();
    h.bind(ch, "q", "x", "k").unwrap();
    assert_eq!(code(h.run(|b, now| b.delete_exchange(ch, "x", true, now))), 406);
    let ch = h.channel();
    h.run(|b, now| b.delete_exchange(ch, "x", false, now)).unwrap();
    assert!(!h.b.has_exchange("x"));
    h.run(|b, now| b.delete_exchange(ch, "never-was", false, now)).unwrap();
    assert_eq!(code(h.run(|b, now| b.delete_exchange(ch, "amq.direct", false, now))), 403);
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "tmp".into(), kind: "fanout".into(), auto_delete: true, ..Default::default() },
    )
    .unwrap();
    h.queue(ch, "a").unwrap();
    h.queue(ch, "b").unwrap();
    h.bind(ch, "a", "tmp", "").unwrap();
    h.bind(ch, "b", "tmp", "").unwrap();
    h.run(|b, now| b.unbind_queue(ch, "a", "tmp", "", Table::new(), now)).unwrap();
    assert!(h.b.has_exchange("tmp"));
    h.run(|b, now| b.delete_queue(ch, "b", false, false, now)).unwrap();
    assert!(!h.b.has_exchange("tmp"), "deleting the last bound queue removes the binding and the exchange");
}

#[test]
fn binding_to_missing_things_is_404_and_unbinding_twice_is_fine() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "x", "direct").unwrap();
    assert_eq!(code(h.bind(ch, "nope", "x", "k")), 404);
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    assert_eq!(code(h.bind(ch, "q", "nope", "k")), 404);
    let ch = h.channel();
    h.bind(ch, "q", "x", "k").unwrap();
    h.bind(ch, "q", "x", "k").unwrap(); // idempotent
    h.run(|b, now| b.unbind_queue(ch, "q", "x", "k", Table::new(), now)).unwrap();
    h.run(|b, now| b.unbind_queue(ch, "q", "x", "k", Table::new(), now)).unwrap();
    h.publish(ch, "x", "k", "m").unwrap();
    assert!(h.drain(ch, "q").is_empty());
}

#[test]
fn durable_exchanges_and_bindings_between_durable_ends_are_stored() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "dx".into(), kind: "topic".into(), durable: true, ..Default::default() },
    )
    .unwrap();
    h.exchange(ch, "tx", "topic").unwrap();
    h.queue_with(ch, QueueDeclare { name: "dq".into(), durable: true, ..Default::default() }).unwrap();
    h.queue(ch, "tq").unwrap();
    h.store_ops();
    h.bind(ch, "dq", "dx", "a.*").unwrap();
    h.bind(ch, "tq", "dx", "a.*").unwrap();
    h.bind(ch, "dq", "tx", "a.*").unwrap();
    let ops = h.store_ops();
    assert_eq!(ops.len(), 1, "only the binding between two durable ends is stored: {ops:?}");
    assert!(matches!(&ops[0], StoreOp::PutBinding { source, destination: StoreDestination::Queue(q), routing_key, .. }
        if &**source == "dx" && &**q == "dq" && routing_key == "a.*"));
    h.run(|b, now| b.delete_queue(ch, "dq", false, false, now)).unwrap();
    let ops = h.store_ops();
    assert!(matches!(&ops[0], StoreOp::DeleteBinding { .. }), "{ops:?}");
    assert!(matches!(&ops[1], StoreOp::DeleteQueue { name } if &**name == "dq"), "{ops:?}");
}

#[test]
fn a_binding_with_a_nan_argument_is_one_binding_and_can_be_removed() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "hx", "headers").unwrap();
    h.queue(ch, "q").unwrap();
    let args = [("x-match", s("any")), ("n", FieldValue::Float(f64::NAN)), ("k", s("v"))];
    h.bind_args(ch, "q", "hx", "", &args).unwrap();
    h.bind_args(ch, "q", "hx", "", &args).unwrap(); // the same binding again: no second copy
    h.run(|b, now| b.unbind_queue(ch, "q", "hx", "", table(&args), now)).unwrap();
    let mut m = Message::new("hx", "", b"x".to_vec());
    m.properties.headers = table(&[("k", s("v"))]);
    h.publish_msg(ch, m, false).unwrap();
    assert!(h.drain(ch, "q").is_empty(), "the binding is gone");
}
