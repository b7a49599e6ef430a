#!/usr/bin/env python3
"""A staged deploy to an agent farm that halts on its canary.

Starts `steward serve` (release build, SQLite) on a fresh data directory,
an agent template, and `examples/agent_farm` with N nodes on loopback
ports (as deploy_farm.py does). Deploys once, so that every agent holds
its allowlist. Then a change for every host, while one host in a hundred
(every hundredth name) is moved to a loopback port where nothing
listens: those agents are unreachable, as agents that are down are.

    POST /director/config/deploy?stages=1%,10%,100%&max_failed=0&wait=600

must halt after its first stage (1% of the hosts, spread over the fleet
by a hash of the host id): the script prints the deployment's stages,
how many hosts the farm was pushed to (only the first stage's reachable
ones: the later stages' agents get nothing), how long the halt took, and
then resumes it twice (each resume goes on with the next stage; the last
stage never halts) and prints what each came to.

    CARGO_TARGET_DIR=target cargo build --release --workspace --bin steward --example agent_farm
    python3 tests/bench/staged_farm.py [--agents 10000] [--target-dir target]
"""
import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import call, free_port, start_farm

PASSWORD = "farm-admin-password"


def stage_line(d):
    s = d.get("staging") or {}
    summary = ", ".join(
        f"{x.get('stage')}: {x.get('hosts')} hosts {x.get('state')}" for x in s.get("summary", []))
    return (f"status {d.get('status')}, stage {s.get('stage')}/{s.get('stage_count')}, counts {d.get('counts')}; "
            f"stages [{summary}]; halted: {s.get('halted_reason')}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=10000)
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--first-port", type=int, default=20000)
    args = ap.parse_args()
    steward = os.path.join(args.target_dir, "release", "steward")
    farm_bin = os.path.join(args.target_dir, "release", "examples", "agent_farm")
    data = tempfile.mkdtemp(prefix="steward-staged-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, STEWARD_ADMIN_PASSWORD=PASSWORD, STEWARD_LOG="warn", MALLOC_ARENA_MAX="2")
    env.pop("STEWARD_DATABASE_URL", None)
    server = subprocess.Popen([steward, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    farm = None
    try:
        for _ in range(400):
            try:
                if call("GET", base + "/ready", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        admin = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        farm, control = start_farm(base, admin, farm_bin, args.agents, args.first_port)
        _, first = call("POST", base + "/director/config/deploy?wait=600", [], admin, timeout=900)
        print(f"{args.agents} agents; first deployment: {first.get('status')}, counts {first.get('counts')}")

        # One host in a hundred goes where nothing listens; every host changes.
        closed = free_port()
        broken = [f"farm-{i:05d}.example" for i in range(0, args.agents, 100)]
        for name in broken:
            status, _ = call("POST", base + f"/director/host?name={name}", {"agent_port": closed}, admin)
            if status != 200:
                sys.exit(f"cannot move {name}: {status}")
        call("POST", base + "/director/script?name=load", {"command": "/usr/bin/load-new"}, admin)
        _, dry = call("POST", base + "/director/config/deploy?dry_run=1&stages=1%25,10%25,100%25", [], admin,
                      timeout=300)
        canary = [h["host"] for h in dry["hosts"] if h.get("stage") == 1]
        print(f"dry run: {dry['counts']}; stage 1 would be {len(canary)} hosts, "
              f"{sum(1 for h in canary if h in broken)} of them unreachable")

        _, before = call("GET", f"http://{control}/stats")
        t0 = time.monotonic()
        status, d = call("POST", base + "/director/config/deploy?stages=1%25,10%25,100%25&max_failed=0&wait=600",
                         [], admin, timeout=900)
        halt_wall = time.monotonic() - t0
        _, after = call("GET", f"http://{control}/stats")
        pushed = after["pushes"] - before["pushes"]
        stage1 = [h for h in d.get("hosts", []) if h.get("stage") == 1]
        later_pushed = [h for h in d.get("hosts", []) if (h.get("stage") or 0) > 1 and h["result"] != "pending"]
        print(f"staged deploy: HTTP {status} after {halt_wall:.2f} s; {stage_line(d)}")
        print(f"  stage 1: {len(stage1)} hosts, {sum(1 for h in stage1 if h['result'] == 'deployed')} deployed, "
              f"{sum(1 for h in stage1 if h['result'] == 'unreachable')} unreachable")
        print(f"  the farm was pushed to {pushed} times; hosts of later stages with a result: {len(later_pushed)}")
        if d.get("status") != "halted" or later_pushed:
            sys.exit("the staged deploy did not halt on its canary")

        dep = d["id"]
        for attempt in (1, 2):
            t0 = time.monotonic()
            status, r = call("POST", base + f"/director/config/deployment?id={dep}&resume=1", [], admin)
            if status != 202:
                sys.exit(f"resume answered {status}: {r}")
            version = r.get("version")
            while True:
                _, r = call("GET", base + f"/director/config/deployment?id={dep}&wait=60&since={version}", None,
                            admin, timeout=120)
                version = r.get("version")
                if r.get("status") != "running":
                    break
            print(f"resume {attempt}: {time.monotonic() - t0:.2f} s; {stage_line(r)}")
            if r.get("status") != "halted":
                break
        _, stats = call("GET", f"http://{control}/stats")
        print(f"farm: {stats}")
    finally:
        if farm:
            farm.terminate()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
