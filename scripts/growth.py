#!/usr/bin/env python3
"""The growth benchmark: whether a read or a start costs more as the store grows.

On one store, it imports many users (`import-users`), registers many indicated users under one
indicator ("big") and a few hundred under another ("small"), each in a program of its own,
then measures the median latency of the same reads for the small and the big case side by
side: the statement, the first and a middle page of 100 of the indicated list, and the program
stats. It also
times the start-up (process start to the first 200 from /health) on an empty and on the full
store, and reports the service's peak RSS. Last, with more registrations under a third
indicator, it exports the whole ledger as CSV (`--export-indicated`, default 500,000: about a
million ledger rows) from a freshly started service and reports the export's time, its rows and
the service's peak RSS then, against its RSS before the export. Prints a Markdown table and
writes it to target/bench/growth-<backend>.md.

Run through scripts/growth.sh, which builds the release binary.
"""

import argparse
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from statistics import median

sys.path.insert(0, os.path.dirname(__file__))
from bench import free_port, peak_rss_mib  # noqa: E402


# The indicated users of the small case: enough for a middle page of 100.
SMALL = 300


class Client:
    """One keep-alive connection."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def start(binary, env):
    """Starts the service; returns the process and the seconds until /health answered 200."""
    port = int(env["LISTEN_ADDR"].rsplit(":", 1)[1])
    began = time.monotonic()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = began + 600
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process, time.monotonic() - began
        except OSError:
            pass
        if process.poll() is not None:
            sys.exit("the service stopped while starting")
        time.sleep(0.005)
    sys.exit("the service did not start")


def stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def token(binary, env):
    return subprocess.run([binary, "token", "--sub", "growth", "--role", "admin", "--ttl", "12h"],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


def register_many(port, tok, indicator, count, program, workers=16):
    """Registers `count` users indicated by `indicator` into `program`, from `workers` threads."""
    failures = []

    def work(first):
        client = Client(port, tok)
        for i in range(first, count, workers):
            status, body = client.call("POST", "/register/", {
                "user_indicator": indicator,
                "user_indicated": f"{indicator}-{i:07d}",
                "referral_program_id": program,
            })
            if status != 201:
                failures.append((status, body))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"{len(failures)} registrations failed, first: {failures[0]}")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export_ledger(port, tok):
    """Streams the ledger export, counting its rows; returns (rows, seconds, bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    began = time.monotonic()
    conn.request("GET", "/admin/export/ledger.csv", headers={"Authorization": f"Bearer {tok}"})
    response = conn.getresponse()
    if response.status != 200:
        sys.exit(f"the ledger export answered {response.status}")
    rows, size, tail = 0, 0, b""
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        rows += chunk.count(b"\n")
        tail = chunk[-1:]
    if tail and tail != b"\n":
        rows += 1
    return rows - 1, time.monotonic() - began, size


def timed(client, path, repeats):
    """The median milliseconds of `repeats` GETs of `path` (after one to warm up)."""
    status, _ = client.call("GET", path)
    if status != 200:
        sys.exit(f"GET {path}: {status}")
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        client.call("GET", path)
        samples.append((time.perf_counter() - began) * 1000)
    return median(samples)


def later_cursor(client, indicator, position):
    """The cursor after the `position`-th indicated user of `indicator`."""
    cursor, seen = None, 0
    while seen < position:
        path = f"/statement/{indicator}/indicated/?limit={min(500, position - seen)}"
        if cursor:
            path += f"&after={cursor}"
        status, page = client.call("GET", path)
        if status != 200:
            sys.exit(f"GET {path}: {status} {page}")
        seen += len(page["indicated"])
        cursor = page["next"]
        if cursor is None:
            break
    return cursor


def run(args, backend, env, work):
    binary = args.binary
    rows = []
    process, empty_start = start(binary, env)
    tok = token(binary, env)
    client = Client(int(env["LISTEN_ADDR"].rsplit(":", 1)[1]), tok)
    port = client.port
    _, big = client.call("POST", "/program/", {"name": "Big", "credit_value": 1,
                                               "target_value": 100})
    _, small = client.call("POST", "/program/", {"name": "Small", "credit_value": 1,
                                                 "target_value": 100})
    stop(process)

    users = os.path.join(work, "users.txt")
    with open(users, "w") as f:
        f.write("big|Big\nsmall|Small\nledger|Ledger\n")
        for i in range(args.users):
            f.write(f"imported-{i:08d}|Name {i}\n")
    began = time.monotonic()
    subprocess.run([binary, "import-users", users], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    import_secs = time.monotonic() - began

    process, _ = start(binary, env)
    began = time.monotonic()
    register_many(port, tok, "big", args.indicated, big["id"])
    register_secs = time.monotonic() - began
    register_many(port, tok, "small", SMALL, small["id"], workers=4)
    client = Client(port, tok)
    # Some credits of each kind: a few of the indicated pay past the target.
    for indicator, n in (("big", 50), ("small", 50)):
        for i in range(n):
            client.call("PUT", f"/invoice/user/{indicator}-{i:07d}/", {"total_amount_paid": 150})

    later = later_cursor(client, "big", args.indicated // 2)
    reads = [
        ("statement", "/statement/{h}/"),
        ("indicated list, first page (100)", "/statement/{h}/indicated/?limit=100"),
        ("program stats", "/program/{p}/stats"),
    ]
    for label, template in reads:
        small_ms = timed(client, template.format(h="small", p=small["id"]), args.repeats)
        big_ms = timed(client, template.format(h="big", p=big["id"]), args.repeats)
        rows.append((label, small_ms, big_ms))
    small_later = later_cursor(client, "small", SMALL // 2)
    small_ms = timed(client, f"/statement/small/indicated/?limit=100&after={small_later}",
                     args.repeats)
    big_ms = timed(client, f"/statement/big/indicated/?limit=100&after={later}", args.repeats)
    rows.append(("indicated list, a middle page (100)", small_ms, big_ms))
    rss = peak_rss_mib(process.pid)
    stop(process)
    process, full_start = start(binary, env)
    export_line = ""
    if args.export_indicated:
        began = time.monotonic()
        register_many(port, tok, "ledger", args.export_indicated, big["id"])
        export_register = time.monotonic() - began
        stop(process)
        process, _ = start(binary, env)
        before = rss_mib(process.pid)
        exported, export_secs, size = export_ledger(port, tok)
        peak = peak_rss_mib(process.pid)
        export_line = (
            f"Ledger export (`GET /admin/export/ledger.csv`, every entry) after "
            f"{args.export_indicated:,} more registrations (in {export_register:.1f} s): "
            f"{exported:,} rows, {size / 1048576:.0f} MiB of CSV in {export_secs:.1f} s "
            f"({exported / export_secs:,.0f} rows/s); the freshly started service's RSS was "
            f"{before:.0f} MiB before the export and peaked at {peak:.0f} MiB."
        )
    stop(process)

    lines = [
        f"**{backend}**: {args.users:,} imported users (in {import_secs:.1f} s), "
        f"{args.indicated:,} indicated by one indicator (registered in {register_secs:.1f} s, "
        f"{args.indicated / register_secs:,.0f}/s), {SMALL} by another; medians of {args.repeats} "
        "sequential requests.",
        "",
        f"| read | {SMALL} indicated | {args.indicated:,} indicated | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, small_ms, big_ms in rows:
        lines.append(f"| {label} | {small_ms:.2f} ms | {big_ms:.2f} ms | "
                     f"{big_ms / small_ms:.2f}× |")
    lines += [
        "",
        "| start-up | empty store | full store | ratio |",
        "|---|---:|---:|---:|",
        f"| process start to the first 200 from /health | {empty_start * 1000:.0f} ms | "
        f"{full_start * 1000:.0f} ms | {full_start / empty_start:.2f}× |",
        "",
        f"Peak RSS while serving the full store: {rss:.0f} MiB.",
    ]
    if export_line:
        lines += ["", export_line]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--indicated", type=int, default=77_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--export-indicated", type=int, default=500_000,
                        help="registrations added before the ledger export (0: no export)")
    parser.add_argument("--mongodb-url")
    parser.add_argument("--output-dir", default="target/bench")
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        env = {
            "PATH": os.environ["PATH"],
            "LISTEN_ADDR": f"127.0.0.1:{free_port()}",
            "DATA_DIR": os.path.join(work, "data"),
            "JWT_SECRET": "growth-" + secrets.token_hex(24),
            "RATE_LIMIT_ACCOUNT": "0",
            "RATE_LIMIT_IP": "0",
            "RUST_LOG": "warn",
        }
        backend = "embedded"
        if args.mongodb_url:
            backend = "mongodb"
            env["DATABASE_URL"] = args.mongodb_url
            env["DATABASE_TIMEOUT"] = "60s"
        report = run(args, backend, env, work)
    print(report)
    with open(os.path.join(args.output_dir, f"growth-{backend}.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
