#!/usr/bin/env python3
"""Reads under load: `GET /director/host?name=` with Basic auth against
`GET /health`, measured with wrk in the same run (issue: a benchmark kit;
target: the host read at least 0.5 times the /health rate).

Starts `steward serve` (release build) on a fresh data directory (SQLite by
default, `--database postgres://...` for PostgreSQL: it must be an empty
database), creates `--hosts` hosts under a template, then runs wrk
(`--threads`, `--connections`, `--duration` seconds) in turn on /health, on
one host, and spread over every host (each request names the next host of
the list, per wrk thread), `--runs` times, and prints each rate and the
median ratios to /health.

    cargo build --release --bin steward
    python3 tests/bench/reads.py [--runs 3] [--hosts 1000] [--json FILE] [--target-dir target]
"""
import argparse
import base64
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from common import WRK_THREAD_IDS, call, figure, free_port, wrk, write_json

PASSWORD = "reads-admin-password"

SPREAD_SCRIPT = WRK_THREAD_IDS + r"""
-- Each request reads the next of `hosts` hosts (argument), threads apart.

function init(args)
  hosts = tonumber(args[1])
  sent = 0
end

function request()
  sent = sent + 1
  local path = string.format("/director/host?name=host-%05d", (id * 7919 + sent) % hosts)
  return wrk.format("GET", path)
end
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--database", default=None)
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    args = ap.parse_args()
    steward = os.path.join(args.target_dir, "release", "steward")
    data = tempfile.mkdtemp(prefix="steward-reads-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, STEWARD_ADMIN_PASSWORD=PASSWORD, STEWARD_LOG="warn", MALLOC_ARENA_MAX="2",
                   MALLOC_MMAP_THRESHOLD_="1048576")
    env.pop("STEWARD_DATABASE_URL", None)
    cmd = [steward, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]
    if args.database:
        cmd += ["--database", args.database]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                if call("GET", base + "/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        admin = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        call("POST", base + "/director/host", {"object_name": "base", "object_type": "template",
                                               "vars": {"site": "berlin"}}, admin)
        for i in range(args.hosts):
            call("POST", base + "/director/host", {"object_name": f"host-{i:05d}", "imports": ["base"],
                                                   "address": "127.0.2.1", "vars": {"n": str(i)}}, admin)
        host = f"{base}/director/host?name=host-{args.hosts // 2:05d}"
        print(f"{'SQLite' if not args.database else 'PostgreSQL'}, {args.hosts} hosts, wrk -t{args.threads} "
              f"-c{args.connections} -d{args.duration}s")
        script = os.path.join(data, "spread.lua")
        with open(script, "w") as f:
            f.write(SPREAD_SCRIPT)
        ratios, healths, reads, spreads, spread_ratios = [], [], [], [], []
        for run in range(args.runs):
            health = wrk(base + "/health", args.threads, args.connections, args.duration, auth=None)["rate"]
            read = wrk(host, args.threads, args.connections, args.duration, auth=admin)["rate"]
            spread = wrk(base + "/", args.threads, args.connections, args.duration, auth=admin,
                         script=script, script_args=[str(args.hosts)])["rate"]
            ratios.append(read / health)
            spread_ratios.append(spread / health)
            healths.append(health)
            reads.append(read)
            spreads.append(spread)
            print(f"run {run + 1}: /health {health:,.0f} req/s, GET one host {read:,.0f} req/s "
                  f"(ratio {read / health:.2f}), GET spread over {args.hosts} hosts {spread:,.0f} req/s "
                  f"(ratio {spread / health:.2f})")
        print(f"median ratio {statistics.median(ratios):.2f}, spread {statistics.median(spread_ratios):.2f} "
              f"(target: at least 0.5)")
        write_json(args.json, "reads", "PostgreSQL" if args.database else "SQLite",
                   {"hosts": args.hosts, "threads": args.threads, "connections": args.connections,
                    "duration_s": args.duration},
                   {"ratio": figure(ratios, "x"), "spread_ratio": figure(spread_ratios, "x"),
                    "health_per_s": figure(healths, "req/s"), "host_per_s": figure(reads, "req/s"),
                    "spread_per_s": figure(spreads, "req/s")})
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
