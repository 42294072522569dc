#!/usr/bin/env python3
"""btrfly's benchmark against nginx and mitmproxy: the orchestration.

Run it through `bash bench/run` (which installs what it needs and builds
the release binaries first); docs/BENCHMARKS.md says what is measured and
how. Standard library only: it starts the servers (nginx, `btrfly serve`,
mitmdump) pinned to one core, runs the load client (bench/loadgen) pinned
to the other (it also reads the server's CPU time over its measured
interval), reads each server's peak RSS from /proc, and writes
`results.json` (every run's raw figures) and `results.md` (the table of
medians and ratios) to the results directory. Servers it started are
stopped when it exits, also on failure.

Every server listens on 127.0.0.1 only; every host name is under
example.test and is mapped to 127.0.0.1 explicitly (btrfly's
[upstream.resolve], the load client's --resolve, mitmproxy's addon).
"""

import atexit
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

# ---------------------------------------------------------------- settings

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

# The sizes (BENCH_SIZE=full, the default) and a quick smoke run.
SIZES = {
    "full": dict(large=1 * GIB, small=10 * KIB, distinct=2000, requests=10000,
                 connections=32, cold_hosts=10, reps=3),
    "smoke": dict(large=64 * MIB, small=10 * KIB, distinct=200, requests=1000,
                  connections=8, cold_hosts=3, reps=1),
}

SERVER_CORE = os.environ.get("BENCH_SERVER_CORE", "0")
CLIENT_CORE = os.environ.get("BENCH_CLIENT_CORE", "1")
# A run whose load client used more of its core than this is marked: the
# client, not the server, may have set the pace.
CLIENT_BOUND_SHARE = 0.9
LOADGEN_TIMEOUT_S = 900
PROXY_USER, PROXY_PASSWORD = "bench", "bench-secret"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            die(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    die(f"{what} is not listening on {port} after {timeout} s")


def run(cmd, **kw):
    """Runs a command to completion; dies with its output when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        die(f"{' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def clean_env():
    """This machine's environment without proxy and CA-bundle presets."""
    env = dict(os.environ)
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
              "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT"):
        env.pop(k, None)
    return env


# ------------------------------------------------------------ servers

# Servers still running, stopped at exit whatever ends the harness.
RUNNING = []


def stop_all():
    for srv in list(RUNNING):
        srv.stop(grace=10)


atexit.register(stop_all)
# SIGTERM ends the harness through sys.exit, so the atexit hook runs.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


