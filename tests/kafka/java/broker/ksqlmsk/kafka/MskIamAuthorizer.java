package ksqlmsk.kafka;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.stream.Collectors;
import org.apache.kafka.common.Endpoint;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.server.authorizer.AclCreateResult;
import org.apache.kafka.server.authorizer.AclDeleteResult;
import org.apache.kafka.server.authorizer.Action;
import org.apache.kafka.server.authorizer.AuthorizableRequestContext;
import org.apache.kafka.server.authorizer.AuthorizationResult;
import org.apache.kafka.server.authorizer.Authorizer;
import org.apache.kafka.server.authorizer.AuthorizerServerInfo;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Authorizes each Kafka operation on each resource as MSK's IAM access control does: the
 * operation maps to a kafka-cluster:* action and the resource to an MSK ARN, and the policy
 * file decides (Policy). The table is AWS's "Semantics of IAM authorization policy actions
 * and resources" (https://docs.aws.amazon.com/msk/latest/developerguide/kafka-actions.html),
 * whose descriptions name the Kafka ACL each action equals:
 *
 *   CLUSTER  DESCRIBE          kafka-cluster:DescribeCluster
 *   CLUSTER  ALTER             kafka-cluster:AlterCluster
 *   CLUSTER  DESCRIBE_CONFIGS  kafka-cluster:DescribeClusterDynamicConfiguration
 *   CLUSTER  ALTER_CONFIGS     kafka-cluster:AlterClusterDynamicConfiguration
 *   CLUSTER  IDEMPOTENT_WRITE  kafka-cluster:WriteDataIdempotently
 *   CLUSTER  CREATE            kafka-cluster:CreateTopic, whose required resource is a topic:
 *                              never granted cluster-wide, so Kafka asks per topic
 *   TOPIC    CREATE            kafka-cluster:CreateTopic
 *   TOPIC    DESCRIBE          kafka-cluster:DescribeTopic
 *   TOPIC    ALTER             kafka-cluster:AlterTopic
 *   TOPIC    DELETE            kafka-cluster:DeleteTopic
 *   TOPIC    DESCRIBE_CONFIGS  kafka-cluster:DescribeTopicDynamicConfiguration
 *   TOPIC    ALTER_CONFIGS     kafka-cluster:AlterTopicDynamicConfiguration
 *   TOPIC    READ              kafka-cluster:ReadData
 *   TOPIC    WRITE             kafka-cluster:WriteData
 *   GROUP    READ              kafka-cluster:AlterGroup (joining a group)
 *   GROUP    DESCRIBE          kafka-cluster:DescribeGroup
 *   GROUP    DELETE            kafka-cluster:DeleteGroup
 *   TRANSACTIONAL_ID DESCRIBE  kafka-cluster:DescribeTransactionalId
 *   TRANSACTIONAL_ID WRITE     kafka-cluster:AlterTransactionalId
 *
 * Anything else (CLUSTER_ACTION, delegation tokens, ACL management) is denied to IAM
 * principals. Kafka's implied operations (DESCRIBE from READ/WRITE, ...) do not apply: the
 * page's "Required actions" column asks the policy to list each. Resources:
 * arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID, .../topic/NAME/UUID/TOPIC,
 * .../group/NAME/UUID/GROUP, .../transactional-id/NAME/UUID/ID.
 *
 * super.users (the PLAINTEXT inter-broker and controller principal) are always allowed.
 * Each denial is logged "MSK-IAM DENY principal=... action=... resource=..." (operations
 * Kafka asks about quietly, e.g. to filter a topic listing: "MSK-IAM FILTER ...").
 *
 * Broker configs: msk.iam.policy.file, msk.iam.cluster.arn, super.users.
 */
public final class MskIamAuthorizer implements Authorizer {
  private static final Logger LOG = LoggerFactory.getLogger("ksqlmsk.MskIam");

  private Policy.File policy;
  private String clusterArn;
  private String childPrefix;
  private Set<String> superUsers = Set.of();

  @Override
  public void configure(Map<String, ?> configs) {
    Object file = configs.get("msk.iam.policy.file");
    Object arn = configs.get("msk.iam.cluster.arn");
    if (file == null || arn == null) {
      throw new IllegalArgumentException("MskIamAuthorizer needs msk.iam.policy.file and msk.iam.cluster.arn");
    }
    policy = PolicyFiles.of(Path.of(file.toString()));
    clusterArn = arn.toString();
    // arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID -> arn:aws:kafka:REGION:ACCOUNT: + NAME/UUID
    int i = clusterArn.indexOf(":cluster/");
    if (i < 0) {
      throw new IllegalArgumentException("msk.iam.cluster.arn is not a cluster ARN: " + clusterArn);
    }
    childPrefix = clusterArn.substring(0, i + 1);
    Object su = configs.get("super.users");
    if (su != null) {
      superUsers = Arrays.stream(su.toString().split(";")).map(String::trim).filter(s -> !s.isEmpty())
          .collect(Collectors.toSet());
    }
    policy.current();
  }

  private String clusterPath() {
    return clusterArn.substring(clusterArn.indexOf(":cluster/") + ":cluster/".length());
  }

