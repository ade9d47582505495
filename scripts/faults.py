#!/usr/bin/env python3
"""Fault drills against the release binary: each prints sent / acknowledged / found / lost and
fails when anything acknowledged is lost, when a request gets a 5xx other than a fast 503, or
when the service does not recover by itself.

  kill-service   the service SIGKILLed during a mixed write load on the embedded store, three
                 times; after each restart every acknowledged write is there.
  kill-database  the MongoDB-compatible server (persistent storage) SIGKILLed during a mixed
                 write load and started again: failures are 503s within the database timeout,
                 the service recovers without a restart, every acknowledged write is there.
  disk-full      the embedded store's disk (a 256 MiB tmpfs) filled during a mixed write load,
                 then freed: 503s while full, writes succeed again without a restart, every
                 acknowledged write is there (skipped, with the reason, where no tmpfs can be
                 mounted).
  steady-load    a mixed load at a fixed rate on each backend with a local billing receiver:
                 no 5xx, nothing acknowledged missing, every credit event delivered (at least
                 once, counted once per webhook-id).

Run through scripts/faults.sh, which builds the binary and finds the database server.
"""

import argparse
import http.client
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

WRITERS = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, token=None, timeout=10):
    """(status, parsed body or None, seconds); status 0 when the connection failed."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return 0, None, time.monotonic() - started
    finally:
        conn.close()


class Process:
    """A child process the drills start, kill and stop."""

    process = None

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


class Service(Process):
    def __init__(self, binary, env, log_path):
        self.binary, self.env, self.log_path = binary, env, log_path
        self.port = int(env["LISTEN_ADDR"].rsplit(":", 1)[1])
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.wait_healthy(30)

    def wait_healthy(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"service exited with {self.process.returncode}; see {self.log_path}")
            status, _, _ = request(self.port, "GET", "/health", timeout=2)
            if status == 200:
                return time.monotonic()
            time.sleep(0.05)
        sys.exit(f"service not healthy within {seconds} s; see {self.log_path}")

    def token(self):
        out = subprocess.run(
            [self.binary, "token", "--sub", "faults", "--role", "service"],
            env=self.env, check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()


class Ledger:
    """What the load sent and what the service acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.users = set()
        self.registered = set()
        self.invoiced = set()
        self.statuses = {}
        self.slow_failures = []

    def record(self, status, seconds):
        with self.lock:
            self.sent += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status not in (200, 201) and seconds > 0:
                self.slow_failures.append(seconds)

    @property
    def acked(self):
        return len(self.users) + len(self.registered) + len(self.invoiced)


class Load:
    """WRITERS threads doing a mixed write load: new users, registrations under `root`, and the
    invoice that crosses the target for users registered before. `rate` caps each thread's
    requests a second (None: as fast as they go)."""

    def __init__(self, service, token, ledger, tag, rate=None):
        self.service, self.token, self.ledger, self.tag, self.rate = (
            service, token, ledger, tag, rate)
        self.stop_flag = threading.Event()
        self.threads = []

    def start(self):
        self.stop_flag.clear()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(WRITERS)]
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def run(self, worker):
        n = 0
        mine = []
        while not self.stop_flag.is_set():
            started = time.monotonic()
            n += 1
            port = self.service.port
            kind = n % 3
            if kind == 1:
                h = f"u-{self.tag}-{worker}-{n}"
                status, _, secs = request(port, "POST", "/users/", {"user_hash": h}, self.token)
                self.ledger.record(status, secs)
                if status == 201:
                    with self.ledger.lock:
                        self.ledger.users.add(h)
            elif kind == 2:
                h = f"r-{self.tag}-{worker}-{n}"
                status, _, secs = request(
                    port, "POST", "/register/",
                    {"user_indicator": "root", "user_indicated": h}, self.token)
                self.ledger.record(status, secs)
                if status == 201:
                    with self.ledger.lock:
                        self.ledger.registered.add(h)
                    mine.append(h)
            elif mine:
                h = mine.pop(0)
                status, _, secs = request(
                    port, "PUT", f"/invoice/user/{urllib.parse.quote(h)}/",
                    {"total_amount_paid": 100}, self.token)
                self.ledger.record(status, secs)
                if status == 200:
                    with self.ledger.lock:
                        self.ledger.invoiced.add(h)
                elif status != 404:
                    mine.append(h)
            if self.rate:
                time.sleep(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))


def setup(port, token):
    status, _, _ = request(port, "GET", "/program/", token=token)
    if status != 200:
        sys.exit(f"cannot list programs: {status}")
    request(port, "POST", "/program/",
            {"name": "Faults", "credit_value": 1, "target_value": 100}, token)
    status, _, _ = request(port, "POST", "/users/", {"user_hash": "root"}, token)
    if status != 201:
        sys.exit(f"cannot create the indicator: {status}")


