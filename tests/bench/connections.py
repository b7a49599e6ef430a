#!/usr/bin/env python3
"""Connections that do nothing (issue: hardening, item 2). A server started
with the common soft limit of 1,024 open files (its hard limit left as the
machine has it) gets, in turn:

  1. 1,000 idle sockets that send nothing, while a client asks GET /health
     every 100 ms (2 s timeout each): how many of those answered 200, the
     longest stretch without a 200, and how long until the server had
     closed every idle socket;
  2. 200 connections sending their headers one byte per second: how long
     the server held them (median);
  3. 200 registrations (no password to check first) whose 1,000-byte
     body comes one byte per second: how long
     the server held them (median), and how many got 408.

Every phase stops by itself after `--limit` seconds (a connection still
open then counts as held that long). With `--hard 1024` the hard limit is
1,024 too, so the server cannot raise its soft limit: the connection cap
answers beyond it.

    cargo build --release --bin steward
    python3 tests/bench/connections.py [--runs 3] [--binary PATH] [--hard N] [--database URL] [--json FILE]
"""
import argparse
import resource
import selectors
import socket
import statistics
import tempfile
import time

from common import Server, database_label, figure, print_figures, target_dir_default, write_json

SOFT = 1024


def limit_files(hard):
    def apply():
        _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, hard or current_hard))
    return apply


def raise_own_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def health(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(64).split(b"\r\n")[0].endswith(b" 200 OK")
    except OSError:
        return False


def open_many(port, count):
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    return socks


def held_times(socks, start, limit, feed=None, every=1.0):
    """Seconds from `start` until the server closed each socket (`limit`
    for those still open then). `feed(sock)` is called every `every` s on
    each open one (one more byte of a slow request). Also answers how many
    got a response that starts with b'HTTP/1.1 408'."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = {}
    timeouts = 0
    next_feed = time.monotonic() + every
    while len(closed) < len(socks) and time.monotonic() - start < limit:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                timeouts += 1
            if not data:
                closed[s] = time.monotonic() - start
                sel.unregister(s)
        if feed and time.monotonic() >= next_feed:
            next_feed += every
            for s in socks:
                if s not in closed:
                    try:
                        feed(s)
                    except OSError:
                        closed[s] = time.monotonic() - start
                        sel.unregister(s)
    for s in socks:
        closed.setdefault(s, limit)
        s.close()
    sel.close()
    return list(closed.values()), timeouts


def idle_phase(port, limit):
    socks = open_many(port, 1000)
    # Counted from when all are open (opening them takes a second or two).
    start = time.monotonic()
    answered, asked, last_ok, longest_gap = 0, 0, start, 0.0
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    open_count = len(socks)
    all_closed_at = None
    while time.monotonic() - start < limit:
        asked += 1
        if health(port):
            answered += 1
            now = time.monotonic()
            longest_gap = max(longest_gap, now - last_ok)
            last_ok = now
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                open_count -= 1
        if open_count == 0 and all_closed_at is None:
            all_closed_at = time.monotonic() - start
        if all_closed_at is not None and time.monotonic() - last_ok < 0.5 and asked >= 20:
            break
    longest_gap = max(longest_gap, time.monotonic() - last_ok)
    for s in socks:
        s.close()
    sel.close()
    return {
        "opened": len(socks),
        "health_ok_share": answered / max(asked, 1),
        "longest_refusal_s": longest_gap,
        "idle_closed_s": all_closed_at if all_closed_at is not None else limit,
    }


def slow_headers(port, limit):
    socks = open_many(port, 200)
    for s in socks:
        s.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    times, _ = held_times(socks, time.monotonic(), limit, feed=lambda s: s.send(b"X"))
    return statistics.median(times)


def slow_bodies(port, limit):
    socks = open_many(port, 200)
    for s in socks:
        # Registration reads its body before anything else (name and key
        # may come in it), with no password to hash first.
        s.send(b"POST /director/self-service/register-host HTTP/1.1\r\nHost: x\r\n"
               b"Content-Length: 1000\r\n\r\n{")
    times, timeouts = held_times(socks, time.monotonic(), limit, feed=lambda s: s.send(b" "))
    return statistics.median(times), timeouts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target-dir", default=target_dir_default())
    ap.add_argument("--binary", default=None, help="a steward binary (default: the release build)")
    ap.add_argument("--hard", type=int, default=0, help="the server's hard open files limit (default: as is)")
    ap.add_argument("--limit", type=float, default=75, help="seconds each phase lasts at most")
    ap.add_argument("--database", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    raise_own_limit()
    runs = {k: [] for k in ("health_ok_share", "longest_refusal_s", "idle_closed_s", "slow_header_held_s",
                            "slow_body_held_s", "slow_body_408")}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as data:
            server = Server(args.target_dir, data, args.database, steward=args.binary)
            server.preexec = limit_files(args.hard)
            with server:
                idle = idle_phase(server.port, args.limit)
                header_held = slow_headers(server.port, args.limit)
                body_held, timeouts = slow_bodies(server.port, args.limit)
        for k in ("health_ok_share", "longest_refusal_s", "idle_closed_s"):
            runs[k].append(idle[k])
        runs["slow_header_held_s"].append(header_held)
        runs["slow_body_held_s"].append(body_held)
        runs["slow_body_408"].append(timeouts)
        print(f"run {run + 1}: {idle['opened']} idle sockets: /health answered {idle['health_ok_share']:.0%}, "
              f"longest stretch without an answer {idle['longest_refusal_s']:.1f} s, all closed after "
              f"{idle['idle_closed_s']:.1f} s; slow headers held {header_held:.1f} s, slow bodies held "
              f"{body_held:.1f} s ({timeouts} answered 408)", flush=True)
    figures = {
        "health_ok_share": figure(runs["health_ok_share"], "x"),
        "longest_refusal_s": figure(runs["longest_refusal_s"], "s"),
        "idle_closed_s": figure(runs["idle_closed_s"], "s"),
        "slow_header_held_s": figure(runs["slow_header_held_s"], "s"),
        "slow_body_held_s": figure(runs["slow_body_held_s"], "s"),
    }
    print_figures(figures)
    if args.json:
        write_json(args.json, "connections", database_label(args.database),
                   {"soft_open_files": SOFT, "hard_open_files": args.hard or "as is", "limit_s": args.limit},
                   figures)


if __name__ == "__main__":
    main()
