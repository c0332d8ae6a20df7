#!/usr/bin/env bash
# The test command of the README: sets up what the tests need, then runs every test.
#
#   scripts/test.sh            Python tools in .venv, models + fixtures, cargo tests
#
# Tests that need models, fixtures or the Python references fail (not skip) under this
# script: TURBINE_REQUIRE_ASSETS=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q -r scripts/requirements.txt

scripts/fetch-models.sh all
scripts/reference/make-golden.sh

export TURBINE_REQUIRE_ASSETS=1
export TURBINE_PYTHON="$root/.venv/bin/python"
status=0
cargo test --workspace --release --no-fail-fast 2>&1 || status=$?

# The HTTP server against the real openai client (uses target/release/turbine built above).
cargo build --release -p turbine 2>&1
.venv/bin/python -m pytest tests/server -q -p no:cacheprovider 2>&1 || status=$?
exit $status