class Server:
    """A server process pinned to SERVER_CORE, with /proc readings. It runs
    in a session of its own (a Ctrl-C of the harness does not reach it
    directly); the harness stops it."""

    def __init__(self, name, cmd, logfile, env=None, cwd=None, core=SERVER_CORE, stdout=None):
        self.name = name
        self.logfile = logfile
        log(f"starting {name}: {' '.join(map(str, cmd))}")
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, *map(str, cmd)],
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else open(logfile, "ab"),
            stderr=open(logfile, "ab"),
            env=env or clean_env(), cwd=cwd,
            start_new_session=True,
        )
        # taskset execs the server: the PID is the server's own.
        self.pid = self.proc.pid
        RUNNING.append(self)

    def status_kb(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def pin(self, core):
        run(["taskset", "-a", "-p", "-c", core, str(self.pid)])

    def stop(self, sig=signal.SIGTERM, grace=30):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {grace} s; killing it")
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self):
        size = os.environ.get("BENCH_SIZE", "full")
        if size not in SIZES:
            die(f"BENCH_SIZE={size!r}: expected one of {', '.join(SIZES)}")
        self.size_name = size
        self.s = dict(SIZES[size])
        if os.environ.get("BENCH_REPS"):
            self.s["reps"] = int(os.environ["BENCH_REPS"])
        self.target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        self.btrfly = self.target / "release" / "btrfly"
        self.loadgen = self.target / "release" / "btrfly-loadgen"
        self.mitmdump = Path(os.environ.get("BENCH_MITMDUMP", self.target / "bench-venv" / "bin" / "mitmdump"))
        self.only = set(filter(None, os.environ.get("BENCH_ONLY", "nginx,btrfly,mitmproxy").split(",")))
        self.work = self.target / "bench" / "work"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.results_dir = Path(os.environ.get("BENCH_RESULTS", self.target / "bench" / "results" / stamp))
        self.runs = []  # every measured run, raw
        self.started = time.time()
        self.phase_times = {}

    # ---------------------------------------------------------- fixtures

    def prepare(self):
        for p in (self.btrfly, self.loadgen):
            if not p.exists():
                die(f"{p} is missing: build it with `cargo build --release -p btrfly -p btrfly-loadgen` (bench/run does)")
        if "mitmproxy" in self.only and not self.mitmdump.exists():
            die(f"{self.mitmdump} is missing (bench/run installs mitmproxy into a venv)")
        if self.work.exists():
            # Keep the large fixture (slow to write); everything else is per run.
            for child in self.work.iterdir():
                if child.name != "www":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        (self.work / "www" / "files").mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.results_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.write_files()
        self.write_certs()
        self.nginx_port = free_port()
        self.hosts_large = "big.example.test"
        self.hosts_small = "files.example.test"
        reps = self.s["reps"]
        # Never-seen names for every repetition of the cold start.
        self.cold_names = [[f"new-{r}-{i}.example.test" for i in range(self.s["cold_hosts"])]
                           for r in range(1, reps + 1)]
        self.all_names = [self.hosts_large, self.hosts_small] + [n for rep in self.cold_names for n in rep]
        self.write_url_lists()

    def write_files(self):
        www = self.work / "www"
        big = www / "big.bin"
        if not big.exists() or big.stat().st_size != self.s["large"]:
            log(f"writing the large file ({self.s['large']} bytes)")
            chunk = os.urandom(16 * MIB)
            with open(big, "wb") as f:
                left = self.s["large"]
                while left > 0:
                    n = min(left, len(chunk))
                    f.write(chunk[:n])
                    left -= n
                    # Distinct blocks without paying for urandom per block.
                    chunk = chunk[1:] + chunk[:1]
        files = www / "files"
        for old in files.iterdir():
            old.unlink()
        rng = random.Random(16)
        for i in range(self.s["distinct"]):
            (files / f"f{i:05}.bin").write_bytes(rng.randbytes(self.s["small"]))
        # Warm the page cache: every server reads the same cached bytes.
        with open(big, "rb") as f:
            while f.read(16 * MIB):
                pass

    def write_certs(self):
        """A benchmark CA and one ECDSA P-256 leaf for *.example.test
        (btrfly mints P-256 leaves too), made with openssl."""
        d = self.work / "certs"
        d.mkdir()
        self.ca = d / "ca.pem"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", d / "ca-key.pem", "-out", self.ca, "-days", "30",
             "-subj", "/CN=btrfly benchmark CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d / "leaf-key.pem", "-out", d / "leaf.csr", "-subj", "/CN=example.test"])
        (d / "leaf.ext").write_text(
            "subjectAltName=DNS:example.test,DNS:*.example.test\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", d / "leaf.csr", "-CA", self.ca, "-CAkey", d / "ca-key.pem",
             "-CAcreateserial", "-out", d / "leaf.pem", "-days", "30", "-extfile", d / "leaf.ext"])
        self.leaf, self.leaf_key = d / "leaf.pem", d / "leaf-key.pem"

    def url(self, host, path):
        return f"https://{host}:{self.nginx_port}{path}"

    def write_url_lists(self):
        d = self.work / "urls"
        d.mkdir()
        files = [f"/files/f{i:05}.bin" for i in range(self.s["distinct"])]
        rng = random.Random(10000)
        many = [files[i % len(files)] for i in range(self.s["requests"])]
        rng.shuffle(many)
        lists = {
            "large": [self.url(self.hosts_large, "/big.bin")],
            "small": [self.url(self.hosts_small, p) for p in many],
            "distinct": [self.url(self.hosts_small, p) for p in files],
        }
        for r, names in enumerate(self.cold_names, 1):
            lists[f"cold-{r}"] = [self.url(n, files[i]) for i, n in enumerate(names)]
        lists["cold-all"] = [u for r in range(1, len(self.cold_names) + 1) for u in lists[f"cold-{r}"]]
        # The warm-up of a small-file server: its first requests, untimed.
        lists["warmup"] = lists["small"][: min(500, len(many))]
        self.urls = {}
        for name, urls in lists.items():
            p = d / f"{name}.txt"
            p.write_text("\n".join(urls) + "\n")
            self.urls[name] = p

    # ---------------------------------------------------------- load client

    def load(self, urls, *, cacert, proxy=None, http="1.1", connections=1, fresh=False,
             label="", resolve=True, server_pid=None):
        cmd = ["taskset", "-c", CLIENT_CORE, self.loadgen, "--urls", urls, "--cacert", cacert,
               "--http", http, "--connections", connections, "--label", label,
               "--timeout-secs", LOADGEN_TIMEOUT_S]
        if server_pid:
            cmd += ["--server-pid", server_pid]
        if fresh:
            cmd.append("--fresh-connections")
        if proxy:
            cmd += ["--proxy", proxy]
        elif resolve:
            for n in self.all_names:
                cmd += ["--resolve", f"{n}:{self.nginx_port}:127.0.0.1"]
        p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=clean_env())
        if p.returncode not in (0, 1) or not p.stdout.strip():
            die(f"load client ({label}) exited {p.returncode}: {p.stderr.strip()}")
        report = json.loads(p.stdout)
        if report["failed"]:
            die(f"{label}: {report['failed']} of {report['requests']} requests failed: {report['errors']}")
        return report

    def measure(self, server, workload, target, rep, urls, **kw):
        """One timed run of the load client against `server`."""
        label = f"{target}/{workload}/{rep}"
        load0 = os.getloadavg()[0]
        # The load client reads the server's CPU time over exactly its own
        # measured interval (keep-alive connections open before it starts).
        report = self.load(urls, label=label, server_pid=server.pid, **kw)
        cpu = report["server_cpu_s"]
        report.update(
            target=target, workload=workload, rep=rep,
            server_peak_rss_kb=server.status_kb("VmHWM"),
            server_rss_kb=server.status_kb("VmRSS"),
            loadavg_before=load0, loadavg_after=os.getloadavg()[0],
        )
        self.runs.append(report)
        flag = "  (client-bound?)" if report["client_cpu_share"] > CLIENT_BOUND_SHARE else ""
        log(f"{label}: {report['requests_per_s']:.0f} req/s, {report['throughput_mb_s']:.1f} MB/s, "
            f"p50 {report['latency']['p50_us']} us, p99 {report['latency']['p99_us']} us, "
            f"server CPU {cpu:.2f} s, peak RSS {report['server_peak_rss_kb'] // 1024} MiB, "
            f"client CPU share {report['client_cpu_share']:.2f}{flag}")
        return report

    def reps(self):
        return range(1, self.s["reps"] + 1)

    def timed(self, name, fn):
        t0 = time.time()
        fn()
        self.phase_times[name] = round(time.time() - t0, 1)
        log(f"phase {name}: {self.phase_times[name]} s")

    # ---------------------------------------------------------- nginx

    def start_nginx(self):
        d = self.work / "nginx"
        for sub in ("logs", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.nginx_port} ssl http2;
        server_name _;
        ssl_certificate {self.leaf};
        ssl_certificate_key {self.leaf_key};
        root {self.work / 'www'};
    }}
}}
""")
        self.nginx = Server("nginx", ["nginx", "-p", f"{d}/", "-c", conf, "-e", d / "logs" / "error.log",
                                      "-g", "daemon off; master_process off;"], self.logs / "nginx.log")
        wait_port(self.nginx_port, self.nginx.proc, "nginx")

    # ---------------------------------------------------------- btrfly

    def btrfly_config(self):
        d = self.work / "btrfly"
        (d / "home").mkdir(parents=True, exist_ok=True)
        self.btrfly_proxy_port, self.btrfly_control_port = free_port(), free_port()

    def start_btrfly(self, what, store):
        """`btrfly serve` on fs storage `stores/STORE`: every recording goes
        into a store of its own, so each repetition records into the same
        (empty) state, and a playback reads the store its tag was recorded
        in. The data dir (CA, token) is shared."""
        d = self.work / "btrfly"
        resolve = "\n".join(f'"{n}" = "127.0.0.1"' for n in self.all_names)
        cfg = d / f"config-{store}.toml"
        cfg.write_text(f"""data_dir = "{d / 'data'}"

