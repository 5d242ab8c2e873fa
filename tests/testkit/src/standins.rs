//! The outside world of one agent, started together: a fake MSK API with one ACTIVE
//! cluster, and an artifact server that publishes signed ksqlDB-shaped releases and
//! aws-msk-iam-auth jars (with their `.sha256`). The `run`/`check` tests, the sandbox,
//! the systemd end-to-end test and the benchmarks all start their world from here, so
//! they agree on URLs, pins and layout.

use sha2::Digest;

use crate::artifacts::ArtifactServer;
use crate::msk::{Cluster, FakeMsk};
use crate::signing::TestKey;
use crate::tarball::TarballBuilder;

/// The bytes served as every aws-msk-iam-auth jar.
pub const IAM_JAR: &[u8] = b"PK\x03\x04 stand-in aws-msk-iam-auth jar";

/// A `bin/java` for `ksqldb.java_home` that answers `java -version` like Corretto.
pub fn java_script(version: &str) -> String {
    format!(
        "#!/bin/sh\necho 'openjdk version \"{version}\" 2025-04-15 LTS' >&2\n\
         echo 'OpenJDK Runtime Environment Corretto-{version}.6.1 (build {version}+6-LTS)' >&2\n"
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn major_minor(version: &str) -> &str {
    version.rfind('.').map_or(version, |i| &version[..i])
}

/// Where the artifact server publishes the archive of `version` (the layout of
/// packages.confluent.io: `/ksqldb/archive/<major.minor>/confluent-ksqldb-<v>.tar.gz`).
pub fn archive_path(version: &str) -> String {
    format!(
        "/ksqldb/archive/{}/confluent-ksqldb-{version}.tar.gz",
        major_minor(version)
    )
}

pub fn key_path(version: &str) -> String {
    format!("/ksqldb/archive/{}/archive.key", major_minor(version))
}

/// The layout of aws-msk-iam-auth's GitHub release assets.
pub fn jar_path(version: &str) -> String {
    format!("/aws-msk-iam-auth/releases/download/v{version}/aws-msk-iam-auth-{version}-all.jar")
}

/// Config lines that point one agent at the stand-ins, by section (TOML allows each
/// table once, so callers add their own keys to these and write the sections).
#[derive(Debug, Clone)]
pub struct ConfigParts {
    pub msk: String,
    pub ksqldb: String,
    pub iam_auth: String,
}

impl ConfigParts {
    /// A whole config: these parts plus `ksqldb_extra` and `[agent]` lines.
    pub fn toml(&self, ksqldb_extra: &str, agent: &str) -> String {
        format!(
            "[msk]\n{}\n[ksqldb]\n{}{}\n[iam_auth]\n{}\n[agent]\n{}\n",
            self.msk, self.ksqldb, ksqldb_extra, self.iam_auth, agent
        )
    }
}

pub struct Standins {
    pub msk: FakeMsk,
    pub cluster: Cluster,
    pub art: ArtifactServer,
    /// The key releases are signed with; its fingerprint is the pin.
    pub key: TestKey,
    pub region: String,
}

impl Standins {
    /// A fake MSK API with the ACTIVE cluster `cluster_name` and an empty artifact
    /// server, both on 127.0.0.1.
    pub fn start(cluster_name: &str, region: &str) -> Standins {
        Self::start_on("127.0.0.1".parse().expect("addr"), cluster_name, region)
    }

    /// [`Standins::start`] on address `ip` (free ports), e.g. in a network namespace
    /// that other hosts reach over a bridge.
    pub fn start_on(ip: std::net::IpAddr, cluster_name: &str, region: &str) -> Standins {
        let msk = FakeMsk::start_on((ip, 0).into());
        let cluster = Cluster::active(cluster_name, region);
        msk.add(cluster.clone());
        Standins {
            msk,
            cluster,
            art: ArtifactServer::start_on((ip, 0).into()),
            key: TestKey::generate("ksqlDB stand-in releases <releases@example.com>"),
            region: region.to_string(),
        }
    }

    /// Publish `tarball` as ksqlDB `version`: archive, armored detached signature, key.
    pub fn publish_tarball(&self, version: &str, tarball: &[u8]) {
        self.art.put(&archive_path(version), tarball.to_vec());
        self.art.put(
            &format!("{}.asc", archive_path(version)),
            self.key.sign(tarball, true),
        );
        self.art.put(&key_path(version), self.key.public_armored());
    }

    /// Publish a standard ksqlDB-shaped release whose `bin/ksql-server-start` is
    /// `server_start`, plus `extra` files (`path`, bytes, mode). Returns the archive.
    pub fn publish_release(
        &self,
        version: &str,
        server_start: &[u8],
        extra: &[(&str, &[u8], u32)],
    ) -> Vec<u8> {
        let mut builder = TarballBuilder::new(version).standard_with_start(server_start);
        for (path, bytes, mode) in extra {
            builder.file(path, bytes, *mode);
        }
        let tarball = builder.finish();
        self.publish_tarball(version, &tarball);
        tarball
    }

    /// Publish aws-msk-iam-auth `version`'s jar and its `.sha256`.
    pub fn publish_jar(&self, version: &str) {
        self.art.put(&jar_path(version), IAM_JAR);
        self.art.put(
            &format!("{}.sha256", jar_path(version)),
            format!(
                "{}  aws-msk-iam-auth-{version}-all.jar\n",
                sha256_hex(IAM_JAR)
            ),
        );
    }

    /// Config lines for ksqlDB `ksqldb_version` and aws-msk-iam-auth `iam_version`,
    /// with the signing key and the jar pinned.
    pub fn config(&self, ksqldb_version: &str, iam_version: &str) -> ConfigParts {
        let art = self.art.server.url();
        ConfigParts {
            msk: format!(
                "cluster_arn = \"{}\"\nregion = \"{}\"\nendpoint_url = \"{}\"\n",
                self.cluster.arn,
                self.region,
                self.msk.url()
            ),
            ksqldb: format!(
                "version = \"{ksqldb_version}\"\n\
                 archive_url = \"{art}/ksqldb/archive/{{major_minor}}/confluent-ksqldb-{{version}}.tar.gz\"\n\
                 key_url = \"{art}/ksqldb/archive/{{major_minor}}/archive.key\"\n\
                 trusted_fingerprints = [\"{}\"]\n",
                self.key.fingerprint()
            ),
            iam_auth: format!(
                "version = \"{iam_version}\"\n\
                 jar_url = \"{art}/aws-msk-iam-auth/releases/download/v{{version}}/aws-msk-iam-auth-{{version}}-all.jar\"\n\
                 sha256 = \"{}\"\n",
                sha256_hex(IAM_JAR)
            ),
        }
    }
}
