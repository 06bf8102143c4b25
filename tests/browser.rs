//! Browser tests in a page: run by `wasm-pack test --headless --chrome` (see scripts/test).
//!
//! Every test crate meant for the browser needs `wasm_bindgen_test_configure!(...)`:
//! without it `wasm-pack test --chrome` silently runs nothing (scripts/test fails on 0 tests).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod web;
