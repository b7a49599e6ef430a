#!/usr/bin/env bash
# Run the HTTP collections (Bruno and Postman/newman) against a fresh server.
#
#   tests/collections.sh path/to/steward
#
# Starts `steward serve` on a free loopback port with an empty data directory,
# waits for /ready, runs `bru` on http-collections/bruno and `newman` on
# http-collections/postman (both always run), stops the server and prints
#
#   collections: N passed, M failed
#
# where N and M are the assertions and tests of both tools, summed from their
# JSON reports (failed requests and script errors count as failures).
# Exits non-zero when either tool failed.
#
# Environment:
#   COLLECTIONS_REPORT_DIR  keep the JSON reports and the server log there
#                           (default: a temporary directory, removed at exit)
#   COLLECTIONS_READY_TIMEOUT  seconds to wait for /ready (default 30)
#   COLLECTIONS_USER, COLLECTIONS_PASSWORD  Basic credentials sent by both
#                           tools (default admin / steward-collections; the
#                           server starts with that admin password).  Bruno masks the
#                           secret's value everywhere in its output and reports,
#                           so it should not be a short common string.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 STEWARD_BINARY" >&2
    exit 2
fi
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"
BIN=$(steward_binary collections "$1")

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COLL=$ROOT/http-collections
WORK=$(mktemp -d "${TMPDIR:-/tmp}/steward-collections.XXXXXX")
OUT=${COLLECTIONS_REPORT_DIR:-$WORK/reports}
mkdir -p "$OUT"
SERVER_LOG=$OUT/server.log
SERVER_PID=

cleanup() {
    stop_process "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT

USER_NAME=${COLLECTIONS_USER:-admin}
PASSWORD=${COLLECTIONS_PASSWORD:-steward-collections}
# The fresh server's first user is admin with this password.
# Deploys push only to loopback: tests touch no other address, whatever
# the collections' hosts say (a name is not resolved).
STEWARD_ADMIN_PASSWORD=$PASSWORD "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --push-network 127.0.0.0/8 --push-network ::1 </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

if ! wait_ready "$BASE" "$SERVER_PID" "$SERVER_LOG" "${COLLECTIONS_READY_TIMEOUT:-30}"; then
    echo "collections: 0 passed, 1 failed"
    exit 1
fi

missing=()
command -v bru >/dev/null 2>&1 || missing+=("@usebruno/cli")
command -v newman >/dev/null 2>&1 || missing+=("newman")
if [ "${#missing[@]}" -gt 0 ]; then
    echo "collections: installing ${missing[*]} with npm" >&2
    npm install -g --no-audit --no-fund "${missing[@]}" </dev/null >&2
fi


export CI=${CI:-true}
export NO_COLOR=1

bru_rc=0
echo "== bru run (http-collections/bruno) against $BASE"
(
    cd "$COLL/bruno"
    bru run --env local \
        --env-var "baseUrl=$BASE" \
        --env-var "user=$USER_NAME" \
        --env-var "password=$PASSWORD" \
        --reporter-json "$OUT/bruno.json" </dev/null
) || bru_rc=$?

newman_rc=0
echo "== newman run (http-collections/postman) against $BASE"
newman run "$COLL/postman/steward.postman_collection.json" \
    -e "$COLL/postman/local.postman_environment.json" \
    --env-var "baseUrl=$BASE" \
    --env-var "user=$USER_NAME" \
    --env-var "password=$PASSWORD" \
    --color off \
    --reporters cli,json \
    --reporter-json-export "$OUT/newman.json" </dev/null || newman_rc=$?

counts=$(python3 - "$OUT/bruno.json" "$OUT/newman.json" <<'EOF'
import json, sys

passed = failed = 0
try:
    with open(sys.argv[1]) as f:
        iterations = json.load(f)
    if isinstance(iterations, dict):
        iterations = [iterations]
    for it in iterations:
        s = it.get("summary", {})
        passed += s.get("passedAssertions", 0) + s.get("passedTests", 0)
        failed += (s.get("failedAssertions", 0) + s.get("failedTests", 0)
                   + s.get("errorRequests", 0))
except (OSError, ValueError) as e:
    print(f"collections: no usable Bruno report: {e}", file=sys.stderr)
    failed += 1
try:
    with open(sys.argv[2]) as f:
        stats = json.load(f)["run"]["stats"]
    a = stats["assertions"]
    passed += a["total"] - a["failed"]
    failed += (a["failed"] + stats["requests"]["failed"]
               + stats["testScripts"]["failed"] + stats["prerequestScripts"]["failed"])
except (OSError, ValueError, KeyError) as e:
    print(f"collections: no usable newman report: {e}", file=sys.stderr)
    failed += 1
print(passed, failed)
EOF
)
read -r n_passed n_failed <<<"$counts"

status=0
if [ "$bru_rc" -ne 0 ] || [ "$newman_rc" -ne 0 ] || [ "$n_failed" -ne 0 ]; then
    status=1
    echo "collections: bru exited $bru_rc, newman exited $newman_rc; last server log lines:" >&2
    tail -n 20 "$SERVER_LOG" >&2 || true
    if [ "$n_failed" -eq 0 ]; then
        n_failed=1
    fi
fi
echo "collections: $n_passed passed, $n_failed failed"
exit "$status"
