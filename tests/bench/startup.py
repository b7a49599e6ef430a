#!/usr/bin/env python3
"""Start time and idle memory with many hosts (issue: a benchmark kit;
targets with 100,000 hosts in the database: from process start to `/ready`
answering 200 in at most 1 s; idle RSS at most 30 MB).

Seeds `--hosts` hosts under `--templates` templates with the seed example,
starts the server once to let it do its first-start work (the admin user,
the server key) and stops it, then `--runs` times: spawns `steward serve`,
polls `GET /ready` every 5 ms until it answers 200 (the time from the spawn
to that answer), waits `--idle` seconds and reads VmRSS from /proc, then
answers one authenticated read (the first Basic check of a password hashes
it) and reads VmRSS again after `--idle` seconds, and stops it. The
database file is in the page cache (it was just written).

    cargo build --release --bin steward --example seed
    python3 tests/bench/startup.py [--runs 3] [--hosts 100000] [--templates 200] [--database URL] [--json FILE]
"""
import argparse
import http.client
import statistics
import sys
import tempfile
import time

from common import (Server, call, database_label, figure, rss_kib, seed, sqlite_url, target_dir_default,
                    write_json)


def ready_status(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/ready", headers={"Accept": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def time_to_ready(server):
    """Spawns the server; seconds from the spawn to the first 200 on /ready."""
    start = time.monotonic()
    server.spawn()
    while time.monotonic() - start < 120:
        if server.process.poll() is not None:
            sys.exit(f"steward serve exited with {server.process.returncode}")
        try:
            if ready_status(server.port) == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    sys.exit("steward serve was not ready after 120 s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=100_000)
    ap.add_argument("--templates", type=int, default=200)
    ap.add_argument("--idle", type=float, default=3, help="seconds idle after ready before reading the RSS")
    ap.add_argument("--database", default=None, help="an empty PostgreSQL database (default: SQLite)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--target-dir", default=target_dir_default())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="steward-startup-") as data:
        seed(args.target_dir, args.database or sqlite_url(data), args.hosts, args.templates)
        with Server(args.target_dir, data, args.database):
            pass
        print(f"{database_label(args.database)}, {args.hosts} hosts under {args.templates} templates")
        starts, idles, served = [], [], []
        for run in range(args.runs):
            server = Server(args.target_dir, data, args.database)
            try:
                starts.append(time_to_ready(server))
                time.sleep(args.idle)
                idles.append(rss_kib(server.pid, "VmRSS") / 1024)
                status, _ = call("GET", server.base + "/director/host?name=host-0000000")
                if status != 200:
                    sys.exit(f"GET /director/host answered {status}")
                time.sleep(args.idle)
                served.append(rss_kib(server.pid, "VmRSS") / 1024)
            finally:
                server.stop()
            print(f"run {run + 1}: ready after {starts[-1] * 1000:.0f} ms, idle RSS {idles[-1]:.1f} MB, "
                  f"{served[-1]:.1f} MB after one authenticated read")
        print(f"median: ready after {statistics.median(starts) * 1000:.0f} ms (target: at most 1 s), idle RSS "
              f"{statistics.median(idles):.1f} MB, after one authenticated read {statistics.median(served):.1f} MB "
              f"(target: at most 30 MB)")
        write_json(args.json, "startup", database_label(args.database),
                   {"hosts": args.hosts, "templates": args.templates, "idle_s": args.idle},
                   {"start_to_ready_s": figure(starts, "s"), "idle_rss_mb": figure(idles, "MB"),
                    "idle_rss_after_read_mb": figure(served, "MB")})


if __name__ == "__main__":
    main()
