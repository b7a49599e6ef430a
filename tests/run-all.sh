#!/usr/bin/env bash
# Runs every test Steward has:
#   1. unit, API and CLI tests (cargo nextest, or cargo test without it); the
#      API tests also run on PostgreSQL when STEWARD_TEST_DATABASE_URL is set
#      (without it they are built as ignored and reported as skipped, see
#      build.rs);
#   2. the Bruno and Postman collections, with the real bru and newman CLIs
#      (installed from npm when missing), against a live `steward serve`;
#   3. schemathesis over GET /openapi.json, every check (installed with pip
#      when missing), against another live `steward serve`;
#   4. the crash check: merges from 16 clients, SIGKILL mid-stream, and every
#      merge answered 200 must be there after a restart (tests/bench/durability.py),
#      on SQLite, and on PostgreSQL too when STEWARD_TEST_DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast || status=$?
else
    cargo test --workspace --no-fail-fast || status=$?
fi
bash tests/collections.sh target/debug/steward || status=$?
bash tests/schemathesis.sh target/debug/steward || status=$?
python3 tests/bench/durability.py --binary target/debug/steward --runs 2 || status=$?
if [ -n "${STEWARD_TEST_DATABASE_URL:-}" ]; then
    python3 tests/bench/durability.py --binary target/debug/steward --runs 2 \
        --database "$STEWARD_TEST_DATABASE_URL" || status=$?
fi
exit "$status"
