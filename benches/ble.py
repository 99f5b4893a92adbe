#!/usr/bin/env python3
"""Bluetooth collector figures, measured on the real `coachd run` binary (btleplug over
D-Bus) against the fake BlueZ of the end-to-end test, on a private dbus-daemon:

  1. idle: RSS and CPU of the daemon with the collector scanning and no paired device;
  2. latency: notification sent -> sample committed to SQLite: with ble.flush_s = 1 and a
     notification every 1.1 s, each is committed on arrival (the pipeline's own cost:
     D-Bus, decoding, a synchronous=full SQLite commit); at a strap's 1 Hz with the
     default 5 s, samples wait for their batch (what a power cut can lose, by design);
  3. CPU per 1,000 notifications, from a burst at 200 notifications/s.

Usage: cargo build --release && python3 benches/ble.py [target/release/coachd]
Needs dbus-daemon and `pip install dbus-next`.
"""

import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fake_bluez"))
import fake_bluez  # noqa: E402

ADDR = "C0:FF:EE:00:00:01"
TICK = os.sysconf("SC_CLK_TCK")
BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={sock}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/>
<allow send_type="method_call"/><allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
<allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/><allow receive_type="error"/>
</policy></busconfig>"""


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Bench:
    def __init__(self, coachd, tmp):
        self.coachd = coachd
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        sock = os.path.join(tmp, "bus")
        conf = os.path.join(tmp, "bus.conf")
        with open(conf, "w") as f:
            f.write(BUS_CONF.format(sock=sock))
        self.bus_proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.bus = self.bus_proc.stdout.readline().strip()
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus
        self.env = dict(os.environ, COACHD_DATA_DIR=self.data, RUST_LOG="warn")
        self.daemon = None

    def cli(self, *args):
        subprocess.run([self.coachd, *args], env=self.env, check=True, capture_output=True)

    def start_daemon(self, flush_s):
        env = dict(self.env, COACHD__BLE__FLUSH_S=str(flush_s), COACHD__INBOX__ENABLED="false")
        self.daemon = subprocess.Popen([self.coachd, "run", "--listen", "127.0.0.1:0"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_daemon(self, strap):
        self.daemon.terminate()
        self.daemon.wait(timeout=10)
        # BlueZ drops a client's notification sessions when it leaves, and the idle link.
        if strap.device.connected:
            strap.drop_link()

    def close(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
        self.bus_proc.kill()


async def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def committed_end(db):
    row = db.execute("SELECT MAX(end_ms) FROM activities WHERE source = 'ble'").fetchone()
    return row[0] or 0


async def latency(bench, fake, strap, flush_s, n, period):
    bench.start_daemon(flush_s)
    await wait_for(lambda: strap.hrm.notifying, 30, "the daemon to subscribe")
    db = sqlite3.connect(f"file:{bench.data}/coachd.db?mode=ro", uri=True)
    out = []
    try:
        for i in range(n):
            sent_ms = int(time.time() * 1000)  # the store keeps whole milliseconds
            strap.hrm.notify(bytes([0x16, 120 + i % 20, 0x00, 0x02]))
            t0 = time.monotonic()
            # Committed once the session's stored end reaches this notification's arrival.
            while committed_end(db) < sent_ms:
                await asyncio.sleep(0.002)
                if time.monotonic() - t0 > flush_s + 5:
                    raise SystemExit("a notification was not committed")
            out.append((time.monotonic() - t0) * 1000)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))
    finally:
        db.close()
        bench.stop_daemon(strap)
    return out


async def main():
    coachd = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target", "release", "coachd"))
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(coachd, tmp)
        try:
            bench.cli("client", "add", "ana", "--tz", "UTC")
            bus = await fake_bluez.MessageBus(bus_type=fake_bluez.BusType.SYSTEM).connect()
            bus._emit_interface_added = lambda path, interface: None
            bus._emit_interface_removed = lambda path, interface: None
            fake = fake_bluez.Fake(bus, 0)
            strap = fake_bluez.Strap(fake, ADDR, "Bench strap", -50, "hr")
            fake.straps.append(strap)
            bus.export(fake_bluez.ADAPTER, fake.adapter)
            await bus.request_name("org.bluez")

            # 1. Idle: the collector scans, nothing is paired.
            bench.start_daemon(5)
            await asyncio.sleep(5)
            pid = bench.daemon.pid
            c0, t0 = cpu_s(pid), time.monotonic()
            await asyncio.sleep(30)
            idle_cpu = (cpu_s(pid) - c0) / (time.monotonic() - t0) * 100
            idle_rss = rss_mb(pid)
            bench.stop_daemon(strap)
            bench.cli("devices", "pair", ADDR, "ana")

            # 2. Latency. Every 1.1 s with flush_s = 1, each notification is committed on
            # arrival: the pipeline's own cost. At 1 Hz with the default 5 s, it waits for
            # the batch, by design.
            fast = await latency(bench, fake, strap, 1, 90, 1.1)
            default = await latency(bench, fake, strap, 5, 30, 1.0)

            # 3. CPU per 1,000 notifications.
            bench.start_daemon(5)
            await wait_for(lambda: strap.hrm.notifying, 30, "the daemon to subscribe")
            pid = bench.daemon.pid
            await asyncio.sleep(2)
            n, rate = 4000, 200
            c0, t0 = cpu_s(pid), time.monotonic()
            for i in range(n):
                strap.hrm.notify(bytes([0x16, 120 + i % 20, 0x00, 0x02]))
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
            await asyncio.sleep(2)
            busy = cpu_s(pid) - c0 - idle_cpu / 100 * (time.monotonic() - t0)
            burst_rss = rss_mb(pid)
            bench.stop_daemon(strap)
            db = sqlite3.connect(f"file:{bench.data}/coachd.db?mode=ro", uri=True)
            sessions = db.execute("SELECT COUNT(*) FROM activities WHERE source = 'ble'").fetchone()[0]
            db.close()

            print(f"coachd BLE collector ({coachd}), fake BlueZ on a private dbus-daemon, {os.cpu_count()} cores")
            print(f"idle, scanning, no paired device (30 s): RSS {idle_rss:.1f} MB, CPU {idle_cpu:.3f} %")
            for name, values in [("every 1.1 s, flush_s = 1 (commit on arrival)", fast),
                                 ("1 Hz, flush_s = 5 (default, batched)", default)]:
                print(f"notification -> committed, {name}, n={len(values)}: "
                      f"p50 {statistics.median(values):.1f} ms, p99 {pct(values, 99):.1f} ms, max {max(values):.1f} ms")
            print(f"CPU per 1,000 notifications ({n} at {rate}/s, idle subtracted): {busy / n * 1000 * 1000:.0f} ms"
                  f"; RSS after the burst {burst_rss:.1f} MB; sessions stored {sessions}")
        finally:
            bench.close()


if __name__ == "__main__":
    asyncio.run(main())
