//! The IndexedDB store through the JS binding: persistence across close and reopen,
//! confirms after commit, acks kept, TTL while closed, foreign records.

use super::JsBroker;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use super::{confirmed, content, got, prop, unique};

#[wasm_bindgen(module = "/tests/web/helpers.js")]
extern "C" {
    #[wasm_bindgen(js_name = countRecords)]
    fn count_records(db: &str, store: &str) -> Promise;
    #[wasm_bindgen(js_name = putForeign)]
    fn put_foreign(db: &str, store: &str, key: JsValue, value: JsValue) -> Promise;
    fn sleep(ms: f64) -> Promise;
    #[wasm_bindgen(js_name = upgradeTo)]
    fn upgrade_to(name: &str, version: u32) -> Promise;
    #[wasm_bindgen(js_name = deleteDb)]
    fn delete_db(name: &str) -> Promise;
    type MapAdapter;
    #[wasm_bindgen(constructor)]
    fn new() -> MapAdapter;
    #[wasm_bindgen(method, setter = failNext)]
    fn set_fail_next(this: &MapAdapter, v: bool);
    #[wasm_bindgen(method, setter)]
    fn set_full(this: &MapAdapter, v: bool);
    #[wasm_bindgen(method, getter)]
    fn writes(this: &MapAdapter) -> f64;
    #[wasm_bindgen(method)]
    fn hold(this: &MapAdapter);
    #[wasm_bindgen(method)]
    fn release(this: &MapAdapter);
    #[wasm_bindgen(method)]
    fn snapshot(this: &MapAdapter) -> MapAdapter;
    #[wasm_bindgen(js_name = openDb)]
    fn open_db(name: &str) -> Promise;
    #[wasm_bindgen(js_name = countNow)]
    fn count_now(db: &JsValue, store: &str) -> Promise;
}

async fn count(broker: &str, store: &str) -> u32 {
    JsFuture::from(count_records(&format!("tabbit:{broker}"), store)).await.unwrap().as_f64().unwrap() as u32
}

fn persistent() -> JsValue {
    js_sys::JSON::parse(r#"{"persistent": true}"#).unwrap()
}

fn json(s: &str) -> JsValue {
    js_sys::JSON::parse(s).unwrap()
}

async fn open(name: &str) -> JsBroker {
    JsBroker::open(Some(name.into()), JsValue::from("indexeddb")).await.unwrap()
}

/// Every ready message: (content, redelivered, x-delivery-count), acked.
async fn drain(b: &JsBroker, queue: &str) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    loop {
        let m = got(b.get(queue.into())).await;
        if m == JsValue::FALSE {
            return out;
        }
        let redelivered = prop(&prop(&m, "fields"), "redelivered").as_bool().unwrap();
        let count = prop(&prop(&prop(&m, "properties"), "headers"), "x-delivery-count").as_f64().unwrap_or(0.0);
        out.push((content(&m), redelivered, count as u32));
        b.ack(m, None).unwrap();
    }
}

fn owned(v: &[(&str, bool, u32)]) -> Vec<(String, bool, u32)> {
    v.iter().map(|(s, r, c)| (s.to_string(), *r, *c)).collect()
}

