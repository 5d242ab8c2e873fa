package ksqlmsk.standin;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The release's {@code bin/ksql} in the Kafka stand-in release: {@code ksql [-e STATEMENT]
 * [SERVER]}, as ksqlDB's CLI takes them. It POSTs the statement to {@code SERVER/ksql} and
 * prints the topics of a {@code kafka_topics} answer as ksqlDB's CLI lays them out (or the
 * error message, exit 1). Not ksqlDB's CLI: no prompt, no other statement.
 */
public final class Cli {
  public static void main(final String[] args) throws Exception {
    String statement = null;
    String server = "http://localhost:8088";
    for (int i = 0; i < args.length; i++) {
      if ((args[i].equals("-e") || args[i].equals("--execute")) && i + 1 < args.length) {
        statement = args[++i];
      } else if (args[i].startsWith("--execute=")) {
        statement = args[i].substring(10);
      } else if (!args[i].startsWith("-")) {
        server = args[i];
      }
    }
    if (statement == null) {
      System.err.println("ksql-msk's stand-in CLI: only -e \"SHOW TOPICS;\" is supported");
      System.exit(2);
    }
    final HttpURLConnection c = (HttpURLConnection) new URL(
        server.replaceAll("/+$", "") + "/ksql").openConnection();
    c.setConnectTimeout(10_000);
    c.setReadTimeout(60_000);
    c.setRequestMethod("POST");
    c.setDoOutput(true);
    c.setRequestProperty("Content-Type", "application/vnd.ksql.v1+json");
    try (OutputStream out = c.getOutputStream()) {
      out.write(("{\"ksql\":\"" + Server.json(statement) + "\",\"streamsProperties\":{}}")
          .getBytes(StandardCharsets.UTF_8));
    }
    final int status = c.getResponseCode();
    final String body;
    try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
      body = in == null ? "" : new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
    if (status != 200) {
      final String message = Server.Json.stringField(body, "message");
      System.out.println(message == null ? body : message);
      System.exit(1);
    }
    final List<String[]> rows = new ArrayList<>();
    final Matcher m = Pattern.compile(
        "\\{\"name\":\"((?:[^\"\\\\]|\\\\.)*)\",\"replicaInfo\":\\[([0-9,]*)\\]\\}").matcher(body);
    while (m.find()) {
      final String[] replicas = m.group(2).isEmpty() ? new String[0] : m.group(2).split(",");
      rows.add(new String[] {m.group(1), Integer.toString(replicas.length),
          replicas.length == 0 ? "" : replicas[0]});
    }
    final String[] head = {"Kafka Topic", "Partitions", "Partition Replicas"};
    final int[] w = {head[0].length(), head[1].length(), head[2].length()};
    for (final String[] r : rows) {
      for (int i = 0; i < 3; i++) {
        w[i] = Math.max(w[i], r[i].length());
      }
    }
    final String rule = "-".repeat(w[0] + w[1] + w[2] + 8);
    System.out.println();
    System.out.println(row(head, w));
    System.out.println(rule);
    for (final String[] r : rows) {
      System.out.println(row(r, w));
    }
    System.out.println(rule);
  }

  private static String row(final String[] cells, final int[] w) {
    return String.format(" %-" + w[0] + "s | %-" + w[1] + "s | %-" + w[2] + "s ",
        cells[0], cells[1], cells[2]);
  }
}
