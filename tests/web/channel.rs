//! The amqplib-shaped channel binding under `connect()`: consumers and their order,
//! prefetch, confirms and `waitForConfirms`, returns, channel errors as events, a
//! consumer cancelled by the broker.

use js_sys::{Array, Function, Promise};
use tabbit::wasm::RawBroker;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use super::{content, prop, resolved, unique};

#[wasm_bindgen(module = "/tests/web/helpers.js")]
extern "C" {
    fn recorder() -> Function;
    fn collector() -> Function;
    fn tick() -> Promise;
    fn sleep(ms: f64) -> Promise;
}

fn json(s: &str) -> JsValue {
    js_sys::JSON::parse(s).unwrap()
}

async fn memory_broker(prefix: &str) -> RawBroker {
    RawBroker::open(unique(prefix), "memory".into(), Some(false), None, JsValue::UNDEFINED, None).await.unwrap()
}

fn got(f: &Function) -> Vec<JsValue> {
    Array::from(&prop(f, "got")).to_vec()
}

fn events(f: &Function) -> Vec<(String, JsValue)> {
    Array::from(&prop(f, "events"))
        .iter()
        .map(|e| {
            let e = Array::from(&e);
            (e.get(0).as_string().unwrap(), e.get(1))
        })
        .collect()
}

fn texts(messages: &[JsValue]) -> Vec<String> {
    messages.iter().map(content).collect()
}

/// Lets the current task end: a channel's events (deliveries, confirms, returns, errors)
/// come after the task that caused them, in the hosting context as in the others.
async fn settle() {
    JsFuture::from(tick()).await.unwrap();
}

#[wasm_bindgen_test]
async fn consumers_share_a_queue_round_robin_under_prefetch_and_acks_free_room() {
    let broker = memory_broker("consume").await;
    let conn = broker.connect();
    let (ch_a, ch_b) =
        (conn.create_channel(false, recorder()).unwrap(), conn.create_channel(false, recorder()).unwrap());
    ch_a.assert_queue("work", JsValue::UNDEFINED).unwrap();
    ch_a.prefetch(2.0, None).unwrap();
    ch_b.prefetch(2.0, None).unwrap();
    let (a, b) = (collector(), collector());
    let started = resolved(ch_a.consume("work", a.clone(), JsValue::UNDEFINED)).await.unwrap();
    let tag_a = prop(&started, "consumerTag").as_string().unwrap();
    ch_b.consume("work", b.clone(), JsValue::UNDEFINED).unwrap();
    for i in 0..6 {
        ch_a.publish("", "work", format!("m{i}").into(), JsValue::UNDEFINED, None).unwrap();
    }
    assert!(got(&a).is_empty(), "delivered after the task that published");
    settle().await;
    assert_eq!(texts(&got(&a)), ["m0", "m2"], "round-robin, two each under prefetch 2");
    assert_eq!(texts(&got(&b)), ["m1", "m3"]);
    let first = &got(&a)[0];
    assert_eq!(prop(&prop(first, "fields"), "consumerTag").as_string(), Some(tag_a.clone()));
    ch_a.ack(first.clone(), None).unwrap();
    settle().await;
    assert_eq!(texts(&got(&a)), ["m0", "m2", "m4"], "an ack frees room for the next message");
    // a goes away; recover() puts its unacked m2 and m4 back, ahead of m5.
    ch_a.cancel(&tag_a).unwrap();
    ch_a.recover().unwrap();
    let b_msgs = got(&b);
    ch_b.ack(b_msgs[1].clone(), Some(true)).unwrap();
    settle().await;
    assert_eq!(texts(&got(&b)), ["m1", "m3", "m2", "m4"], "requeued messages keep their place");
    assert_eq!(prop(&prop(&got(&b)[2], "fields"), "redelivered").as_bool(), Some(true));
    broker.close().await;
}

#[wasm_bindgen_test]
async fn a_consumer_that_acks_inside_its_callback_still_sees_its_messages_in_order() {
    let broker = memory_broker("reentrant").await;
    let conn = broker.connect();
    let ch = conn.create_channel(false, recorder()).unwrap();
    ch.assert_queue("q", JsValue::UNDEFINED).unwrap();
    ch.prefetch(1.0, None).unwrap();
    for i in 0..5 {
        ch.publish("", "q", format!("{i}").into(), JsValue::UNDEFINED, None).unwrap();
    }
    // The callback acks at once: the next delivery happens inside that ack, and must
    // still come after the current one returns.
    let seen = collector();
    let ch = JsValue::from(ch); // from here on, the channel as JS sees it
    let callback: Function = Function::new_with_args("ch, seen, m", "seen(m); ch.ack(m);")
        .bind2(&JsValue::NULL, &ch, &seen)
        .unchecked_into();
    let consume = Function::new_with_args("ch, cb", "return ch.consume('q', cb);");
    consume.call2(&JsValue::NULL, &ch, &callback).unwrap();
    settle().await;
    assert_eq!(texts(&got(&seen)), ["0", "1", "2", "3", "4"]);
    broker.close().await;
}

