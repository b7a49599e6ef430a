#!/usr/bin/env python3
"""The benchmark kit: every performance target, measured with one command.

Builds the release binaries (`cargo build --release`, honouring
CARGO_TARGET_DIR), then runs each benchmark of this directory in turn, each
starting its own server on a fresh data directory, and prints a table of
every figure (the median of `--runs` runs, and the runs) next to its target.

    python3 tests/bench/kit.py [--runs 3] [--quick] [--postgres URL] [--only reads,writes,...] [--json FILE]

  --quick      smaller data sets and shorter runs (1 run unless --runs):
               a smoke run; its figures are not compared with the targets
  --postgres   also run every bench on
               PostgreSQL (or set STEWARD_BENCH_DATABASE_URL): the URL of a
               database whose role may create databases; each bench gets a
               fresh database next to it, dropped afterwards (needs psql)
  --only       a comma-separated subset of: reads, writes, lists, chain,
               deploy, storm, startup, connections, logins, pulls

Needs wrk and curl (and psql with --postgres); when one is missing and the
kit runs as root where apt-get is, it installs them (`apt-get install wrk
curl postgresql-client`), otherwise it says what to install. Temporary files
go to TMPDIR (the raw-commit baseline of `writes` runs on that disk too).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from common import psql, with_database

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Each bench's script (whose defaults are the targets' sizes) and its options for --quick.
BENCHES = {
    "reads": ("reads.py", ["--hosts", "100", "--duration", "2"]),
    "writes": ("writes.py", ["--slices", "2"]),
    "lists": ("lists.py", ["--hosts", "10000", "--templates", "20", "--duration", "2"]),
    "chain": ("chain.py", ["--hosts", "10000", "--templates", "20", "--duration", "2"]),
    "deploy": ("deploy_farm.py", ["--agents", "500"]),
    "storm": ("registration_storm.py", ["--nodes", "200"]),
    "startup": ("startup.py", ["--hosts", "10000", "--templates", "20", "--idle", "1"]),
    "connections": ("connections.py", ["--limit", "40"]),
    "logins": ("login_flood.py", ["--seconds", "10"]),
    "pulls": ("pull_farm.py", ["--agents", "500", "--idle-seconds", "10"]),
}
POSTGRES_BENCHES = ("reads", "writes", "lists", "chain", "startup", "connections", "logins", "pulls", "storm",
                    "deploy")

# Above this spread of the raw commit rate between a run's slices, the
# writes ratio is flagged: the disk was busy with other work.
UNSTEADY_DISK = 2

# (bench, figure, what, target, test, judged on): the table's rows. Memory
# caps are judged on the largest run, counts that must reach a floor on the
# smallest, everything else on the median.
ROWS = [
    ("reads", "ratio", "GET /director/host?name= (Basic) req/s / GET /health req/s, wrk -t2 -c32",
     "≥ 0.5", lambda v: v >= 0.5, "median"),
    ("reads", "spread_ratio", "the same, each request naming the next of 1,000 hosts",
     "≥ 0.5", lambda v: v >= 0.5, "median"),
    ("writes", "ratio", "durable merges of one var (wrk -c16, 64 hosts) / raw single-row commits of the same database",
     "≥ 0.75", lambda v: v >= 0.75, "median"),
    ("lists", "page_first_ms", "first page of 1,000 resolved hosts (100,000 under 200 templates)",
     "≤ 20 ms", lambda v: v <= 20, "median"),
    ("lists", "page_middle_ms", "middle page (cursor) of 1,000 resolved hosts",
     "≤ 20 ms", lambda v: v <= 20, "median"),
    ("lists", "stream_s", "whole resolved list streamed (100,000 hosts)", "≤ 2 s", lambda v: v <= 2, "median"),
    ("lists", "stream_rss_growth_mb", "server RSS growth during the stream",
     "≤ 50 MB", lambda v: v <= 50, "max"),
    ("lists", "console_first_ratio", "console's first fleet page (GET /ui/, 100 resolved hosts, fleet counted) "
     "latency / the API's page of the same (resolved&limit=100&count=1), medians, measured alternately",
     "≤ 1.5", lambda v: v <= 1.5, "median"),
    ("lists", "console_first_ms", "the console's first fleet page, median latency (wrk -t1 -c1)",
     "none", None, "median"),
    ("lists", "api_first_ms", "the API's page it is compared with, median latency", "none", None, "median"),
    ("lists", "console_filtered_ratio", "the same filtered on a variable (/ui/?var=role=db against "
     "resolved&limit=100&vars.role=db; a quarter of the hosts match)", "≤ 1.5", lambda v: v <= 1.5, "median"),
    ("lists", "console_filtered_ms", "the console's filtered fleet page, median latency", "none", None, "median"),
    ("lists", "api_filtered_ms", "the API's filtered page, median latency", "none", None, "median"),
    ("chain", "p99_ms", "resolved GET at the end of a 10-deep import chain, p99 (wrk -t1 -c1)",
     "≤ 2 ms", lambda v: v <= 2, "median"),
    ("deploy", "wall_s", "deploy to 10,000 agents, wall", "≤ 5 s", lambda v: v <= 5, "median"),
    ("deploy", "peak_rss_mb", "server peak RSS during the deploys",
     "≤ 200 MB", lambda v: v <= 200, "max"),
    ("deploy", "redeploy_pushes", "redeploy after one host changed: hosts pushed", "1", lambda v: v == 1, "median"),
    ("storm", "wall_s", "1,000 concurrent registrations, one key (all distinct, none lost)",
     "≤ 3 s", lambda v: v <= 3, "median"),
    ("startup", "start_to_ready_s", "process start to /ready 200, 100,000 hosts", "≤ 1 s", lambda v: v <= 1, "median"),
    ("startup", "idle_rss_mb", "idle server RSS, 100,000 hosts", "≤ 30 MB", lambda v: v <= 30, "max"),
    ("startup", "idle_rss_after_read_mb", "idle server RSS after one authenticated read, 100,000 hosts",
     "≤ 30 MB", lambda v: v <= 30, "max"),
    ("connections", "health_ok_share", "GET /health answered while 1,000 idle sockets are open (soft limit 1,024)",
     "≥ 0.9", lambda v: v >= 0.9, "median"),
    ("connections", "longest_refusal_s", "longest stretch without a /health answer meanwhile",
     "≤ 12 s", lambda v: v <= 12, "max"),
    ("connections", "idle_closed_s", "until the server closed all 1,000 idle sockets (header timeout 10 s)",
     "≤ 12 s", lambda v: v <= 12, "max"),
    ("connections", "slow_header_held_s", "200 connections sending headers at 1 byte/s: held (median)",
     "≤ 12 s", lambda v: v <= 12, "max"),
    ("logins", "rss_growth_mb", "server RSS growth (peak less before) during 100 concurrent wrong passwords "
     "from 1,400 addresses, no MALLOC_* settings", "≤ 50 MB", lambda v: v <= 50, "max"),
    ("logins", "first_logins_in_time", "first logins of 10 users within 5 s during a flood from 1,400 addresses",
     "≥ 9 of 10", lambda v: v >= 9, "min"),
    ("pulls", "idle_cpu_percent", "server CPU while 10,000 pulling agents wait (wait=60) and nothing changes, "
     "over 65 s (the second wait after a deployment)", "≤ 5 %", lambda v: v <= 5, "median"),
    ("pulls", "idle_after_deploy_cpu_percent", "the same over the first wait after a deployment (every "
     "renewal answered from memory unless a key changed)", "none", None, "median"),
    ("pulls", "all_updated_s", "after one script change and deploy: every pulling agent holds the new allowlist",
     "≤ 2 s", lambda v: v <= 2, "median"),
    ("pulls", "deploy_succeeded_s", "the same: until the deployment answered succeeded", "≤ 5 s",
     lambda v: v <= 5, "median"),
    ("pulls", "peak_rss_mb", "server peak RSS with 10,000 waiting agents", "≤ 250 MB", lambda v: v <= 250, "max"),
    ("pulls", "mixed_wall_s", "mixed deployment, 5,000 pushed + 5,000 pulling agents, wall", "≤ 5 s",
     lambda v: v <= 5, "median"),
    ("pulls", "reconnect_s", "restart: 10,000 pulling agents hold a change deployed right after it",
     "≤ 30 s", lambda v: v <= 30, "median"),
    ("pulls", "bad_5xx", "the same: 5xx answers other than 503 with Retry-After", "0", lambda v: v == 0, "max"),
    ("connections", "slow_body_held_s", "200 bodies sent at 1 byte/s: held (median; 408 at 30 s)",
     "≤ 32 s", lambda v: v <= 32, "max"),
]


def build(target_dir):
    cmd = ["cargo", "build", "--release", "--workspace", "--bin", "steward", "--bin", "steward-agent",
           "--example", "agent_farm", "--example", "pull_farm", "--example", "seed"]
    print("building:", " ".join(cmd), f"(target dir {target_dir})", flush=True)
    subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, CARGO_TARGET_DIR=target_dir), check=True)


def source():
    """The commit measured (`git describe --always --dirty`), if known."""
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return described.stdout.strip() if described.returncode == 0 else "(not a git checkout)"


def run_bench(name, args, target_dir, postgres):
    """Runs one bench script; answers its --json figures, or None when it failed."""
    script, quick = BENCHES[name]
    cmd = [sys.executable, os.path.join(HERE, script), "--runs", str(args.runs)] + (quick if args.quick else [])
    cmd += ["--binary", os.path.join(target_dir, "release", "steward")] if name == "storm" \
        else ["--target-dir", target_dir]
    database = None
    if postgres:
        database = f"steward_bench_{name}_{os.getpid()}"
        psql(postgres, f'DROP DATABASE IF EXISTS "{database}"')
        psql(postgres, f'CREATE DATABASE "{database}"')
        cmd += ["--database", with_database(postgres, database)]
    print(f"\n== {name} ({'PostgreSQL' if postgres else 'SQLite'}), load average {os.getloadavg()[0]:.2f} ==",
          flush=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        try:
            status = subprocess.run(cmd + ["--json", out.name], cwd=ROOT).returncode
        finally:
            if database:
                psql(postgres, f'DROP DATABASE IF EXISTS "{database}"')
        if status != 0:
            print(f"{name} failed (exit {status})")
            return None
        return json.load(out)


def number(value, unit):
    text = f"{value:,.2f}" if abs(value) < 100 and not unit.startswith("of ") else f"{value:,.0f}"
    return text if unit in ("x", "pushes") else f"{text} {unit}"


def table(results, quick):
    lines = ["| what | target | measured: median or largest (runs) | met |", "|---|---|---|---|"]
    for bench, key, what, target, test, judged in ROWS:
        for database in ("SQLite", "PostgreSQL"):
            if (bench, database) not in results:
                continue
            result = results[(bench, database)]
            label = f"{bench}: {what}" + (f" [{database}]" if bench in POSTGRES_BENCHES else "")
            if result is None:
                lines.append(f"| {label} | {target} | failed (see above) | no |")
                continue
            f = result["figures"][key]
            value = {"max": max, "min": min}.get(judged, lambda _: f["median"])(f["runs"])
            runs = ", ".join(number(r, f["unit"]) for r in f["runs"])
            which = {"max": " largest", "min": " smallest"}.get(judged, "")
            measured = f"**{number(value, f['unit'])}**{which} ({runs})"
            met = "quick run" if quick else ("-" if test is None else ("yes" if test(value) else "no"))
            lines.append(f"| {label} | {target} | {measured} | {met} |")
    return "\n".join(lines)


def caveats(results):
    """Lines on figures taken in conditions that make them unreliable."""
    notes = []
    for (bench, database), result in results.items():
        if bench == "writes" and result:
            spread = max(result["figures"]["raw_slice_spread"]["runs"])
            if spread > UNSTEADY_DISK:
                notes.append(f"writes [{database}]: the raw commit rate varied {spread:.1f}x between slices of one "
                             "run (the disk was busy with other work): the ratio is not reliable, run it again")
    return notes


def ensure_tools(tools):
    """Installs the missing tools with apt-get when running as root where it
    is; otherwise exits saying what to install."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not missing:
        return
    packages = ["postgresql-client" if t == "psql" else t for t in missing]
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(packages)} (apt-get)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, check=False)
        missing = [tool for tool in missing if not shutil.which(tool)]
    if missing:
        sys.exit(f"{' and '.join(missing)} not found: install with apt-get install {' '.join(packages)} "
                 "(or your system's package)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3, 1 with --quick)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--postgres", default=os.environ.get("STEWARD_BENCH_DATABASE_URL"))
    ap.add_argument("--only", default=",".join(BENCHES))
    ap.add_argument("--json", default=None, help="also write every bench's figures to this file")
    args = ap.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in only if b not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}: use {', '.join(BENCHES)}")
    ensure_tools(("wrk", "curl") + (("psql",) if args.postgres else ()))
    target_dir = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
    build(target_dir)

    results = {}
    for name in only:
        results[(name, "SQLite")] = run_bench(name, args, target_dir, None)
        if args.postgres and name in POSTGRES_BENCHES:
            results[(name, "PostgreSQL")] = run_bench(name, args, target_dir, args.postgres)

    print(f"\n{'QUICK RUN (smaller data, not the targets) ' if args.quick else ''}"
          f"{args.runs} run(s) per figure, {os.cpu_count()} CPUs, source {source()}\n")
    print(table(results, args.quick))
    for note in caveats(results):
        print(f"\nNOTE {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r for r in results.values() if r], f, indent=2)
    if any(r is None for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
