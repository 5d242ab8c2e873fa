//! Issue "install pipeline v2", part 2.6: an MSK API 5xx whose body is not JSON (an
//! HTML page from a proxy or load balancer) is retried like any 5xx, then ends in 75.

use ksql_msk_testkit::msk::{Cluster, FakeMsk, GET_BOOTSTRAP_BROKERS};

use crate::support::{error_line, Host, REGION};

fn host_for(msk: &FakeMsk, c: &Cluster, extra: &str) -> Host {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"{}\"\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\ncluster_wait = \"3s\"\n{extra}",
        c.arn,
        msk.url()
    ));
    host
}

const PAGE: &str = "<html><body><h1>502 Bad Gateway</h1></body></html>";

#[test]
fn an_html_5xx_is_retried_then_temporary() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.answer_next_raw(GET_BOOTSTRAP_BROKERS, 502, PAGE);
    let out = host_for(&msk, &c, "").run(&["brokers"]);
    assert_eq!(out.code, 0, "one HTML 502 is retried: {out:?}");

    for _ in 0..3 {
        msk.answer_next_raw(GET_BOOTSTRAP_BROKERS, 502, PAGE);
    }
    let out = host_for(&msk, &c, "api_max_attempts = 3").run(&["brokers"]);
    assert_eq!(out.code, 75, "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("502"), "{line}");
    assert!(!line.contains("<html>"), "{line}");
}
