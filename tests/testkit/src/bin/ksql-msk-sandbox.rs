//! The sandbox: the agent's job end to end on this machine against local stand-ins
//! (fake MSK API and IMDS on loopback), in a temporary directory. Run it with
//! `tests/sandbox`, which builds everything first.

use std::path::{Path, PathBuf};
use std::process::Command;

use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::msk::{Cluster, FakeMsk};

const REGION: &str = "eu-west-1";

fn main() {
    if let Err(e) = sandbox() {
        eprintln!("sandbox: {e:#}");
        std::process::exit(1);
    }
}

/// The agent binary: beside this one in target/<profile>/.
fn agent_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let agent = me.with_file_name("ksql-msk");
    anyhow::ensure!(
        agent.exists(),
        "{} not found: run `cargo build --workspace --bins` first",
        agent.display()
    );
    Ok(agent)
}

fn banner(text: &str) {
    println!("\n==> {text}");
}

struct Agent {
    bin: PathBuf,
    config: PathBuf,
    imds: String,
}

impl Agent {
    /// Run the agent as a host would, with credentials and region from the fake IMDS.
    fn run(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        println!("$ ksql-msk {}", args.join(" "));
        let home = self.config.parent().unwrap_or(Path::new("/"));
        let out = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("KSQL_MSK_CONFIG", &self.config)
            .env("KSQL_MSK_LOG_FORMAT", "stderr")
            .env("AWS_CONFIG_FILE", home.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.imds)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            println!("  [log] {line}");
        }
        print!("{stdout}");
        let code = out.status.code().unwrap_or(-1);
        println!("  (exit {code})");
        Ok((code, stdout))
    }
}

fn sandbox() -> anyhow::Result<()> {
    let bin = agent_binary()?;
    let dir = tempfile_dir()?;
    banner("starting stand-ins on loopback");
    let msk = FakeMsk::start();
    let cluster = Cluster::active("sandbox", REGION);
    msk.add(cluster.clone());
    msk.add(Cluster::active("sandbox-2", REGION));
    let imds = FakeImds::start(REGION, "10.0.42.7");
    println!("  fake MSK API   {}", msk.url());
    println!("  fake IMDSv2    {}", imds.url());

    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let config = etc.join("ksql-msk.toml");
    std::fs::write(
        &config,
        format!(
            "[msk]\ncluster_name = \"sandbox\"\nendpoint_url = \"{}\"\n\n[properties]\n\"ksql.service.id\" = \"sandbox_\"\n\n[agent]\nstate_dir = \"{}\"\n",
            msk.url(),
            dir.join("state").display()
        ),
    )?;
    banner(&format!("config {}", config.display()));
    print!("{}", std::fs::read_to_string(&config)?);

    let agent = Agent {
        bin,
        config,
        imds: imds.url(),
    };
    banner("phase 1-2: discover the IAM bootstrap brokers (name lookup, region and credentials from IMDS)");
    let (code, brokers) = agent.run(&["brokers"])?;
    anyhow::ensure!(code == 0, "brokers failed");
    anyhow::ensure!(
        Some(brokers.trim()) == cluster.brokers_field("bootstrapBrokerStringSaslIam"),
        "unexpected broker string"
    );
    for connectivity in ["public", "vpc"] {
        agent.run(&["config", "set", "msk.connectivity", connectivity])?;
        agent.run(&["brokers"])?;
    }
    agent.run(&["config", "set", "msk.connectivity", "private"])?;

    banner("the IAM policy the instance role needs");
    agent.run(&["iam-policy"])?;

    banner("what the fake MSK API was asked");
    for req in msk.server.requests() {
        println!("  {} {}", req.method, req.target);
    }
    banner("done; stand-ins stopped, scratch dir removed");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ksql-msk-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
