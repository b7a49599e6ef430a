#!/usr/bin/env python3
"""Wrong-password floods (issue: hardening, items 3 and 4), against a
server started as shipped: no MALLOC_* variables.

  1. Memory: 100 threads send wrong passwords for `admin` as fast as they
     are answered, each request from the next of 1,400 loopback addresses
     (so the per-address throttle does not stop it), for `--seconds`: the
     server's RSS after its first authenticated read (before ten users are
     created, each password hashed once), its peak (VmHWM) by the end of
     the flood, the growth between the two, and its RSS 3 s after.
  2. First logins: the same 100 threads, now paced to about 1,200 requests
     a second (half at `admin`, half at names that do not exist), while ten
     users who never logged in before log in once each, one a second, from
     127.0.0.1: how many got 200 within 5 s, and the median time taken.

    cargo build --release --bin steward
    python3 tests/bench/login_flood.py [--runs 3] [--binary PATH] [--seconds 30] [--database URL] [--json FILE]
"""
import argparse
import base64
import http.client
import statistics
import tempfile
import threading
import time

from common import Server, call, database_label, figure, print_figures, rss_kib, target_dir_default, write_json

WORKERS = 100
ADDRESSES = 1400
USERS = 10


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def address(n):
    n %= ADDRESSES
    return f"127.1.{n // 200}.{1 + n % 200}"


def login(port, auth, source="127.0.0.1", timeout=10):
    """One GET /director/hosts: its status (0 when it failed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", "/director/hosts?limit=1", headers={"Authorization": auth})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


class Flood:
    """WORKERS threads of wrong passwords until stopped; `pause` s after
    each answer; `unknown` makes every other request name nobody."""

    def __init__(self, port, pause=0.0, unknown=False):
        self.port, self.pause, self.unknown = port, pause, unknown
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.statuses = {}
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(WORKERS)]

    def work(self):
        while not self.stop.is_set():
            with self.lock:
                n = self.sent
                self.sent += 1
            user = f"nobody{n}" if self.unknown and n % 2 else "admin"
            status = login(self.port, basic(user, "guess"), address(n))
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if self.pause:
                time.sleep(self.pause)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def memory_phase(server, seconds):
    with Flood(server.port) as flood:
        time.sleep(seconds)
    peak = rss_kib(server.pid, "VmHWM")
    time.sleep(3)
    after = rss_kib(server.pid, "VmRSS")
    return peak / 1024, after / 1024, flood


def login_phase(server, users):
    taken = []
    # About 1,200 requests a second from 100 threads.
    with Flood(server.port, pause=0.08, unknown=True) as flood:
        time.sleep(2)
        for user in users:
            started = time.monotonic()
            status = login(server.port, basic(user, f"{user}-password"))
            taken.append((status, time.monotonic() - started))
            time.sleep(1)
    return taken, flood


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target-dir", default=target_dir_default())
    ap.add_argument("--binary", default=None, help="a steward binary (default: the release build)")
    ap.add_argument("--seconds", type=float, default=30, help="how long the memory phase floods")
    ap.add_argument("--database", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    runs = {k: [] for k in ("rss_before_mb", "peak_rss_mb", "rss_growth_mb", "rss_after_mb",
                            "first_logins_in_time", "first_login_median_s")}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as data:
            with Server(args.target_dir, data, args.database, steward=args.binary,
                        allocator_settings=False) as server:
                call("GET", server.base + "/director/hosts?limit=1")
                before = rss_kib(server.pid, "VmRSS") / 1024
                # Names of their own in each run: a PostgreSQL database outlives a run.
                users = [f"ops{run}x{i}" for i in range(USERS)]
                for user in users:
                    status, body = call("POST", server.base + "/director/user",
                                        {"object_name": user, "password": f"{user}-password", "role": "operator"})
                    if status != 201:
                        raise SystemExit(f"creating {user}: {status} {body}")
                peak, after, flood = memory_phase(server, args.seconds)
                taken, paced = login_phase(server, users)
        in_time = sum(1 for status, t in taken if status == 200 and t <= 5)
        median = statistics.median(t for _, t in taken)
        for k, v in (("rss_before_mb", before), ("peak_rss_mb", peak), ("rss_growth_mb", peak - before),
                     ("rss_after_mb", after),
                     ("first_logins_in_time", in_time), ("first_login_median_s", median)):
            runs[k].append(v)
        print(f"run {run + 1}: flood of {flood.sent} ({flood.statuses}): RSS {before:.1f} MB before, "
              f"peak {peak:.1f} MB, {after:.1f} MB 3 s after; paced flood of {paced.sent} ({paced.statuses}): "
              f"{in_time} of {USERS} first logins within 5 s, median {median:.2f} s "
              f"({', '.join(f'{s}:{t:.2f}' for s, t in taken)})", flush=True)
    units = {"rss_before_mb": "MB", "peak_rss_mb": "MB", "rss_growth_mb": "MB", "rss_after_mb": "MB",
             "first_logins_in_time": "of 10", "first_login_median_s": "s"}
    figures = {name: figure(runs[name], unit) for name, unit in units.items()}
    print_figures(figures)
    if args.json:
        write_json(args.json, "login_flood", database_label(args.database),
                   {"workers": WORKERS, "addresses": ADDRESSES, "seconds": args.seconds, "allocator": "as shipped"},
                   figures)


if __name__ == "__main__":
    main()
