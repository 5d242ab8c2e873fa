#!/usr/bin/env bash
# The manual pipeline the agent competes with: what an EC2 user-data script does to
# install ksqlDB for MSK IAM by hand. Same inputs as the agent (bench/run passes them):
# archive + detached .asc signature + signing key, pinned fingerprint, IAM auth jar
# pinned by SHA-256, the MSK API for the brokers. Sequential, as such scripts are.
#
# Usage (bench/run calls it; every variable is required):
#   ARCHIVE_URL=... SIGNATURE_URL=... KEY_URL=... FINGERPRINT=... JAR_URL=... \
#   JAR_SHA256=... MSK_URL=... CLUSTER_ARN=... REGION=... VERSION=... DEST=... \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... bench/manual-install.sh
#
# Brokers: a real script runs `aws kafka get-bootstrap-brokers` (the AWS CLI alone takes
# several hundred ms to start); here curl signs the same API call with SigV4, which is
# cheaper: a choice in the manual pipeline's favour.
set -euo pipefail

for v in ARCHIVE_URL SIGNATURE_URL KEY_URL FINGERPRINT JAR_URL JAR_SHA256 MSK_URL \
    CLUSTER_ARN REGION VERSION DEST AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
    if [[ -z "${!v:-}" ]]; then
        echo "manual-install: $v is not set" >&2
        exit 2
    fi
done

mkdir -p "$DEST/download"
cd "$DEST/download"

# 1. Fetch the archive, its signature and the signing key.
curl -fsS -o ksqldb.tar.gz "$ARCHIVE_URL"
curl -fsS -o ksqldb.tar.gz.asc "$SIGNATURE_URL"
curl -fsS -o archive.key "$KEY_URL"

# 2. Verify: import the key into a throwaway keyring, check the signature and that it
#    was made by the pinned key.
GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'rm -rf "$GNUPGHOME"' EXIT
gpg --batch --quiet --import archive.key 2>/dev/null
if ! gpg --batch --status-fd 1 --verify ksqldb.tar.gz.asc ksqldb.tar.gz 2>/dev/null |
    grep -q "^\[GNUPG:\] VALIDSIG $FINGERPRINT "; then
    echo "manual-install: bad signature on ksqldb.tar.gz" >&2
    exit 65
fi

# 3. Extract.
tar -xzf ksqldb.tar.gz -C "$DEST"
home="$DEST/confluent-ksqldb-$VERSION"

# 4. The IAM auth jar, checked against its pinned SHA-256.
jar="$home/share/java/ksqldb/$(basename "$JAR_URL")"
curl -fsS -o "$jar" "$JAR_URL"
echo "$JAR_SHA256  $jar" | sha256sum --check --quiet

# 5. Brokers from the MSK API (GetBootstrapBrokers), SASL/IAM string.
arn_enc=$(printf '%s' "$CLUSTER_ARN" | sed -e 's/:/%3A/g' -e 's|/|%2F|g')
brokers=$(curl -fsS --aws-sigv4 "aws:amz:$REGION:kafka" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "$MSK_URL/v1/clusters/$arn_enc/bootstrap-brokers" |
    grep -o '"bootstrapBrokerStringSaslIam":"[^"]*"' | cut -d'"' -f4)
if [[ -z "$brokers" ]]; then
    echo "manual-install: no SASL/IAM bootstrap brokers" >&2
    exit 69
fi

# 6. Patch ksql-server.properties.
props="$home/etc/ksqldb/ksql-server.properties"
sed -i -e "s|^bootstrap.servers=.*|bootstrap.servers=$brokers|" \
    -e "s|^listeners=.*|listeners=http://0.0.0.0:8088|" "$props"
cat >>"$props" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=AWS_MSK_IAM
sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required;
sasl.client.callback.handler.class=software.amazon.msk.auth.iam.IAMClientCallbackHandler
ksql.streams.state.dir=$DEST/streams
ksql.internal.topic.replicas=3
ksql.streams.replication.factor=3
ksql.streams.producer.acks=all
EOF
