#!/usr/bin/env bash
# paho-suite.sh -- run paho-mqtt 2.2.0's own test suite (from its PyPI sdist) against turbomqtt
# through the paho switch (TURBOMQTT_AS_PAHO=1), so the tests' `import paho.mqtt.client` and the
# client subprocesses started by tests/lib all get turbomqtt.
#
# Usage: scripts/paho-suite.sh [TESTING_GIT_DIR]
#   TESTING_GIT_DIR  optional git dir of eclipse-paho/paho.mqtt.testing (the broker that
#                    tests/test_mqttv5.py needs; without it those tests are skipped).
# Environment:
#   PYTHON        interpreter with turbomqtt installed (its .pth carries the switch) and pytest
#                 (default: python3). An installed real paho-mqtt does not matter: the switch
#                 takes precedence over it.
#   IMPL          turbomqtt (default) or real (runs the same suite on the real paho-mqtt, as a
#                 reference).
#   SKIP_PRIVATE  1 (default) = leave out the tests that reach into paho's private internals
#                 (listed below); 0 = run them too.
#   WORKDIR       scratch directory (default /tmp/paho-suite-turbomqtt); wiped and recreated.
#   PYTEST_ARGS   extra pytest arguments.
# Network: PyPI (the sdist download) and 127.0.0.1 only. Needs openssl (TLS test certificates).
set -euo pipefail

PAHO_VERSION=2.2.0
TESTING_COMMIT=a4dc694010217b291ee78ee13a6d1db812f9babd
TESTING_GIT_DIR="${1:-}"
PYTHON="${PYTHON:-python3}"
IMPL="${IMPL:-turbomqtt}"
SKIP_PRIVATE="${SKIP_PRIVATE:-1}"
WORKDIR="${WORKDIR:-/tmp/paho-suite-turbomqtt}"
PYTEST_ARGS="${PYTEST_ARGS:-}"

# Tests that use paho's private internals (no replacement can honour them as written).
PRIVATE_DESELECT=(
  --ignore=tests/test_packet.py                      # paho.mqtt._packet
  --ignore=tests/test_websockets.py                  # paho.mqtt.client._WebsocketWrapper
  --ignore=tests/lib/test_08_ssl_default_tls_version.py   # mqttc._ssl_context.protocol
  --deselect "tests/test_client.py::Test_connect_v5::test_connack_server_keep_alive"  # _keepalive
  --deselect "tests/test_client.py::TestMalformedPacket::test_malformed_publish"      # _thread
  --deselect "tests/test_client.py::TestMalformedPacket::test_malformed_connack"      # _thread
  --deselect "tests/test_mqttv5.py::TestBrokerRebootsTopicAliiQoS0"   # _do_on_publish, mutexes
  --deselect "tests/test_mqttv5.py::TestBrokerRebootsTopicAliiQoS1"   # _out_messages
  --deselect "tests/test_mqttv5.py::TestDropOutMessagesWorkAround"
)

case "$WORKDIR" in ""|/|/tmp|"$HOME") echo "refusing WORKDIR=$WORKDIR" >&2; exit 2 ;; esac
rm -rf "$WORKDIR"
mkdir -p "$WORKDIR/run"
RUN="$WORKDIR/run"

echo "=== paho-mqtt $PAHO_VERSION sdist (PyPI) -> tests/"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "paho-mqtt==$PAHO_VERSION" \
    -d "$WORKDIR/sdist"
tar -xzf "$WORKDIR/sdist/paho_mqtt-$PAHO_VERSION.tar.gz" -C "$WORKDIR/sdist"
# Only tests/ and the pytest configuration: paho's src/ must not shadow the implementation.
cp -r "$WORKDIR/sdist/paho_mqtt-$PAHO_VERSION/tests" "$RUN/"
cp "$WORKDIR/sdist/paho_mqtt-$PAHO_VERSION/pyproject.toml" "$RUN/"

if [ -n "$TESTING_GIT_DIR" ]; then
  echo "=== paho.mqtt.testing broker from $TESTING_GIT_DIR"
  REV=HEAD
  git --git-dir="$TESTING_GIT_DIR" cat-file -e "$TESTING_COMMIT^{commit}" 2>/dev/null \
      && REV="$TESTING_COMMIT"
  mkdir -p "$RUN/paho.mqtt.testing"
  git --git-dir="$TESTING_GIT_DIR" archive "$REV" interoperability | tar -x -C "$RUN/paho.mqtt.testing"
  # Bind the test broker to loopback only.
  sed -i 's/^        bind_address = ""$/        bind_address = "127.0.0.1"/' \
      "$RUN/paho.mqtt.testing/interoperability/mqtt/brokers/start.py"
fi

# The run dir must be importable by the subprocess clients (`from tests.paho_test import ...`).
export PYTHONPATH="$RUN"
if [ "$IMPL" = "turbomqtt" ]; then
  export TURBOMQTT_AS_PAHO=1
else
  unset TURBOMQTT_AS_PAHO
fi

cd "$RUN"
"$PYTHON" - <<'PY'
import paho.mqtt, paho.mqtt.client as c
print("paho.mqtt.__version__ =", paho.mqtt.__version__, "| Client from", c.Client.__module__)
PY

EXTRA=()
if [ "$SKIP_PRIVATE" = "1" ]; then EXTRA=("${PRIVATE_DESELECT[@]}"); fi
set +e
# shellcheck disable=SC2086
"$PYTHON" -m pytest -p no:cacheprovider -q -rfExXs --timeout=60 \
    --junitxml="$WORKDIR/junit.xml" "${EXTRA[@]}" tests $PYTEST_ARGS
RC=$?
set -e
"$PYTHON" - "$WORKDIR/junit.xml" <<'PY'
import collections, sys, xml.etree.ElementTree as ET
counts = collections.defaultdict(collections.Counter)
for tc in ET.parse(sys.argv[1]).iter("testcase"):
    mod = ".".join(p for p in tc.get("classname", "").split(".") if not p[:1].isupper())
    status = "passed"
    for ch in tc:
        if ch.tag == "skipped":
            status = "xfailed" if "xfail" in (ch.get("type") or "") else "skipped"
        elif ch.tag in ("failure", "error"):
            status = ch.tag
    counts[mod][status] += 1
total = collections.Counter()
for mod in sorted(counts):
    total.update(counts[mod])
    print(f"{mod:50s} " + " ".join(f"{k}={v}" for k, v in sorted(counts[mod].items())))
print("TOTAL", dict(total))
PY
exit $RC
