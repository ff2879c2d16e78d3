//! Bad input: stored HTTP requests read back for replay. `decode_request` on damaged and cut
//! valid records (arbitrary bytes are covered next to the decoder): a typed `DecodeError` or a
//! request, never a panic.
//!
//! cargo-fuzz needs a nightly toolchain; this is the stable route: proptest, modest case counts.
#![cfg(feature = "dead-letter")]

use bytes::Bytes;
use proptest::prelude::*;
use steadfast::dead_letter::EncodeRequest;
use steadfast_http::BufferedBody;
use steadfast_http::dead_letter::{HttpRequestEncoder, decode_request};

fn stored(path: &str, header: &str, body: &[u8]) -> Bytes {
    let request = http::Request::post(format!("https://api.example.com/{path}?key=sk-1&q=2"))
        .header("authorization", "Bearer sk-1")
        .header("x-trace", header)
        .body(BufferedBody::from(Bytes::copy_from_slice(body)))
        .unwrap();
    HttpRequestEncoder::new().encode(&request).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_or_cut_stored_request_is_a_typed_error_or_a_request(
        path in "[a-z0-9/]{0,20}",
        header in "[ -~]{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = stored(&path, &header, &body).to_vec();
        // Undamaged, it decodes to the same method, path and body.
        let request = decode_request(&bytes).unwrap();
        prop_assert_eq!(request.method(), http::Method::POST);
        let prefix = format!("/{path}");
        prop_assert!(request.uri().path().starts_with(&prefix), "{}", request.uri());
        for (at, byte) in &damage {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        for input in [&bytes[..], &bytes[..cut.index(bytes.len())]] {
            // `DecodeError` is a typed error (non-exhaustive); it must explain itself.
            if let Err(error) = decode_request(input) {
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
}
