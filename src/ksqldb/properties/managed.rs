//! The keys ksql-msk owns in ksql-server.properties, computed from settings and
//! discovery (DESIGN.md phase 5). `[properties]` overrides from the config come last and
//! win over everything.

use crate::config::Settings;
use crate::msk::discovery::Discovered;

pub const IAM_LOGIN_MODULE: &str = "software.amazon.msk.auth.iam.IAMLoginModule";
pub const IAM_CALLBACK_HANDLER: &str = "software.amazon.msk.auth.iam.IAMClientCallbackHandler";

/// MSK's own production defaults assume three brokers (RF 3, min ISR 2).
const PRODUCTION_BROKERS: usize = 3;

/// The JAAS line for aws-msk-iam-auth, options in its README's syntax.
pub fn jaas_config(settings: &Settings) -> String {
    let mut jaas = format!("{IAM_LOGIN_MODULE} required");
    if let Some(arn) = &settings.iam_auth.role_arn {
        // configure() refuses role ARNs with characters IAM does not allow (quotes...).
        jaas.push_str(&format!(" awsRoleArn=\"{arn}\""));
    }
    if settings.iam_auth.debug_creds {
        jaas.push_str(" awsDebugCreds=true");
    }
    jaas.push(';');
    jaas
}

/// The first listener that binds a wildcard address, as (scheme, port).
pub fn wildcard_listener(listeners: &str) -> Option<(String, u16)> {
    listeners.split(',').map(str::trim).find_map(|l| {
        let url = url::Url::parse(l).ok()?;
        let wildcard = match url.host()? {
            url::Host::Ipv4(ip) => ip.is_unspecified(),
            url::Host::Ipv6(ip) => ip.is_unspecified(),
            url::Host::Domain(_) => false,
        };
        wildcard.then(|| Some((url.scheme().to_string(), url.port_or_known_default()?)))?
    })
}

/// The listener other ksqlDB servers reach this one on: `ksql.internal.listener` when
/// the operator sets one (`ksqldb.internal_listener`, or that key in `[properties]`,
/// which wins), else `listeners`. ksqlDB's "Configuring Listeners of a ksqlDB Cluster":
/// with an internal listener the nodes talk on it, and `ksql.advertised.listener` must
/// name it when it binds a wildcard address.
pub fn inter_node_listeners(settings: &Settings) -> &str {
    settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == INTERNAL_LISTENER)
        .map(|(_, v)| v.as_str())
        .or(settings.ksqldb.internal_listener.as_deref())
        .unwrap_or(&settings.ksqldb.listeners)
}

pub const INTERNAL_LISTENER: &str = "ksql.internal.listener";

/// Brokers the replication settings are sized for: MSK Serverless replicates three-way
/// itself; otherwise the brokers in the bootstrap string (if MSK lists fewer than the
/// cluster has, that only lowers what is asked for, never breaks writes).
fn broker_count(discovered: &Discovered) -> usize {
    if discovered.serverless {
        PRODUCTION_BROKERS
    } else {
        discovered.brokers.addrs.len()
    }
}

