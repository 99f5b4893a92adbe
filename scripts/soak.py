#!/usr/bin/env python3
"""Soak: a release coachd under 200 clients' Health Auto Export pushes and dashboard
readers for 10 minutes. Every 30 s it prints the daemon's RSS, its open file descriptors,
the requests so far and the errors; at the end it says whether memory stayed flat.

Usage: scripts/soak.py [--minutes 10] [--clients 200] [--binary target/release/coachd]
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

parser = argparse.ArgumentParser()
parser.add_argument("--minutes", type=float, default=10)
parser.add_argument("--clients", type=int, default=200)
parser.add_argument("--binary", default="target/release/coachd")
parser.add_argument("--pushers", type=int, default=8)
parser.add_argument("--readers", type=int, default=2)
args = parser.parse_args()

if not os.path.exists(args.binary):
    sys.exit(f"{args.binary} is missing: run cargo build --release first")

data = tempfile.mkdtemp(prefix="coachd-soak-")
env = {k: v for k, v in os.environ.items() if not k.startswith("COACHD")}
env["COACHD_DATA_DIR"] = os.path.join(data, "data")
env["COACHD__BLE__ENABLED"] = "false"


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

print(f"{'elapsed':>8} {'RSS MB':>8} {'fds':>5} {'requests':>9} {'errors':>7}", flush=True)
started = time.time()
samples = []
end = started + args.minutes * 60
while True:
    now = time.time()
    rss, fds = sample()
    samples.append((now - started, rss))
    with lock:
        print(f"{now - started:7.0f}s {rss:8.1f} {fds:5d} {counts['ok'] + counts['errors']:9d} {counts['errors']:7d}",
              flush=True)
    if now >= end:
        break
    time.sleep(min(30, max(0, end - now)))

stop.set()
for t in threads:
    t.join(timeout=35)
daemon.send_signal(signal.SIGTERM)
daemon.wait(timeout=30)

half = [r for (t, r) in samples if t >= args.minutes * 30]
growth = (max(half) - min(half)) / min(half) if half and min(half) > 0 else 0
print(f"{counts['ok']} requests answered, {counts['errors']} errors; RSS second half "
      f"{min(half):.1f}-{max(half):.1f} MB ({growth * 100:.0f} % growth); daemon exit {daemon.returncode}")
for e in errors:
    print("error:", e)
sys.exit(1 if counts["errors"] or growth > 0.2 or daemon.returncode != 0 else 0)
