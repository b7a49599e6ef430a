#!/usr/bin/env python3
"""A fleet of pulling agents: N long polls held by one process.

Starts `steward serve` (release build, SQLite or `--database`), creates
three scripts and a host template with `delivery: pull`, starts
`examples/pull_farm` (which registers N nodes through self-service and
keeps a long poll open for each, checking every allowlist as
steward-agent does), deploys once so every node holds an allowlist, then
measures:

  * idle CPU: the server's CPU (utime + stime from /proc) while all N wait
    and nothing changes, in % of one core, over --idle-seconds, twice: the
    first wait after the deployment (each agent's renewal then reads its
    state once: idle_after_deploy_cpu_percent) and the next one
    (idle_cpu_percent);
  * per run: after one script change and `POST /director/config/deploy`,
    until every node holds the new allowlist (all_updated_s) and until the
    deployment answered `succeeded` (deploy_succeeded_s);
  * the server's peak RSS (VmHWM) with N waiting agents;
  * a restart: SIGTERM, the server started again on the same data and
    port, a change deployed as soon as it is ready, until every node holds
    it (reconnect_s), and the 5xx answers other than 503 with Retry-After
    the farm saw (bad_5xx);
  * mixed: a fresh server with N/2 pushed agents (examples/agent_farm) and
    N/2 pulling ones, the wall time of one deployment (mixed_wall_s).

The open-files limit is raised here (children inherit it), not in the
server.

    cargo build --release --workspace --bin steward --example pull_farm --example agent_farm
    python3 tests/bench/pull_farm.py [--agents 10000] [--runs 3] [--database URL] [--json FILE]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from common import (ADMIN, Server, binary, call, database_label, figure, free_port, print_figures, rss_kib,
                    target_dir_default, write_json)

SCRIPTS = ("uptime", "df", "load")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_open_files(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, needed))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        print(f"warning: open files limit {want} < {needed}: the farm may not hold every poll")


def now_ms():
    return int(time.time() * 1000)


def template(base, name, delivery, scripts=SCRIPTS):
    body = {"object_name": name, "object_type": "template", "has_agent": True, "scripts": list(scripts)}
    if delivery:
        body["delivery"] = delivery
    status, answer = call("POST", base + "/director/host", body)
    if status != 201:
        sys.exit(f"cannot create the template {name}: {status} {answer}")
    _, key = call("POST", base + f"/director/host/api-key?name={name}", {})
    return key["api_key"]


def start_farm(binary_path, base, key, count, prefix, extra=()):
    control = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    farm = subprocess.Popen([binary_path, "--server", base, "--key", key, "--count", str(count),
                             "--control", control, "--prefix", prefix, *extra], stdout=subprocess.PIPE, text=True)
    line = farm.stdout.readline().strip()
    if not line.startswith("ready"):
        farm.kill()
        sys.exit(f"the farm did not start: {line!r}")
    print(f"{prefix}: {count} agents registered and answered in {time.monotonic() - started:.1f} s", flush=True)
    return farm, f"http://{control}"


def stats(control, since=None):
    return call("GET", control + "/stats" + (f"?since={since}" if since else ""), auth=None)[1]


def until(predicate, timeout, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def pull_counters(base):
    """steward_pulls_total by `what`, from /metrics."""
    import urllib.request
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": ADMIN})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    counters = {}
    for line in text.splitlines():
        if line.startswith("steward_pulls_total{"):
            what = line.split('what="', 1)[1].split('"', 1)[0]
            counters[what] = float(line.rsplit(" ", 1)[1])
    return counters


def looks(now, before, what):
    """How many looks of `what` between two pull_counters (a server
    without that counter: '-')."""
    if what not in now or what not in before:
        return "-"
    return f"{now[what] - before[what]:.0f}"


def all_hold_one(control, count):
    """Whether every node holds the same allowlist (and not none)."""
    holding = stats(control)["holding"]
    return holding.get("0") is None and list(holding.values()) == [count]


def deploy_in_background(base):
    """POST /director/config/deploy?wait=120 in a thread: (thread, result dict)."""
    result = {}

    def run():
        t0 = time.monotonic()
        status, body = call("POST", base + "/director/config/deploy?wait=120", [], timeout=300)
        result.update(status=status, body=body, wall=time.monotonic() - t0)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def create_scripts(base):
    """The scripts every bench host is given."""
    for name in SCRIPTS:
        call("POST", base + "/director/script", {"object_name": name, "command": f"/usr/bin/{name}"})


def pulls(args, steward, farm_bin, database):
    data = tempfile.mkdtemp(prefix="steward-pulls-")
    figures = {}
    farm = None
    server = Server(args.target_dir, data, database, steward=steward)
    try:
        server.spawn()
        server.wait_ready()
        base = server.base
        create_scripts(base)
        key = template(base, "pullers", "pull")
        farm, control = start_farm(farm_bin, base, key, args.agents, "puller", ["--wait", str(args.wait)])
        _, first = call("POST", base + "/director/config/deploy?wait=300", [], timeout=400)
        print(f"first deploy: {first.get('status')} {first.get('counts')}")
        held = until(lambda: all_hold_one(control, args.agents), 120, every=0.2)
        if not held:
            sys.exit(f"not every agent holds the first allowlist: {stats(control)}")
        time.sleep(2)

        # Idle: every agent waits, nothing changes. Two windows of one wait
        # each: the first right after the deployment (an agent whose look
        # was not remembered before it reads once), the second with nothing
        # changed for a whole wait.
        for key, when in (("idle_after_deploy_cpu_percent", "in the first wait after the deployment"),
                          ("idle_cpu_percent", "in the next wait, nothing changed for a whole wait")):
            counted = pull_counters(base)
            c0, t0 = cpu_seconds(server.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            idle = 100 * (cpu_seconds(server.pid) - c0) / (time.monotonic() - t0)
            now = pull_counters(base)
            print(f"idle CPU with {args.agents} waiting agents {when}: {idle:.2f} % of one core over "
                  f"{args.idle_seconds} s; RSS {rss_kib(server.pid, 'VmRSS') / 1024:.1f} MB "
                  f"(peak so far {rss_kib(server.pid, 'VmHWM') / 1024:.1f} MB); "
                  f"looks remembered {looks(now, counted, 'looks_remembered')}, read {looks(now, counted, 'looks_read')}")
            figures[key] = [idle]

        updated, succeeded = [], []
        for run in range(args.runs):
            call("POST", base + "/director/script?name=load", {"command": f"/usr/bin/load{run + 1}"})
            counted = pull_counters(base)
            since = now_ms()
            t0 = time.monotonic()
            thread, result = deploy_in_background(base)
            done = until(lambda: stats(control, since)["accepted_since"] >= args.agents, 60)
            s = stats(control, since)
            thread.join()
            all_updated = (s["last_accept_since_unix_ms"] - since) / 1000 if done else float("inf")
            body = result.get("body") or {}
            first = (s["first_accept_since_unix_ms"] or since) - since
            print(f"run {run + 1}: the first agent updated after {first / 1000:.2f} s, every agent in {all_updated:.2f} s; deploy answered "
                  f"{body.get('status')} in {result.get('wall', 0):.2f} s, counts {body.get('counts')}")
            now = pull_counters(base)
            print(f"  fetches recorded {now['recorded'] - counted['recorded']:.0f} in "
                  f"{now['record_transactions'] - counted['record_transactions']:.0f} transactions, "
                  f"busy answers {now['busy'] - counted['busy']:.0f}, "
                  f"looks remembered {looks(now, counted, 'looks_remembered')}, read {looks(now, counted, 'looks_read')}")
            if body.get("status") != "succeeded":
                print(f"  the deployment did not succeed: {body}")
            updated.append(all_updated)
            succeeded.append(result.get("wall", float("inf")))
            time.sleep(1)
        figures["all_updated_s"] = updated
        figures["deploy_succeeded_s"] = succeeded
        peak = rss_kib(server.pid, "VmHWM") / 1024
        print(f"server peak RSS with {args.agents} waiting agents: {peak:.1f} MB")
        figures["peak_rss_mb"] = [peak]

        # A restart: every agent reconnects, and is current again: a change
        # deployed as soon as the server is ready reaches every one.
        before = stats(control)["errors"]
        server.stop()
        since = now_ms()
        t0 = time.monotonic()
        server.spawn()
        server.wait_ready()
        call("POST", base + "/director/script?name=load", {"command": "/usr/bin/restarted"})
        thread, result = deploy_in_background(base)
        back = until(lambda: stats(control, since)["accepted_since"] >= args.agents, 120, every=0.1)
        reconnect = time.monotonic() - t0 if back else float("inf")
        thread.join()
        after = stats(control)["errors"]
        bad = after["5xx_without_retry_after"] - before["5xx_without_retry_after"]
        print(f"restart: every agent holds the allowlist deployed after it in {reconnect:.2f} s "
              f"(deploy {(result.get('body') or {}).get('status')}); 503 with Retry-After "
              f"{after['503_retry_after'] - before['503_retry_after']}, other 5xx {bad}, "
              f"connection errors {after['connection'] - before['connection']}")
        figures["reconnect_s"] = [reconnect]
        figures["bad_5xx"] = [float(bad)]
    finally:
        if farm:
            farm.terminate()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)
    return figures


def mixed(args, steward, farm_bin, push_bin, database):
    data = tempfile.mkdtemp(prefix="steward-mixed-")
    farms = []
    server = Server(args.target_dir, data, database, steward=steward)
    try:
        server.spawn()
        server.wait_ready()
        base = server.base
        create_scripts(base)
        half = args.agents // 2
        farms.append(start_farm(farm_bin, base, template(base, "pullers", "pull"), half, "puller",
                                ["--wait", str(args.wait)]))
        control = f"127.0.0.1:{free_port()}"
        push_farm = subprocess.Popen([push_bin, "--server", base, "--key", template(base, "pushed", None),
                                      "--count", str(half), "--first-port", str(args.first_port),
                                      "--control", control, "--prefix", "pushed"], stdout=subprocess.PIPE, text=True)
        line = push_farm.stdout.readline().strip()
        farms.append((push_farm, None))
        if not line.startswith("ready"):
            sys.exit(f"the push farm did not start: {line!r}")
        _, first = call("POST", base + "/director/config/deploy?wait=300", [], timeout=400)
        print(f"mixed, first deploy: {first.get('status')} {first.get('counts')}")
        walls = []
        for run in range(args.runs):
            call("POST", base + "/director/script?name=load", {"command": f"/usr/bin/mixed{run + 1}"})
            t0 = time.monotonic()
            _, done = call("POST", base + "/director/config/deploy?wait=300", [], timeout=400)
            wall = time.monotonic() - t0
            print(f"mixed run {run + 1}: {wall:.2f} s, {done.get('status')}, counts {done.get('counts')}")
            walls.append(wall)
        return {"mixed_wall_s": walls}
    finally:
        for farm, _ in farms:
            farm.terminate()
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wait", type=int, default=60, help="each long poll's wait (steward-agent pull's default)")
    ap.add_argument("--idle-seconds", type=float, default=65,
                    help="how long idle CPU is measured: at least one --wait, so that every poll's renewal counts")
    ap.add_argument("--first-port", type=int, default=20000, help="the pushed agents' first port (mixed)")
    ap.add_argument("--no-mixed", action="store_true")
    ap.add_argument("--target-dir", default=target_dir_default())
    ap.add_argument("--database", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    # Each process (the server, each farm) holds one descriptor per agent.
    raise_open_files(args.agents + 1024)
    steward = binary(args.target_dir, "steward")
    farm_bin = binary(args.target_dir, "examples/pull_farm")
    push_bin = binary(args.target_dir, "examples/agent_farm")
    print(f"server: {database_label(args.database)}, {args.agents} pulling agents, wait {args.wait} s", flush=True)
    results = pulls(args, steward, farm_bin, args.database)
    if not args.no_mixed:
        if args.database:
            # A fresh database for the mixed server: drop what the first left.
            reset(args.database)
        results.update(mixed(args, steward, farm_bin, push_bin, args.database))
    units = {"idle_cpu_percent": "%", "idle_after_deploy_cpu_percent": "%", "peak_rss_mb": "MB", "bad_5xx": "answers"}
    figures = {name: figure(runs, units.get(name, "s")) for name, runs in results.items()}
    print_figures(figures)
    write_json(args.json, "pulls", database_label(args.database),
               {"agents": args.agents, "wait": args.wait, "idle_seconds": args.idle_seconds}, figures)


def reset(url):
    """Empties a PostgreSQL database the kit gave this bench."""
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                    "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"],
                   env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"), check=True)


if __name__ == "__main__":
    main()
