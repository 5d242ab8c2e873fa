#!/usr/bin/env python3
"""Supervision figures of `ksql-msk run` (issue 13): the agent's RSS while it supervises
ksqlDB (right after a cold install of a 200 MB release in the same process, ~10 s later,
and in a warm run), and crash -> restart latency, for the agent and a baseline build in
one run, alternating. Run it through `bench/supervise` (it builds the binaries);
`bench/supervise --help` lists the options. bench/README.md says what is measured.

The ksqlDB is the testkit's stand-in (`fake-ksqldb`, as the release's
bin/ksql-server-start), the artifacts come from nginx on loopback, the MSK API is the
testkit's `fake-msk`: nothing but loopback is contacted. Python 3.11 standard library;
the servers and inputs are bench.py's.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the servers, inputs and machine description are shared)

WORK = bench.WORK / "supervise"
VERSION = bench.VERSION
TARGET_RSS_MIB = 20.0
JAVA = ("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15 LTS' >&2\n"
        "echo 'OpenJDK Runtime Environment Corretto-17.0.15.6.1 (build 17.0.15+6-LTS)' >&2\n")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- inputs


def ensure_release(size_mb: int, fake_ksqldb: Path, www: Path, gnupg: Path) -> Path:
    """bench.py's ksqlDB-shaped archive of size_mb MB, repacked with a
    bin/ksql-server-start that execs the stand-in, and signed. Made once (a stamp names
    the stand-in's path). Returns the archive."""
    src = bench.ensure_inputs(size_mb, bench.WORK / "www", gnupg)
    d = www / f"{size_mb}m"
    archive = d / f"confluent-ksqldb-{VERSION}.tar.gz"
    stamp = d / ".done"
    want = f"{bench.GEN_VERSION}:{size_mb}:{fake_ksqldb}"
    if stamp.exists() and stamp.read_text() == want:
        return archive
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    tree = WORK / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    t0 = time.monotonic()
    log(f"  repacking the {size_mb} MB archive with the stand-in as bin/ksql-server-start")
    bench.run(["tar", "-C", str(tree), "-xzf", str(src.archive)])
    start = tree / f"confluent-ksqldb-{VERSION}" / "bin" / "ksql-server-start"
    start.write_text(f"#!/bin/sh\nexec '{fake_ksqldb}' \"$@\"\n")
    start.chmod(0o755)
    bench.run(["tar", "-C", str(tree), "--owner=0", "--group=0", "--numeric-owner",
               "-czf", str(archive), f"confluent-ksqldb-{VERSION}"])
    shutil.rmtree(tree)
    env = dict(os.environ, GNUPGHOME=str(gnupg))
    bench.run(["gpg", "--batch", "--yes", "--quiet", "--armor", "--detach-sign",
               "-o", f"{archive}.asc", str(archive)], env=env)
    log(f"  done in {time.monotonic() - t0:.0f} s")
    stamp.write_text(want)
    return archive


# --------------------------------------------------------------------------- the agent


class NotifySocket:
    """A fake systemd notify socket: records (monotonic time, line) of every message."""

    def __init__(self, path: Path):
        path.unlink(missing_ok=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.open = True
        self.thread = threading.Thread(target=self._recv, daemon=True)
        self.thread.start()

    def _recv(self) -> None:
        while self.open:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, OSError):
                continue
            now = time.monotonic()
            with self.lock:
                self.lines += [(now, l) for l in data.decode(errors="replace").splitlines()]

    def seen(self, prefix: str) -> list[tuple[float, str]]:
        with self.lock:
            return [(t, l) for t, l in self.lines if l.startswith(prefix)]

    def close(self) -> None:
        self.open = False
        self.thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


def proc_status(pid: int) -> dict:
    """VmRSS, VmHWM, RssAnon, RssFile (KiB) and Threads of `pid`, and its open
    descriptors."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def pids(release: Path) -> list[int]:
    try:
        return [int(l) for l in (release / "fake-ksqldb.pids").read_text().split()]
    except FileNotFoundError:
        return []


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return b'"isHealthy":true' in r.read()
    except OSError:
        return False


def wait(what: str, f, timeout: float, agent: subprocess.Popen | None = None, step=0.005):
    end = time.monotonic() + timeout
    while True:
        v = f()
        if v:
            return v
        if agent is not None and agent.poll() is not None:
            raise RuntimeError(f"the agent exited ({agent.returncode}) waiting for {what}")
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


@dataclass
class World:
    nginx: bench.Nginx
    msk: bench.FakeMskProc
    fpr: str
    jar_sha: str
    java_home: Path
    size_mb: int
    port: int = field(default_factory=bench.free_port)


def config(w: World, build: str, backoff: str, limit: int) -> tuple[Path, Path]:
    """The same config for both builds (one config contract); each its own state dir."""
    state = WORK / "state" / build
    path = WORK / f"{build}.toml"
    art = f"{w.nginx.url}/{w.size_mb}m/confluent-ksqldb-{VERSION}.tar.gz"
    path.write_text(f"""# ksql-msk config for bench/supervise (generated)
[msk]
cluster_arn = "{w.msk.arn}"
endpoint_url = "{w.msk.url}"

[ksqldb]
version = "{VERSION}"
archive_url = "{art}"
signature_url = "{art}.asc"
key_url = "{w.nginx.url}/archive.key"
trusted_fingerprints = ["{w.fpr}"]
listeners = "http://127.0.0.1:{w.port}"
java_home = "{w.java_home}"
heap = "auto"

[iam_auth]
version = "{bench.IAM_VERSION}"
jar_url = "{w.nginx.url}/aws-msk-iam-auth-{bench.IAM_VERSION}-all.jar"
sha256 = "{w.jar_sha}"

[agent]
state_dir = "{state}"
health_url = "http://127.0.0.1:{w.port}/healthcheck"
restart_backoff = "{backoff}"
restart_backoff_max = "{backoff}"
restart_limit = {limit}
restart_window = "1m"
stop_timeout = "5s"
""")
    return path, state


class Run:
    """One `ksql-msk run` with a fake notify socket, until stop()."""

    def __init__(self, binary: Path, cfg: Path, state: Path):
        self.notify = NotifySocket(WORK / "notify.sock")
        env = dict(bench.base_env(), KSQL_MSK_CONFIG=str(cfg), KSQL_MSK_LOG_FORMAT="stderr",
                   NOTIFY_SOCKET=str(self.notify.path))
        self.errlog = open(WORK / "agent.log", "ab")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([str(binary), "run"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.errlog)
        self.release = state / "releases" / VERSION

    def ready(self, timeout: float) -> float:
        """Seconds from the start to READY=1."""
        t, _ = wait("READY=1", lambda: (self.notify.seen("READY=1") or [None])[0], timeout,
                    self.proc)
        return t - self.t0

    def status(self) -> dict:
        return proc_status(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.notify.close()
        self.errlog.close()
        return self.proc.returncode


def crash_latency(r: Run, w: World, rounds: int) -> list[float]:
    """Make the stand-in crash `rounds` times; seconds from its exit (a pidfd of it
    becomes readable) to the next start (its pid appended to fake-ksqldb.pids)."""
    url = f"http://127.0.0.1:{w.port}/healthcheck"
    out = []
    for _ in range(rounds):
        wait("a healthy stand-in", lambda: healthy(url), 60, r.proc, step=0.05)
        time.sleep(0.5)  # the agent's probe sees it healthy too
        before = pids(r.release)
        fd = os.pidfd_open(before[-1])
        try:
            (r.release / "fake-ksqldb.crash").write_text("")
            select.select([fd], [], [], 30)
            exited = time.monotonic()
        finally:
            os.close(fd)
        wait("the restart", lambda: len(pids(r.release)) > len(before), 60, r.proc, step=0.001)
        out.append(time.monotonic() - exited)
    return out


# --------------------------------------------------------------------------- rounds


@dataclass
class Figures:
    cold_ready_s: list[float] = field(default_factory=list)
    cold_rss: list[int] = field(default_factory=list)     # KiB at READY after the install
    cold_hwm: list[int] = field(default_factory=list)     # VmHWM at READY (the install's peak)
    cold_rss_10s: list[int] = field(default_factory=list)
    cold_anon_10s: list[int] = field(default_factory=list)  # RssAnon of the same look
    warm_rss: list[int] = field(default_factory=list)
    warm_anon: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    latency: dict = field(default_factory=dict)           # backoff -> [s]
    error: str | None = None


def one_round(build: str, binary: Path, w: World, f: Figures, backoffs: list[str], crashes: int,
              steady: float) -> None:
    cfg, state = config(w, build, backoffs[0], 1000)
    shutil.rmtree(state, ignore_errors=True)
    bench.run(["sync"])
    # 1. Cold: install the release in this process, then supervise.
    r = Run(binary, cfg, state)
    try:
        f.cold_ready_s.append(r.ready(600))
        s = r.status()
        f.cold_rss.append(s["VmRSS"])
        f.cold_hwm.append(s["VmHWM"])
        time.sleep(steady)
        s = r.status()
        f.cold_rss_10s.append(s["VmRSS"])
        f.cold_anon_10s.append(s["RssAnon"])
    finally:
        code = r.stop()
    if code != 0:
        raise RuntimeError(f"cold run exited {code}")
    # 2. Warm runs, one per backoff: RSS while supervising, crash -> restart latency.
    for i, backoff in enumerate(backoffs):
        cfg, state = config(w, build, backoff, 1000)
        r = Run(binary, cfg, state)
        try:
            r.ready(120)
            if i == 0:
                time.sleep(2)
                s = r.status()
                f.warm_rss.append(s["VmRSS"])
                f.warm_anon.append(s["RssAnon"])
                f.threads.append(s["Threads"])
                f.fds.append(s["fds"])
            f.latency.setdefault(backoff, []).extend(crash_latency(r, w, crashes))
        finally:
            code = r.stop()
        if code != 0:
            raise RuntimeError(f"warm run (backoff {backoff}) exited {code}")


# --------------------------------------------------------------------------- report


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def spread(xs: list[float], fmt) -> str:
    if not xs:
        return "n/a"
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def ratio(a: list[float], b: list[float]) -> str:
    if not a or not b or statistics.median(b) == 0:
        return ""
    return f"{statistics.median(a) / statistics.median(b):.2f} ×"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(figs: dict[str, Figures], names: dict[str, str], mach: dict, args, backoffs: list[str],
           digests: dict[str, str], load: list[str]) -> str:
    builds = list(figs)
    a = figs["agent"]
    lines = [
        "# Supervision figures (issue 13)" + (": agent vs baseline" if "baseline" in figs else ""),
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Command: `{args.command}`.",
        f"Machine: {mach['nproc']} × {mach['cpu']}, {mach['memory']}, Linux {mach['kernel']}, "
        f"{mach['filesystem']}; load average before/after the rounds: {load[0]} / {load[-1]}.",
        "",
        f"Builds: " + "; ".join(f"**{b}** = {names[b]} (sha256 {digests[b][:12]})" for b in builds)
        + (" — the same binary: the differences are only noise." if len(set(digests.values())) < len(digests) else "."),
        "",
        f"Each round, alternating {' and '.join(builds)}: a cold `ksql-msk run` of a "
        f"{args.size} MB signed release (stand-in ksqlDB, nginx and fake-msk on loopback) from "
        f"an empty state dir, the agent's VmRSS/VmHWM from /proc/PID/status at READY=1 and "
        f"{args.steady:.0f} s later; then a warm `run` per backoff (release installed): VmRSS "
        f"2 s after READY, and {args.crashes} crashes of the stand-in (fake-ksqldb.crash) timed "
        f"from its exit (pidfd) to its next start (its pid in fake-ksqldb.pids). "
        f"`restart_backoff` = `restart_backoff_max` = the backoff named (so every restart waits "
        f"exactly that), restart_limit 1000. Rounds: {args.rounds}. Medians (min–max).",
        "",
    ]
    header = "| figure | " + " | ".join(builds) + (" | agent ÷ baseline |" if "baseline" in figs else "")
    lines += [header, "|" + " --- |" * (len(builds) + 1 + ("baseline" in figs))]

    def row(name, get, fmt):
        cells = []
        for b in builds:
            f = figs[b]
            cells.append(f"n/a ({f.error})" if f.error and not get(f) else spread(get(f), fmt))
        extra = ""
        if "baseline" in figs:
            extra = f" {ratio(get(a), get(figs['baseline']))} |"
        lines.append(f"| {name} | " + " | ".join(cells) + " |" + extra)

    row("cold run: READY after s", lambda f: f.cold_ready_s, lambda x: f"{x:.2f}")
    row("cold run: VmRSS MiB at READY (right after the install)", lambda f: f.cold_rss, mib)
    row("cold run: VmHWM MiB at READY (the install's peak)", lambda f: f.cold_hwm, mib)
    row(f"cold run: VmRSS MiB {args.steady:.0f} s later, supervising", lambda f: f.cold_rss_10s, mib)
    row("… of which RssAnon (heap, stacks)", lambda f: f.cold_anon_10s, mib)
    row("warm run: VmRSS MiB, supervising", lambda f: f.warm_rss, mib)
    row("… of which RssAnon (heap, stacks)", lambda f: f.warm_anon, mib)
    row("warm run: threads", lambda f: f.threads, lambda x: f"{x:.0f}")
    row("warm run: open fds", lambda f: f.fds, lambda x: f"{x:.0f}")
    for b in backoffs:
        row(f"crash → restart ms, restart_backoff {b}", lambda f, b=b: f.latency.get(b, []),
            lambda x: f"{x * 1000:.0f}")
    lines.append("")
    worst_cold = max(a.cold_rss + a.cold_rss_10s, default=None)
    worst_warm = max(a.warm_rss, default=None)
    if worst_cold is not None and worst_warm is not None:
        lines += [
            f"Target (issue 13): agent RSS while supervising ≤ {TARGET_RSS_MIB:.0f} MiB: "
            f"warm, highest {mib(worst_warm)} MiB: {verdict(worst_warm <= TARGET_RSS_MIB * 1024)}; "
            f"right after a cold install, highest {mib(worst_cold)} MiB: "
            f"{verdict(worst_cold <= TARGET_RSS_MIB * 1024)}.",
            "",
        ]
    for b in builds:
        if figs[b].error:
            lines.append(f"{b} not fully measured: {figs[b].error}")
    return "\n".join(lines).rstrip() + "\n"


def self_check() -> int:
    """Seconds: the report renders, with and without a baseline; the notify socket and
    /proc reading work. No build, no servers."""
    mach = {"nproc": 2, "cpu": "x", "memory": "1 GiB", "kernel": "k", "filesystem": "ext4 on d"}
    args = argparse.Namespace(command="bench/supervise", size=200, steady=10.0, crashes=3, rounds=2)

    def fig(k):
        return Figures([1.0, 1.2], [k, k], [k * 2, k * 2], [k, k], [k // 2, k // 2],
                       [k - 1024, k], [k // 2, k // 2], [9, 9], [12, 12],
                       {"2s": [2.004, 2.006], "100ms": [0.104, 0.11]})
    both = {"agent": fig(19 * 1024), "baseline": fig(22 * 1024)}
    names = {"agent": "rev aaa", "baseline": "rev bbb"}
    digests = {"agent": "a" * 64, "baseline": "b" * 64}
    text = render(both, names, mach, args, ["2s", "100ms"], digests, ["0.1", "0.2"])
    for needle in ("| cold run: VmRSS MiB at READY (right after the install) | 19.0 (19.0–19.0) | "
                   "22.0 (22.0–22.0) | 0.86 × |",
                   "| crash → restart ms, restart_backoff 2s | 2005 (2004–2006) |",
                   "| crash → restart ms, restart_backoff 100ms | 107 (104–110) |",
                   "warm, highest 19.0 MiB: met", "right after a cold install, highest 19.0 MiB: met"):
        assert needle in text, (needle, text)
    assert "same binary" not in text
    both["agent"] = fig(21 * 1024)
    text = render({"agent": both["agent"]}, names, mach, args, ["2s"], digests, ["0.1"])
    assert "right after a cold install, highest 21.0 MiB: **missed**" in text, text
    assert "baseline" not in text.replace("a baseline", ""), text
    text = render(both, names, mach, args, ["2s"], {"agent": "a" * 64, "baseline": "a" * 64}, ["0"])
    assert "same binary" in text, text
    with tempfile.TemporaryDirectory() as tmp:
        n = NotifySocket(Path(tmp) / "n.sock")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        c.sendto(b"STATUS=x\nREADY=1", str(n.path))
        wait("the message", lambda: n.seen("READY=1"), 5)
        n.close()
        c.close()
    s = proc_status(os.getpid())
    assert s["VmRSS"] > 0 and s["fds"] > 0 and s["Threads"] >= 1, s
    log("supervise self-check: report, notify socket and /proc reading ok")
    return 0


def sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    if sys.argv[1:] == ["--self-check"]:
        return self_check()
    ap = argparse.ArgumentParser(prog="bench/supervise", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", type=Path, default=bench.REPO / "target/release/ksql-msk")
    ap.add_argument("--agent-name", default="this tree")
    ap.add_argument("--baseline", type=Path, help="another ksql-msk binary, measured beside")
    ap.add_argument("--baseline-name")
    ap.add_argument("--fake-ksqldb", type=Path,
                    default=bench.REPO / "target/release/examples/fake-ksqldb")
    ap.add_argument("--fake-msk", type=Path, default=bench.REPO / "target/release/fake-msk")
    ap.add_argument("--size", type=int, default=200, help="archive MB (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--crashes", type=int, default=5, help="crashes per backoff per round (5)")
    ap.add_argument("--backoffs", default="2s,100ms", help="restart_backoff values (2s,100ms)")
    ap.add_argument("--steady", type=float, default=10.0, help="s after READY for the 2nd RSS")
    ap.add_argument("--out", type=Path, default=bench.BENCH / "SUPERVISE.md")
    ap.add_argument("--command", default="bench/supervise")
    args = ap.parse_args()
    backoffs = [b.strip() for b in args.backoffs.split(",") if b.strip()]
    builds = {"agent": args.agent}
    names = {"agent": args.agent_name}
    if args.baseline:
        builds["baseline"] = args.baseline
        names["baseline"] = args.baseline_name or str(args.baseline)
    for p in [*builds.values(), args.fake_ksqldb, args.fake_msk]:
        if not os.access(p, os.X_OK):
            raise SystemExit(f"bench/supervise: {p}: not an executable (build it first)")

    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "agent.log").write_bytes(b"")
    gnupg, fpr = bench.ensure_gpg_key()
    www = WORK / "www"
    www.mkdir(parents=True, exist_ok=True)
    ensure_release(args.size, args.fake_ksqldb, www, gnupg)
    jar_sha = bench.ensure_common(www, gnupg)
    java_home = WORK / "jdk"
    (java_home / "bin").mkdir(parents=True, exist_ok=True)
    (java_home / "bin/java").write_text(JAVA)
    (java_home / "bin/java").chmod(0o755)
    mach = bench.machine()
    nginx = bench.Nginx(www)
    msk = bench.FakeMskProc(args.fake_msk)
    w = World(nginx, msk, fpr, jar_sha, java_home, args.size)
    figs = {b: Figures() for b in builds}
    load = [bench.loadavg()]
    try:
        for rnd in range(1, args.rounds + 1):
            for b, binary in builds.items():
                if figs[b].error:
                    continue
                log(f"==> round {rnd}/{args.rounds}: {b}")
                try:
                    one_round(b, binary, w, figs[b], backoffs, args.crashes, args.steady)
                except RuntimeError as e:
                    figs[b].error = str(e)
                    log(f"    {b}: {e} (see {WORK / 'agent.log'})")
                f = figs[b]
                if f.cold_rss_10s:
                    log(f"    cold READY {f.cold_ready_s[-1]:.2f} s, VmRSS {mib(f.cold_rss[-1])} MiB "
                        f"(HWM {mib(f.cold_hwm[-1])}), {args.steady:.0f} s later {mib(f.cold_rss_10s[-1])}; "
                        f"(anon {mib(f.cold_anon_10s[-1])}); warm {mib(f.warm_rss[-1]) if f.warm_rss else 'n/a'} MiB "
                        f"(anon {mib(f.warm_anon[-1]) if f.warm_anon else 'n/a'}); latency ms "
                        + ", ".join(f"{k}: {[round(x * 1000) for x in v[-args.crashes:]]}"
                                    for k, v in f.latency.items()))
            load.append(bench.loadavg())
    finally:
        msk.stop()
        nginx.stop()
    digests = {b: sha256(p) for b, p in builds.items()}
    text = render(figs, names, mach, args, backoffs, digests, load)
    print(text)
    args.out.write_text(text)
    log(f"wrote {args.out}")
    return 2 if any(f.error for f in figs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
