//! The mesh in one context: a broker joined with `mesh` hosts itself when no other context
//! does, and what other scripts of the origin post on its channel cannot hurt it.

use js_sys::{Array, Function, Promise, Uint8Array};
use tabbit::wasm::RawBroker;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use super::{content, prop, resolved, unique};

#[wasm_bindgen(module = "/tests/web/helpers.js")]
extern "C" {
    #[wasm_bindgen(js_name = postRaw)]
    fn post_raw(name: &str, values: &Array);
    fn sleep(ms: f64) -> Promise;
}

fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

#[wasm_bindgen_test]
async fn a_lone_context_hosts_and_drops_posts_that_are_not_tabbit_frames() {
    let name = unique("mesh-bad");
    let broker =
        RawBroker::open(name.clone(), "memory".into(), Some(true), None, JsValue::UNDEFINED, None).await.unwrap();
    assert!(broker.hosting(), "the first context on a name hosts it");
    let conn = broker.connect();
    let ch = conn.create_channel(false, Function::new_no_args("")).unwrap();
    ch.assert_queue("q", JsValue::UNDEFINED).unwrap();

    let bad = Array::new();
    bad.push(&"hello".into()); // not bytes
    bad.push(&js_sys::Object::new()); // not bytes
    bad.push(&bytes(&[0x7b, 0x22])); // not a tabbit post
    bad.push(&bytes(&[0xB7, 99, 1, 0])); // another protocol version
    bad.push(&bytes(&[0xB7, 1, 5, 1, 0, 1, 9])); // a section that claims more than the post holds
    bad.push(&bytes(&[0xB7, 1, 5, 1, 0, 1, 1, 0xEE])); // an unknown frame
    post_raw(&name, &bad);
    let mut dropped = 0.0;
    for _ in 0..100 {
        dropped = prop(&resolved(Ok(broker.stats())).await.unwrap(), "droppedPosts").as_f64().unwrap();
        if dropped >= 6.0 {
            break;
        }
        JsFuture::from(sleep(10.0)).await.unwrap();
    }
    assert_eq!(dropped, 6.0, "every bad post is dropped and counted");

    // The broker is unharmed.
    ch.publish("", "q", "still here".into(), JsValue::UNDEFINED, None).unwrap();
    let got = JsFuture::from(ch.get("q".into(), JsValue::UNDEFINED)).await.unwrap();
    assert_eq!(content(&got), "still here");
    conn.close();
    broker.close().await;
}

#[wasm_bindgen_test]
async fn after_close_another_broker_on_the_name_hosts() {
    let name = unique("mesh-reopen");
    let first =
        RawBroker::open(name.clone(), "memory".into(), Some(true), None, JsValue::UNDEFINED, None).await.unwrap();
    assert!(first.hosting());
    first.close().await;
    let second = RawBroker::open(name, "memory".into(), Some(true), None, JsValue::UNDEFINED, None).await.unwrap();
    assert!(second.hosting(), "closing released the host lock");
    second.close().await;
}
