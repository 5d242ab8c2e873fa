#!/usr/bin/env python3
"""The ksql-msk benchmark (issue 7). Run it through `bench/run`, which installs the tools
and builds the binaries first; `bench/run --help` lists the options.

Measures, on this machine and with the same inputs:
  * cold install: `ksql-msk install` from an empty state dir vs the manual user-data
    pipeline (bench/manual-install.sh) vs the floor `curl -s URL | tar -xz`, alternating
    A B C A B C ...;
  * warm start: `ksql-msk install` with everything installed and unchanged (hyperfine);
  * peak RSS of the agent's cold install at a small and a large archive.
With --baseline BIN (another ksql-msk build, e.g. `bench/run --baseline-rev REV`), that
binary is one more method in the cold alternation (A B C D ...), gets the same warm-start
and RSS measurements, and the report puts its figures beside the agent's with ratios.

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = REPO / "target" / "bench"
VERSION = "0.29.0"
IAM_VERSION = "1.1.1"
REGION = "us-east-1"
GEN_VERSION = "3"  # bump when the archive generator changes: cached archives are redone
# Targets set by issue 7.
TARGET_VS_MANUAL = 0.6
TARGET_VS_FLOOR = 1.2
TARGET_WARM_MS = 50.0
TARGET_RSS_MIB = 64.0
TARGET_RSS_GROWTH = 0.10


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


# --------------------------------------------------------------------------- machine


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    fs = run(["df", "-hT", str(WORK)], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "filesystem": f"{fs[1]} on {fs[0]}",
        "loadavg": Path("/proc/loadavg").read_text().strip(),
    }


# --------------------------------------------------------------------------- inputs

WORDS = (
    "the stream table query kafka topic partition offset schema record key value "
    "window join aggregate server client property config default license copyright "
    "apache confluent community version release java class method object interface "
    "error warning info debug connect source sink processing state store changelog"
).split()


def text_blob(rng: random.Random, size: int) -> bytes:
    out = io.StringIO()
    n = 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + "\n"
        out.write(line)
        n += len(line)
    return out.getvalue().encode()[:size]


def jar_bytes(rng: random.Random, size: int, classes: int = 0) -> bytes:
    """A real zip whose entries are random bytes, stored: like a jar of deflated classes,
    gzip gains nothing on it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: bench\r\n\r\n")
        left = max(size - 200, 0)
        i = 0
        while left > 0:
            n = min(left, rng.randint(2_000, 60_000))
            z.writestr(f"io/bench/pkg{i % 17}/Class{i}.class", rng.randbytes(n))
            left -= n + 100  # local header + central directory entry, roughly
            i += 1
    return buf.getvalue()


