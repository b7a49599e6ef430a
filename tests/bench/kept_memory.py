#!/usr/bin/env python3
"""What the memory of recently read objects costs (not a figure of the kit).

Starts `steward serve` (release build) on a fresh SQLite data directory,
creates `--hosts` hosts whose `vars` hold about `--size` bytes each, reads
one, takes the server's RSS, reads every host `--rounds` times by name, and
prints the RSS growth. Run it on two builds to compare.

    cargo build --release --bin steward
    python3 tests/bench/kept_memory.py [--hosts 4096] [--size 3000] [--rounds 2] [--target-dir target]
"""
import argparse
import tempfile

from common import Server, call, rss_kib, target_dir_default


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=4096)
    ap.add_argument("--size", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--target-dir", default=target_dir_default())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="steward-kept-") as data, Server(args.target_dir, data) as server:
        blob = "v" * args.size
        for i in range(args.hosts):
            status, _ = call("POST", server.base + "/director/host",
                             {"object_name": f"kept-{i:05d}", "object_type": "object", "vars": {"blob": blob}})
            if status != 201:
                raise SystemExit(f"creating kept-{i:05d} answered {status}")
        call("GET", server.base + "/director/host?name=kept-00000")
        before = rss_kib(server.process.pid, "VmRSS")
        for _ in range(args.rounds):
            for i in range(args.hosts):
                status, _ = call("GET", server.base + f"/director/host?name=kept-{i:05d}")
                if status != 200:
                    raise SystemExit(f"reading kept-{i:05d} answered {status}")
        after = rss_kib(server.process.pid, "VmRSS")
        print(f"{args.hosts} hosts of about {args.size:,} bytes ({args.hosts * args.size / 2**20:.1f} MiB of text), "
              f"read {args.rounds} times: server RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
              f"+{(after - before) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
