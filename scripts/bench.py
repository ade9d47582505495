#!/usr/bin/env python3
"""Drives wrk against the release binary on loopback, route by route, at 64 and 256
connections, and reports req/s, p50, p99, errors, the service's CPU per request (user + system
time from /proc/<pid>/stat) and its peak RSS (VmHWM) as a Markdown table.

Run through scripts/bench.sh, which builds the binary and installs wrk.
"""

import argparse
import base64
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")

LUA_UNIQUE_BODY = """
local counter = 0
function setup(thread)
  thread:set("prefix", string.format("%d-%d-", os.time(), math.random(1, 1000000000)))
end
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  counter = counter + 1
  local key = prefix .. counter
  return wrk.format(nil, string.format("{path}", key), nil, string.format('{body}', key))
end
"""

LUA_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, errors))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, token, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, (json.loads(raw) if raw else None)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Service:
    def __init__(self, binary, env):
        self.binary, self.env = binary, env
        self.port = int(env["LISTEN_ADDR"].rsplit(":", 1)[1])
        self.process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit("service did not start")

    def token(self, role):
        return subprocess.run([self.binary, "token", "--sub", f"bench-{role}", "--role", role],
                              env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def prepare(port, token, admin):
    """A program, an indicator with no indicated users, one with 100, 1000 users to invoice
    (indicated by a third), and a referrer."""
    _, program = call(port, "POST", "/program/", token,
                      {"name": "Bench", "credit_value": 1, "target_value": 1000000})
    call(port, "POST", "/users/", token,
         {"user_hashes": ["lonely", "popular", "payer", "writer"]})
    for i in range(100):
        call(port, "POST", "/register/", token,
             {"user_indicator": "popular", "user_indicated": f"p{i}"})
    invoiced = [f"inv{i}" for i in range(1000)]
    for start in range(0, len(invoiced), 100):
        for h in invoiced[start:start + 100]:
            call(port, "POST", "/register/", token,
                 {"user_indicator": "payer", "user_indicated": h})
    email = "bench@example.com"
    call(port, "POST", "/api/referrer/external/register", admin,
         {"email": email, "firstName": "Bench"})
    _, code = call(port, "GET",
                   f"/api/referrer/{base64.b64encode(email.encode()).decode()}/referral-code",
                   admin)
    return program["id"], email, code["referralCode"]


def routes(program, email, code):
    b64 = base64.b64encode(email.encode()).decode()
    return [
        ("GET /", "GET", "/", None, None),
        ("GET /program/{id}/", "GET", f"/program/{program}/", None, "service"),
        ("GET /api/referrer/{b64}/referral-code", "GET",
         f"/api/referrer/{b64}/referral-code", None, "service"),
        ("GET /statement/{h}/ (0 indicated)", "GET", "/statement/lonely/", None, "service"),
        ("GET /statement/{h}/ (100 indicated)", "GET", "/statement/popular/", None, "service"),
        ("POST /users/ (fresh)", "POST", "/users/", '{"user_hash": "u%s"}', "service"),
        ("POST /register/ (fresh)", "POST", "/register/",
         '{"user_indicator": "writer", "user_indicated": "r%s"}', "service"),
        ("PUT /invoice/user/{h}/", "PUT", "/invoice/user/inv%s/",
         '{"total_amount_paid": 1}', "service"),
        ("POST /api/referee/apply (fresh account)", "POST", "/api/referee/apply",
         '{"accountId": "acc-%s", "referralCode": "' + code + '"}', "admin"),
    ]


def lua_for(directory, name, method, path, body, token):
    script = os.path.join(directory, re.sub(r"[^a-z0-9]+", "-", name.lower()) + ".lua")
    with open(script, "w") as f:
        if body is not None:
            lua = (LUA_UNIQUE_BODY.replace("{method}", method).replace("{token}", token)
                   .replace("{path}", path).replace("{body}", body))
            if "inv%s" in path:
                # Invoices go to the 1000 prepared users in turn.
                lua = lua.replace("local key = prefix .. counter", "local key = counter % 1000")
            f.write(lua)
        elif token:
            f.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
        f.write(LUA_REPORT)
    return script


def settle(port, limit=120):
    """Waits until the store answers a health check within 100 ms again: a slow database keeps
    working through the previous row's backlog after wrk stops, and the next row would queue
    behind it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
        except OSError:
            ok = False
        finally:
            conn.close()
        if ok and time.monotonic() - started < 0.1:
            return
        time.sleep(0.5)


def run_wrk(port, path, script, connections, seconds, pid):
    threads = min(2, connections)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}{path}"],
        check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    match = re.search(r"RESULT (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)
    if not match:
        sys.exit(f"wrk gave no result:\n{out}")
    requests, duration, p50, p99, errors = match.groups()
    requests = int(requests)
    return {
        "rps": requests / float(duration),
        "p50": float(p50),
        "p99": float(p99),
        "errors": int(errors),
        "cpu_us": cpu / max(requests, 1) * 1e6,
    }


def bench_backend(args, backend, work):
    env = dict(os.environ)
    env.update({
        "LISTEN_ADDR": f"127.0.0.1:{free_port()}",
        "DATA_DIR": os.path.join(work, f"data-{backend}"),
        "JWT_SECRET": secrets.token_hex(32),
        "RUST_LOG": "warn",
        "RATE_LIMIT_ACCOUNT": "0",
        "RATE_LIMIT_IP": "0",
    })
    env.pop("DATABASE_URL", None)
    if backend == "mongodb":
        env["DATABASE_URL"] = args.mongodb_url.rstrip("/") + f"/bench{int(time.time())}"
    service = Service(args.binary, env)
    token, admin = service.token("service"), service.token("admin")
    program, email, code = prepare(service.port, token, admin)
    rows = []
    for name, method, path, body, role in routes(program, email, code):
        if args.only and name != "GET /" and not re.search(args.only, name):
            continue
        bearer = {"service": token, "admin": admin}.get(role)
        script = lua_for(work, f"{backend}-{name}", method, path, body, bearer)
        target = path if body is None else "/"
        for connections in args.connections:
            settle(service.port)
            result = run_wrk(service.port, target, script, connections, args.seconds,
                             service.process.pid)
            rows.append((name, connections, result))
            print(f"  {backend:8} {name:45} c={connections:<3} {result['rps']:9.0f} req/s "
                  f"p50 {result['p50']:7.2f} ms p99 {result['p99']:7.2f} ms "
                  f"err {result['errors']:<5} {result['cpu_us']:6.0f} µs CPU", flush=True)
    rss = peak_rss_mib(service.process.pid)
    service.stop()
    return rows, rss


def table(backend, rows, rss, floor):
    lines = [
        f"**{backend}** (peak RSS {rss:.0f} MiB)",
        "",
        "| route | conns | req/s | p50 ms | p99 ms | errors | CPU µs/req | vs floor req/s | vs floor CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, connections, r in rows:
        base = floor.get(connections)
        ratio_rps = f"{r['rps'] / base['rps']:.2f}" if base else ""
        ratio_cpu = f"{r['cpu_us'] / base['cpu_us']:.1f}" if base else ""
        lines.append(
            f"| `{name}` | {connections} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['errors']} | {r['cpu_us']:.0f} | {ratio_rps} | {ratio_cpu} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--mongodb-url")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--output")
    parser.add_argument("--only", help="a regular expression: run the floor and the routes "
                        "whose name it matches")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="referral-bench-")
    backends = ["embedded"] + (["mongodb"] if args.mongodb_url else [])
    sections = []
    for backend in backends:
        print(f"== {backend}", flush=True)
        rows, rss = bench_backend(args, backend, work)
        floor = {c: r for name, c, r in rows if name == "GET /"}
        sections.append(table(backend, rows, rss, floor))
    cpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    report = (f"Run of {time.strftime('%Y-%m-%d')}: {cpu} cores, wrk and the service on one "
              f"machine, {args.seconds} s per row.\n\n" + "\n\n".join(sections) + "\n")
    print()
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
