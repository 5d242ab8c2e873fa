//! The Kafka doctor's response decoders on arbitrary bytes, as a hostile or broken
//! broker could send them: the first byte picks the API, the rest is the frame after
//! its size prefix (correlation id, header, body). It must not panic, must not
//! allocate beyond the input (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch a
//! count taken from the wire), and a refusal is one line.
#![no_main]

use ksql_msk::kafka::{decode_any, wire, DECODED};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, frame)) = data.split_first() else {
        return;
    };
    let api = DECODED[usize::from(*pick) % DECODED.len()];
    if let Some(prefix) = frame.get(..4) {
        let mut p = [0u8; 4];
        p.copy_from_slice(prefix);
        let _ = wire::frame_size(p);
    }
    match wire::response_body(frame, 1, api.flexible) {
        Ok(body) => {
            if let Err(e) = decode_any(api, body) {
                let line = e.to_string();
                assert!(!line.contains('\n'), "{line:?}");
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
