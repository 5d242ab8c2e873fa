//! `[metrics] jmx_port`: the JVM's own JMX agent on a port bound to 127.0.0.1 only.
//!
//! What each option does, from the JDK's `conf/management/management.properties` and
//! `sun.management.jmxremote.ConnectorBootstrap`:
//! - `com.sun.management.jmxremote.port`: start the RMI connector, its registry on this
//!   port;
//! - `com.sun.management.jmxremote.rmi.port`: the port the connector server itself is
//!   exported on (random otherwise); the same port, so one port is all a port forward
//!   needs;
//! - `com.sun.management.jmxremote.host`: the address both sockets bind (the registry
//!   and, with SSL off, the connector server); without it they bind every interface;
//! - `java.rmi.server.hostname`: the address written into the stub the registry hands
//!   out, which the client connects to next: 127.0.0.1 works through an SSM port
//!   forward, the host's own address would not;
//! - `authenticate=false`, `ssl=false`: nothing to manage on the host; the loopback
//!   binding is what keeps the network out;
//! - `com.sun.management.jmxremote.local.only=true` (the JDK's default, set so that a
//!   changed `management.properties` cannot turn it off): not read for the port above,
//!   but for the *local* connector that the JVM starts beside it whenever
//!   `jmxremote.port` is set (`Agent.startAgent` → `startLocalManagementAgent`, the one
//!   `jconsole <pid>` uses). That one listens on an ephemeral port of every interface
//!   (`LocalRMIServerSocketFactory` has no bind address) and closes each connection
//!   that does not come from an address of this host; with `local.only=false` it would
//!   take connections from anywhere, unauthenticated.
//!
//! ksqlDB's `ksql-run-class` uses `KSQL_JMX_OPTS` as given (its own default, used when
//! it is empty, has no host binding) and appends `-Dcom.sun.management.jmxremote.port=`
//! `$JMX_PORT` when that is set, so the agent sets `KSQL_JMX_OPTS` whole and config
//! validation refuses `JMX_PORT` and `KSQL_JMX_OPTS` in `[ksqldb.env]` while
//! `jmx_port` is set. `ksqldb.jvm_opts` comes after it on the command line: a `-D`
//! there still wins, deliberately.

/// The loopback address every JMX socket binds and every stub names.
pub const HOST: &str = "127.0.0.1";

/// `KSQL_JMX_OPTS` for JMX on `port`, loopback only.
pub fn options(port: u16) -> String {
    [
        "-Dcom.sun.management.jmxremote".to_string(),
        format!("-Dcom.sun.management.jmxremote.port={port}"),
        format!("-Dcom.sun.management.jmxremote.rmi.port={port}"),
        format!("-Dcom.sun.management.jmxremote.host={HOST}"),
        format!("-Djava.rmi.server.hostname={HOST}"),
        "-Dcom.sun.management.jmxremote.authenticate=false".to_string(),
        "-Dcom.sun.management.jmxremote.ssl=false".to_string(),
        "-Dcom.sun.management.jmxremote.local.only=true".to_string(),
    ]
    .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_bind_registry_and_connector_to_loopback_on_one_port() {
        assert_eq!(
            super::options(9010),
            "-Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.port=9010 \
             -Dcom.sun.management.jmxremote.rmi.port=9010 \
             -Dcom.sun.management.jmxremote.host=127.0.0.1 -Djava.rmi.server.hostname=127.0.0.1 \
             -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false \
             -Dcom.sun.management.jmxremote.local.only=true"
        );
    }
}
