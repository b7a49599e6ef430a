#!/usr/bin/env python3
"""Durable writes: the rate of `POST /director/host?name=X` merging one
variable (`{"vars.n": <new value>}`), each answered only once committed
with its activity entry, against the rate of raw single-row SQLite commits
on the same disk (issue: a benchmark kit; target: the merges at least 0.75
times the raw commits).

Each run alternates `--slices` times (the disk is shared and noisy, so
both rates are taken under the same conditions) `--slice-seconds` of each:

  * raw commits: Python's sqlite3 on a file in the server's data directory,
    `journal_mode=WAL`, `synchronous=FULL` (as the server runs SQLite), one
    INSERT per transaction, one client;
  * merges: wrk (`--threads`, `--connections`) with a Lua script giving
    every request a value never sent before, spread over `--hosts` hosts,
    so that every answer must be 200 (a 304 would mean nothing changed;
    any other answer fails the run).

A run's rates are its commits (merges) over its seconds of each. After each
run the activity log must hold at least one new entry per completed merge.
The spread of the raw rate between a run's slices (fastest / slowest) is
reported too: when it is large, the disk was busy with other work and the
ratio says little.

`--database postgres://...` (an empty database) runs the server on
PostgreSQL, and the raw commits are then PostgreSQL's, in the same
database: `pgbench`, one client, one single-row INSERT per transaction,
`synchronous_commit=on` (as the issue asks: PostgreSQL's own raw commit
rate, measured in the same run by a client as lean as the SQLite one).

    cargo build --release --bin steward
    python3 tests/bench/writes.py [--runs 3] [--database URL] [--json FILE] [--target-dir target]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sqlite3
import statistics
import sys
import tempfile
import time

from common import (ADMIN, COUNT_ANSWERS, WRK_THREAD_IDS, Server, call, database_label, figure, psql, target_dir_default, wrk,
                    write_json)

MERGE_SCRIPT = WRK_THREAD_IDS + r"""
-- Every request merges a value never sent before (arguments: the number of
-- hosts, and a tag that differs between wrk runs) into one of the hosts.
wrk.headers["Authorization"] = AUTH
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"

function init(args)
  hosts = tonumber(args[1])
  tag = args[2]
  sent = 0
end

function request()
  sent = sent + 1
  local path = string.format("/director/host?name=merge-%03d", (id * 31 + sent) % hosts)
  return wrk.format("POST", path, nil, string.format('{"vars.n": "%s-%d-%d"}', tag, id, sent))
end

""" + COUNT_ANSWERS


def raw_commits(directory, seconds):
    """Single-row commits for `seconds` (WAL, synchronous=FULL, one client):
    (commits, seconds taken)."""
    path = os.path.join(directory, "raw-commits.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            sys.exit("SQLite refused WAL mode for the raw commits")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        commits = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            db.execute("BEGIN")
            db.execute("INSERT INTO rows (value) VALUES (?)", (f"value {commits}",))
            db.execute("COMMIT")
            commits += 1
        return commits, time.monotonic() - start
    finally:
        db.close()


RAW_TABLE = "bench_raw_commits"


def pgbench():
    """The pgbench binary: on PATH, or PostgreSQL's own (Debian keeps it there)."""
    found = shutil.which("pgbench") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"),
                                                        reverse=True)), None)
    if not found:
        sys.exit("pgbench is missing: it comes with PostgreSQL's server package")
    return found


def raw_commits_postgres(url, seconds, directory):
    """Single-row commits for `seconds` on PostgreSQL (synchronous_commit=on,
    one client): (commits, seconds taken)."""
    script = os.path.join(directory, "raw-commit.sql")
    with open(script, "w") as f:
        f.write(f"INSERT INTO {RAW_TABLE} (value) VALUES ('value ' || :client_id);\n")
    env = dict(os.environ, PGOPTIONS="-c synchronous_commit=on -c client_min_messages=warning")
    done = subprocess.run([pgbench(), "-n", "-c", "1", "-T", str(seconds), "-f", script, url],
                          env=env, capture_output=True, text=True)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    if done.returncode != 0 or not processed:
        sys.exit(f"pgbench failed: {done.stdout}{done.stderr}")
    return int(processed.group(1)), float(seconds)


