#!/usr/bin/env python3
"""Answered merges survive a crash: a check of the group commit (not a
figure of the kit).

`--clients` threads each merge an increasing number into a host of their
own (`POST /director/host?name=crash-N`, `{"vars.n": seq}`) over a kept-alive
connection, remembering the last number answered 200. After `--seconds` the
server is killed with SIGKILL, in the middle of the writes. Then, with the
server restarted on the same data directory, every host must hold at least
the last number answered for it (or the one in flight, never less), and the
activity log must hold an entry for every answered merge.

    cargo build --release --bin steward
    python3 tests/bench/durability.py [--runs 3] [--clients 16] [--seconds 3] [--binary PATH]
                                      [--database POSTGRES_URL]

`--binary` runs another build (the test suite runs it on the debug build);
a run in which fewer merges than clients were answered fails, since it
checked nothing. `--database` runs the server on PostgreSQL: the URL of a
database whose role may create databases (psql must be installed); each
run gets a fresh database next to it, dropped afterwards. The test suite
passes STEWARD_TEST_DATABASE_URL when it is set.
"""
import argparse
import http.client
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time

from common import ADMIN, Server, call, psql, target_dir_default, with_database


def client(port, host, stop, acknowledged, index):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": ADMIN, "Content-Type": "application/json", "Accept": "application/json"}
    seq = 0
    while not stop.is_set():
        seq += 1
        try:
            conn.request("POST", f"/director/host?name={host}", body=json.dumps({"vars.n": seq}), headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return  # the server is gone
        if response.status != 200:
            sys.exit(f"{host}: merge {seq} answered {response.status}")
        acknowledged[index] = seq


def run(target_dir, steward, clients, seconds, postgres):
    if not postgres:
        return crash(target_dir, steward, clients, seconds, None)
    name = f"steward_durability_{os.getpid()}"
    psql(postgres, f'DROP DATABASE IF EXISTS "{name}"')
    psql(postgres, f'CREATE DATABASE "{name}"')
    try:
        return crash(target_dir, steward, clients, seconds, with_database(postgres, name))
    finally:
        psql(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def crash(target_dir, steward, clients, seconds, database):
    with tempfile.TemporaryDirectory(prefix="steward-durability-") as data:
        server = Server(target_dir, data, database=database, steward=steward)
        server.spawn()
        server.wait_ready()
        hosts = [f"crash-{i:02d}" for i in range(clients)]
        for host in hosts:
            status, _ = call("POST", server.base + "/director/host", {"object_name": host, "object_type": "object"})
            assert status == 201, status
        acknowledged = [0] * clients
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(server.port, h, stop, acknowledged, i))
                   for i, h in enumerate(hosts)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        for t in threads:
            t.join()

        with Server(target_dir, data, database=database, steward=steward) as again:
            lost = []
            for host, seq in zip(hosts, acknowledged):
                status, body = call("GET", again.base + f"/director/host?name={host}")
                held = (body.get("vars") or {}).get("n", 0) if status == 200 else None
                if held is None or held < seq:
                    lost.append((host, seq, held))
        entries = count_activity(data, database)
        answered = sum(acknowledged)
        print(f"{answered} merges answered before SIGKILL; {entries} activity entries; "
              f"{len(lost)} hosts lost an answered merge{': ' + str(lost[:5]) if lost else ''}")
        return not lost and entries >= answered >= clients


def count_activity(data, database):
    """Modify entries of the crash hosts (each answered merge logged one)."""
    query = "SELECT count(*) FROM activity WHERE action = 'modify' AND object_name LIKE 'crash-%'"
    if database:
        return int(psql(database, query, capture=True))
    with sqlite3.connect(os.path.join(data, "steward.sqlite")) as db:
        return db.execute(query).fetchone()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--target-dir", default=target_dir_default())
    ap.add_argument("--binary", default=None, help="the steward binary (default: the release build)")
    ap.add_argument("--database", default=None,
                    help="PostgreSQL: a URL whose role may create databases (each run gets a fresh one)")
    args = ap.parse_args()
    print(f"durability on {'PostgreSQL' if args.database else 'SQLite'}")
    ok = all([run(args.target_dir, args.binary, args.clients, args.seconds, args.database)
              for _ in range(args.runs)])
    print("every answered merge survived" if ok else "ANSWERED MERGES WERE LOST")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
