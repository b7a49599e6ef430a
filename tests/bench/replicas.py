#!/usr/bin/env python3
"""Two replicas on one PostgreSQL database against one: do reads and
merges scale? (issue: replicas on PostgreSQL; target: the pair at least
1.5 times one replica's rate, or an explanation of why not.)

Starts replica A on an empty PostgreSQL database (`--database`), creates
`--hosts` hosts under a template, then starts replica B on the same
database. Each run measures, for `--seconds` each:

  * one replica: wrk on A alone, reads (`GET /director/host?name=`, each
    request naming the next host) with `--connections`, then merges (as
    tests/bench/writes.py sends them) with half as many;
  * the pair: the same load split between A and B, half the connections
    on each (two wrk at once: a round-robin client that keeps each
    connection on one replica), summed.

Beside each rate it reports the CPU each party used meanwhile (from
/proc: the replicas, PostgreSQL's processes, wrk), in cores: on a machine
whose cores are all busy with one replica, a second one cannot add
throughput, and this shows where the time went.

    cargo build --release --bin steward
    python3 tests/bench/replicas.py --database postgres://.../empty [--runs 3] [--json FILE]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import ADMIN, COUNT_ANSWERS, Server, call, figure, target_dir_default, write_json
from reads import SPREAD_SCRIPT
from writes import MERGE_SCRIPT

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User and system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICKS


def pids_named(name):
    """Every process whose command is `name` (PostgreSQL's server processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def load(targets, seconds, script, script_args, connections):
    """wrk against every base URL of `targets` at once, `connections` split
    between them, the `i`th with `script_args(i)`: (requests per second in
    all, CPU cores used by each party)."""
    per = max(1, connections // len(targets))
    before_wall = time.monotonic()
    wrks = []
    for i, (base, _) in enumerate(targets):
        cmd = ["wrk", "-t", "1", "-c", str(per), "-d", f"{seconds}s", "--timeout", "10s", "-s", script,
               base + "/", "--", *script_args(i)]
        wrks.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    servers = [pid for _, pid in targets]
    postgres = pids_named("postgres")
    before = {"replicas": cpu_seconds(servers), "postgres": cpu_seconds(postgres),
              "wrk": cpu_seconds([w.pid for w in wrks])}
    # wrk's own CPU is read just before it ends.
    time.sleep(max(0.0, seconds - 0.2))
    wrk_cpu = cpu_seconds([w.pid for w in wrks])
    outputs = [w.communicate()[0] for w in wrks]
    wall = time.monotonic() - before_wall
    after = {"replicas": cpu_seconds(servers), "postgres": cpu_seconds(pids_named("postgres")), "wrk": wrk_cpu}
    rate = 0.0
    for out in outputs:
        if "Socket errors" in out:
            sys.exit(f"wrk saw socket errors:\n{out}")
        statuses = dict(re.findall(r"^answered (\d+): (\d+)$", out, re.M))
        if set(statuses) != {"200"}:
            sys.exit(f"answers other than 200: {statuses}")
        rate += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    cores = {party: (after[party] - before[party]) / wall for party in before}
    return rate, cores


def describe(cores):
    return ", ".join(f"{party} {used:.2f}" for party, used in cores.items())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", required=True, help="an empty PostgreSQL database")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--target-dir", default=target_dir_default())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="steward-replicas-") as data:
        os.makedirs(os.path.join(data, "a"))
        os.makedirs(os.path.join(data, "b"))
        with Server(args.target_dir, os.path.join(data, "a"), args.database) as a:
            call("POST", a.base + "/director/host", {"object_name": "merge-base", "object_type": "template",
                                                     "vars": {"site": "berlin"}})
            for i in range(args.hosts):
                for name in (f"host-{i:05d}", f"merge-{i:03d}") if i < 64 else (f"host-{i:05d}",):
                    status, body = call("POST", a.base + "/director/host",
                                        {"object_name": name, "imports": ["merge-base"], "address": "127.0.2.1",
                                         "vars": {"n": "0"}})
                    if status != 201:
                        sys.exit(f"creating {name} answered {status}: {body}")
            # Replica B shares A's signing key, as every replica must.
            key = os.path.join(data, "a", "signing.key")
            if os.path.exists(key):
                shutil.copy2(key, os.path.join(data, "b", "signing.key"))
            with Server(args.target_dir, os.path.join(data, "b"), args.database) as b:
                # One login first: the replica then knows the credentials (a
                # cold replica counts concurrent first logins as possible
                # guesses until one of them has been checked).
                call("GET", b.base + "/director/host?name=host-00000")
                reads_script = os.path.join(data, "spread.lua")
                with open(reads_script, "w") as f:
                    f.write(f'wrk.headers["Authorization"] = {ADMIN!r}\n{SPREAD_SCRIPT}{COUNT_ANSWERS}')
                merge_script = os.path.join(data, "merge.lua")
                with open(merge_script, "w") as f:
                    f.write(f"AUTH = {ADMIN!r}\n{MERGE_SCRIPT}")
                one, pair = [(a.base, a.pid)], [(a.base, a.pid), (b.base, b.pid)]
                figures = {key: [] for key in ("reads_one", "reads_pair", "merges_one", "merges_pair")}
                print(f"PostgreSQL, {args.hosts} hosts; reads wrk -c{args.connections}, merges "
                      f"-c{args.connections // 2}, {args.seconds} s each; CPU in cores "
                      f"({os.cpu_count()} on this machine)")
                for run in range(args.runs):
                    for what, script, connections in (("reads", reads_script, args.connections),
                                                      ("merges", merge_script, args.connections // 2)):
                        for label, targets in (("one", one), ("pair", pair)):
                            # Every merge sends a value never sent before.
                            script_args = ((lambda i: [str(args.hosts)]) if what == "reads"
                                           else (lambda i, tag=f"{run}.{label}": ["64", f"{tag}.{i}"]))
                            rate, cores = load(targets, args.seconds, script, script_args, connections)
                            figures[f"{what}_{label}"].append(rate)
                            print(f"run {run + 1}: {what}, {'one replica' if label == 'one' else 'the pair'}: "
                                  f"{rate:,.0f}/s (CPU: {describe(cores)})", flush=True)
        reads = [p / o for p, o in zip(figures["reads_pair"], figures["reads_one"])]
        merges = [p / o for p, o in zip(figures["merges_pair"], figures["merges_one"])]
        print(f"median: reads pair/one {statistics.median(reads):.2f}, merges pair/one "
              f"{statistics.median(merges):.2f} (target: at least 1.5)")
        write_json(args.json, "replicas", "PostgreSQL",
                   {"hosts": args.hosts, "connections": args.connections, "seconds": args.seconds},
                   {"reads_ratio": figure(reads, "x"), "merges_ratio": figure(merges, "x"),
                    **{f"{key}_per_s": figure(values, "req/s") for key, values in figures.items()}})


if __name__ == "__main__":
    main()