#[wasm_bindgen_test]
async fn confirms_reach_their_callbacks() {
    let broker = memory_broker("confirms").await;
    let conn = broker.connect();
    let ch = conn.create_channel(true, recorder()).unwrap();
    ch.assert_queue("small", json(r#"{"maxLength": 1, "arguments": {"x-overflow": "reject-publish"}}"#)).unwrap();
    let (c1, c2) = (collector(), collector());
    ch.publish("", "small", "fits".into(), JsValue::UNDEFINED, Some(c1.clone())).unwrap();
    ch.publish("", "small", "refused".into(), JsValue::UNDEFINED, Some(c2.clone())).unwrap();
    assert!(got(&c1).is_empty() && got(&c2).is_empty(), "a callback never runs inside publish()");
    let err = JsFuture::from(ch.wait_for_confirms()).await.unwrap_err();
    assert!(prop(&err, "message").as_string().unwrap().contains("nacked"), "one was refused: it rejects");
    assert_eq!(got(&c1), [JsValue::NULL], "acked: the callback gets null");
    let nack = &got(&c2)[0];
    assert_eq!(prop(nack, "code").as_f64(), Some(506.0));
    assert!(prop(nack, "message").as_string().unwrap().contains("reject-publish"));
    broker.close().await;
}

#[wasm_bindgen(module = "/tests/web/helpers.js")]
extern "C" {
    #[wasm_bindgen(js_name = failingStorage)]
    fn failing_storage() -> JsValue;
}

#[wasm_bindgen_test]
async fn wait_for_confirms_rejects_when_a_pending_message_is_not_stored() {
    let broker = RawBroker::open(unique("waitnack"), failing_storage(), Some(false), None, JsValue::UNDEFINED, None)
        .await
        .unwrap();
    let conn = broker.connect();
    let ch = conn.create_channel(true, recorder()).unwrap();
    ch.assert_queue("q", JsValue::UNDEFINED).unwrap();
    let cb = collector();
    ch.publish("", "q", "x".into(), json(r#"{"persistent": true}"#), Some(cb.clone())).unwrap();
    let waiting = ch.wait_for_confirms();
    assert!(got(&cb).is_empty(), "held until the write completes");
    let err = JsFuture::from(waiting).await.unwrap_err();
    assert!(prop(&err, "message").as_string().unwrap().contains("nacked"));
    assert!(prop(&got(&cb)[0], "message").as_string().unwrap().contains("disk on fire"));
    broker.close().await;
}

#[wasm_bindgen_test]
async fn mandatory_messages_nobody_takes_come_back_as_return_events() {
    let broker = memory_broker("returns").await;
    let conn = broker.connect();
    let emit = recorder();
    let ch = conn.create_channel(false, emit.clone()).unwrap();
    ch.assert_exchange("ex", "direct", JsValue::UNDEFINED).unwrap();
    ch.publish("ex", "nobody", "lost?".into(), json(r#"{"mandatory": true}"#), None).unwrap();
    ch.publish("ex", "nobody", "dropped".into(), JsValue::UNDEFINED, None).unwrap();
    settle().await;
    let ev = events(&emit);
    assert_eq!(ev.len(), 1, "only the mandatory one");
    assert_eq!(ev[0].0, "return");
    let fields = prop(&ev[0].1, "fields");
    assert_eq!(prop(&fields, "replyCode").as_f64(), Some(312.0));
    assert_eq!(prop(&fields, "replyText").as_string().as_deref(), Some("NO_ROUTE"));
    assert_eq!(prop(&fields, "routingKey").as_string().as_deref(), Some("nobody"));
    assert_eq!(content(&ev[0].1), "lost?");
    broker.close().await;
}

#[wasm_bindgen_test]
async fn a_channel_error_emits_error_then_close_and_fails_pending_confirms() {
    let broker = memory_broker("chanerr").await;
    let conn = broker.connect();
    let emit = recorder();
    let ch = conn.create_channel(true, emit.clone()).unwrap();
    let cb = collector();
    // Publishing to a missing exchange is a channel error: reported as events, not thrown.
    assert!(ch.publish("no-such-exchange", "k", "x".into(), JsValue::UNDEFINED, Some(cb.clone())).unwrap());
    settle().await;
    let ev = events(&emit);
    assert_eq!(ev.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["error", "close"]);
    assert_eq!(prop(&ev[0].1, "code").as_f64(), Some(404.0));
    assert_eq!(prop(&got(&cb)[0], "code").as_f64(), Some(404.0), "its confirm callback failed too");
    let err = ch.assert_queue("q", JsValue::UNDEFINED).unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(504.0), "a closed channel refuses commands");
    let err = ch.publish("", "q", "x".into(), JsValue::UNDEFINED, None).unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(504.0), "and publishes");
    // An ack of a tag the channel never gave is a channel error too: an event, not a throw.
    let emit3 = recorder();
    let third = conn.create_channel(false, emit3.clone()).unwrap();
    third.ack(json(r#"{"fields": {"deliveryTag": 99}}"#), None).unwrap();
    settle().await;
    let ev = events(&emit3);
    assert_eq!(ev.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["error", "close"]);
    assert_eq!(prop(&ev[0].1, "code").as_f64(), Some(406.0));
    assert!(third.ack(JsValue::from_f64(1.5), None).is_err(), "a bad argument throws");
    // Other channels of the connection are unaffected.
    let other = conn.create_channel(false, recorder()).unwrap();
    other.assert_queue("q", JsValue::UNDEFINED).unwrap();
    broker.close().await;
}

#[wasm_bindgen_test]
async fn deleting_a_queue_cancels_its_consumers_with_null() {
    let broker = memory_broker("cancelled").await;
    let conn = broker.connect();
    let ch = conn.create_channel(false, recorder()).unwrap();
    ch.assert_queue("doomed", JsValue::UNDEFINED).unwrap();
    let c = collector();
    ch.consume("doomed", c.clone(), JsValue::UNDEFINED).unwrap();
    let other = conn.create_channel(false, recorder()).unwrap();
    other.delete_queue("doomed", JsValue::UNDEFINED).unwrap();
    settle().await;
    assert_eq!(got(&c), [JsValue::NULL], "amqplib calls the consumer with null");
    broker.close().await;
}

#[wasm_bindgen_test]
async fn closing_a_connection_requeues_its_unacked_messages_for_others() {
    let broker = memory_broker("connclose").await;
    let (c1, c2) = (broker.connect(), broker.connect());
    let ch1 = c1.create_channel(false, recorder()).unwrap();
    let ch2 = c2.create_channel(false, recorder()).unwrap();
    ch1.assert_queue("q", JsValue::UNDEFINED).unwrap();
    ch1.assert_queue("mine", json(r#"{"exclusive": true}"#)).unwrap();
    ch2.publish("", "q", "held".into(), JsValue::UNDEFINED, None).unwrap();
    let first = collector();
    ch1.consume("q", first.clone(), JsValue::UNDEFINED).unwrap();
    settle().await;
    assert_eq!(texts(&got(&first)), ["held"]);
    c1.close();
    let second = collector();
    ch2.consume("q", second.clone(), JsValue::UNDEFINED).unwrap();
    settle().await;
    assert_eq!(texts(&got(&second)), ["held"], "back in the queue, for the other connection");
    assert_eq!(prop(&prop(&got(&second)[0], "fields"), "redelivered").as_bool(), Some(true));
    let err = resolved(ch2.check_queue("mine")).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(404.0), "the exclusive queue went with its connection");
    JsFuture::from(tick()).await.unwrap();
    broker.close().await;
}

#[wasm_bindgen_test]
async fn a_live_broker_expires_messages_on_its_timer_and_dead_letters_them() {
    let broker = memory_broker("timer").await;
    let conn = broker.connect();
    let ch = conn.create_channel(false, recorder()).unwrap();
    ch.assert_exchange("dlx", "fanout", JsValue::UNDEFINED).unwrap();
    ch.assert_queue("dead", JsValue::UNDEFINED).unwrap();
    ch.bind_queue("dead", "dlx", "", JsValue::UNDEFINED).unwrap();
    ch.assert_queue("short", json(r#"{"messageTtl": 40, "deadLetterExchange": "dlx"}"#)).unwrap();
    let dead = collector();
    ch.consume("dead", dead.clone(), JsValue::UNDEFINED).unwrap();
    ch.publish("", "short", "ephemeral".into(), JsValue::UNDEFINED, None).unwrap();
    assert!(got(&dead).is_empty());
    // No command runs meanwhile: only the broker's timer can move the message.
    JsFuture::from(sleep(200.0)).await.unwrap();
    assert_eq!(texts(&got(&dead)), ["ephemeral"], "expired on time and dead-lettered");
    broker.close().await;
}