#[wasm_bindgen_test]
async fn durable_messages_survive_close_and_reopen_and_acks_stick() {
    let name = unique("reopen");
    let b = open(&name).await;
    assert_eq!(b.storage(), "indexeddb");
    b.assert_queue("jobs", JsValue::UNDEFINED).await.unwrap();
    b.assert_queue("scratch", json(r#"{"durable": false}"#)).await.unwrap();
    let mut confirms = Vec::new();
    for i in 1..=5 {
        confirms.push(b.send_to_queue("jobs", format!("m{i}").into(), persistent()));
    }
    confirms.push(b.send_to_queue("jobs", "transient".into(), JsValue::UNDEFINED));
    confirms.push(b.send_to_queue("scratch", "gone".into(), persistent()));
    for c in confirms {
        confirmed(c).await.unwrap();
    }
    let m1 = got(b.get("jobs".into())).await;
    b.ack(m1, None).unwrap();
    let m2 = got(b.get("jobs".into())).await;
    assert_eq!(content(&m2), "m2");
    let m3 = got(b.get("jobs".into())).await;
    b.nack(m3, None, Some(true)).unwrap();
    JsFuture::from(b.flush()).await.unwrap();
    // m2 is never acked and its connection never closed: as if its tab had died.
    b.broker.close().await;
    drop(b);

    let b = open(&name).await;
    assert_eq!(b.problems().length(), 0);
    assert!(b.message_count("scratch").await.is_none(), "a transient queue is not stored");
    assert_eq!(drain(&b, "jobs").await, owned(&[("m2", true, 0), ("m3", true, 1), ("m4", false, 0), ("m5", false, 0)]));
    JsFuture::from(b.flush()).await.unwrap();
    assert_eq!(count(&name, "segments").await, 0, "every message acked: the segment is deleted");
    b.close().await;
    let b = open(&name).await;
    assert_eq!(drain(&b, "jobs").await, owned(&[]), "acked messages never come back");
    b.close().await;
}

#[wasm_bindgen_test]
async fn a_confirm_resolves_only_once_the_message_is_in_indexeddb() {
    let name = unique("confirm");
    let b = open(&name).await;
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    JsFuture::from(b.flush()).await.unwrap();
    let db = JsFuture::from(open_db(&format!("tabbit:{name}"))).await.unwrap();
    let before = count_now(&db, "segments");
    let confirm = b.send_to_queue("q", "payload".into(), persistent());
    // A read transaction started before the write sees nothing...
    assert_eq!(JsFuture::from(before).await.unwrap().as_f64(), Some(0.0));
    js_sys::Reflect::get(&db, &"close".into()).unwrap().unchecked_into::<js_sys::Function>().call0(&db).unwrap();
    confirmed(confirm).await.unwrap();
    // ...and when the confirm resolves, the record is there.
    assert_eq!(count(&name, "segments").await, 1);
    // 200 publishes in one turn are one transaction: one or two segments, not 200 records.
    let all: Array = (0..200).map(|i| b.send_to_queue("q", format!("{i}").into(), persistent())).collect();
    JsFuture::from(Promise::all(&all)).await.unwrap();
    assert!(count(&name, "segments").await <= 3);
    b.close().await;
}

#[wasm_bindgen_test]
async fn ttl_that_passes_while_closed_dead_letters_at_reopen() {
    let name = unique("ttl");
    let b = open(&name).await;
    b.assert_exchange("dlx", "fanout", JsValue::UNDEFINED).await.unwrap();
    b.assert_queue("dead", JsValue::UNDEFINED).await.unwrap();
    b.bind_queue("dead", "dlx", "", JsValue::UNDEFINED).await.unwrap();
    b.assert_queue("short", json(r#"{"messageTtl": 150, "deadLetterExchange": "dlx"}"#)).await.unwrap();
    b.assert_queue("long", json(r#"{"messageTtl": 60000}"#)).await.unwrap();
    confirmed(b.send_to_queue("short", "expires".into(), persistent())).await.unwrap();
    confirmed(b.send_to_queue("long", "stays".into(), persistent())).await.unwrap();
    b.close().await;
    JsFuture::from(sleep(300.0)).await.unwrap();

    let b = open(&name).await;
    assert_eq!(b.message_count("short").await, Some(0));
    assert_eq!(drain(&b, "long").await, owned(&[("stays", false, 0)]));
    let dead = got(b.get("dead".into())).await;
    assert_eq!(content(&dead), "expires");
    let death = prop(&prop(&prop(&dead, "properties"), "headers"), "x-death");
    assert_eq!(prop(&Array::from(&death).get(0), "reason").as_string().as_deref(), Some("expired"));
    b.close().await;
}

#[wasm_bindgen_test]
async fn memory_storage_keeps_nothing_across_reopen() {
    let name = unique("memory");
    let b = JsBroker::open(Some(name.clone()), JsValue::from("memory")).await.unwrap();
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    confirmed(b.send_to_queue("q", "x".into(), persistent())).await.unwrap();
    b.close().await;
    let b = JsBroker::open(Some(name), JsValue::from("memory")).await.unwrap();
    assert!(b.message_count("q").await.is_none());
}

#[wasm_bindgen_test]
async fn foreign_and_corrupt_records_are_skipped_and_reported() {
    let name = unique("foreign");
    let b = open(&name).await;
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    confirmed(b.send_to_queue("q", "kept".into(), persistent())).await.unwrap();
    b.close().await;
    let db = format!("tabbit:{name}");
    JsFuture::from(put_foreign(&db, "segments", 9999.into(), "not bytes".into())).await.unwrap();
    let junk = js_sys::Uint8Array::from(&[1u8, 0xff, 0xff][..]);
    JsFuture::from(put_foreign(&db, "segments", 10000.into(), junk.into())).await.unwrap();
    JsFuture::from(put_foreign(&db, "queues", "odd".into(), js_sys::Uint8Array::new_with_length(0).into()))
        .await
        .unwrap();
    let b = open(&name).await;
    let problems: Vec<String> = b.problems().iter().filter_map(|p| p.as_string()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(drain(&b, "q").await, owned(&[("kept", false, 0)]));
    b.close().await;
}

#[wasm_bindgen_test]
async fn a_deep_queue_pages_bodies_out_and_back_in_order_across_reopen() {
    let name = unique("paging");
    let b = open(&name).await;
    b.assert_queue("deep", JsValue::UNDEFINED).await.unwrap();
    let n = 6000;
    let all: Array = (0..n).map(|i| b.send_to_queue("deep", format!("{i}").into(), persistent())).collect();
    JsFuture::from(Promise::all(&all)).await.unwrap();
    let info = b.queue_info("deep").await;
    let paged = prop(&info, "pagedOut").as_f64().unwrap() as u32;
    assert!(paged >= n - 2048 - 512, "bodies deep in the queue are paged out: {paged}");
    assert_eq!(prop(&info, "ready").as_f64(), Some(n as f64));
    // Take half, then reopen: the rest comes back, paged again, and drains in order.
    for i in 0..n / 2 {
        let m = got(b.get("deep".into())).await;
        assert_eq!(content(&m), i.to_string());
        b.ack(m, None).unwrap();
    }
    b.close().await;
    let b = open(&name).await;
    assert!(
        prop(&b.queue_info("deep").await, "pagedOut").as_f64().unwrap() > 0.0,
        "recovery leaves deep messages paged"
    );
    let rest = drain(&b, "deep").await;
    let want: Vec<String> = (n / 2..n).map(|i| i.to_string()).collect();
    assert_eq!(rest.into_iter().map(|m| m.0).collect::<Vec<_>>(), want);
    b.close().await;
}

#[wasm_bindgen_test]
async fn a_storage_adapter_object_keeps_the_broker_across_reopen() {
    let adapter = MapAdapter::new();
    let name = unique("adapter");
    let b = JsBroker::open(Some(name.clone()), adapter.clone()).await.unwrap();
    assert_eq!(b.storage(), "adapter");
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    confirmed(b.send_to_queue("q", "kept".into(), persistent())).await.unwrap();
    // A write the adapter refuses nacks the publishes it held, and the broker goes on.
    adapter.set_fail_next(true);
    let err = confirmed(b.send_to_queue("q", "refused".into(), persistent())).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(506.0));
    assert!(prop(&err, "message").as_string().unwrap().contains("disk on fire"));
    confirmed(b.send_to_queue("q", "after".into(), persistent())).await.unwrap();
    assert!(adapter.writes() >= 2.0);
    b.close().await;
    let b = JsBroker::open(Some(name), adapter.into()).await.unwrap();
    assert_eq!(drain(&b, "q").await, owned(&[("kept", false, 0), ("after", false, 0)]));
    let err = JsBroker::open(None, js_sys::Object::new().into()).await.err().unwrap();
    assert!(prop(&err, "message").as_string().unwrap().contains("needs a 'load' method"));
}

/// A broker on a fresh adapter, with durable queues "q" and "g".
async fn adapter_broker(tag: &str) -> (MapAdapter, JsBroker) {
    let adapter = MapAdapter::new();
    let b = JsBroker::open(Some(unique(tag)), adapter.clone()).await.unwrap();
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    b.assert_queue("g", JsValue::UNDEFINED).await.unwrap();
    (adapter, b)
}

/// What a crash would leave of queues "q" and "g": a broker opened on a snapshot of the
/// adapter's records, drained.
async fn crash(snapshot: MapAdapter) -> (Vec<(String, bool, u32)>, Vec<(String, bool, u32)>) {
    let b = JsBroker::open(Some(unique("crash")), snapshot.into()).await.unwrap();
    let out = (drain(&b, "q").await, drain(&b, "g").await);
    b.close().await;
    out
}

/// Bug 3 of the README's fault schedules: a stored message must not go out (to a
/// consumer or `get`) before the store says it may have (its queue's delivery horizon
/// covers it), so that a crash at any point brings back a message that may have been
/// seen with `redelivered` true, and one that was not with `redelivered` false.
#[wasm_bindgen_test]
async fn a_first_delivery_goes_out_only_once_the_store_covers_it() {
    let (adapter, b) = adapter_broker("marks").await;
    for (q, m) in [("q", "m1"), ("q", "m2"), ("g", "m3")] {
        confirmed(b.send_to_queue(q, m.into(), persistent())).await.unwrap();
    }
    // Writes stall: the deliveries (and the get) wait for the write of a horizon that covers them.
    adapter.hold();
    let seen = Array::new();
    let push = |to: &Array| -> Function {
        Function::new_with_args("to, m", "to.push(m)").bind1(&JsValue::NULL, to).unchecked_into()
    };
    b.ch.consume("q", push(&seen), JsValue::UNDEFINED).unwrap();
    let get = b.get("g".into());
    let answered = Array::new();
    Function::new_with_args("p, to", "p.then((m) => to.push(m))").call2(&JsValue::NULL, &get, &answered).unwrap();
    JsFuture::from(sleep(50.0)).await.unwrap();
    assert_eq!(seen.length(), 0, "delivered before the store covered it");
    assert_eq!(answered.length(), 0, "get answered before the store covered it");
    // A crash now: nothing was handed out, nothing is flagged.
    let expect = |r| (owned(&[("m1", r, 0), ("m2", r, 0)]), owned(&[("m3", r, 0)]));
    assert_eq!(crash(adapter.snapshot()).await, expect(false));
    adapter.release();
    let m3 = got(get).await;
    assert_eq!(content(&m3), "m3");
    assert_eq!(prop(&prop(&m3, "fields"), "redelivered").as_bool(), Some(false));
    for _ in 0..100 {
        if seen.length() == 2 {
            break;
        }
        JsFuture::from(sleep(10.0)).await.unwrap();
    }
    let contents: Vec<String> = seen.iter().map(|m| content(&m)).collect();
    assert_eq!(contents, ["m1", "m2"]);
    // A crash once they went out: all three come back flagged.
    assert_eq!(crash(adapter.snapshot()).await, expect(true));
    b.close().await;
}

/// Bug 4 of the README's fault schedules: storage that is full refuses the write of the
/// horizon a delivery waits for. The broker deletes the store's fence (a deletion, which
/// full storage takes), and the deliveries go; a crash then brings every stored message
/// back flagged. Once storage takes writes again, the fence goes back with the horizons.
#[wasm_bindgen_test]
async fn a_full_store_lets_deliveries_go_once_its_fence_is_gone_and_a_crash_flags_them() {
    let (adapter, b) = adapter_broker("full").await;
    for m in ["m1", "m2", "m3"] {
        confirmed(b.send_to_queue("q", m.into(), persistent())).await.unwrap();
    }
    adapter.set_full(true);
    let seen = Array::new();
    let push: Function = Function::new_with_args("to, m", "to.push(m)").bind1(&JsValue::NULL, &seen).unchecked_into();
    b.ch.consume("q", push, JsValue::UNDEFINED).unwrap();
    for _ in 0..200 {
        if seen.length() == 3 {
            break;
        }
        JsFuture::from(sleep(10.0)).await.unwrap();
    }
    let contents: Vec<String> = seen.iter().map(|m| content(&m)).collect();
    assert_eq!(contents, ["m1", "m2", "m3"], "delivered while storage is full");
    let err = confirmed(b.send_to_queue("g", "refused".into(), persistent())).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(506.0));
    let flagged = owned(&[("m1", true, 0), ("m2", true, 0), ("m3", true, 0)]);
    assert_eq!(crash(adapter.snapshot()).await, (flagged.clone(), vec![]), "no fence: all flagged");
    // Room again: the next write puts the fence back, with a horizon over m1..m3.
    adapter.set_full(false);
    confirmed(b.send_to_queue("g", "new".into(), persistent())).await.unwrap();
    assert_eq!(crash(adapter.snapshot()).await, (flagged, owned(&[("new", false, 0)])));
    b.close().await;
}

#[wasm_bindgen_test]
async fn another_context_upgrading_or_deleting_the_database_is_not_blocked() {
    let name = unique("versionchange");
    let db = format!("tabbit:{name}");
    let b = open(&name).await;
    b.assert_queue("q", JsValue::UNDEFINED).await.unwrap();
    confirmed(b.send_to_queue("q", "one".into(), persistent())).await.unwrap();
    // Deleting the database: the broker steps aside, then writes into a new one.
    JsFuture::from(delete_db(&db)).await.expect("not blocked by the open broker");
    confirmed(b.send_to_queue("q", "two".into(), persistent())).await.unwrap();
    assert_eq!(count(&name, "segments").await, 1, "written to the recreated database");
    // A newer version elsewhere: not blocked either; this broker's writes then fail clearly.
    JsFuture::from(upgrade_to(&db, 2)).await.expect("not blocked by the open broker");
    let err = confirmed(b.send_to_queue("q", "three".into(), persistent())).await.unwrap_err();
    assert_eq!(prop(&err, "code").as_f64(), Some(506.0));
    let message = prop(&err, "message").as_string().unwrap();
    assert!(message.contains("newer format"), "{message}");
    // The broker still serves from memory.
    assert_eq!(content(&got(b.get("q".into())).await), "one");
    b.close().await;
}
