#!/usr/bin/env python3
"""Measure crash->restart latency and agent RSS, with a fake MSK in Python.

Usage: tests/bench/supervise-measure.py AGENT_BIN FAKE_KSQLDB [RESTART_BACKOFF]   (N=samples)
"""
import json, os, signal, socket, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

agent_bin, fake = sys.argv[1], sys.argv[2]
backoff = sys.argv[3] if len(sys.argv) > 3 else "1ms"
ARN = "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2"

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path.endswith("/bootstrap-brokers"):
            body = {"bootstrapBrokerStringSaslIam": "b-1.demo.x.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.demo.x.c2.kafka.eu-west-1.amazonaws.com:9098"}
        else:
            body = {"clusterInfo": {"clusterArn": ARN, "clusterName": "demo", "clusterType": "PROVISIONED", "state": "ACTIVE"}}
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data))); self.end_headers(); self.wfile.write(data)

msk = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=msk.serve_forever, daemon=True).start()
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
jdk = f"{d}/jdk/bin"; os.makedirs(jdk)
open(f"{jdk}/java", "w").write("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n"); os.chmod(f"{jdk}/java", 0o755)
rel = f"{d}/state/releases/0.28.2"; os.makedirs(f"{rel}/bin"); os.makedirs(f"{rel}/etc/ksqldb")
open(f"{rel}/bin/ksql-server-start", "w").write(f"#!/bin/sh\nexec '{fake}' \"$@\"\n"); os.chmod(f"{rel}/bin/ksql-server-start", 0o755)
open(f"{rel}/etc/ksqldb/ksql-server.properties", "w").write(f"listeners=http://127.0.0.1:{port}\n")
open(f"{rel}/fake-ksqldb.mode", "w").write("healthy_after_ms=50\n")
os.symlink(rel, f"{d}/state/current")
open(f"{d}/ksql-msk.toml", "w").write(f"""[msk]
cluster_arn = "{ARN}"
endpoint_url = "http://127.0.0.1:{msk.server_address[1]}"
[ksqldb]
version = "0.28.2"
java_home = "{d}/jdk"
[agent]
state_dir = "{d}/state"
health_url = "http://127.0.0.1:{port}/healthcheck"
restart_backoff = "{backoff}"
restart_backoff_max = "{backoff}"
restart_limit = 100
rediscover_interval = "1s"
""")
env = {"PATH": os.environ["PATH"], "HOME": d, "AWS_ACCESS_KEY_ID": "AKIAX", "AWS_SECRET_ACCESS_KEY": "x",
       "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": f"{d}/none", "AWS_SHARED_CREDENTIALS_FILE": f"{d}/none",
       "KSQL_MSK_CONFIG": f"{d}/ksql-msk.toml", "KSQL_MSK_LOG_FORMAT": "stderr", "KSQL_MSK_LOG": "warn"}
agent = subprocess.Popen([agent_bin, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
pids = lambda: [int(x) for x in open(f"{rel}/fake-ksqldb.pids").read().split()] if os.path.exists(f"{rel}/fake-ksqldb.pids") else []
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
deadline = time.time() + 30
while not pids() and time.time() < deadline: time.sleep(0.01)
time.sleep(1.5)
samples = []
for i in range(int(os.environ.get("N", "10"))):
    n = len(pids()); victim = pids()[-1]
    t0 = time.monotonic(); os.kill(victim, signal.SIGKILL)
    while len(pids()) == n: time.sleep(0.0005)
    samples.append((time.monotonic() - t0) * 1000)
    time.sleep(0.5)
samples.sort()
print(f"crash->restart (backoff {backoff}): median {samples[len(samples)//2]:.1f} ms, min {samples[0]:.1f}, max {samples[-1]:.1f} ms over {len(samples)}")
# RSS while supervising: 20 s of health probes every 5 s and rediscovery every 1 s.
peak = 0
for _ in range(20):
    peak = max(peak, rss(agent.pid)); time.sleep(1)
print(f"agent VmRSS after 20 s supervising (rediscovery every 1 s): now {rss(agent.pid)/1024:.1f} MiB, peak {peak/1024:.1f} MiB")
agent.send_signal(signal.SIGTERM); print("exit", agent.wait(timeout=30))
