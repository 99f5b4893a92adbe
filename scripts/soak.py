#!/usr/bin/env python3
"""Soak: a release coachd under 200 clients' Health Auto Export pushes, dashboard readers
and a cloud sync every minute (--synced clients connected to a local stand-in of
intervals.icu's API whose activity lists grow every minute) for 10 minutes. Every 30 s it
prints the daemon's RSS, its open file descriptors, the requests so far, the provider
requests served and the errors; at the end it says whether memory stayed flat and checks
that every synced account is active without an error and has every activity listed.

Usage: scripts/soak.py [--minutes 10] [--clients 200] [--synced 10] [--binary target/release/coachd]
Build first: cargo build --release. Exits 1 on any error or when RSS grew more than 20 %
over the second half of the run."""
import argparse
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--minutes", type=float, default=10)
parser.add_argument("--clients", type=int, default=200)
parser.add_argument("--binary", default="target/release/coachd")
parser.add_argument("--pushers", type=int, default=8)
parser.add_argument("--readers", type=int, default=2)
parser.add_argument("--synced", type=int, default=10)
args = parser.parse_args()

if not os.path.exists(args.binary):
    sys.exit(f"{args.binary} is missing: run cargo build --release first")

# intervals.icu's API as it documents it: Basic API_KEY:key, the athlete, activities
# between two dates, an activity's streams. Each synced client has its own key and a list
# that grows by one 30-minute run with heart rate every minute.
icu = {"requests": 0, "refused": 0, "started": time.time()}
icu_lock = threading.Lock()


def icu_activities(n):
    minutes = int((time.time() - icu["started"]) // 60) + 3
    day0 = time.time() - 2 * 86400
    return [{"id": f"i{n * 100000 + k}", "type": "Run",
             "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day0 + 3600 * k)),
             "start_date_local": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(day0 + 3600 * k + 3600)),
             "elapsed_time": 1800, "moving_time": 1800, "distance": 5000.0,
             "average_heartrate": 140, "max_heartrate": 165} for k in range(minutes)]


