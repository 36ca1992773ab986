#!/usr/bin/env bash
# aiomqtt-suite.sh -- run aiomqtt 2.5.1's own test suite, unchanged, on turbomqtt through the
# paho switch (TURBOMQTT_AS_PAHO=1), against a local mosquitto on 127.0.0.1.
#
# aiomqtt's tests hard-code test.mosquitto.org and ports 1883/8883/8080. A small harness
# (appended to the copied tests/conftest.py) points HOSTNAME at 127.0.0.1 and maps those ports to
# free local ones; tests/mosquitto.org.crt is replaced by the CA of a throwaway certificate.
# Usage: scripts/aiomqtt-suite.sh
# Environment: PYTHON (with turbomqtt, aiomqtt==2.5.1 --no-deps, anyio<4, pytest),
#              IMPL=turbomqtt|real, WORKDIR (default /tmp/aiomqtt-suite-turbomqtt).
set -euo pipefail
PYTHON="${PYTHON:-python3}"
IMPL="${IMPL:-turbomqtt}"
WORKDIR="${WORKDIR:-/tmp/aiomqtt-suite-turbomqtt}"
MOSQUITTO="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"
case "$WORKDIR" in ""|/|/tmp|"$HOME") echo "refusing WORKDIR=$WORKDIR" >&2; exit 2 ;; esac
rm -rf "$WORKDIR"; mkdir -p "$WORKDIR/run" "$WORKDIR/certs"
RUN="$WORKDIR/run"; CERTS="$WORKDIR/certs"

"$PYTHON" -m pip download -q --no-deps --no-binary :all: aiomqtt==2.5.1 -d "$WORKDIR/sdist"
tar -xzf "$WORKDIR/sdist/aiomqtt-2.5.1.tar.gz" -C "$WORKDIR/sdist"
cp -r "$WORKDIR/sdist/aiomqtt-2.5.1/tests" "$RUN/"
cp "$WORKDIR/sdist/aiomqtt-2.5.1/pyproject.toml" "$RUN/"

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); TLS_PORT=$(free_port); WS_PORT=$(free_port)

# Throwaway CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=turbomqtt test CA" \
    -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$CERTS/server.key" \
    -out "$CERTS/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$CERTS/ext.cnf"
openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -CAcreateserial -days 2 -extfile "$CERTS/ext.cnf" -out "$CERTS/server.crt" 2>/dev/null
chmod 755 "$WORKDIR" "$CERTS"; chmod 644 "$CERTS"/*
cp "$CERTS/ca.crt" "$RUN/tests/mosquitto.org.crt"

# A known user, so that an unknown user name ("invalid") is refused as on test.mosquitto.org.
: > "$WORKDIR/passwd"
mosquitto_passwd -b "$WORKDIR/passwd" known secret
chmod 644 "$WORKDIR/passwd"
cat > "$WORKDIR/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
password_file $WORKDIR/passwd
listener $PORT 127.0.0.1
listener $WS_PORT 127.0.0.1
protocol websockets
listener $TLS_PORT 127.0.0.1
cafile $CERTS/ca.crt
certfile $CERTS/server.crt
keyfile $CERTS/server.key
CONF
"$MOSQUITTO" -c "$WORKDIR/mosquitto.conf" > "$WORKDIR/mosquitto.log" 2>&1 &
MOSQ_PID=$!
trap 'kill $MOSQ_PID 2>/dev/null || true' EXIT
sleep 0.5

cat >> "$RUN/tests/conftest.py" <<PY


# --- harness (turbomqtt): local broker instead of test.mosquitto.org --------------------
import aiomqtt as _aiomqtt
import tests.test_client as _tc

_tc.HOSTNAME = "127.0.0.1"
_PORTS = {1883: $PORT, 8883: $TLS_PORT, 8080: $WS_PORT}
_init = _aiomqtt.Client.__init__


def _local_init(self, hostname, port=1883, *args, **kwargs):
    _init(self, hostname, _PORTS.get(port, port), *args, **kwargs)


_aiomqtt.Client.__init__ = _local_init
PY

export PYTHONPATH="$RUN"
if [ "$IMPL" = "turbomqtt" ]; then export TURBOMQTT_AS_PAHO=1; else unset TURBOMQTT_AS_PAHO; fi
cd "$RUN"
"$PYTHON" -c 'import paho.mqtt.client as c; print("paho Client from", c.Client.__module__)'
set +e
"$PYTHON" -m pytest -p no:cacheprovider -q -rfE --timeout=60 -p anyio tests
RC=$?
set -e
exit $RC