def indicated(port, token):
    """root's indicated users: hash -> (total, credit status)."""
    found, after = {}, None
    while True:
        path = "/statement/root/indicated/?limit=500" + (f"&after={after}" if after else "")
        status, body, _ = request(port, "GET", path, token=token, timeout=30)
        if status != 200:
            sys.exit(f"cannot read the indicated list: {status}")
        for line in body["indicated"]:
            found[line["user_hash"]] = (line["total_amount_paid"], line["credit_status"])
        after = body["next"]
        if not after:
            return found


def verify(name, port, token, ledger):
    """Checks every acknowledged write; prints the figures; returns the number lost."""
    lost = 0
    for h in sorted(ledger.users):
        status, _, _ = request(port, "GET", f"/statement/{h}/", token=token)
        if status != 200:
            lost += 1
            print(f"  lost user {h}: statement {status}")
    listed = indicated(port, token)
    for h in sorted(ledger.registered):
        if h not in listed:
            lost += 1
            print(f"  lost registration {h}")
    for h in sorted(ledger.invoiced):
        if listed.get(h, (None, None))[1] != "acquired":
            lost += 1
            print(f"  lost invoice {h}: {listed.get(h)}")
    found = ledger.acked - lost
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(ledger.statuses.items()))
    print(f"{name}: sent {ledger.sent} / acknowledged {ledger.acked} / found {found} / "
          f"lost {lost}   ({statuses})")
    return lost


def base_env(data_dir, port):
    env = dict(os.environ)
    env.update({
        "LISTEN_ADDR": f"127.0.0.1:{port}",
        "DATA_DIR": data_dir,
        "JWT_SECRET": secrets.token_hex(32),
        "RUST_LOG": "warn",
        "RATE_LIMIT_ACCOUNT": "0",
        "RATE_LIMIT_IP": "0",
    })
    for name in ("DATABASE_URL", "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP"):
        env.pop(name, None)
    return env


def start_service(args, work, name, data_dir, **extra_env):
    """The service on a fresh port, healthy, with its token and the drills' fixtures."""
    env = base_env(data_dir, free_port())
    env.update(extra_env)
    service = Service(args.binary, env, os.path.join(work, f"{name}.log"))
    service.start()
    token = service.token()
    setup(service.port, token)
    return service, token


def start_load(service, token, tag, rate=None):
    """A mixed write load on `service`, already running, and the ledger it fills."""
    ledger = Ledger()
    load = Load(service, token, ledger, tag, rate)
    load.start()
    return ledger, load


def start_database(args, work, name):
    """The database server on a fresh port, storing in a folder of its own."""
    db = Database(args.database_server, os.path.join(work, name), free_port(),
                  os.path.join(work, f"{name}.log"))
    db.start()
    return db


def kill_service(args, work):
    service, token = start_service(args, work, "kill-service", os.path.join(work, "data-kill"))
    ledger = Ledger()
    for round_ in range(3):
        load = Load(service, token, ledger, f"k{round_}")
        load.start()
        time.sleep(args.seconds)
        service.kill9()
        load.stop()
        service.start()
    lost = verify("kill-service (embedded, SIGKILL x3)", service.port, token, ledger)
    service.stop()
    return lost == 0 and bad_statuses(ledger, allowed=(0,)) == 0


def disk_full(args, work):
    disk = os.path.join(work, "small-disk")
    os.makedirs(disk, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", disk],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"disk-full: skipped, cannot mount a small tmpfs here ({mounted.stderr.strip()})")
        return True
    try:
        service, token = start_service(args, work, "disk-full", os.path.join(disk, "data"))
        ledger, load = start_load(service, token, "f")
        time.sleep(args.seconds)
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        full_at = ledger.statuses.get(503, 0)
        time.sleep(args.seconds)
        refused = ledger.statuses.get(503, 0) - full_at
        health, _, _ = request(service.port, "GET", "/health")
        os.remove(filler)
        freed = time.monotonic()
        acked_before = ledger.acked
        recovered = None
        while time.monotonic() - freed < 30:
            time.sleep(0.2)
            if ledger.acked > acked_before + 10:
                recovered = time.monotonic() - freed
                break
        time.sleep(args.seconds)
        load.stop()
        service.wait_healthy(30)
        lost = verify("disk-full (embedded, 256 MiB tmpfs filled, then freed)", service.port,
                      token, ledger)
        print(f"  while full: {refused} answers 503, /health {health}; writes succeeded again "
              + (f"{recovered:.1f} s after the space came back" if recovered is not None
                 else "never"))
        service.stop()
        return (lost == 0 and refused > 0 and health == 503 and recovered is not None
                and bad_statuses(ledger, allowed=(503,)) == 0)
    finally:
        subprocess.run(["umount", "-l", disk], capture_output=True)


def bad_statuses(ledger, allowed):
    """Counts answers that are neither success nor an expected failure."""
    bad = {s: n for s, n in ledger.statuses.items() if s not in (200, 201, 404, *allowed)}
    if bad:
        print(f"  unexpected statuses: {bad}")
    return sum(bad.values())


class Database(Process):
    def __init__(self, server, path, port, log_path):
        self.server, self.path, self.port, self.log_path = server, path, port, log_path
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.server, "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", self.path],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"database did not start; see {self.log_path}")