def make_tree(root: Path, size_mb: int, seed: int) -> int:
    """A ksqlDB-shaped release tree whose .tar.gz is about size_mb MB. Same file count at
    every size, so memory and per-file costs compare across sizes. Returns the jar count."""
    rng = random.Random(seed)
    top = root / f"confluent-ksqldb-{VERSION}"
    for d in ("bin", "etc/ksqldb", "share/java/ksqldb", "share/doc/ksqldb/licenses"):
        (top / d).mkdir(parents=True, exist_ok=True)
    scripts = ["ksql", "ksql-server-start", "ksql-server-stop", "ksql-run-class",
               "ksql-datagen", "ksql-migrations", "ksql-print-metrics", "ksql-restore-command-topic",
               "ksql-stop", "ksql-test-runner", "ksql-backup-command-topic"]
    for s in scripts:
        p = top / "bin" / s
        body = "#!/bin/bash\n# stand-in for ksqlDB's %s\n" % s
        if s == "ksql-server-start":
            body += 'exec "$(dirname "$0")/ksql-run-class" io.confluent.ksql.rest.server.KsqlServerMain "$@"\n'
        body += text_blob(rng, 3000).decode().replace("\n", "\n# ")
        p.write_text(body + "\n")
        p.chmod(0o755)
    rel = Path("shared/fixtures/ksqldb/ksql-server.properties")
    fixture = next((b / rel for b in (REPO.parent, REPO.parent.parent) if (b / rel).exists()), None)
    props = top / "etc/ksqldb/ksql-server.properties"
    if fixture:
        shutil.copyfile(fixture, props)
    else:
        props.write_text("listeners=http://0.0.0.0:8088\nbootstrap.servers=localhost:9092\n")
    for name in ("ksql-production-server.properties", "log4j.properties",
                 "log4j-rolling.properties", "log4j-file.properties", "datagen-source.properties"):
        (top / "etc/ksqldb" / name).write_bytes(text_blob(rng, 4000))
    total = size_mb * 1_000_000
    text = int(total * 0.02)  # ~3:1 under gzip
    for i in range(150):
        (top / f"share/doc/ksqldb/licenses/LICENSE-lib{i}.txt").write_bytes(text_blob(rng, text // 150))
    budget = total - text // 3 - 200_000
    # ~250 jars: one big native jar (rocksdbjni-like), the rest log-normal.
    weights = [rng.lognormvariate(0, 1.3) for _ in range(249)]
    big = 0.2 * budget
    scale = (budget - big) / sum(weights)
    sizes = [int(big)] + [max(2_000, int(w * scale)) for w in weights]
    for i, sz in enumerate(sizes):
        name = "rocksdbjni-7.1.2.jar" if i == 0 else f"lib{i:03d}-{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}.jar"
        (top / "share/java/ksqldb" / name).write_bytes(jar_bytes(rng, sz))
    return len(sizes)


@dataclass
class Inputs:
    size_mb: int
    dir: Path  # served as /<size_mb>m/
    archive: Path
    jars: int
    compressed_bytes: int


def ensure_gpg_key() -> tuple[Path, str]:
    """A signing key (RSA 4096) in a private GNUPGHOME under WORK, made once."""
    home = WORK / "gnupg"
    fpr_file = WORK / "gnupg.fpr"
    if not fpr_file.exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True, mode=0o700)
        log("  making an RSA 4096 signing key (GnuPG, temp GNUPGHOME)")
        env = dict(os.environ, GNUPGHOME=str(home))
        run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
             "ksql-msk bench <bench@example.invalid>", "rsa4096", "sign", "never"], env=env,
            stderr=subprocess.DEVNULL)
        out = run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env,
                  capture_output=True, text=True).stdout
        fpr = next(l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:"))
        fpr_file.write_text(fpr + "\n")
    return home, fpr_file.read_text().strip()


def ensure_inputs(size_mb: int, www: Path, gnupg: Path) -> Inputs:
    d = www / f"{size_mb}m"
    archive = d / f"confluent-ksqldb-{VERSION}.tar.gz"
    stamp = d / ".done"
    want = f"{GEN_VERSION}:{size_mb}"
    if not (stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        tree = WORK / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        t0 = time.monotonic()
        log(f"  generating a ksqlDB-like tree for a ~{size_mb} MB archive")
        jars = make_tree(tree, size_mb, seed=size_mb)
        log("  tar + gzip -6 (GNU tar)")
        run(["tar", "-C", str(tree), "--owner=0", "--group=0", "--numeric-owner",
             "-czf", str(archive), f"confluent-ksqldb-{VERSION}"])
        shutil.rmtree(tree)
        env = dict(os.environ, GNUPGHOME=str(gnupg))
        run(["gpg", "--batch", "--yes", "--quiet", "--armor", "--detach-sign",
             "-o", f"{archive}.asc", str(archive)], env=env)
        (d / "jars").write_text(f"{jars}\n")
        log(f"  done in {time.monotonic() - t0:.0f} s")
        stamp.write_text(want)
    return Inputs(size_mb, d, archive, int((d / "jars").read_text()), archive.stat().st_size)


def ensure_common(www: Path, gnupg: Path) -> str:
    """The exported key, a dummy IAM jar and its .sha256; returns the jar's SHA-256."""
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    key = run(["gpg", "--batch", "--armor", "--export"], env=env, capture_output=True).stdout
    (www / "archive.key").write_bytes(key)
    jar = www / f"aws-msk-iam-auth-{IAM_VERSION}-all.jar"
    if not jar.exists():
        jar.write_bytes(jar_bytes(random.Random(7), 7_000_000))
    digest = hashlib.sha256(jar.read_bytes()).hexdigest()
    Path(f"{jar}.sha256").write_text(digest + "\n")  # hash only, as the releases publish
    return digest


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on loopback serving www/ (sendfile), as its own master."""

    def __init__(self, www: Path):
        self.dir = WORK / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        d = self.dir
        conf.write_text(f"""
daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {www};
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(d)],
                                     stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = d / "access.log"
        wait_port(self.port, self.proc)

    def requests(self) -> int:
        return len(self.access_log.read_text().splitlines()) if self.access_log.exists() else 0

    def stop(self) -> None:
        stop(self.proc)


class FakeMskProc:
    def __init__(self, binary: Path):
        self.proc = subprocess.Popen([str(binary), "--port", "0", "--region", REGION],
                                     stdout=subprocess.PIPE, text=True)
        lines = {}
        while len(lines) < 2:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("fake-msk exited early")
            k, _, v = line.strip().partition("=")
            lines[k] = v
        self.url, self.arn = lines["url"], lines["arn"]

    def stop(self) -> None:
        stop(self.proc)


def wait_port(port: int, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_throughput(url: str, times: int = 3) -> list[float]:
    """Raw MB/s of the artifact server: curl -o /dev/null."""
    speeds = []
    for _ in range(times):
        out = run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", url],
                  capture_output=True, text=True).stdout
        speeds.append(float(out) / 1e6)
    return speeds


# --------------------------------------------------------------------------- methods


@dataclass
class Sample:
    method: str
    size_mb: int
    round: int
    wall_s: float
    cpu_s: float
    max_rss_kib: int
    sync_s: float
    load_before: str
    load_after: str
    others_cores: float  # CPU used by everything else on the machine during the run


@dataclass
class Setup:
    agent: Path
    nginx: Nginx
    msk: FakeMskProc
    fpr: str
    jar_sha: str
    out: Path  # scratch outputs (same filesystem for every method)
    drop_caches: bool
    baseline: Path | None = None  # another ksql-msk build, measured the same way
    agent_env: dict = field(default_factory=dict)

    def urls(self, inputs: Inputs) -> dict:
        base = f"{self.nginx.url}/{inputs.size_mb}m"
        return {
            "archive": f"{base}/{inputs.archive.name}",
            "signature": f"{base}/{inputs.archive.name}.asc",
            "key": f"{self.nginx.url}/archive.key",
            "jar": f"{self.nginx.url}/aws-msk-iam-auth-{IAM_VERSION}-all.jar",
        }


def base_env() -> dict:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(WORK),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-real-key",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(WORK / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(WORK / "no-aws-credentials"),
    }


def agent_config(s: Setup, inputs: Inputs, state: Path) -> Path:
    """The same config for the agent and the baseline (one config contract), each with its
    own state dir: the file is named after it."""
    u = s.urls(inputs)
    path = s.out / f"{state.name}-{inputs.size_mb}m.toml"
    path.write_text(f"""# ksql-msk config for bench/run (generated)
[msk]
cluster_arn = "{s.msk.arn}"
endpoint_url = "{s.msk.url}"

[ksqldb]
version = "{VERSION}"
archive_url = "{u['archive']}"
signature_url = "{u['signature']}"
key_url = "{u['key']}"
trusted_fingerprints = ["{s.fpr}"]

[iam_auth]
version = "{IAM_VERSION}"
jar_url = "{u['jar']}"
sha256 = "{s.jar_sha}"

[agent]
state_dir = "{state}"
""")
    return path