class Icu(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        import base64
        with icu_lock:
            icu["requests"] += 1
        auth = self.headers.get("Authorization", "")
        try:
            user, key = base64.b64decode(auth.removeprefix("Basic ")).decode().split(":", 1)
            n = int(key.removeprefix("soak-key-")) if user == "API_KEY" else -1
        except Exception:  # noqa: BLE001 - anything else is unauthorised
            n = -1
        if n < 0:
            with icu_lock:
                icu["refused"] += 1
            return self.reply(401, {"status": 401, "error": "Unauthorized"})
        path = urllib.parse.urlparse(self.path).path
        if path == "/api/v1/athlete/0":
            return self.reply(200, {"id": f"i{n}", "name": f"Soak {n}"})
        if path == "/api/v1/athlete/0/activities":
            return self.reply(200, icu_activities(n))
        m = re.fullmatch(r"/api/v1/activity/i(\d+)/streams\.json", path)
        if m:
            t = list(range(1800))
            return self.reply(200, [{"type": "time", "data": t}, {"type": "heartrate", "data": [125 + x % 30 for x in t]}])
        self.reply(404, {"status": 404, "error": "Not Found"})


icu_server = ThreadingHTTPServer(("127.0.0.1", 0), Icu)
threading.Thread(target=icu_server.serve_forever, daemon=True).start()
icu_base = f"http://127.0.0.1:{icu_server.server_address[1]}/api/v1"

data = tempfile.mkdtemp(prefix="coachd-soak-")
env = {k: v for k, v in os.environ.items() if not k.startswith("COACHD")}
env["COACHD_DATA_DIR"] = os.path.join(data, "data")
env["COACHD__BLE__ENABLED"] = "false"
env["COACHD__PROVIDERS__INTERVALS__API_BASE"] = icu_base
env["COACHD__PROVIDERS__SYNC_INTERVAL_MIN"] = "1"


def cli(*argv, stdin=None):
    out = subprocess.run([args.binary, *argv], env=env, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"coachd {' '.join(argv)} failed: {out.stderr}")
    return out.stdout


print(f"setting up {args.clients} clients in {data} ...", flush=True)
password = "soak test password"
cli("trainer", "add", "coach", "--password-stdin", stdin=password + "\n")
tokens = []
for i in range(args.clients):
    name = f"client{i:04d}"
    cli("client", "add", name, "--tz", "Europe/Berlin", "--trainer", "coach")
    if i < 20:
        cli("assign", name, "8000 steps a day")
        cli("assign", name, "150 minutes of cardio a week")
    token = re.search(r"Authorization: Bearer (\S+)", cli("push-token", name)).group(1)
    tokens.append(token)
    if i < args.synced:
        cli("connect", "intervals", name, "--api-key", f"soak-key-{i}")

daemon = subprocess.Popen([args.binary, "run", "--listen", "127.0.0.1:0", "--log-format", "json"],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
base = None
for line in daemon.stderr:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("message") == "coachd is running":
        base = "http://" + msg["listen"]
        break
if base is None:
    sys.exit("the daemon did not start")
threading.Thread(target=lambda: [None for _ in daemon.stderr], daemon=True).start()

lock = threading.Lock()
counts = {"ok": 0, "errors": 0}
errors = []
stop = threading.Event()


def note(ok, what=""):
    with lock:
        if ok:
            counts["ok"] += 1
        else:
            counts["errors"] += 1
            if len(errors) < 10:
                errors.append(what)


def pusher(n):
    i = n
    minute = 0
    while not stop.is_set():
        token = tokens[i % len(tokens)]
        t = time.gmtime(1764547200 + 60 * minute)  # minutes from 2025-12-01
        date = time.strftime("%Y-%m-%d %H:%M:00 +0000", t)
        body = json.dumps({"data": {"metrics": [{"name": "step_count", "units": "count",
                                                  "data": [{"date": date, "qty": 10 + i % 90}]}],
                                    "workouts": []}}).encode()
        req = urllib.request.Request(f"{base}/ingest/health-auto-export", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                note(r.status == 200, f"push {r.status}")
        except Exception as e:  # noqa: BLE001 - every failure counts
            note(False, f"push: {e}")
        i += args.pushers
        if i >= len(tokens):
            i = n
            minute += 1


def reader(n):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "name": "coach", "password": password}).encode()
    opener.open(f"{base}/login", data=form, timeout=30).read()
    paths = ["/roster", "/api/clients", "/metrics"] + [f"/clients/{c}" for c in range(1, 21)]
    k = n
    while not stop.is_set():
        path = paths[k % len(paths)]
        try:
            with opener.open(f"{base}{path}", timeout=30) as r:
                r.read()
                note(r.status == 200 and "/login" not in r.url, f"GET {path} {r.status} {r.url}")
        except Exception as e:  # noqa: BLE001
            note(False, f"GET {path}: {e}")
        k += 1
        time.sleep(0.05)


def sample():
    with open(f"/proc/{daemon.pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024
    fds = len(os.listdir(f"/proc/{daemon.pid}/fd"))
    return rss, fds


threads = [threading.Thread(target=pusher, args=(n,), daemon=True) for n in range(args.pushers)]
threads += [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(args.readers)]
for t in threads:
    t.start()

print(f"{'elapsed':>8} {'RSS MB':>8} {'fds':>5} {'requests':>9} {'errors':>7} {'provider':>9}", flush=True)
started = time.time()
samples = []
end = started + args.minutes * 60
while True:
    now = time.time()
    rss, fds = sample()
    samples.append((now - started, rss))
    with lock:
        print(f"{now - started:7.0f}s {rss:8.1f} {fds:5d} {counts['ok'] + counts['errors']:9d} {counts['errors']:7d}"
              f" {icu['requests']:9d}", flush=True)
    if now >= end:
        break
    time.sleep(min(30, max(0, end - now)))

stop.set()
for t in threads:
    t.join(timeout=35)
daemon.send_signal(signal.SIGTERM)
daemon.wait(timeout=30)

# Every synced account: active, no error, every activity the stand-in lists stored.
accounts = json.loads(cli("accounts", "list", "--json"))
listed = len(icu_activities(0))
for a in accounts:
    if a["state"] != "active" or a.get("reason"):
        note(False, f"account of {a['client']}: {a['state']} {a.get('reason')}")
stored = {}
for i in range(args.synced):
    acts = json.loads(cli("activities", f"client{i:04d}", "--from", time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * 86400)),
                          "--json"))
    stored[i] = len(acts)
    if len(acts) < listed - 2:  # the last minute's activity may come after the last sync
        note(False, f"client{i:04d}: {len(acts)} activities stored of {listed} listed")
print(f"provider: {icu['requests']} requests served ({icu['refused']} refused), {len(accounts)} accounts, "
      f"{min(stored.values(), default=0)}-{max(stored.values(), default=0)} of {listed} activities stored per synced client")

half = [r for (t, r) in samples if t >= args.minutes * 30]
growth = (max(half) - min(half)) / min(half) if half and min(half) > 0 else 0
print(f"{counts['ok']} requests answered, {counts['errors']} errors; RSS second half "
      f"{min(half):.1f}-{max(half):.1f} MB ({growth * 100:.0f} % growth); daemon exit {daemon.returncode}")
for e in errors:
    print("error:", e)
sys.exit(1 if counts["errors"] or growth > 0.2 or daemon.returncode != 0 else 0)