def kill_database(args, work):
    if not args.database_server:
        print("kill-database: skipped, no database server given")
        return True
    db = start_database(args, work, "database")
    service, token = start_service(
        args, work, "kill-database", os.path.join(work, "data-db"),
        DATABASE_URL=f"mongodb://127.0.0.1:{db.port}/faults", DATABASE_TIMEOUT="1s")
    ledger, load = start_load(service, token, "d")
    time.sleep(args.seconds)
    db.kill9()
    down_at = time.monotonic()
    time.sleep(args.seconds)
    db.start()
    recovered = service.wait_healthy(60) - down_at
    time.sleep(args.seconds)
    load.stop()
    lost = verify("kill-database (MongoDB-compatible server, SIGKILL)", service.port, token,
                  ledger)
    slowest = max(ledger.slow_failures, default=0)
    print(f"  slowest failed request {slowest:.2f} s; healthy again {recovered:.1f} s after the "
          f"kill ({args.seconds} s down)")
    service.stop()
    db.stop()
    ok = lost == 0 and bad_statuses(ledger, allowed=(503,)) == 0
    # Each store call has the 1 s DATABASE_TIMEOUT; a request may have finished one slow call
    # before the one that fails.
    if slowest > 2.5:
        print("  a failure took longer than the database timeout allows")
        ok = False
    return ok


class Receiver(http.server.BaseHTTPRequestHandler):
    ids = {}
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        fields = urllib.parse.parse_qs(self.rfile.read(length).decode())
        with Receiver.lock:
            Receiver.ids[self.headers.get("webhook-id")] = (
                fields.get("event_type", [""])[0], fields.get("user_hash", [""])[0])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def steady_load(args, work, backend):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    Receiver.ids = {}
    db = None
    extra_env = {"ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP":
                 f"http://127.0.0.1:{receiver.server_address[1]}/credit/%s"}
    if backend == "mongo":
        if not args.database_server:
            print("steady-load mongo: skipped, no database server given")
            return True
        db = start_database(args, work, "database-steady")
        extra_env["DATABASE_URL"] = f"mongodb://127.0.0.1:{db.port}/steady"
    service, token = start_service(args, work, f"steady-{backend}",
                                   os.path.join(work, f"data-steady-{backend}"), **extra_env)
    ledger, load = start_load(service, token, "s", rate=args.rate)
    time.sleep(args.steady_seconds)
    load.stop()
    lost = verify(f"steady-load {backend} ({args.steady_seconds} s, {WRITERS}x{args.rate}/s)",
                  service.port, token, ledger)
    expected = {("signup_credit", h) for h in ledger.registered}
    expected |= {("acquired_credit", "root") for _ in ledger.invoiced}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Receiver.lock:
            signups = {v for v in Receiver.ids.values() if v[0] == "signup_credit"}
            acquired = sum(1 for v in Receiver.ids.values() if v[0] == "acquired_credit")
        if expected <= signups | {("acquired_credit", "root")} and acquired >= len(ledger.invoiced):
            break
        time.sleep(0.2)
    missing = len({e for e in expected if e[0] == "signup_credit"} - signups)
    print(f"  callbacks: {len(Receiver.ids)} distinct webhook-ids; signup_credit missing "
          f"{missing}; acquired_credit {acquired} for {len(ledger.invoiced)} crossings")
    service.stop()
    if db:
        db.stop()
    receiver.shutdown()
    ok = lost == 0 and missing == 0 and acquired == len(ledger.invoiced)
    return ok and bad_statuses(ledger, allowed=()) == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--database-server")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="load before, during and after each fault")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second per writer")
    parser.add_argument("drills", nargs="*",
                        default=["kill-service", "kill-database", "disk-full", "steady-load"])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="referral-faults-")
    results = {}
    try:
        for drill in args.drills:
            if drill == "kill-service":
                results[drill] = kill_service(args, work)
            elif drill == "kill-database":
                results[drill] = kill_database(args, work)
            elif drill == "disk-full":
                results[drill] = disk_full(args, work)
            elif drill == "steady-load":
                results["steady-load embedded"] = steady_load(args, work, "embedded")
                results["steady-load mongo"] = steady_load(args, work, "mongo")
            else:
                sys.exit(f"unknown drill {drill}")
    finally:
        failed = [name for name, ok in results.items() if not ok]
        if failed:
            print(f"FAILED: {', '.join(failed)}; logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