def ksql_cmd(binary: Path, s: Setup, inputs: Inputs, state: Path) -> tuple[list[str], dict]:
    env = dict(base_env(), KSQL_MSK_CONFIG=str(agent_config(s, inputs, state)),
               KSQL_MSK_LOG_FORMAT="stderr")
    return [str(binary), "install"], env


def agent_cmd(s: Setup, inputs: Inputs, state: Path) -> tuple[list[str], dict]:
    return ksql_cmd(s.agent, s, inputs, state)


def baseline_cmd(s: Setup, inputs: Inputs, state: Path) -> tuple[list[str], dict]:
    assert s.baseline is not None, "baseline measured without --baseline"
    return ksql_cmd(s.baseline, s, inputs, state)


def manual_cmd(s: Setup, inputs: Inputs, dest: Path) -> tuple[list[str], dict]:
    u = s.urls(inputs)
    env = dict(base_env(), ARCHIVE_URL=u["archive"], SIGNATURE_URL=u["signature"],
               KEY_URL=u["key"], FINGERPRINT=s.fpr, JAR_URL=u["jar"], JAR_SHA256=s.jar_sha,
               MSK_URL=s.msk.url, CLUSTER_ARN=s.msk.arn, REGION=REGION, VERSION=VERSION,
               DEST=str(dest))
    return ["bash", str(BENCH / "manual-install.sh")], env


def floor_cmd(s: Setup, inputs: Inputs, dest: Path) -> tuple[list[str], dict]:
    u = s.urls(inputs)
    return ["bash", "-c", 'set -euo pipefail; mkdir -p "$1"; curl -s "$2" | tar -xz -C "$1"',
            "floor", str(dest), u["archive"]], base_env()


# In alternation order. "baseline" runs only with --baseline.
METHODS = {"agent": agent_cmd, "baseline": baseline_cmd, "manual": manual_cmd, "floor": floor_cmd}
KSQL = ("agent", "baseline")  # ksql-msk builds: warm start and RSS are measured for these


def prepare(dest: Path, drop_caches: bool) -> None:
    """Same starting point for every run: outputs of earlier runs gone and written back,
    sources in page cache (or, with --drop-caches, nothing cached)."""
    if dest.exists():
        shutil.rmtree(dest)
    os.sync()
    if drop_caches:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(method: str, s: Setup, inputs: Inputs, rnd: int) -> tuple[Sample, subprocess.CompletedProcess]:
    dest = s.out / method
    prepare(dest, s.drop_caches)
    cmd, env = METHODS[method](s, inputs, dest)
    tv = s.out / "time-v.txt"
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(tv)] + cmd
    load_before = loadavg()
    b0, t0j = cpu_busy_jiffies()
    t0 = time.perf_counter()
    cp = subprocess.run(full, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    b1, t1j = cpu_busy_jiffies()
    load_after = loadavg()
    t1 = time.perf_counter()
    os.sync()  # the writeback each method left behind (not part of its time)
    sync_s = time.perf_counter() - t1
    fields = tv.read_text().split()[-4:] if tv.exists() else ["0", "0", "0", "0"]
    cpu = float(fields[1]) + float(fields[2])
    hz = os.sysconf("SC_CLK_TCK")
    busy = (b1 - b0) / hz
    others = max(0.0, (busy - cpu) / wall) if wall > 0 else 0.0
    return Sample(method, inputs.size_mb, rnd, wall, cpu, int(fields[3]), sync_s,
                  load_before, load_after, others), cp


def check_output(method: str, s: Setup, inputs: Inputs) -> str | None:
    """None when the run produced an installed, patched release; else what is wrong."""
    dest = s.out / method
    home = dest / "current" if method in KSQL else dest / f"confluent-ksqldb-{VERSION}"
    if not (home / "bin/ksql-server-start").exists():
        return f"no {home}/bin/ksql-server-start"
    jars = list((home / "share/java/ksqldb").glob("*.jar"))
    if method == "floor":
        return None if len(jars) == inputs.jars else f"{len(jars)} jars, want {inputs.jars}"
    if len(jars) != inputs.jars + 1 or not any("aws-msk-iam-auth" in j.name for j in jars):
        return f"{len(jars)} jars in {home}/share/java/ksqldb, want {inputs.jars} + the IAM jar"
    props = (home / "etc/ksqldb/ksql-server.properties").read_text()
    if "b-1.bench." not in props or "AWS_MSK_IAM" not in props:
        if method in KSQL:
            # Phase 5 (configure) may not be in this build yet: measure what is there and
            # say so in the report rather than refuse.
            NOTES.add(f"this {method} build does not patch ksql-server.properties (phase 5 not "
                      "merged yet): its figures cover discovery, fetch, verify, unpack and "
                      "the IAM jar only")
            return None
        return "ksql-server.properties lacks the brokers or the IAM settings"
    return None


NOTES: set[str] = set()


def warm_up(method: str, s: Setup, inputs: Inputs) -> str | None:
    """One untimed run that also checks the output. Returns why the method is unusable."""
    sample, cp = timed(method, s, inputs, 0)
    if cp.returncode != 0:
        lines = (cp.stderr.strip().splitlines() or ["(no output)"])[-3:]
        return f"exit {cp.returncode}: " + " | ".join(lines)
    return check_output(method, s, inputs)


def profile(s: Setup, inputs: Inputs) -> int:
    """One cold install under perf (cpu-clock: this VM has no hardware counters), twice:
    once to warm up, once recorded. Flat and inclusive shares go to profile.txt."""
    log(f"==> profile: cold `ksql-msk install`, {inputs.size_mb} MB, perf record -e cpu-clock")
    why = warm_up("agent", s, inputs)
    if why:
        log(f"  agent not usable: {why}")
        return 2
    dest = s.out / "agent"
    prepare(dest, s.drop_caches)
    cmd, env = agent_cmd(s, inputs, dest)
    data = WORK / "perf.data"
    t0 = time.perf_counter()
    run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "--call-graph", "fp",
         "-o", str(data), "--"] + cmd, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    report = [f"# cold install of {inputs.size_mb} MB under perf: {wall:.3f} s wall, "
              f"load {loadavg()}\n"]
    for title, extra in (("flat (self) by thread and symbol", ["--no-children", "--sort", "comm,dso,symbol"]),
                         ("inclusive (children) by symbol", ["--children", "--sort", "symbol"])):
        out = run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                   "--percent-limit", "0.5"] + extra, capture_output=True, text=True).stdout
        report.append(f"## {title}\n")
        report += [l for l in out.splitlines() if l.strip() and not l.startswith("#")][:60]
        report.append("")
    text = "\n".join(report) + "\n"
    (WORK / "profile.txt").write_text(text)
    print(text)
    log(f"written to {WORK / 'profile.txt'} (perf data: {data})")
    return 0