/// Every managed key with its value, in the order they are written. `advertised_host`
/// is this host's address (IMDS local-ipv4); `ksql.advertised.listener` is set only when
/// it is known and the inter-node listener ([`inter_node_listeners`]) binds a wildcard,
/// with that listener's scheme and port.
/// `rocksdb`: how RocksDB is held on this host (its keys when ksql-msk's setter bounds it).
pub fn managed_properties(
    settings: &Settings,
    discovered: &Discovered,
    advertised_host: Option<&str>,
    rocksdb: &crate::ksqldb::memory::RocksDb,
) -> Vec<(String, String)> {
    let mut props: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| props.push((k.to_string(), v));
    put("bootstrap.servers", discovered.brokers.raw.clone());
    put("security.protocol", "SASL_SSL".into());
    put("sasl.mechanism", "AWS_MSK_IAM".into());
    put("sasl.jaas.config", jaas_config(settings));
    put(
        "sasl.client.callback.handler.class",
        IAM_CALLBACK_HANDLER.into(),
    );
    put("listeners", settings.ksqldb.listeners.clone());
    if let Some(internal) = &settings.ksqldb.internal_listener {
        put(INTERNAL_LISTENER, internal.clone());
    }
    if let (Some(host), Some((scheme, port))) = (
        advertised_host,
        wildcard_listener(inter_node_listeners(settings)),
    ) {
        put(
            "ksql.advertised.listener",
            format!("{scheme}://{host}:{port}"),
        );
    }
    // ksqlDB's default is /tmp/kafka-streams: lost to PrivateTmp and tmp cleaners.
    put(
        "ksql.streams.state.dir",
        settings.streams_dir().display().to_string(),
    );
    // ksqlDB's command-topic backup (src/metastore.rs), on for every version that
    // takes the location alone.
    if crate::ksqldb::metastore::supports_backup_location(&settings.ksqldb.version) {
        put(
            crate::ksqldb::metastore::LOCATION_KEY,
            crate::ksqldb::metastore::backup_dir(settings)
                .display()
                .to_string(),
        );
    }
    // RocksDB held to its share of the memory budget (src/ksqldb/memory.rs).
    for (k, v) in rocksdb.properties() {
        put(&k, v);
    }
    // Replication sized to the cluster: MSK's production values from three brokers up,
    // what the brokers can hold below that (RF 3 on two brokers breaks every write).
    let rf = broker_count(discovered).clamp(1, PRODUCTION_BROKERS);
    let min_isr = rf.saturating_sub(1).max(1);
    put("ksql.internal.topic.replicas", rf.to_string());
    put(
        "ksql.internal.topic.min.insync.replicas",
        min_isr.to_string(),
    );
    put("ksql.streams.replication.factor", rf.to_string());
    put(
        "ksql.streams.topic.min.insync.replicas",
        min_isr.to_string(),
    );
    put("ksql.streams.producer.acks", "all".into());
    put(
        "ksql.logging.processing.topic.replication.factor",
        rf.to_string(),
    );
    put("ksql.streams.num.standby.replicas", "1".into());
    // MSK IAM brokers refuse bursts of new connections ("too many connects").
    put("reconnect.backoff.ms", "1000".into());
    // ksqldb.auth = "basic": HTTP basic authentication (src/ksqldb/auth.rs).
    props.extend(crate::ksqldb::auth::properties(settings));
    for (k, v) in &settings.properties {
        match props.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => props.push((k.clone(), v.clone())),
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ksqldb::memory::RocksDb;
    use crate::msk::discovery::Brokers;

    const ARN: &str =
        "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abcd1234-5678-90ab-cdef-1234567890ab-3";

    pub(crate) fn settings(extra: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ksql-msk.toml");
        std::fs::write(
            &path,
            format!(
                "[msk]\ncluster_arn = \"{ARN}\"\n[agent]\nstate_dir = \"/var/lib/ksql-msk\"\n{extra}"
            ),
        )
        .unwrap();
        crate::config::load(&path).unwrap()
    }

    pub(crate) fn discovered(brokers: &str) -> Discovered {
        Discovered {
            cluster_arn: ARN.into(),
            cluster_name: "demo".into(),
            serverless: false,
            state: "ACTIVE".into(),
            brokers: Brokers::parse(brokers).unwrap(),
        }
    }

    fn get<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
        let found: Vec<&str> = props
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(found.len() <= 1, "{key} listed {} times", found.len());
        found.first().copied()
    }

    const THREE: &str = "b-1.x:9098,b-2.x:9098,b-3.x:9098";

    #[test]
    fn three_brokers_get_msk_production_defaults() {
        let p = managed_properties(
            &settings(""),
            &discovered(THREE),
            Some("10.0.0.7"),
            &RocksDb::Off,
        );
        let want = [
            ("bootstrap.servers", THREE),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "AWS_MSK_IAM"),
            (
                "sasl.jaas.config",
                "software.amazon.msk.auth.iam.IAMLoginModule required;",
            ),
            (
                "sasl.client.callback.handler.class",
                "software.amazon.msk.auth.iam.IAMClientCallbackHandler",
            ),
            ("listeners", "http://0.0.0.0:8088"),
            ("ksql.advertised.listener", "http://10.0.0.7:8088"),
            ("ksql.streams.state.dir", "/var/lib/ksql-msk/streams"),
            (
                "ksql.metastore.backup.location",
                "/var/lib/ksql-msk/metastore",
            ),
            ("ksql.internal.topic.replicas", "3"),
            ("ksql.internal.topic.min.insync.replicas", "2"),
            ("ksql.streams.replication.factor", "3"),
            ("ksql.streams.topic.min.insync.replicas", "2"),
            ("ksql.streams.producer.acks", "all"),
            ("ksql.logging.processing.topic.replication.factor", "3"),
            ("ksql.streams.num.standby.replicas", "1"),
            ("reconnect.backoff.ms", "1000"),
        ];
        for (k, v) in want {
            assert_eq!(get(&p, k), Some(v), "{k}");
        }
        assert_eq!(p.len(), want.len());
    }

    #[test]
    fn fewer_brokers_get_what_they_can_hold() {
        for (brokers, rf, isr) in [
            ("b-1.x:9098", "1", "1"),
            ("b-1.x:9098,b-2.x:9098", "2", "1"),
            ("a:1,b:1,c:1,d:1,e:1,f:1", "3", "2"),
        ] {
            let p = managed_properties(&settings(""), &discovered(brokers), None, &RocksDb::Off);
            assert_eq!(
                get(&p, "ksql.internal.topic.replicas"),
                Some(rf),
                "{brokers}"
            );
            assert_eq!(get(&p, "ksql.streams.replication.factor"), Some(rf));
            assert_eq!(
                get(&p, "ksql.logging.processing.topic.replication.factor"),
                Some(rf)
            );
            assert_eq!(
                get(&p, "ksql.internal.topic.min.insync.replicas"),
                Some(isr)
            );
            assert_eq!(get(&p, "ksql.streams.topic.min.insync.replicas"), Some(isr));
        }
    }

    #[test]
    fn serverless_counts_as_three_way_replicated() {
        let mut d = discovered("boot-abc.c1.kafka-serverless.eu-west-1.amazonaws.com:9098");
        d.serverless = true;
        let p = managed_properties(&settings(""), &d, None, &RocksDb::Off);
        assert_eq!(get(&p, "ksql.streams.replication.factor"), Some("3"));
    }

    #[test]
    fn jaas_options_for_role_and_debug() {
        let s = settings(
            "[iam_auth]\nrole_arn = \"arn:aws:iam::123456789012:role/msk\"\ndebug_creds = true\n",
        );
        let p = managed_properties(&s, &discovered(THREE), None, &RocksDb::Off);
        assert_eq!(
            get(&p, "sasl.jaas.config"),
            Some(
                "software.amazon.msk.auth.iam.IAMLoginModule required \
                 awsRoleArn=\"arn:aws:iam::123456789012:role/msk\" awsDebugCreds=true;"
            )
        );
    }

    #[test]
    fn advertised_listener_only_for_wildcards_with_a_known_host() {
        let s = settings("[ksqldb]\nlisteners = \"http://127.0.0.1:8088, https://[::]:8443\"\n");
        let p = managed_properties(&s, &discovered(THREE), Some("10.0.0.7"), &RocksDb::Off);
        assert_eq!(
            get(&p, "ksql.advertised.listener"),
            Some("https://10.0.0.7:8443")
        );
        let p = managed_properties(&s, &discovered(THREE), None, &RocksDb::Off);
        assert_eq!(get(&p, "ksql.advertised.listener"), None);
        let s = settings("[ksqldb]\nlisteners = \"http://10.0.0.9:8088\"\n");
        let p = managed_properties(&s, &discovered(THREE), Some("10.0.0.7"), &RocksDb::Off);
        assert_eq!(get(&p, "ksql.advertised.listener"), None);
    }

    /// ksqlDB's "dual non-routable listeners": a wildcard internal listener needs
    /// `ksql.advertised.listener` on this host's address with the internal port; a
    /// routable one is advertised by ksqlDB itself.
    #[test]
    fn an_internal_listener_is_written_and_advertised_instead_of_the_client_one() {
        let s = settings(
            "[ksqldb]\nlisteners = \"http://0.0.0.0:8088\"\ninternal_listener = \"https://0.0.0.0:8099\"\n",
        );
        let p = managed_properties(&s, &discovered(THREE), Some("10.0.0.7"), &RocksDb::Off);
        assert_eq!(get(&p, "listeners"), Some("http://0.0.0.0:8088"));
        assert_eq!(
            get(&p, "ksql.internal.listener"),
            Some("https://0.0.0.0:8099")
        );
        assert_eq!(
            get(&p, "ksql.advertised.listener"),
            Some("https://10.0.0.7:8099")
        );
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        let at = |k: &str| names.iter().position(|n| *n == k).unwrap();
        assert_eq!(at("ksql.internal.listener"), at("listeners") + 1);

        let s = settings("[ksqldb]\ninternal_listener = \"http://10.0.0.7:8099\"\n");
        let p = managed_properties(&s, &discovered(THREE), Some("10.0.0.7"), &RocksDb::Off);
        assert_eq!(
            get(&p, "ksql.internal.listener"),
            Some("http://10.0.0.7:8099")
        );
        assert_eq!(get(&p, "ksql.advertised.listener"), None, "{p:?}");

        // Set through [properties] instead, it still decides what is advertised.
        let s = settings("[properties]\n\"ksql.internal.listener\" = \"http://[::]:8099\"\n");
        let p = managed_properties(&s, &discovered(THREE), Some("10.0.0.7"), &RocksDb::Off);
        assert_eq!(get(&p, "ksql.internal.listener"), Some("http://[::]:8099"));
        assert_eq!(
            get(&p, "ksql.advertised.listener"),
            Some("http://10.0.0.7:8099")
        );
        // Without one, nothing is written for it.
        let p = managed_properties(
            &settings(""),
            &discovered(THREE),
            Some("10.0.0.7"),
            &RocksDb::Off,
        );
        assert_eq!(get(&p, "ksql.internal.listener"), None);
    }

    #[test]
    fn overrides_win_and_new_ones_follow() {
        let s = settings(
            "[properties]\n\"ksql.streams.replication.factor\" = 2\n\"ksql.service.id\" = \"svc_\"\n",
        );
        let p = managed_properties(&s, &discovered(THREE), None, &RocksDb::Off);
        assert_eq!(get(&p, "ksql.streams.replication.factor"), Some("2"));
        assert_eq!(
            p.last().unwrap(),
            &("ksql.service.id".into(), "svc_".into())
        );
    }

    #[test]
    fn the_backup_location_is_set_for_versions_that_take_it_alone() {
        let p = managed_properties(
            &settings("[ksqldb]\nversion = \"0.12.0\"\n"),
            &discovered(THREE),
            None,
            &RocksDb::Off,
        );
        assert_eq!(get(&p, "ksql.metastore.backup.location"), None);
        let s = settings(
            "[ksqldb]\nversion = \"0.29.0\"\n[properties]\n\"ksql.metastore.backup.location\" = \"/srv/b\"\n",
        );
        let p = managed_properties(&s, &discovered(THREE), None, &RocksDb::Off);
        assert_eq!(get(&p, "ksql.metastore.backup.location"), Some("/srv/b"));
    }

    #[test]
    fn a_bounded_rocksdb_names_the_setter_and_its_share_and_an_operators_setter_wins() {
        let bounded = RocksDb::Bounded {
            jar: "/usr/share/ksql-msk/java/ksql-msk-rocksdb.jar".into(),
            cache_bytes: 2_147_483_648,
        };
        let p = managed_properties(&settings(""), &discovered(THREE), None, &bounded);
        assert_eq!(
            get(&p, "ksql.streams.rocksdb.config.setter"),
            Some("ksqlmsk.rocksdb.BoundedMemoryConfigSetter")
        );
        assert_eq!(get(&p, "ksql.msk.rocksdb.cache.bytes"), Some("2147483648"));
        // Unbounded: neither key.
        for r in [
            RocksDb::Off,
            RocksDb::UnknownMemory,
            RocksDb::NoJar("/x".into()),
        ] {
            let p = managed_properties(&settings(""), &discovered(THREE), None, &r);
            assert_eq!(get(&p, "ksql.streams.rocksdb.config.setter"), None, "{r:?}");
            assert_eq!(get(&p, "ksql.msk.rocksdb.cache.bytes"), None, "{r:?}");
        }
        // [properties] wins, as for every managed key.
        let s = settings("[properties]\n\"ksql.msk.rocksdb.cache.bytes\" = \"1048576\"\n");
        let p = managed_properties(&s, &discovered(THREE), None, &bounded);
        assert_eq!(get(&p, "ksql.msk.rocksdb.cache.bytes"), Some("1048576"));
    }
}
