#!/usr/bin/env bash
# Run schemathesis over the whole OpenAPI document against a fresh server.
#
#   tests/schemathesis.sh path/to/steward
#
# Starts `steward serve` on a free loopback port with an empty data
# directory (SQLite) and an admin password, waits for /ready, makes a host
# with a self-service key (so the key-authenticated routes can answer 200)
# and a stand-in for its agent (so deployments end at once), then runs
#
#   schemathesis run http://127.0.0.1:PORT/openapi.json --checks all
#
# with tests/schemathesis.toml (which authenticates as admin with Basic,
# and with that host's key on the self-service routes) and every check but
# ignored_auth (docs/API.md, "OpenAPI and schemathesis"), stops the server
# and prints
#
#   schemathesis: N test cases, M failures
#
# Exits non-zero when schemathesis found a failure (a 5xx, an undocumented
# status, a body or header that does not match the document, ...) or could
# not run. Installs schemathesis 4 with pip into a virtualenv when it is not
# on PATH.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   SCHEMATHESIS_SEED          a seed, to repeat a run
#   SCHEMATHESIS_REPORT_DIR    keep the reports (JUnit XML), the output, the
#                              server log and the crash cache there (replay
#                              a failure with `st replay ID` from there;
#                              default: a temporary directory)
#   SCHEMATHESIS_VENV          the virtualenv to install into (default
#                              ~/.cache/steward/schemathesis)
#   SCHEMATHESIS_READY_TIMEOUT seconds to wait for /ready (default 30)
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 STEWARD_BINARY" >&2
    exit 2
fi
BIN=$1
if [ ! -x "$BIN" ]; then
    echo "schemathesis: $BIN is not an executable file" >&2
    exit 2
fi
case $BIN in
    /*) ;;
    *) BIN=$PWD/$BIN ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/steward-schemathesis.XXXXXX")
OUT=${SCHEMATHESIS_REPORT_DIR:-$WORK/reports}
mkdir -p "$OUT"
SERVER_LOG=$OUT/server.log
SERVER_PID=
AGENT_PID=

cleanup() {
    if [ -n "$AGENT_PID" ]; then
        kill "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "schemathesis: $1" >&2
    echo "schemathesis: 0 test cases, 1 failures"
    exit 1
}

# schemathesis itself: on PATH, or in a virtualenv made for it.
ST=$(command -v schemathesis || true)
if [ -z "$ST" ]; then
    VENV=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/steward/schemathesis}
    if [ ! -x "$VENV/bin/schemathesis" ]; then
        echo "schemathesis: installing schemathesis 4 with pip into $VENV" >&2
        python3 -m venv "$VENV" >&2 ||
            fail "cannot make a virtualenv in $VENV (on Debian: apt-get install python3-venv)"
        "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5' </dev/null >&2 ||
            fail "cannot install schemathesis with pip"
    fi
    ST=$VENV/bin/schemathesis
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PORT=$(free_port)
AGENT_PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
PASSWORD=steward-schemathesis-$RANDOM$RANDOM

STEWARD_ADMIN_PASSWORD=$PASSWORD "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready_status() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1] + "/ready", timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
}

deadline=$((SECONDS + ${SCHEMATHESIS_READY_TIMEOUT:-30}))
until [ "$(ready_status "$BASE")" = 200 ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        SERVER_PID=
        tail -n 50 "$SERVER_LOG" >&2 || true
        fail "the server exited before it was ready"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 50 "$SERVER_LOG" >&2 || true
        fail "GET $BASE/ready did not answer 200 in time"
    fi
    sleep 0.2
done

# A stand-in for the agent of that host: it confirms every allowlist pushed
# to it, so a deployment does not wait for the host to pull (which it does,
# through the self-service routes, during the run).
python3 - "$AGENT_PORT" >"$OUT/agent.log" 2>&1 <<'EOF' &
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Agent(BaseHTTPRequestHandler):
    def do_PUT(self):
        allowlist = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"checksum": allowlist["checksum"], "serial": allowlist["serial"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Agent).serve_forever()
EOF
AGENT_PID=$!

# A host with an agent and its own key, deployed once: the self-service
# routes then have a key to accept and an allowlist to hand out.
STEWARD_SCHEMATHESIS_HOST_KEY=$(python3 - "$BASE" "$PASSWORD" "$AGENT_PORT" <<'EOF'
import base64, json, sys, urllib.request

base, password, agent_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
auth = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

call("POST", "/director/host", {"object_name": "schemathesis-agents",
                                "object_type": "template", "has_agent": True})
call("POST", "/director/script", {"object_name": "schemathesis-uptime",
                                  "command": "/usr/bin/uptime"})
call("POST", "/director/host", {"object_name": "schemathesis-agent",
                                "imports": ["schemathesis-agents"], "address": "127.0.0.1",
                                "agent_port": agent_port, "scripts": ["schemathesis-uptime"]})
key = call("POST", "/director/host/api-key?name=schemathesis-agent")["api_key"]
call("POST", "/director/config/deploy?wait=30")
print(key)
EOF
) || fail "could not prepare the server (see $SERVER_LOG)"
export STEWARD_SCHEMATHESIS_HOST_KEY
export STEWARD_SCHEMATHESIS_PASSWORD=$PASSWORD

seed=()
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    seed=(--seed "$SCHEMATHESIS_SEED")
fi

echo "== schemathesis run $BASE/openapi.json"
st_rc=0
# From the report directory: schemathesis keeps its crash cache (for
# `st replay ID`) in .schemathesis/ of the current directory.
cd "$OUT"
"$ST" --config-file "$ROOT/tests/schemathesis.toml" run "$BASE/openapi.json" \
    --checks all \
    --exclude-checks ignored_auth \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
    --request-timeout 60 \
    --workers 1 \
    "${seed[@]}" \
    --report junit --report-dir "$OUT" \
    --no-color </dev/null | tee "$OUT/schemathesis.txt" || st_rc=${PIPESTATUS[0]}

# "Test cases:" is followed by "N generated, M found ..." (or "... passed").
summary=$(grep -A1 '^Test cases:' "$OUT/schemathesis.txt" | tail -n 1 || true)
cases=$(echo "$summary" | grep -oE '[0-9]+ generated' | grep -oE '[0-9]+' || echo 0)
failures=$(echo "$summary" | grep -oE '[0-9]+ unique failure' | grep -oE '[0-9]+' || echo 0)
if [ "$st_rc" -ne 0 ] && [ "$failures" -eq 0 ]; then
    failures=1
fi
if grep -q 'panicked' "$SERVER_LOG"; then
    echo "schemathesis: the server panicked; its log:" >&2
    grep -B2 -A5 'panicked' "$SERVER_LOG" >&2 || true
    failures=$((failures + 1))
    st_rc=1
fi
echo "schemathesis: $cases test cases, $failures failures"
exit "$st_rc"
