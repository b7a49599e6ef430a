#!/usr/bin/env python3
"""Resolved lists of many hosts: one page of 1,000 and the whole list
streamed (issue: a benchmark kit; targets: a page of 1,000 resolved hosts
among 100,000 under 200 templates in at most 20 ms (median); the whole
list streamed in at most 2 s with the server's RSS growing at most 50 MB;
the console's fleet page of 100,000 hosts answers its first page in the
time the API's page takes, no query per row: at most 1.5 times).

Seeds `--hosts` hosts under `--templates` templates with the seed example
(server stopped), then in each of `--runs` runs:

  * streams `GET /director/hosts?resolved` (no limit: chunked) with curl,
    timing the request to the last byte, and the server's RSS growth: the
    peak (VmHWM, reset before the request through /proc/PID/clear_refs)
    minus VmRSS before; each stream on a freshly started server that has
    answered nothing else (later streams would reuse the memory the first
    one grew);
  * one page, `GET /director/hosts?resolved&limit=1000`, first and in the
    middle of the list (the cursor of the page there, found by paging
    unresolved names), with wrk -t1 -c1 (one request after the other) for
    `--duration` seconds: the median latency.

A stream and a page are checked once (valid JSON, every host, in name
order; 1,000 objects and a `next`).

Then the console's fleet page against the API's page of the same selection
(target: the console's first page in at most 1.5 times the API's), in each
run one after the other with wrk -t1 -c1 for `--duration` seconds each, the
order swapped every run:

  * the first fleet page, `GET /ui/` (Basic auth; the console's page of 100
    resolved hosts, which counts the whole fleet when nothing filters it),
    against `GET /director/hosts?resolved&limit=100&count=1`;
  * the first fleet page filtered on a variable, `GET /ui/?var=role=db`
    (a quarter of the hosts match; no count under a filter), against
    `GET /director/hosts?resolved&limit=100&vars.role=db`.

The console's page does what the API's does, plus the agent states of the
page's hosts in two queries and the HTML: never a query per row. Both pages
are checked once to list the same hosts.

    cargo build --release --bin steward --example seed
    python3 tests/bench/lists.py [--runs 3] [--hosts 100000] [--templates 200] [--database URL] [--json FILE]
"""
import argparse
import html
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from common import (ADMIN, Server, call, database_label, figure, reset_peak, rss_kib, seed, sqlite_url,
                    target_dir_default, wrk, write_json)

STREAM = "/director/hosts?resolved"
# src/console/pages.rs FLEET_PAGE: the hosts on a fleet page.
CONSOLE_PAGE = 100
# (what, console page, API page of the same selection and view).
CONSOLE_PAIRS = (
    ("first", "/ui/", f"/director/hosts?resolved&limit={CONSOLE_PAGE}&count=1"),
    ("filtered", "/ui/?var=role%3Ddb", f"/director/hosts?resolved&limit={CONSOLE_PAGE}&vars.role=db"),
)