[storage]
backend = "fs"
root = "{d / 'stores' / store}"

[proxy]
listen = "127.0.0.1:{self.btrfly_proxy_port}"

[control]
listen = "127.0.0.1:{self.btrfly_control_port}"

[upstream]
ca_file = "{self.ca}"

[upstream.resolve]
{resolve}
""")
        srv = Server(f"btrfly ({what})", [self.btrfly, "serve", "--config", cfg],
                     self.logs / "btrfly.log")
        wait_port(self.btrfly_proxy_port, srv.proc, "btrfly serve")
        wait_port(self.btrfly_control_port, srv.proc, "btrfly serve")
        return srv

    def btrfly_cli_env(self):
        d = self.work / "btrfly"
        env = clean_env()
        env.update(BTRFLY_HOME=str(d / "home"),
                   BTRFLY_SERVER=f"http://127.0.0.1:{self.btrfly_control_port}",
                   BTRFLY_TOKEN=(d / "data" / "token").read_text().strip())
        return env

    def btrfly_start(self, mode, tag):
        """`eval "$(btrfly start MODE --tag=TAG)"` as a user does; returns
        the exported proxy URL (with the session credential) and CA bundle."""
        script = f'set -e; eval "$("$BTRFLY" start {mode} --tag={tag})"; printf "%s\\n%s\\n" "$HTTPS_PROXY" "$SSL_CERT_FILE"'
        env = self.btrfly_cli_env()
        env["BTRFLY"] = str(self.btrfly)
        proxy, bundle = run(["bash", "-c", script], env=env).splitlines()[:2]
        return dict(proxy=proxy, cacert=bundle)

    def btrfly_stop(self):
        """`btrfly stop`: exits non-zero for a playback with misses."""
        return run([self.btrfly, "stop"], env=self.btrfly_cli_env())

    # ---------------------------------------------------------- mitmproxy

    def start_mitm(self, what, args):
        d = self.work / "mitm"
        (d / "conf").mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [self.mitmdump, "--listen-host", "127.0.0.1", "--listen-port", port,
               "--set", f"confdir={d / 'conf'}",
               "--set", f"proxyauth={PROXY_USER}:{PROXY_PASSWORD}",
               "--set", f"ssl_verify_upstream_trusted_ca={self.ca}",
               "-s", BENCH / "mitm_resolve.py", "-q", *args]
        srv = Server(f"mitmdump ({what})", cmd, self.logs / "mitmproxy.log")
        wait_port(port, srv.proc, "mitmdump", timeout=600)
        sess = dict(proxy=f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}",
                    cacert=d / "conf" / "mitmproxy-ca-cert.pem")
        return srv, sess

    def flows(self, name):
        return self.work / "mitm" / f"{name}.flows"

    def replay_args(self, flows):
        # Replay only: every request answered from the flows (reused for
        # repeated requests), anything else killed, no upstream connection.
        return ["--server-replay", flows, "--set", "server_replay_reuse=true",
                "--set", "server_replay_extra=kill", "--set", "connection_strategy=lazy"]

    # ---------------------------------------------------------- the run

    def rotated(self, items, rep):
        """`items` starting at a different one each repetition, so that no
        target always runs first (or last) in a noisy stretch."""
        k = (rep - 1) % len(items) if items else 0
        return items[k:] + items[:k]

    def record_phase(self):
        """Per repetition: the direct download from nginx (on the server
        core), and btrfly and mitmproxy recording the same URLs from it
        (nginx moved to the client's core, so the recorder has its core to
        itself, as with a remote upstream). Every recording is a first
        one: a fresh recorder process with an empty store (btrfly) or flow
        file (mitmproxy)."""
        s, only = self.s, self.only
        direct = dict(cacert=self.ca)
        workloads = [("large", 1), ("distinct", s["connections"])]
        if os.environ.get("BENCH_RECORD_REPEATS") == "1":
            # The whole small-file list (each file 5 times) recorded: slow
            # and erratic in btrfly today (docs/BENCHMARKS.md), so opt-in.
            workloads.append(("small", s["connections"]))
        for wl, conns in workloads:
            for r in self.reps():
                for target in self.rotated(["nginx", "btrfly", "mitmproxy"], r):
                    if target not in only:
                        continue
                    if target == "nginx":
                        self.nginx.pin(SERVER_CORE)
                        self.measure(self.nginx, f"direct-{wl}", "nginx", r, self.urls[wl],
                                     connections=conns, **direct)
                        continue
                    self.nginx.pin(CLIENT_CORE)
                    if target == "btrfly":
                        bt = self.start_btrfly("record", f"{wl}-{r}")
                        sess = self.btrfly_start("record", f"{wl}-{r}")
                        self.measure(bt, f"record-{wl}", "btrfly", r, self.urls[wl],
                                     connections=conns, **sess)
                        self.btrfly_stop()
                        bt.stop()
                    else:
                        mitm, sess = self.start_mitm("record", ["-w", self.flows(f"{wl}-{r}")])
                        self.measure(mitm, f"record-{wl}", "mitmproxy", r, self.urls[wl],
                                     connections=conns, **sess)
                        mitm.stop(signal.SIGINT, grace=120)
        # The cold-start names, recorded once, untimed.
        self.nginx.pin(CLIENT_CORE)
        if "btrfly" in only:
            bt = self.start_btrfly("record", "cold")
            sess = self.btrfly_start("record", "cold")
            self.load(self.urls["cold-all"], fresh=True, label="btrfly/record-cold", **sess)
            self.btrfly_stop()
            bt.stop()
        if "mitmproxy" in only:
            mitm, sess = self.start_mitm("record", ["-w", self.flows("cold")])
            self.load(self.urls["cold-all"], fresh=True, label="mitmproxy/record-cold", **sess)
            mitm.stop(signal.SIGINT, grace=120)
        self.nginx.pin(SERVER_CORE)

    def replay_phase(self, workload, tag, http="1.1", connections=1, fresh=False, warmup=False):
        """One playback workload: a fresh btrfly (playback of `tag`) and a
        fresh mitmdump (server replay of the flows recorded as `tag`), and
        nginx serving the files directly; per repetition each of the three
        runs the same URL list."""
        s, only = self.s, self.only
        servers = {}
        if "nginx" in only:
            servers["nginx"] = (self.nginx, dict(cacert=self.ca))
        if "btrfly" in only:
            bt = self.start_btrfly(f"playback {workload}", tag)
            servers["btrfly"] = (bt, self.btrfly_start("playback", tag))
        if "mitmproxy" in only:
            servers["mitmproxy"] = self.start_mitm(f"replay {workload}", self.replay_args(self.flows(tag)))
        kw = dict(http=http, connections=connections, fresh=fresh)
        if warmup:
            # Loads the tag's index, mints the host's certificate, warms caches.
            for target, (srv, sess) in servers.items():
                self.load(self.urls["warmup"], label=f"{target}/warmup-{workload}",
                          **dict(kw, connections=s["connections"]), **sess)
        cold = workload == "cold"
        for name in (["cold", "warm-conn"] if cold else [workload]):
            for r in self.reps():
                # Never-seen names per repetition; then the same names again.
                urls = self.urls[f"cold-{r}"] if cold else self.urls[
                    "large" if workload == "large" else "small"]
                for target in self.rotated(list(servers), r):
                    srv, sess = servers[target]
                    self.measure(srv, name, target, r, urls, **kw, **sess)
        if "btrfly" in servers:
            self.btrfly_stop()  # exits non-zero (and the run fails) on any miss
            servers["btrfly"][0].stop()
        if "mitmproxy" in servers:
            servers["mitmproxy"][0].stop()

    def main(self):
        self.prepare()
        log(f"size {self.size_name}: {self.s}; results in {self.results_dir}")
        self.start_nginx()
        try:
            if "btrfly" in self.only:
                self.btrfly_config()
            c = self.s["connections"]
            # nginx's own caches (open files, TLS) warm before anything counts.
            self.load(self.urls["warmup"], cacert=self.ca, connections=c, label="nginx/warmup")
            self.timed("recording", self.record_phase)
            self.timed("replay 1 GiB", lambda: self.replay_phase("large", "large-1"))
            for http in ("1.1", "2"):
                self.timed(f"replay small h{http}", lambda: self.replay_phase(
                    f"small-h{http}", "distinct-1", http=http, connections=c, warmup=True))
            self.timed("replay cold", lambda: self.replay_phase("cold", "cold", fresh=True))
        finally:
            self.nginx.stop()
        self.report()


    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])

        def version(cmd):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
                return (p.stdout + p.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "unknown"

        return {
            "nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / MIB, 1),
            "kernel": platform.release(), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "btrfly": version([str(self.btrfly), "--version"]),
            "nginx": version(["nginx", "-v"]),
            "mitmproxy": version([str(self.mitmdump), "--version"]) if self.mitmdump.exists() else "-",
            "rustc": version(["rustc", "--version"]),
            "git": version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        }

    def report(self):
        from report import render  # bench/report.py
        doc = {
            "size": self.size_name, "settings": self.s, "machine": self.machine(),
            "server_core": SERVER_CORE, "client_core": CLIENT_CORE,
            "phase_seconds": self.phase_times,
            "total_seconds": round(time.time() - self.started, 1),
            "runs": self.runs,
        }
        (self.results_dir / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
        table = render(doc)
        (self.results_dir / "results.md").write_text(table)
        print(table)
        log(f"wrote {self.results_dir}/results.md and results.json in {doc['total_seconds']} s")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    Bench().main()
