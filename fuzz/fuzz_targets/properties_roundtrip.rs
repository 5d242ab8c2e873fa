//! The properties parser on arbitrary bytes: it must not panic, an unedited document
//! must render back byte for byte, and edits must render to bytes that read back as
//! intended (render_checked re-parses and compares what Java would read).
#![no_main]

use ksql_msk::ksqldb::properties::Document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut doc) = Document::parse(data) else {
        return;
    };
    assert_eq!(doc.render(), data, "parse -> render is not the identity");
    // Edit keys the input is likely to contain, with values that need escaping.
    let keys = doc.keys();
    if let Some(first) = keys.first() {
        doc.set(first, " =:#!\\\t\n\u{e9}\u{1F600}");
    }
    if let Some(last) = keys.last() {
        doc.remove(last);
    }
    doc.set("ksql.fuzz", "");
    let out = doc
        .render_checked()
        .expect("edited document does not read back as written");
    let again = Document::parse(&out).expect("rendered output does not parse");
    assert_eq!(again.get("ksql.fuzz").as_deref(), Some(""));
});