def stream_once(url):
    """curl to /dev/null: (seconds to the last byte, bytes)."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", f"Authorization: {ADMIN}",
                          "-w", "%{http_code} %{size_download} %{time_total}", url],
                         capture_output=True, text=True, check=True).stdout.split()
    if out[0] != "200":
        sys.exit(f"the stream answered {out[0]}")
    return float(out[2]), int(out[1])


def check_stream(url, hosts):
    req = urllib.request.Request(url, headers={"Authorization": ADMIN, "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        objects = json.load(r)["objects"]
    names = [o["object_name"] for o in objects]
    if len(names) != hosts or names != sorted(names) or "vars" not in objects[0] or "imports" in objects[0]:
        sys.exit(f"the stream is not every host resolved in name order ({len(names)} objects)")


def middle_cursor(base, hosts):
    """The `next` of the page that ends in the middle of the list."""
    cursor = None
    for _ in range(hosts // 2000):
        query = "limit=1000&properties=object_name" + (f"&cursor={cursor}" if cursor else "")
        status, body = call("GET", f"{base}/director/hosts?{query}")
        if status != 200 or "next" not in body:
            sys.exit(f"paging to the middle failed: {status}")
        cursor = body["next"]
    return cursor


def console_names(url):
    """The hosts a fleet page lists, in order."""
    req = urllib.request.Request(url, headers={"Authorization": ADMIN, "Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=60) as r:
        page = r.read().decode()
    return [html.unescape(n) for n in re.findall(r'<td><a href="host\?name=[^"]*">([^<]*)</a>', page)]


def check_console(base):
    """Each console page lists the hosts of its API page, the page full."""
    for label, console, api in CONSOLE_PAIRS:
        status, body = call("GET", base + api)
        wanted = [o["object_name"] for o in body["objects"]] if status == 200 else []
        names = console_names(base + console)
        if len(wanted) != CONSOLE_PAGE or names != wanted:
            sys.exit(f"the console's {label} page does not list the API's {CONSOLE_PAGE} hosts "
                     f"({len(names)} listed, API {status} with {len(wanted)})")


def measure_console(base, runs, duration):
    """Median latencies of each console page and its API page, one after
    the other in each run (order swapped every run), and their ratios."""
    medians = {f"{who}_{label}": [] for label, _, _ in CONSOLE_PAIRS for who in ("console", "api")}
    for run in range(runs):
        for label, console, api in CONSOLE_PAIRS:
            pair = [("console", console), ("api", api)]
            for who, path in pair if run % 2 == 0 else reversed(pair):
                result = wrk(base + path, 1, 1, duration, latency=True)
                medians[f"{who}_{label}"].append(result["latency_ms"][50])
                print(f"console run {run + 1}, {label}, {who} {path}: median {result['latency_ms'][50]:.2f} ms, "
                      f"p99 {result['latency_ms'][99]:.2f} ms ({result['requests']} requests)")
    ratios = {label: [c / a for c, a in zip(medians[f"console_{label}"], medians[f"api_{label}"])]
              for label, _, _ in CONSOLE_PAIRS}
    return medians, ratios


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=100_000)
    ap.add_argument("--templates", type=int, default=200)
    ap.add_argument("--duration", type=int, default=5, help="seconds of wrk per page measurement")
    ap.add_argument("--database", default=None, help="an empty PostgreSQL database (default: SQLite)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--target-dir", default=target_dir_default())
    args = ap.parse_args()
    if args.hosts < 2000:
        ap.error("--hosts must be at least 2000 (a first and a middle page of 1,000)")
    with tempfile.TemporaryDirectory(prefix="steward-lists-") as data:
        seed(args.target_dir, args.database or sqlite_url(data), args.hosts, args.templates)
        print(f"{database_label(args.database)}, {args.hosts} hosts under {args.templates} templates")
        seconds, growth = [], []
        for run in range(args.runs):
            with Server(args.target_dir, data, args.database) as server:
                time.sleep(1)
                before = rss_kib(server.pid, "VmRSS")
                reset_peak(server.pid)
                wall, size = stream_once(server.base + STREAM)
                peak = rss_kib(server.pid, "VmHWM")
            seconds.append(wall)
            growth.append((peak - before) / 1024)
            print(f"stream run {run + 1}: {wall:.2f} s, {size / 1e6:.1f} MB of JSON, server RSS "
                  f"{before / 1024:.1f} MB before, peak {peak / 1024:.1f} MB: +{growth[-1]:.1f} MB")

        with Server(args.target_dir, data, args.database) as server:
            check_stream(server.base + STREAM, args.hosts)
            page = server.base + "/director/hosts?resolved&limit=1000"
            status, body = call("GET", page)
            if status != 200 or len(body["objects"]) != 1000 or "next" not in body:
                sys.exit(f"the first page is not 1,000 resolved hosts and a next: {status}")
            middle = f"{page}&cursor={urllib.parse.quote(middle_cursor(server.base, args.hosts))}"
            firsts, middles = [], []
            for run in range(args.runs):
                for url, medians, label in ((page, firsts, "first"), (middle, middles, "middle")):
                    result = wrk(url, 1, 1, args.duration, latency=True)
                    medians.append(result["latency_ms"][50])
                    print(f"page run {run + 1}, {label}: median {medians[-1]:.1f} ms, "
                          f"p99 {result['latency_ms'][99]:.1f} ms ({result['requests']} requests)")
            check_console(server.base)
            console, ratios = measure_console(server.base, args.runs, args.duration)
        print(f"page of 1,000 resolved: median {statistics.median(firsts):.1f} ms first, "
              f"{statistics.median(middles):.1f} ms in the middle (target: at most 20 ms)")
        print(f"stream: median {statistics.median(seconds):.2f} s (target: at most 2 s), RSS growth median "
              f"{statistics.median(growth):.1f} MB, largest {max(growth):.1f} MB (target: at most 50 MB)")
        for label, _, _ in CONSOLE_PAIRS:
            print(f"console's {label} fleet page of {CONSOLE_PAGE}: median "
                  f"{statistics.median(console[f'console_{label}']):.2f} ms, the API's page "
                  f"{statistics.median(console[f'api_{label}']):.2f} ms: ratio median "
                  f"{statistics.median(ratios[label]):.2f} (runs {', '.join(f'{r:.2f}' for r in ratios[label])}; "
                  "target: at most 1.5)")
        figures = {"page_first_ms": figure(firsts, "ms"), "page_middle_ms": figure(middles, "ms"),
                   "stream_s": figure(seconds, "s"), "stream_rss_growth_mb": figure(growth, "MB")}
        for label, _, _ in CONSOLE_PAIRS:
            figures[f"console_{label}_ms"] = figure(console[f"console_{label}"], "ms")
            figures[f"api_{label}_ms"] = figure(console[f"api_{label}"], "ms")
            figures[f"console_{label}_ratio"] = figure(ratios[label], "x")
        write_json(args.json, "lists", database_label(args.database),
                   {"hosts": args.hosts, "templates": args.templates, "duration_s": args.duration,
                    "console_page": CONSOLE_PAGE}, figures)


if __name__ == "__main__":
    main()
