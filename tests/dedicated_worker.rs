//! The browser tests again, in a dedicated worker (no `window`, no DOM).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

mod web;