def modify_entries(base):
    """How many host modifications the activity log holds (streamed whole)."""
    status, body = call("GET", base + "/director/activity?action=modify&object_type=host", timeout=600)
    if status != 200:
        sys.exit(f"GET /director/activity answered {status}: {body}")
    return len(body["objects"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--slices", type=int, default=5)
    ap.add_argument("--slice-seconds", type=int, default=1)
    ap.add_argument("--database", default=None, help="an empty PostgreSQL database (default: SQLite)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--target-dir", default=target_dir_default())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="steward-writes-") as data, \
            Server(args.target_dir, data, args.database) as server:
        call("POST", server.base + "/director/host", {"object_name": "merge-base", "object_type": "template",
                                                      "vars": {"site": "berlin"}})
        for i in range(args.hosts):
            status, body = call("POST", server.base + "/director/host",
                                {"object_name": f"merge-{i:03d}", "imports": ["merge-base"],
                                 "address": "127.0.2.1", "vars": {"n": "0"}})
            if status != 201:
                sys.exit(f"creating merge-{i:03d} answered {status}: {body}")
        script = os.path.join(data, "merge.lua")
        with open(script, "w") as f:
            f.write(f"AUTH = {ADMIN!r}\n{MERGE_SCRIPT}")
        if args.database:
            psql(args.database, f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (id bigserial PRIMARY KEY, "
                                "value text NOT NULL)")
            baseline = "PostgreSQL single-row INSERTs, synchronous_commit=on, pgbench -c1"
        else:
            baseline = f"SQLite WAL synchronous=FULL in {data}"
        print(f"{database_label(args.database)}, {args.hosts} hosts, wrk -t{args.threads} -c{args.connections}; "
              f"{args.slices} x {args.slice_seconds} s of each per run; raw commits: {baseline}")
        raws, merges, ratios, spreads = [], [], [], []
        for run in range(args.runs):
            before = modify_entries(server.base)
            commits = commit_seconds = answered = merge_seconds = 0
            slice_rates = []
            for piece in range(args.slices):
                n, seconds = (raw_commits_postgres(args.database, args.slice_seconds, data) if args.database
                              else raw_commits(data, args.slice_seconds))
                commits, commit_seconds = commits + n, commit_seconds + seconds
                slice_rates.append(n / seconds)
                result = wrk(server.base + "/director/host", args.threads, args.connections, args.slice_seconds,
                             auth=None, script=script, script_args=[str(args.hosts), f"{run}.{piece}"])
                statuses = dict(re.findall(r"^answered (\d+): (\d+)$", result["output"], re.M))
                if set(statuses) != {"200"}:
                    sys.exit(f"merges answered other than 200: {statuses}")
                answered += result["requests"]
                merge_seconds += result["requests"] / result["rate"]
            logged = modify_entries(server.base) - before
            if logged < answered:
                sys.exit(f"{answered} merges answered but only {logged} activity entries written")
            raws.append(commits / commit_seconds)
            spreads.append(max(slice_rates) / min(slice_rates))
            merges.append(answered / merge_seconds)
            ratios.append(merges[-1] / raws[-1])
            print(f"run {run + 1}: raw commits {raws[-1]:,.0f}/s (slices {min(slice_rates):,.0f} to "
                  f"{max(slice_rates):,.0f}/s), merges {merges[-1]:,.0f}/s ({answered} answered, "
                  f"{logged} activity entries), ratio {ratios[-1]:.2f}")
        print(f"median ratio {statistics.median(ratios):.2f} (target: at least 0.75)")
        write_json(args.json, "writes", database_label(args.database),
                   {"hosts": args.hosts, "threads": args.threads, "connections": args.connections,
                    "slices": args.slices, "slice_seconds": args.slice_seconds},
                   {"ratio": figure(ratios, "x"), "merges_per_s": figure(merges, "req/s"),
                    "raw_commits_per_s": figure(raws, "commits/s"), "raw_slice_spread": figure(spreads, "x")})


if __name__ == "__main__":
    main()
