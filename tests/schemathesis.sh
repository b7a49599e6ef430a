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
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
BIN=$(steward_binary schemathesis "$1")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/steward-schemathesis.XXXXXX")
OUT=${SCHEMATHESIS_REPORT_DIR:-$WORK/reports}
mkdir -p "$OUT"
SERVER_LOG=$OUT/server.log
SERVER_PID=
AGENT_PID=

cleanup() {
    stop_process "$AGENT_PID"
    stop_process "$SERVER_PID"
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

PORT=$(free_port)
AGENT_PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
PASSWORD=steward-schemathesis-$RANDOM$RANDOM

# Deploys push only to loopback: tests touch no other address, whatever
# generated hosts' addresses say (a name is not resolved).
STEWARD_ADMIN_PASSWORD=$PASSWORD "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --push-network 127.0.0.0/8 --push-network ::1 </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

wait_ready "$BASE" "$SERVER_PID" "$SERVER_LOG" "${SCHEMATHESIS_READY_TIMEOUT:-30}" ||
    fail "the server did not get ready"

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
