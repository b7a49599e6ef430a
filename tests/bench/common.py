"""Helpers shared by the benchmark scripts in this directory: the release
binaries, a `steward serve` on a loopback port, HTTP calls, wrk, the seed
example, /proc memory figures and the `--json` figures file."""
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "bench-admin-password"
ADMIN = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def target_dir_default():
    return os.environ.get("CARGO_TARGET_DIR", "target")


def binary(target_dir, name):
    """A release binary (`steward`) or example (`examples/seed`)."""
    path = os.path.join(target_dir, "release", name)
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: build it with cargo build --release (tests/bench/kit.py does)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, auth=ADMIN, timeout=60):
    """One request: (status, parsed JSON body or None)."""
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Accept", "application/json")
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def database_label(url):
    return "PostgreSQL" if url else "SQLite"


def seed(target_dir, database_url, hosts, templates, chain=0):
    """Writes templates and hosts with the seed example (server stopped)."""
    cmd = [binary(target_dir, "examples/seed"), "--database-url", database_url, "--hosts", str(hosts),
           "--templates", str(templates), "--chain", str(chain)]
    print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


def sqlite_url(data_dir):
    """The URL `steward serve --data-dir DIR` uses (steward::store::sqlite_url)."""
    return f"sqlite://{os.path.join(data_dir, 'steward.sqlite')}?mode=rwc"


class Server:
    """`steward serve` on a free loopback port, started on entry and stopped
    (SIGTERM) on exit. `database` None means SQLite in `data_dir`; `steward`
    a binary to run instead of the release build in `target_dir`.
    `allocator_settings` False starts it as shipped, without the glibc
    malloc variables the other benches set."""

    def __init__(self, target_dir, data_dir, database=None, steward=None, allocator_settings=True):
        self.steward = steward or binary(target_dir, "steward")
        self.allocator_settings = allocator_settings
        self.data_dir = data_dir
        self.database = database
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = None
        # Run in the child before it starts (for example to set a limit).
        self.preexec = None

    def spawn(self):
        env = dict(os.environ, STEWARD_ADMIN_PASSWORD=PASSWORD, STEWARD_LOG="warn")
        if self.allocator_settings:
            env.update(MALLOC_ARENA_MAX="2", MALLOC_MMAP_THRESHOLD_="1048576")
        else:
            for name in [n for n in env if n.startswith("MALLOC_")]:
                del env[name]
        env.pop("STEWARD_DATABASE_URL", None)
        cmd = [self.steward, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        if self.database:
            cmd += ["--database", self.database]
        self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        preexec_fn=self.preexec)
        return self.process

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"steward serve exited with {self.process.returncode} before it was ready")
            try:
                if call("GET", self.base + "/ready", auth=None, timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        sys.exit(f"steward serve was not ready after {timeout} s")

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def __enter__(self):
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


# The start of a wrk script whose requests differ per thread: `threads`
# holds every thread (for `done`), and each thread's `id` is 0, 1, ...
WRK_THREAD_IDS = r"""
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
"""

# The end of a wrk script that counts its answers by status and prints
# `answered STATUS: N` for each at the end (after WRK_THREAD_IDS).
COUNT_ANSWERS = r"""
function response(status, headers, body)
  answers = answers or {}
  answers[status] = (answers[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("answers") or {}) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("answered %d: %d\n", status, n))
  end
end
"""

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(url, threads, connections, duration, auth=ADMIN, script=None, script_args=(), latency=False):
    """Runs wrk; answers its requests per second, the latency percentiles in
    ms (with `latency`), the completed requests and the raw output. Exits
    on any socket error or non-2xx/3xx answer."""
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s"]
    if auth:
        cmd += ["-H", f"Authorization: {auth}"]
    if script:
        cmd += ["-s", script]
    if latency:
        cmd.append("--latency")
    cmd.append(url)
    if script_args:
        cmd += ["--", *script_args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx answers from {url}:\n{out}")
    sockets = re.search(r"Socket errors: (.*)", out)
    if sockets:
        sys.exit(f"wrk saw socket errors ({sockets.group(1)}) on {url}:\n{out}")
    result = {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "output": out,
    }
    if latency:
        result["latency_ms"] = {
            int(p): float(v) * UNITS_MS[unit]
            for p, v, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        }
    return result


def rss_kib(pid, field):
    """VmRSS, VmHWM, ... of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux: write 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def figure(runs, unit):
    """One figure: the median of the runs, and the runs."""
    return {"median": statistics.median(runs), "runs": runs, "unit": unit}


def print_figures(figures):
    """One line per figure: its median and its runs."""
    for name, f in figures.items():
        print(f"{name}: median {f['median']:.2f} (runs {', '.join(f'{r:.2f}' for r in f['runs'])})")


def write_json(path, bench, database, settings, figures):
    """Writes a bench's figures for tests/bench/kit.py (and anyone else)."""
    if path:
        with open(path, "w") as f:
            json.dump({"bench": bench, "database": database, "settings": settings, "figures": figures}, f, indent=2)


def psql(url, sql, capture=False):
    """Runs `sql` with psql on the database at `url`; its output with `capture`."""
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    done = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", sql], env=env, check=True,
                          capture_output=capture, text=True)
    return done.stdout.strip() if capture else None


def with_database(url, name):
    """`url` naming the database `name` instead."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))


def start_farm(base, admin, farm_bin, agents, first_port):
    """Three scripts, an agent template `farm` and its key on the server at
    `base`, then `examples/agent_farm` registering `agents` nodes with it
    (`farm-00000.example` on `first_port` and so on): (the farm's process,
    its control address). Exits when the farm does not start."""
    for name in ("uptime", "df", "load"):
        call("POST", base + "/director/script", {"object_name": name, "command": f"/usr/bin/{name}"}, admin)
    call("POST", base + "/director/host", {"object_name": "farm", "object_type": "template",
                                           "has_agent": True, "scripts": ["uptime", "df", "load"]}, admin)
    _, key = call("POST", base + "/director/host/api-key?name=farm", {}, admin)
    control = f"127.0.0.1:{free_port()}"
    farm = subprocess.Popen([farm_bin, "--server", base, "--key", key["api_key"], "--count", str(agents),
                             "--first-port", str(first_port), "--control", control],
                            stdout=subprocess.PIPE, text=True)
    line = farm.stdout.readline().strip()
    if not line.startswith("ready"):
        farm.terminate()
        sys.exit(f"the farm did not start: {line!r}")
    return farm, control
