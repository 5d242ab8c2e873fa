//! The fake MSK API as a standalone process, for the benchmark (`bench/run`) and for
//! poking at the agent by hand: one ACTIVE provisioned cluster with IAM brokers.
//!
//! `fake-msk [--port N] [--name NAME] [--region REGION]` prints `url=...` and `arn=...`
//! lines on stdout once it listens, then serves until it is killed.

use std::io::Write;
use std::net::SocketAddr;

use ksql_msk_testkit::msk::{Cluster, FakeMsk};

fn main() {
    if let Err(e) = serve() {
        eprintln!("fake-msk: {e:#}");
        std::process::exit(2);
    }
}

fn serve() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut name = "bench".to_string();
    let mut region = "us-east-1".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--port" => port = value()?.parse()?,
            "--name" => name = value()?,
            "--region" => region = value()?,
            "-h" | "--help" => {
                println!("usage: fake-msk [--port N] [--name NAME] [--region REGION]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let msk = FakeMsk::start_on(addr);
    let cluster = Cluster::active(&name, &region);
    msk.add(cluster.clone());
    let mut out = std::io::stdout().lock();
    writeln!(out, "url={}", msk.url())?;
    writeln!(out, "arn={}", cluster.arn)?;
    out.flush()?;
    drop(out);
    // Serve until killed; the server runs on its own thread.
    loop {
        std::thread::park();
    }
}