  /** The IAM action and resource ARN of a Kafka operation on a resource; null if none. */
  String[] actionAndResource(AclOperation op, ResourcePattern r) {
    String child = childPrefix + "%s/" + clusterPath() + "/" + r.name();
    switch (r.resourceType()) {
      case CLUSTER:
        switch (op) {
          case DESCRIBE: return new String[] {"kafka-cluster:DescribeCluster", clusterArn};
          case ALTER: return new String[] {"kafka-cluster:AlterCluster", clusterArn};
          case DESCRIBE_CONFIGS: return new String[] {"kafka-cluster:DescribeClusterDynamicConfiguration", clusterArn};
          case ALTER_CONFIGS: return new String[] {"kafka-cluster:AlterClusterDynamicConfiguration", clusterArn};
          case IDEMPOTENT_WRITE: return new String[] {"kafka-cluster:WriteDataIdempotently", clusterArn};
          default: return null;
        }
      case TOPIC:
        String topic = String.format(child, "topic");
        switch (op) {
          case CREATE: return new String[] {"kafka-cluster:CreateTopic", topic};
          case DESCRIBE: return new String[] {"kafka-cluster:DescribeTopic", topic};
          case ALTER: return new String[] {"kafka-cluster:AlterTopic", topic};
          case DELETE: return new String[] {"kafka-cluster:DeleteTopic", topic};
          case DESCRIBE_CONFIGS: return new String[] {"kafka-cluster:DescribeTopicDynamicConfiguration", topic};
          case ALTER_CONFIGS: return new String[] {"kafka-cluster:AlterTopicDynamicConfiguration", topic};
          case READ: return new String[] {"kafka-cluster:ReadData", topic};
          case WRITE: return new String[] {"kafka-cluster:WriteData", topic};
          default: return null;
        }
      case GROUP:
        String group = String.format(child, "group");
        switch (op) {
          case READ: return new String[] {"kafka-cluster:AlterGroup", group};
          case DESCRIBE: return new String[] {"kafka-cluster:DescribeGroup", group};
          case DELETE: return new String[] {"kafka-cluster:DeleteGroup", group};
          default: return null;
        }
      case TRANSACTIONAL_ID:
        String txn = String.format(child, "transactional-id");
        switch (op) {
          case DESCRIBE: return new String[] {"kafka-cluster:DescribeTransactionalId", txn};
          case WRITE: return new String[] {"kafka-cluster:AlterTransactionalId", txn};
          default: return null;
        }
      default:
        return null;
    }
  }

  @Override
  public List<AuthorizationResult> authorize(AuthorizableRequestContext ctx, List<Action> actions) {
    List<AuthorizationResult> out = new ArrayList<>(actions.size());
    String principal = ctx.principal().toString();
    for (Action a : actions) {
      out.add(authorizeOne(principal, a));
    }
    return out;
  }

  private AuthorizationResult authorizeOne(String principal, Action a) {
    if (superUsers.contains(principal)) {
      return AuthorizationResult.ALLOWED;
    }
    String[] ar = actionAndResource(a.operation(), a.resourcePattern());
    Policy.Decision d = ar == null ? Policy.Decision.IMPLICIT_DENY : policy.decide(ar[0], ar[1]);
    if (d == Policy.Decision.ALLOW) {
      return AuthorizationResult.ALLOWED;
    }
    // Kafka's cluster-level CREATE check is only a shortcut before the per-topic one. Kafka
    // asks IDEMPOTENT_WRITE quietly because its own authorizer may still allow through
    // authorizeByResourceType; here that fallback is always denied, so this denial decides.
    boolean cluster = a.resourcePattern().resourceType() == ResourceType.CLUSTER;
    boolean decisive = cluster && a.operation() == AclOperation.IDEMPOTENT_WRITE;
    boolean quiet = !a.logIfDenied() && !decisive || ar == null && cluster && a.operation() == AclOperation.CREATE;
    LOG.info("MSK-IAM {} principal={} action={} resource={} decision={} kafka={} {}:{}",
        quiet ? "FILTER" : "DENY", principal, ar == null ? "(none)" : ar[0], ar == null ? "(none)" : ar[1], d,
        a.operation(), a.resourcePattern().resourceType(), a.resourcePattern().name());
    return AuthorizationResult.DENIED;
  }

  /**
   * Kafka asks this for an idempotent producer without IDEMPOTENT_WRITE (WRITE on any topic
   * would do in Kafka's own authorizer). MSK wants kafka-cluster:WriteDataIdempotently
   * (ksql PR #8927 met ClusterAuthorizationException here), so: denied.
   */
  @Override
  public AuthorizationResult authorizeByResourceType(AuthorizableRequestContext ctx, AclOperation op, ResourceType type) {
    String principal = ctx.principal().toString();
    if (superUsers.contains(principal)) {
      return AuthorizationResult.ALLOWED;
    }
    LOG.info("MSK-IAM FILTER principal={} action=(none) resource=(any {}) decision=IMPLICIT_DENY kafka={} any {}",
        principal, type, op, type);
    return AuthorizationResult.DENIED;
  }

  @Override
  public Map<Endpoint, ? extends CompletionStage<Void>> start(AuthorizerServerInfo info) {
    return info.endpoints().stream().collect(Collectors.toMap(e -> e, e -> CompletableFuture.completedFuture(null)));
  }

  @Override
  public List<? extends CompletionStage<AclCreateResult>> createAcls(AuthorizableRequestContext ctx, List<AclBinding> bindings) {
    return bindings.stream()
        .map(b -> CompletableFuture.completedFuture(new AclCreateResult(new InvalidRequestException("MSK IAM access control has no ACLs"))))
        .collect(Collectors.toList());
  }

  @Override
  public List<? extends CompletionStage<AclDeleteResult>> deleteAcls(AuthorizableRequestContext ctx, List<AclBindingFilter> filters) {
    return filters.stream()
        .map(f -> CompletableFuture.completedFuture(new AclDeleteResult(new InvalidRequestException("MSK IAM access control has no ACLs"))))
        .collect(Collectors.toList());
  }

  @Override
  public Iterable<AclBinding> acls(AclBindingFilter filter) {
    return List.of();
  }

  @Override
  public void close() {}
}
