# What tests/collections.sh and tests/schemathesis.sh share: finding the
# binary, a free port, waiting for a server to be ready and stopping it.
# Sourced, not run.

# steward_binary NAME PATH: PATH made absolute; exits 2 (with NAME in the
# message) when it is not an executable file.
steward_binary() {
    if [ ! -x "$2" ]; then
        echo "$1: $2 is not an executable file" >&2
        exit 2
    fi
    case $2 in
        /*) echo "$2" ;;
        *) echo "$PWD/$2" ;;
    esac
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ready_status BASE: the status of GET BASE/ready, 0 when nothing answers.
ready_status() {
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1] + "/ready", timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
}

# wait_ready BASE PID LOG SECONDS: waits until GET BASE/ready answers 200.
# Returns 1, saying why and showing the end of LOG, when process PID exits
# first or SECONDS pass.
wait_ready() {
    local deadline=$((SECONDS + $4))
    until [ "$(ready_status "$1")" = 200 ]; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "the server exited before it was ready; its log:" >&2
            tail -n 50 "$3" >&2 || true
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "GET $1/ready did not answer 200 within $4 s; the server's log:" >&2
            tail -n 50 "$3" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# stop_process PID: SIGTERM, up to 5 s to exit, then SIGKILL. Nothing when
# PID is empty or already gone.
stop_process() {
    if [ -z "$1" ] || ! kill -0 "$1" 2>/dev/null; then
        return 0
    fi
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
