#!/usr/bin/env python3
"""nginx as a gRPC load balancer in front of two `chai serve` replicas.

Runs deploy/nginx/chai-grpc.conf itself (only its upstream addresses and its
listen port are rewritten to loopback ports) under a throw-away nginx main
config in a temporary prefix, as a non-root process. Then:

1. `chai bench` through nginx: every request succeeds, and each replica's
   /metrics shows it served some of them (nginx balances per call) and
   together exactly all of them.
2. `chai bench --retries 5` through nginx, and SIGTERM to replica A while
   the load runs: no request fails (A's streams in flight finish during its
   drain, calls A refuses with UNAVAILABLE are retried by the bench and land
   on B, calls to the stopped A are moved to B by nginx), A exits 0, and B
   takes the rest.

Exits 77 (ctest SKIP_RETURN_CODE) when nginx is not installed, unless CI=true,
where that is a failure (deploy/setup.sh installs it).
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

BENCH_COMMON = ["--prompt-tokens", "8", "--max-tokens", "16", "--timeout", "60", "--json"]



def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    """A `chai serve` on ephemeral loopback ports."""

    def __init__(self, chai, model, name, workdir):
        self.name = name
        self.err_path = os.path.join(workdir, f"{name}.err")
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            [chai, "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
             "--metrics-port", "0", "--threads", "1", "--max-model-len", "256",
             "--kv-cache-bytes", "80000000", "--drain-grace", "1s", "--drain-timeout", "30s"],
            stdout=subprocess.PIPE, stderr=self.err)
        self.target = self.metrics = None

    def wait_ready(self, timeout=90):
        # Raw reads: a buffered readline() could swallow the second line
        # while select() waits on the descriptor.
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.time() + timeout
        while time.time() < deadline and b"serving on " not in buf:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
        for line in buf.decode().splitlines():
            if line.startswith("metrics on "):
                self.metrics = line[len("metrics on "):].strip()
            if line.startswith("serving on "):
                self.target = line[len("serving on "):].strip()
        if self.target is None or self.metrics is None:
            raise RuntimeError(f"replica {self.name} did not start: {self.stderr()}")

    def port(self):
        return int(self.target.rsplit(":", 1)[1])

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def scrape(self):
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=10) as r:
            return r.read().decode()

    def successes(self):
        """Sum of chai_request_success_total over finish reasons."""
        total = 0.0
        for line in self.scrape().splitlines():
            if line.startswith("chai_request_success_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def nginx_config(prefix, shipped_conf, listen_port, upstream_ports):
    """The shipped http{} file with loopback addresses, and a main config."""
    with open(shipped_conf) as f:
        conf = f.read()
    servers = re.findall(r"^(\s*)server\s+\S+:\d+([^;]*);", conf, flags=re.M)
    if len(servers) != len(upstream_ports):
        raise RuntimeError(f"{shipped_conf}: expected {len(upstream_ports)} upstream servers, "
                           f"found {len(servers)}")
    ports = iter(upstream_ports)
    conf = re.sub(r"^(\s*)server\s+\S+:\d+([^;]*);",
                  lambda m: f"{m.group(1)}server 127.0.0.1:{next(ports)}{m.group(2)};",
                  conf, flags=re.M)
    conf, n = re.subn(r"^(\s*)listen\s+\d+(\s+http2);", rf"\1listen 127.0.0.1:{listen_port}\2;",
                      conf, flags=re.M)
    if n != 1:
        raise RuntimeError(f"{shipped_conf}: expected one `listen PORT http2;` line, found {n}")
    with open(os.path.join(prefix, "chai-grpc.conf"), "w") as f:
        f.write(conf)
    main = f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format lb '$remote_addr "$request" $status up=$upstream_addr '
                  'up_status=$upstream_status grpc=$sent_http_grpc_status/$sent_trailer_grpc_status rt=$request_time';
    access_log {prefix}/access.log lb;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/chai-grpc.conf;
}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(main)
    return path


def as_non_root():
    """argv prefix that drops root (nginx must not run as root here)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise RuntimeError("running as root and util-linux's setpriv is missing")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def run_bench(chai, target, extra):
    out = subprocess.run([chai, "bench", "--target", target] + BENCH_COMMON + extra,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"chai bench failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chai", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if nginx is None:
        testlib.skip_or_fail("nginx is not installed (Debian package nginx)")
    version = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    if "--with-http_v2_module" not in version or "--without-http_grpc_module" in version:
        print(f"FAIL: {nginx} lacks HTTP/2 or the grpc module:\n{version}")
        return 1
    model = os.path.join(args.source_dir, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        print(f"FAIL: default model missing at {model}: run deploy/setup.sh")
        return 1

    checks = testlib.Checks()
    check, failures = checks.check, checks.failures

    work = tempfile.mkdtemp(prefix="chai_nginx_")
    os.chmod(work, 0o777)  # nginx runs as nobody when the test runs as root
    replicas = [Replica(args.chai, model, n, work) for n in ("a", "b")]
    nginx_proc = None
    t0 = time.time()
    try:
        for r in replicas:
            r.wait_ready()
        a, b = replicas
        lb_port = free_port()
        conf = nginx_config(work, os.path.join(args.source_dir, "deploy/nginx/chai-grpc.conf"),
                            lb_port, [a.port(), b.port()])
        cmd = as_non_root() + [nginx, "-p", work, "-c", conf, "-e", os.path.join(work, "error.log")]
        t = subprocess.run(cmd + ["-t"], capture_output=True, text=True)
        check("nginx -t accepts deploy/nginx/chai-grpc.conf", t.returncode == 0, t.stderr)
        if t.returncode != 0:
            return 1
        nginx_proc = subprocess.Popen(cmd + ["-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        if not wait_port(lb_port):
            print("FAIL: nginx did not listen: " + nginx_proc.stderr.read())
            return 1
        user = subprocess.run(["ps", "-o", "user=", "-p", str(nginx_proc.pid)],
                              capture_output=True, text=True).stdout.strip()
        check("nginx runs as a non-root user", user not in ("", "root"), user)
        target = f"127.0.0.1:{lb_port}"

        # 1. Balanced: both replicas serve, together exactly all requests.
        n1 = 12
        r1 = run_bench(args.chai, target, ["--concurrency", "4", "--requests", str(n1)])
        check("phase 1: every request through nginx succeeds",
              r1["succeeded"] == n1 and not r1["errors"], r1)
        # The engine counts a request when it retires it, which may be just
        # after the client saw the stream end: allow the counters a moment.
        deadline = time.time() + 10
        sa, sb = a.successes(), b.successes()
        while sa + sb < n1 and time.time() < deadline:
            time.sleep(0.1)
            sa, sb = a.successes(), b.successes()
        print(f"phase 1: replica a served {sa:.0f}, replica b served {sb:.0f}")
        check("phase 1: replica a served requests", sa >= 1, sa)
        check("phase 1: replica b served requests", sb >= 1, sb)
        check("phase 1: the replicas served exactly the bench's requests", sa + sb == n1,
              (sa, sb))

        # 2. SIGTERM replica a under load.
        n2 = 40
        bench = subprocess.Popen(
            [args.chai, "bench", "--target", target, "--concurrency", "4", "--requests", str(n2),
             "--retries", "5"] + BENCH_COMMON, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        # Wait until a has finished a few phase-2 requests: the load is on it.
        deadline = time.time() + 60
        while time.time() < deadline and a.successes() < sa + 3:
            time.sleep(0.1)
        a_before_term = a.successes()
        check("phase 2: replica a took load before SIGTERM", a_before_term >= sa + 3,
              a_before_term)
        a.proc.send_signal(signal.SIGTERM)
        try:
            a_status = a.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            a_status = None
        out, err = bench.communicate(timeout=300)
        check("phase 2: chai bench exits 0", bench.returncode == 0, err)
        r2 = json.loads(out) if bench.returncode == 0 else {}
        print(f"phase 2: {r2.get('succeeded')} / {n2} succeeded, errors {r2.get('errors')}, "
              f"{r2.get('retries')} retries over {r2.get('retried_requests')} requests")
        check("phase 2: no request failed while replica a drained",
              r2.get("succeeded") == n2 and r2.get("errors") == {}, r2)
        check("phase 2: replica a drained and exited 0", a_status == 0,
              f"status {a_status}; stderr tail: {a.stderr()[-2000:]}")
        drain = re.search(r"draining: (\d+) streams in flight", a.stderr())
        print(f"replica a: {drain.group(1) if drain else '?'} streams in flight at the end of "
              f"its grace period; served {a_before_term - sa:.0f}+ phase-2 requests before "
              f"SIGTERM")
        sb2 = b.successes()
        check("phase 2: replica b took the rest", sb2 > sb, (sb, sb2))
        print(f"wall time {time.time() - t0:.1f} s")
    finally:
        if nginx_proc is not None and nginx_proc.poll() is None:
            nginx_proc.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                nginx_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx_proc.kill()
                nginx_proc.wait()
        for r in replicas:
            r.kill()
        if failures:
            for r in replicas:
                print(f"replica {r.name} stderr (tail):\n{r.stderr()[-3000:]}")
            log = os.path.join(work, "access.log")
            if os.path.exists(log):
                print("nginx access.log, calls not answered 200 + grpc-status 0:")
                for line in open(log):
                    if " 200 " not in line or "grpc=-/0 " not in line:
                        print("  " + line.rstrip())
            print(f"nginx/error.log:\n{open(os.path.join(work, 'error.log')).read()[-3000:]}"
                  if os.path.exists(os.path.join(work, "error.log")) else "")
        shutil.rmtree(work, ignore_errors=True)
    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