# --------------------------------------------------------------------------- stats


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def hyperfine_warm(s: Setup, inputs: Inputs, runs: int, ksql: list[str]) -> dict:
    """Warm start of each ksql-msk build in `ksql`: {method: figures or None}. With two
    builds, hyperfine runs them in alternating blocks (A B B A A B: a drift in the
    machine's load hits both alike) and the figures come from every run's time."""
    cmds = {}
    warm: dict = {}
    for m in ksql:
        cmd, env = METHODS[m](s, inputs, s.out / m)
        # Installed by the last cold run; make sure it is, then measure re-runs.
        cp = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if cp.returncode != 0:
            log(f"  warm start: {m} failed: {cp.stderr.strip()[-300:]}")
            warm[m] = None
        else:
            cmds[m] = (cmd, env)
    if not cmds:
        return warm
    # hyperfine wants at least 2 runs a block; 3 blocks at most (a warm-up each).
    blocks = 1 if len(cmds) == 1 else max(1, min(3, runs // 5))
    sizes = [runs // blocks + (1 if b < runs % blocks else 0) for b in range(blocks)]
    times: dict[str, list[float]] = {m: [] for m in cmds}
    fetched = {m: 0 for m in cmds}
    lb = loadavg()
    out = s.out / "hyperfine.json"
    for b, n in enumerate(sizes):
        order = list(cmds) if b % 2 == 0 else list(reversed(cmds))
        for m in order:
            cmd, env = cmds[m]
            before = s.nginx.requests()
            run(["hyperfine", "-N", "--warmup", "3", "--runs", str(n), "--style", "basic",
                 "--export-json", str(out), " ".join(cmd)], env=env)
            fetched[m] += s.nginx.requests() - before
            times[m] += json.loads(out.read_text())["results"][0]["times"]
    la = loadavg()
    for m, ts in times.items():
        if fetched[m]:
            log(f"  warm start: WARNING: {m}: {fetched[m]} artifact requests during the warm runs")
        warm[m] = {"median_ms": median(ts) * 1000, "mean_ms": statistics.mean(ts) * 1000,
                   "min_ms": min(ts) * 1000, "max_ms": max(ts) * 1000,
                   "stddev_ms": (statistics.stdev(ts) if len(ts) > 1 else 0) * 1000,
                   "runs": len(ts), "blocks": blocks, "load_before": lb, "load_after": la,
                   "fetched": fetched[m]}
    return warm


# --------------------------------------------------------------------------- main


def self_check() -> int:
    """Seconds-long check of the harness itself, for tests/run-all: the generator makes a
    ksqlDB-shaped tree of real jars, and the report renders with met and missed rows, with
    and without a baseline. No servers, no build, no tools beyond Python."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jars = make_tree(root, 2, seed=1)
        top = root / f"confluent-ksqldb-{VERSION}"
        found = sorted((top / "share/java/ksqldb").glob("*.jar"))
        assert jars == len(found) == 250, (jars, len(found))
        assert os.access(top / "bin/ksql-server-start", os.X_OK)
        with zipfile.ZipFile(found[0]) as z:
            assert z.testzip() is None
        inp = Inputs(2, root, root / "a.tar.gz", jars, 2_000_000)
        walls = (("agent", 1.0, 20_000), ("baseline", 2.5, 25_000), ("manual", 2.0, 9_000),
                 ("floor", 0.9, 9_000))
        samples = [Sample(m, 2, r, w, w / 2, kib, 0.0, "0.5", "0.5", 0.1)
                   for r in (1, 2) for m, w, kib in walls]
        samples += [Sample(f"{m}-rss", sz, 1, 1.0, 0.5, kib, 0.0, "0.5", "0.5", 0.1)
                    for sz in (1, 4) for m, _, kib in walls[:2]]
        mach = {"nproc": 2, "cpu": "x", "memory": "1 GiB", "kernel": "k", "filesystem": "ext4 on d",
                "loadavg": "0.5 0.5 0.5 1/1 1"}

        def warm(ms):
            return {"median_ms": ms, "mean_ms": ms, "min_ms": ms - 2, "max_ms": ms + 2,
                    "stddev_ms": 1.0, "runs": 3, "blocks": 1, "load_before": "0.5",
                    "load_after": "0.5", "fetched": 0}
        rss = {"agent": {1: [20_000], 4: [20_000]}, "baseline": {1: [25_000], 4: [25_000]}}
        bins = {"agent": "a" * 64, "baseline": "b" * 64}

        def report(methods, usable, binaries=bins, baseline_name=None):
            args = argparse.Namespace(quick=True, drop_caches=False, baseline_name=baseline_name)
            ms = [m for m in methods if usable[m] is None]
            return render(mach, mach, {2: inp}, 2, 2, [x for x in samples if x.method.split("-")[0] in ms],
                          {m: warm(w) for m, w in (("agent", 12.0), ("baseline", 15.0)) if m in ms},
                          {m: v for m, v in rss.items() if m in ms}, usable, [1000.0], "SHA-512",
                          args, ms, binaries)

        def has(text, *needles):
            for needle in needles:
                assert needle in text, (needle, text)

        def lacks(text, *needles):
            for needle in needles:
                assert needle not in text, (needle, text)

        # The agent alone: the report of issue 7, no baseline anywhere.
        alone = ("agent", "manual", "floor")
        text = report(alone, {m: None for m in alone}, {"agent": "a" * 64})
        has(text, "| cold install ≤ 0.6 × manual | 0.50 × | met |",
            "| cold install ≤ 1.2 × floor | 1.11 × | met |", "warm start ≤ 50 ms")
        lacks(text, "baseline")

        # With a baseline: its row in the cold table, the side-by-side figures and ratios.
        text = report(METHODS, {m: None for m in METHODS}, baseline_name="rev abc1234")
        has(text,
            "| baseline: `ksql-msk install` of rev abc1234 | 2.500 | 2.500–2.500 | 1.25 | 24.4 | 0.00 | 2 |",
            "## Agent vs baseline (rev abc1234)",
            "| cold install wall s, median | 1.000 | 2.500 | 0.40 × |",
            "| cold install CPU s, median | 0.50 | 1.25 | 0.40 × |",
            "| cold install peak RSS MiB, highest | 19.5 | 24.4 | 0.80 × |",
            "| cold install wall ÷ manual (target ≤ 0.6) | 0.50 × | 1.25 × | |",
            "| cold install wall ÷ floor (target ≤ 1.2) | 1.11 × | 2.78 × | |",
            "| warm start ms, median (min–max, runs) | 12.0 (10.0–14.0, 3) | 15.0 (13.0–17.0, 3) | 0.80 × |",
            "| peak RSS MiB at 1 MB, median of 1 | 19.5 | 24.4 | 0.80 × |",
            "| peak RSS MiB at 4 MB, median of 1 | 19.5 | 24.4 | 0.80 × |",
            "| peak RSS MiB, highest of every run | 19.5 | 24.4 | 0.80 × |",
            "| baseline | 2 | 1 | 2.500 |", "| baseline-rss | 4 | 1 |")
        lacks(text, "same binary")
        # The agent's verdicts are still the agent's, not the baseline's.
        has(text, "| cold install ≤ 0.6 × manual | 0.50 × | met |")

        # A baseline that refuses the config (or fails otherwise) is reported, not measured.
        usable = {m: None for m in METHODS}
        usable["baseline"] = "exit 78: unknown key ksqldb.foo"
        text = report(METHODS, usable, baseline_name="rev abc1234")
        has(text, "| baseline: `ksql-msk install` of rev abc1234 | n/a |",
            "baseline not measured: exit 78: unknown key ksqldb.foo",
            "| cold install ≤ 0.6 × manual | 0.50 × | met |")
        lacks(text, "| cold install wall s, median |")

        # The same binary twice is said, not silently compared with itself.
        text = report(METHODS, {m: None for m in METHODS}, {"agent": "a" * 64, "baseline": "a" * 64})
        has(text, "same binary")
    log("bench self-check: generator and report ok (with and without a baseline)")
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-check"]:
        return self_check()
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="small archives (20 MB; RSS at 10 vs 40 MB), 2 rounds: checks the harness in a minute")
    ap.add_argument("--rounds", type=int, help="cold-install rounds per method (default 7; quick 2)")
    ap.add_argument("--size", type=int, help="archive size in MB for the cold runs (default 200)")
    ap.add_argument("--rss-sizes", help="two sizes in MB for the RSS check (default 50,400)")
    ap.add_argument("--warm-runs", type=int, help="hyperfine runs of the warm start (default 30)")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the page cache before every run (default: inputs equally warm)")
    ap.add_argument("--agent", default=str(REPO / "target/release/ksql-msk"))
    ap.add_argument("--baseline", metavar="AGENT",
                    help="a second ksql-msk binary (e.g. built from an older commit; "
                    "`bench/run --baseline-rev REV` builds one) measured like the agent, "
                    "with the same config, and compared with it")
    ap.add_argument("--baseline-name", metavar="TEXT",
                    help="what the baseline is, for the report (default: its path)")
    ap.add_argument("--agent-name", metavar="TEXT",
                    help="what the agent is, for the comparison (default: this build)")
    ap.add_argument("--fake-msk", default=str(REPO / "target/release/fake-msk"))
    ap.add_argument("--profile", action="store_true",
                    help="instead of measuring: one cold agent install under `perf record` "
                    "(cpu-clock sampling), report in target/bench/profile.txt")
    ap.add_argument("--self-check", action="store_true",
                    help="check the harness itself in seconds (generator, report); no servers")
    ap.add_argument("--results", help="where to write the table (default bench/RESULTS.md; "
                    "quick: target/bench/RESULTS-quick.md)")
    a = ap.parse_args()
    rounds = a.rounds or (2 if a.quick else 7)
    size = a.size or (20 if a.quick else 200)
    rss_sizes = [int(x) for x in (a.rss_sizes or ("10,40" if a.quick else "50,400")).split(",")]
    warm_runs = a.warm_runs or (10 if a.quick else 30)
    results = Path(a.results) if a.results else (
        WORK / "RESULTS-quick.md" if a.quick else BENCH / "RESULTS.md")
    binaries = {"agent": Path(a.agent)}
    if a.baseline:
        binaries["baseline"] = Path(a.baseline).resolve()
        a.baseline_name = a.baseline_name or str(binaries["baseline"])
    for m, b in binaries.items():
        if not (b.is_file() and os.access(b, os.X_OK)):
            raise SystemExit(f"bench: {m} {b}: not an executable file")
    # Told apart by content: a baseline built from the same source is the same binary.
    digests = {m: hashlib.sha256(b.read_bytes()).hexdigest() for m, b in binaries.items()}
    for m, b in binaries.items():
        log(f"==> {m}: {b} (sha256 {digests[m][:16]})")

    WORK.mkdir(parents=True, exist_ok=True)
    www = WORK / "www"
    www.mkdir(exist_ok=True)
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    mach_before = machine()
    log(f"==> machine: {mach_before['nproc']} CPUs ({mach_before['cpu']}), {mach_before['memory']}, "
        f"kernel {mach_before['kernel']}, load {mach_before['loadavg']}")

    log("==> inputs (cached in target/bench/www)")
    gnupg, fpr = ensure_gpg_key()
    jar_sha = ensure_common(www, gnupg)
    all_sizes = sorted({size, *rss_sizes})
    inputs = {sz: ensure_inputs(sz, www, gnupg) for sz in all_sizes}
    for sz, inp in inputs.items():
        log(f"  {inp.archive.relative_to(WORK)}: {inp.compressed_bytes / 1e6:.1f} MB, {inp.jars} jars")
    sig = run(["gpg", "--list-packets", f"{inputs[size].archive}.asc"], capture_output=True,
              text=True, env=dict(os.environ, GNUPGHOME=str(gnupg))).stdout
    digest = next((l.split("digest algo")[1].split(",")[0].strip() for l in sig.splitlines()
                   if "digest algo" in l), "?")
    digest_name = {"2": "SHA-1", "8": "SHA-256", "9": "SHA-384", "10": "SHA-512"}.get(digest, digest)
    log(f"  signing key {fpr} (RSA 4096), signature digest {digest_name}")

    log("==> servers on loopback")
    nginx = Nginx(www)
    msk = FakeMskProc(Path(a.fake_msk))
    code = 0
    try:
        log(f"  nginx {nginx.url} (sendfile, 1 worker); fake MSK {msk.url}")
        big = inputs[max(all_sizes)]
        run(["cat", str(big.archive)], stdout=subprocess.DEVNULL)  # into page cache
        speeds = server_throughput(f"{nginx.url}/{big.size_mb}m/{big.archive.name}")
        log(f"  raw server throughput (curl -o /dev/null, {big.size_mb} MB): "
            + ", ".join(f"{x:.0f}" for x in speeds) + " MB/s")

        s = Setup(Path(a.agent), nginx, msk, fpr, jar_sha, out, a.drop_caches,
                  binaries.get("baseline"))
        main_in = inputs[size]
        if a.profile:
            return profile(s, main_in)
        log(f"==> warm-up and output check ({size} MB)")
        usable = {}
        for m in METHODS:
            if m == "baseline" and s.baseline is None:
                continue
            why = warm_up(m, s, main_in)
            usable[m] = why
            log(f"  {m:8} " + ("ok" if why is None else f"NOT USABLE: {why}"))
        if usable["manual"] or usable["floor"]:
            raise SystemExit("the reference pipelines fail: fix the harness first")
        methods = [m for m in usable if usable[m] is None]

        log(f"==> cold install, {rounds} rounds alternating {' '.join(methods)} ({size} MB archive)")
        samples: list[Sample] = []
        for r in range(1, rounds + 1):
            for m in methods:
                smp, cp = timed(m, s, main_in, r)
                if cp.returncode != 0:
                    raise SystemExit(f"{m} failed in round {r}: {cp.stderr[-500:]}")
                samples.append(smp)
                log(f"  round {r} {m:8} {smp.wall_s:7.3f} s  cpu {smp.cpu_s:6.2f} s  "
                    f"rss {smp.max_rss_kib / 1024:6.1f} MiB  then sync {smp.sync_s:5.2f} s  "
                    f"load {smp.load_before}->{smp.load_after}  others {smp.others_cores:.2f} cores")

        ksql = [m for m in KSQL if m in methods]
        warm: dict = {}
        rss: dict[str, dict[int, list[int]]] = {}
        if ksql:
            log(f"==> warm start (hyperfine, {warm_runs} runs{' each, alternating blocks' if len(ksql) > 1 else ''})")
            warm = hyperfine_warm(s, main_in, warm_runs, ksql)
            log(f"==> {' and '.join(ksql)} peak RSS at {' vs '.join(f'{x} MB' for x in rss_sizes)}")
            for sz in rss_sizes:
                n = 2 if a.quick else 5
                for r in range(n):
                    for m in ksql:  # alternating, like the cold runs
                        smp, cp = timed(m, s, inputs[sz], r + 1)
                        if cp.returncode != 0:
                            raise SystemExit(f"{m} failed at {sz} MB: {cp.stderr[-500:]}")
                        rss.setdefault(m, {}).setdefault(sz, []).append(smp.max_rss_kib)
                        samples.append(Sample(f"{m}-rss", sz, r + 1, smp.wall_s, smp.cpu_s,
                                              smp.max_rss_kib, smp.sync_s, smp.load_before,
                                              smp.load_after, smp.others_cores))
                        log(f"  {m:8} {sz:4} MB  rss {smp.max_rss_kib / 1024:6.1f} MiB  "
                            f"wall {smp.wall_s:.3f} s")
        if any(usable[m] is not None for m in KSQL if m in usable):
            code = 2
        mach_after = machine()
        report = render(mach_before, mach_after, inputs, size, rounds, samples, warm, rss,
                        usable, speeds, digest_name, a, methods, digests)
        print()
        print(report)
        results.write_text(report)
        log(f"written to {results}")
        (WORK / "runs.json").write_text(json.dumps([vars(x) for x in samples], indent=1))
    finally:
        msk.stop()
        nginx.stop()
    return code


def render(mb, ma, inputs, size, rounds, samples, warm, rss, usable, speeds, digest, a, methods,
           digests) -> str:
    """The report. warm: {method: figures or None}; rss: {method: {size MB: [KiB]}};
    usable: {requested method: None or why it was not measured}; digests: {method: sha256}."""
    by = {m: [x for x in samples if x.method == m] for m in METHODS}
    med = {m: median([x.wall_s for x in by[m]]) for m in METHODS}
    cpu = {m: median([x.cpu_s for x in by[m]]) for m in METHODS}
    mrss = {m: max([x.max_rss_kib for x in by[m]], default=0) / 1024 for m in METHODS}
    syn = {m: median([x.sync_s for x in by[m]]) for m in METHODS}
    loads = [float(x.load_before) for x in samples] + [float(x.load_after) for x in samples]
    others = [x.others_cores for x in samples]
    inp = inputs[size]
    L = []
    L.append("# ksql-msk benchmark results (issue 7)\n")
    L.append(f"Produced by `bench/run{' --quick' if a.quick else ''}` on "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}. Usage and method: bench/README.md.\n")
    L.append("## Machine\n")
    L.append(f"- {mb['nproc']} CPUs, {mb['cpu']}; {mb['memory']} RAM; kernel {mb['kernel']}; {mb['filesystem']}")
    L.append(f"- load average before: `{mb['loadavg']}`; after: `{ma['loadavg']}`")
    if loads:
        L.append(f"- 1-min load around the timed runs: min {min(loads):.2f}, median "
                 f"{median(loads):.2f}, max {max(loads):.2f}; CPU used by other processes "
                 f"during the runs: median {median(others):.2f}, max {max(others):.2f} cores "
                 f"of {mb['nproc']}")
    L.append(f"- inputs: {inp.compressed_bytes / 1e6:.0f} MB archive ({inp.jars} random-content jars, "
             f"2% text), RSA 4096 detached signature ({digest}), 7 MB IAM jar; served by nginx on "
             f"loopback at {median(speeds):.0f} MB/s raw (curl -o /dev/null)")
    L.append(f"- page cache: {'dropped before every run' if a.drop_caches else 'inputs equally warm (in page cache) for every method; earlier outputs removed and synced before each run'}")
    L.append("")
    L.append(f"## Cold install ({size} MB archive, {rounds} alternating rounds, medians)\n")
    L.append("| method | wall s | wall min–max | CPU s (user+sys) | peak RSS MiB | sync after s | runs |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = {"agent": "`ksql-msk install`",
             "baseline": f"baseline: `ksql-msk install` of {a.baseline_name}",
             "manual": "manual (`bench/manual-install.sh`)",
             "floor": "floor (`curl -s URL \\| tar -xz`)"}
    for m in METHODS:
        if m not in usable and not by[m]:
            continue  # not asked for (the baseline without --baseline)
        if by[m]:
            ws = [x.wall_s for x in by[m]]
            L.append(f"| {names[m]} | {fmt_s(med[m])} | {min(ws):.3f}–{max(ws):.3f} | {cpu[m]:.2f} | "
                     f"{mrss[m]:.1f} | {syn[m]:.2f} | {len(ws)} |")
        else:
            L.append(f"| {names[m]} | n/a | | n/a | n/a | n/a | 0 |")
    L.append("")
    for note in sorted(NOTES):
        L.append(f"**Note:** {note}.\n")
    L.append("Peak RSS of the manual pipeline and the floor is that of their largest single "
             "process (gpg, tar, curl). \"sync after\" is the writeback each left behind, "
             "measured after its timed run and not part of its time.\n")
    L.append("## Against the targets\n")
    L.append("| target | figure | verdict |")
    L.append("| --- | --- | --- |")
    aw, ar = warm.get("agent"), rss.get("agent")
    if by["agent"]:
        r1 = med["agent"] / med["manual"]
        r2 = med["agent"] / med["floor"]
        L.append(f"| cold install ≤ {TARGET_VS_MANUAL} × manual | {r1:.2f} × | {verdict(r1 <= TARGET_VS_MANUAL)} |")
        L.append(f"| cold install ≤ {TARGET_VS_FLOOR} × floor | {r2:.2f} × | {verdict(r2 <= TARGET_VS_FLOOR)} |")
        if aw:
            L.append(f"| warm start ≤ {TARGET_WARM_MS:.0f} ms median | {aw['median_ms']:.1f} ms "
                     f"(min {aw['min_ms']:.1f}, max {aw['max_ms']:.1f}, {aw['runs']} runs, load "
                     f"{aw['load_before']}→{aw['load_after']}; artifact requests: {aw['fetched']}) | {verdict(aw['median_ms'] <= TARGET_WARM_MS)} |")
        if ar:
            lo, hi = min(ar), max(ar)
            peak = max(max(v) for v in ar.values()) / 1024
            mlo, mhi = median(ar[lo]) / 1024, median(ar[hi]) / 1024
            growth = mhi / mlo - 1
            xgrowth = max(ar[hi]) / max(ar[lo]) - 1
            L.append(f"| peak RSS ≤ {TARGET_RSS_MIB:.0f} MiB | {peak:.1f} MiB (highest of every agent run) "
                     f"| {verdict(peak <= TARGET_RSS_MIB)} |")
            L.append(f"| RSS independent of size (±{TARGET_RSS_GROWTH:.0%}) | medians of {len(ar[lo])} runs: "
                     f"{lo} MB {mlo:.1f} MiB, {hi} MB {mhi:.1f} MiB ({growth:+.1%}); highest: "
                     f"{max(ar[lo]) / 1024:.1f} vs {max(ar[hi]) / 1024:.1f} MiB ({xgrowth:+.1%}) "
                     f"| {verdict(abs(growth) <= TARGET_RSS_GROWTH)} |")
    else:
        L.append(f"| all agent targets | not measured: {usable.get('agent')} | n/a |")
    L.append(f"\nmanual / floor: {med['manual'] / med['floor']:.2f} × wall.")
    if by["agent"]:
        L.append(f"CPU time, less sensitive to the machine's load: agent / manual "
                 f"{cpu['agent'] / cpu['manual']:.2f} ×, agent / floor {cpu['agent'] / cpu['floor']:.2f} ×.")
    L.append("")
    if "baseline" in usable:
        L += render_baseline(by, med, cpu, mrss, warm, rss, usable, a, digests)
    L.append("## Every timed run\n")
    L.append("| method | MB | round | wall s | CPU s | RSS MiB | sync s | load before→after | others' cores |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for x in samples:
        L.append(f"| {x.method} | {x.size_mb} | {x.round} | {x.wall_s:.3f} | {x.cpu_s:.2f} | "
                 f"{x.max_rss_kib / 1024:.1f} | {x.sync_s:.2f} | {x.load_before}→{x.load_after} | "
                 f"{x.others_cores:.2f} |")
    return "\n".join(L) + "\n"


def render_baseline(by, med, cpu, mrss, warm, rss, usable, a, digests) -> list[str]:
    """The agent's figures beside the baseline's, from the same run, with agent/baseline
    ratios (below 1 ×: the agent is faster or smaller)."""
    L = [f"## Agent vs baseline ({a.baseline_name})\n"]
    agent_name = getattr(a, "agent_name", None) or "this build"
    L.append(f"- agent: {agent_name}, sha256 `{digests.get('agent', '?')[:16]}`; baseline: "
             f"{a.baseline_name}, sha256 `{digests.get('baseline', '?')[:16]}`. Same inputs, "
             "same config file (the same config contract), measured in the same alternation.")
    if digests.get("agent") and digests.get("agent") == digests.get("baseline"):
        L.append("- **the baseline is the same binary as the agent**: the ratios show only "
                 "the noise of this run")
    L.append("")
    if usable.get("baseline") is not None or not by["baseline"]:
        L.append(f"baseline not measured: {usable.get('baseline') or 'no runs'}.\n")
        return L
    if not by["agent"]:
        L.append(f"agent not measured: {usable.get('agent')}; the baseline's figures are in "
                 "the tables above.\n")
        return L

    def ratio(x, y):
        return f"{x / y:.2f} ×" if y and x == x and y == y else "n/a"

    L.append("| figure | agent | baseline | agent / baseline |")
    L.append("| --- | ---: | ---: | ---: |")
    L.append(f"| cold install wall s, median | {fmt_s(med['agent'])} | {fmt_s(med['baseline'])} | "
             f"{ratio(med['agent'], med['baseline'])} |")
    L.append(f"| cold install CPU s, median | {cpu['agent']:.2f} | {cpu['baseline']:.2f} | "
             f"{ratio(cpu['agent'], cpu['baseline'])} |")
    L.append(f"| cold install peak RSS MiB, highest | {mrss['agent']:.1f} | {mrss['baseline']:.1f} | "
             f"{ratio(mrss['agent'], mrss['baseline'])} |")
    for ref, target in (("manual", TARGET_VS_MANUAL), ("floor", TARGET_VS_FLOOR)):
        L.append(f"| cold install wall ÷ {ref} (target ≤ {target}) | {ratio(med['agent'], med[ref])} | "
                 f"{ratio(med['baseline'], med[ref])} | |")
    aw, bw = warm.get("agent"), warm.get("baseline")

    def warm_cell(w):
        return f"{w['median_ms']:.1f} ({w['min_ms']:.1f}–{w['max_ms']:.1f}, {w['runs']})" if w else "n/a"
    L.append(f"| warm start ms, median (min–max, runs) | {warm_cell(aw)} | {warm_cell(bw)} | "
             f"{ratio(aw['median_ms'], bw['median_ms']) if aw and bw else 'n/a'} |")
    ar, br = rss.get("agent", {}), rss.get("baseline", {})
    for sz in sorted(set(ar) | set(br)):
        am = median(ar.get(sz, [])) / 1024
        bm = median(br.get(sz, [])) / 1024
        L.append(f"| peak RSS MiB at {sz} MB, median of {len(ar.get(sz, []))} | {am:.1f} | {bm:.1f} | "
                 f"{ratio(am, bm)} |")
    if ar and br:
        ah = max(max(v) for v in ar.values()) / 1024
        bh = max(max(v) for v in br.values()) / 1024
        L.append(f"| peak RSS MiB, highest of every run | {ah:.1f} | {bh:.1f} | {ratio(ah, bh)} |")
    L.append("")
    if aw and bw and aw.get("blocks", 1) > 1:
        L.append(f"Warm starts ran in {aw['blocks']} alternating hyperfine blocks per build "
                 "(A B, B A, ...), each with its own 3 warm-up runs.\n")
    if aw and bw and (aw["fetched"] or bw["fetched"]):
        L.append(f"**Warning:** artifact requests during the warm runs: agent {aw['fetched']}, "
                 f"baseline {bw['fetched']} (a warm start should fetch nothing).\n")
    return L


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


if __name__ == "__main__":
    sys.exit(main())
