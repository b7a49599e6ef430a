#!/usr/bin/env python3
"""The boot storm: N nodes register at once with one template key.

Starts `steward serve` (release build by default) on a fresh data directory
on a loopback port, creates an agent template and its key, then sends N
concurrent registrations (distinct names) from a thread pool and reports
the wall time, the failures and the distinct keys. Median of several runs.

    cargo build --release --bins
    python3 tests/bench/registration_storm.py [--nodes 1000] [--runs 3] [--json FILE] [--binary target/release/steward]
        [--database postgres://...]
"""
import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import call, database_label, figure, free_port, psql, with_database, write_json

PASSWORD = "storm-admin-password"


def run(binary, nodes, workers, database=None):
    """One storm on a fresh data directory and, with `database` (an empty
    PostgreSQL database's URL), a fresh database made beside it."""
    data = tempfile.mkdtemp(prefix="steward-storm-")
    fresh = None
    if database:
        fresh = f"steward_storm_{os.getpid()}_{int(time.monotonic() * 1000)}"
        psql(database, f'CREATE DATABASE "{fresh}"')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, STEWARD_ADMIN_PASSWORD=PASSWORD, STEWARD_LOG="warn", MALLOC_ARENA_MAX="2",
               MALLOC_MMAP_THRESHOLD_="1048576")
    env.pop("STEWARD_DATABASE_URL", None)
    cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]
    if fresh:
        cmd += ["--database", with_database(database, fresh)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if call("GET", base + "/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        admin = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        call("POST", base + "/director/host", {"object_name": "storm", "object_type": "template", "has_agent": True}, admin)
        status, body = call("POST", base + "/director/host/api-key?name=storm", {"max_uses": nodes}, admin)
        key = body["api_key"]

        def register(i):
            return call("POST", f"{base}/director/self-service/register-host?name=node-{i:05d}.storm",
                        {"address": f"127.1.{i // 250}.{i % 250 + 1}"}, f"Bearer {key}")

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(register, range(nodes)))
        wall = time.monotonic() - start
        ok = [b for s, b in results if s == 200]
        keys = set(ok)
        status, body = call("GET", base + "/director/host/api-key?name=storm", auth=admin)
        uses = body["uses"]
        return wall, len(ok), len(keys), uses
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data)
        if fresh:
            psql(database, f'DROP DATABASE IF EXISTS "{fresh}"')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--binary", default="target/release/steward")
    parser.add_argument("--database", default=None,
                        help="a PostgreSQL database to make each run's fresh database from (default: SQLite)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    walls = []
    for n in range(args.runs):
        wall, ok, distinct, uses = run(args.binary, args.nodes, args.workers, args.database)
        print(f"run {n + 1}: {args.nodes} registrations in {wall:.2f} s: {ok} ok, {distinct} distinct keys, key uses {uses}")
        if ok != args.nodes or distinct != args.nodes or uses != args.nodes:
            sys.exit("registrations were lost or duplicated")
        walls.append(wall)
    print(f"median of {args.runs} runs: {statistics.median(walls):.2f} s for {args.nodes} concurrent registrations "
          f"({args.nodes / statistics.median(walls):.0f}/s, {args.workers} client threads)")
    write_json(args.json, "storm", database_label(args.database), {"nodes": args.nodes, "workers": args.workers},
               {"wall_s": figure(walls, "s")})


if __name__ == "__main__":
    main()
