#!/usr/bin/env python3
"""Deploying to an agent farm: N agents on loopback, one process.

Starts `steward serve` (release build) on a fresh data directory, creates
three scripts and an agent template, starts `examples/agent_farm` (which
registers N nodes through self-service and serves an agent endpoint for
each, checking signatures as steward-agent does), then measures:

  * the wall time of a deployment that changes every host's allowlist
    (`POST /director/config/deploy?wait=600`, from the request to the
    answer), `--runs` times, each after changing a script's command;
  * the server's peak RSS (VmHWM from /proc) over the whole run;
  * a redeploy after one host changed: how many hosts it pushed.

The server runs with MALLOC_ARENA_MAX=2 (as docs/OPERATIONS.md recommends
for production; `--malloc-arena-max ''` for glibc's default).

    CARGO_TARGET_DIR=target cargo build --release --workspace --bin steward --example agent_farm
    python3 tests/bench/deploy_farm.py [--agents 10000] [--runs 3] [--json FILE] [--target-dir target]
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

from common import call, database_label, figure, free_port, reset_peak, rss_kib, start_farm, write_json

PASSWORD = "farm-admin-password"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--first-port", type=int, default=20000)
    ap.add_argument("--malloc-arena-max", default="2",
                    help="MALLOC_ARENA_MAX for the server, as docs/OPERATIONS.md recommends "
                         "('' leaves glibc's default: up to 8 arenas per core)")
    ap.add_argument("--database", default=None, help="an empty PostgreSQL database (default: SQLite)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args()
    steward = os.path.join(args.target_dir, "release", "steward")
    farm_bin = os.path.join(args.target_dir, "release", "examples", "agent_farm")
    data = tempfile.mkdtemp(prefix="steward-farm-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, STEWARD_ADMIN_PASSWORD=PASSWORD, STEWARD_LOG="warn",
               MALLOC_MMAP_THRESHOLD_="1048576")
    env.pop("STEWARD_DATABASE_URL", None)
    env.pop("MALLOC_ARENA_MAX", None)
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = args.malloc_arena_max
    print(f"server: {database_label(args.database)}, "
          f"MALLOC_ARENA_MAX={args.malloc_arena_max or '(glibc default)'}")
    cmd = [steward, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data]
    if args.database:
        cmd += ["--database", args.database]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    farm = None
    try:
        for _ in range(400):
            try:
                if call("GET", base + "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        admin = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        started = time.monotonic()
        farm, control = start_farm(base, admin, farm_bin, args.agents, args.first_port)
        print(f"{args.agents} agents registered and listening in {time.monotonic() - started:.1f} s")
        idle = rss_kib(server.pid, "VmRSS")

        walls, peaks = [], []
        for run in range(args.runs):
            reset_peak(server.pid)
            if run:
                call("POST", base + "/director/script?name=load",
                     {"command": f"/usr/bin/load{run}"}, admin)
            t0 = time.monotonic()
            status, d = call("POST", base + "/director/config/deploy?wait=600", [], admin, timeout=900)
            wall = time.monotonic() - t0
            counts = d.get("counts", {})
            print(f"run {run + 1}: {wall:.2f} s, {d.get('status')}, deployed {counts.get('deployed')}, "
                  f"unreachable {counts.get('unreachable')}, failed {counts.get('failed')}")
            walls.append(wall)
            peaks.append(rss_kib(server.pid, "VmHWM"))
            print(f"  server RSS: peak {peaks[-1] / 1024:.1f} MB, at the end {rss_kib(server.pid, 'VmRSS') / 1024:.1f} MB")
        peak = max(peaks)
        _, before = call("GET", f"http://{control}/stats")
        call("POST", base + "/director/script", {"object_name": "extra", "command": "/usr/bin/extra"}, admin)
        call("POST", base + "/director/host?name=farm-00007.example", {"scripts": ["extra"]}, admin)
        t0 = time.monotonic()
        _, one = call("POST", base + "/director/config/deploy?wait=600", [], admin, timeout=900)
        one_wall = time.monotonic() - t0
        _, after = call("GET", f"http://{control}/stats")
        print(f"redeploy after one host changed: {one_wall:.2f} s, {one.get('status')}, "
              f"counts {one.get('counts')}, pushes received {after['pushes'] - before['pushes']}")
        print(f"farm: {after}")
        print(f"server RSS: idle after registration {idle / 1024:.1f} MB, peak during the deploys "
              f"{peak / 1024:.1f} MB (runs: {', '.join(f'{p / 1024:.1f}' for p in peaks)})")
        print(f"deploy to {args.agents} agents: median {statistics.median(walls):.2f} s "
              f"(runs: {', '.join(f'{w:.2f}' for w in walls)})")
        write_json(args.json, "deploy", database_label(args.database),
                   {"agents": args.agents, "malloc_arena_max": args.malloc_arena_max},
                   {"wall_s": figure(walls, "s"), "peak_rss_mb": figure([p / 1024 for p in peaks], "MB"),
                    "redeploy_pushes": figure([after["pushes"] - before["pushes"]], "pushes"),
                    "redeploy_s": figure([one_wall], "s")})
    finally:
        if farm:
            farm.terminate()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
