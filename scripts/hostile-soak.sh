#!/usr/bin/env bash
# A long run of hostile and careless clients against one broker process, started by hand
# (not part of CI). It cycles through phases until SOAK_MINUTES have passed:
#
#   storm   SOAK_CONNS clients connect at once (the Rust load generator, benches/loadgen,
#           if built; else a Python asyncio client), then all leave
#   stuck   SOAK_STUCK subscribers on '#' that never read, while a publisher sends
#           200-byte messages at QoS 0 and QoS 1 to two healthy subscribers, which must
#           get every one
#   topics  subscriptions and retained messages on deep (up to SOAK_DEPTH levels, past
#           what the broker accepts) and wide (SOAK_WIDE distinct) topics, a subscriber
#           to '#' receiving the retained ones
#   fuzz    the `broker_wire` fuzz target (fuzz/) for SOAK_PHASE seconds, if cargo-fuzz
#           and a nightly toolchain are installed (it runs its own in-process broker)
#
# Every SOAK_SAMPLE seconds it prints the broker's RSS, CPU share, threads and open
# descriptors; at the end the peak RSS and the CPU time. It fails (exit 1) as soon as
# the broker process dies or a phase finds lost messages or an unanswered CONNECT.
# Everything stays on 127.0.0.1; every wait is bounded.
#
#   SOAK_MINUTES=30 scripts/hostile-soak.sh           # defaults shown below
#   PYTHON=.venv/bin/python SOAK_MINUTES=5 scripts/hostile-soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${SOAK_MINUTES:-30}
PHASE=${SOAK_PHASE:-60}
SAMPLE=${SOAK_SAMPLE:-10}
CONNS=${SOAK_CONNS:-5000}
STUCK=${SOAK_STUCK:-20}
DEPTH=${SOAK_DEPTH:-20000}
WIDE=${SOAK_WIDE:-20000}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
LOADGEN=benches/loadgen/target/release/turbomqtt-loadgen

"$PYTHON" -c "import turbomqtt._core" || { echo "turbomqtt is not importable by $PYTHON"; exit 2; }
ulimit -n "$(( CONNS + 1000 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d)
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/broker.toml" <<EOF
sys_interval = 5.0
EOF
"$PYTHON" -m turbomqtt broker --host 127.0.0.1 --port "$PORT" --config "$WORK/broker.toml" \
    > "$WORK/broker.log" 2>&1 &
BROKER=$!
MONITOR=
cleanup() {
    [ -n "$MONITOR" ] && kill "$MONITOR" 2>/dev/null || true
    kill "$BROKER" 2>/dev/null || true
    wait "$BROKER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$PYTHON" - "$PORT" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("the broker did not start")
EOF
echo "broker pid $BROKER on 127.0.0.1:$PORT; $MINUTES min in phases of $PHASE s"

# The monitor: one line per sample, and the peak RSS in a file for the summary.
TICK=$(getconf CLK_TCK)
monitor() {
    local last_cpu=0 last_t peak=0
    last_t=$(date +%s.%N)
    while kill -0 "$BROKER" 2>/dev/null; do
        local stat rss threads fds cpu now share
        stat=$(cut -d')' -f2- "/proc/$BROKER/stat" 2>/dev/null) || break
        cpu=$(awk '{print $12 + $13}' <<< "$stat")
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$BROKER/status" 2>/dev/null || echo 0)
        threads=$(awk '/^Threads/ {print $2}' "/proc/$BROKER/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$BROKER/fd" 2>/dev/null | wc -l)
        now=$(date +%s.%N)
        share=$(awk -v c="$cpu" -v l="$last_cpu" -v t="$TICK" -v a="$last_t" -v b="$now" \
            'BEGIN {printf "%.0f", (c - l) / t / (b - a) * 100}')
        if (( rss > peak )); then
            peak=$rss
            echo "$peak" > "$WORK/peak_kb"
        fi
        printf '[monitor %s] rss %6.1f MiB  cpu %4s%%  threads %3s  fds %5s\n' \
            "$(date +%H:%M:%S)" "$(awk -v r="$rss" 'BEGIN {print r / 1024}')" "$share" \
            "$threads" "$fds"
        last_cpu=$cpu
        last_t=$now
        sleep "$SAMPLE"
    done
}
monitor &
MONITOR=$!

alive() {
    if ! kill -0 "$BROKER" 2>/dev/null; then
        echo "FAIL: the broker process died; last log lines:"
        tail -20 "$WORK/broker.log"
        exit 1
    fi
}

phase_storm() {
    if [ -x "$LOADGEN" ]; then
        local line
        line=$(echo | timeout "$PHASE" "$LOADGEN" idle --port "$PORT" --conns "$CONNS" --gate 0 \
            --timeout 1) || true
        echo "  storm: $line"
        grep -q "\"connected\":$CONNS," <<< "$line" || { echo "FAIL: storm"; exit 1; }
    else
        timeout $(( PHASE + 60 )) "$PYTHON" - "$PORT" "$CONNS" "$PHASE" <<'EOF'
import asyncio, sys
sys.path.insert(0, "benches")
from accept_burst import burst

r = asyncio.run(burst(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
print(f"  storm: {r}")
if r["connected"] != r["wanted"]:
    sys.exit("FAIL: storm")
EOF
    fi
}

phase_stuck() {
    timeout $(( PHASE + 60 )) "$PYTHON" - "$PORT" "$STUCK" "$PHASE" <<'EOF'
import socket, sys, threading, time
sys.path.insert(0, "tests/hostile")
sys.path.insert(0, "tests")
from _flow_peers import CountingClient, flood, stuck_subscriber
from broker_support import publish_packet

port, stuck_n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
stuck = [stuck_subscriber(port, f"soak-stuck-{i}", "#", i % 2) for i in range(stuck_n)]
end = time.monotonic() + seconds
rounds = 0
while time.monotonic() < end:
    for qos in (0, 1):
        topic = f"soak/stuck/{rounds}"
        healthy = [CountingClient(port, f"soak-healthy-{k}") for k in range(2)]
        for h in healthy:
            h.subscribe(topic, qos)
        pub = CountingClient(port, "soak-pub")
        n = 20_000
        pub.send(flood(topic, n, 200, qos))
        pub.send(publish_packet(topic, b"end", qos=1, pkid=65535, v5=False))
        if not pub.wait(lambda: pub.pubacks >= (n + 1 if qos else 1), 60):
            sys.exit(f"FAIL: publisher got {pub.pubacks} PUBACKs")
        for h in healthy:
            if not h.wait(lambda: h.published.get(topic, 0) >= n + 1, 60):
                sys.exit(f"FAIL: a healthy subscriber got {h.published.get(topic, 0)} of {n + 1}")
            h.close()
        pub.close()
        rounds += 1
print(f"  stuck: {rounds} floods of 20,000 delivered whole next to {stuck_n} stuck subscribers")
for s in stuck:
    s.close()
EOF
}

phase_topics() {
    timeout $(( PHASE + 60 )) "$PYTHON" - "$PORT" "$DEPTH" "$WIDE" <<'EOF'
import sys
sys.path.insert(0, "tests/hostile")
sys.path.insert(0, "tests")
from _flow_peers import CountingClient
from broker_support import mqtt_str, packet, publish_packet, subscribe_packet

port, depth, wide = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# Deep: filters and topics from 10 levels to `depth`; the broker may refuse the deepest
# (closing the connection): it must stay up for everyone else.
for levels in (10, 200, 201, depth // 2, depth):
    c = CountingClient(port, f"soak-deep-{levels}")
    name = "/".join(["d"] * levels)
    try:
        c.send(subscribe_packet(name + "/#", 1, v5=False))
        c.send(publish_packet(name, b"deep", qos=1, pkid=2, v5=False))
        c.send(packet(0xA2, b"\x00\x03" + mqtt_str(name + "/#")))
        c.wait(lambda: c.closed or c.pubacks >= 1, 10)
    except OSError:
        pass
    c.close()
# Wide: `wide` distinct retained topics, then one subscriber to all of them.
pub = CountingClient(port, "soak-wide-pub")
blob = b"".join(publish_packet(f"soak/wide/{i}/x", b"r", qos=1, pkid=i % 65535 + 1,
                               v5=False, retain=True) for i in range(wide))
pub.send(blob)
if not pub.wait(lambda: pub.pubacks >= wide, 60):
    sys.exit(f"FAIL: {pub.pubacks} of {wide} retained publishes acknowledged")
sub = CountingClient(port, "soak-wide-sub")
sub.send(subscribe_packet("soak/wide/#", 0, v5=False))
if not sub.wait(lambda: sum(sub.published.values()) >= wide, 60):
    sys.exit(f"FAIL: {sum(sub.published.values())} of {wide} retained messages received")
# Clear them again so the store does not grow round after round.
pub.send(b"".join(publish_packet(f"soak/wide/{i}/x", b"", qos=0, v5=False, retain=True)
                  for i in range(wide)))
pub.close()
sub.close()
print(f"  topics: depths up to {depth} levels, {wide} retained topics delivered")
EOF
}

phase_fuzz() {
    if cargo fuzz --version >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q nightly; then
        (cd fuzz && timeout $(( PHASE + 120 )) cargo +nightly fuzz run broker_wire -- \
            -max_total_time="$PHASE" -rss_limit_mb=4096 -detect_leaks=0 2>&1 | tail -3) \
            || { echo "FAIL: broker_wire"; exit 1; }
    else
        echo "  fuzz: skipped (cargo-fuzz or a nightly toolchain is not installed)"
    fi
}

START=$(date +%s)
END=$(( START + MINUTES * 60 ))
ROUND=0
while (( $(date +%s) < END )); do
    ROUND=$(( ROUND + 1 ))
    for phase in storm stuck topics fuzz; do
        (( $(date +%s) < END )) || break
        echo "round $ROUND: $phase ($(date +%H:%M:%S))"
        if ! "phase_$phase"; then
            alive
            echo "FAIL: phase $phase"
            exit 1
        fi
        alive
    done
done

CPU=$(awk '{print ($14 + $15) / '"$TICK"'}' <<< "$(cut -d' ' -f1- "/proc/$BROKER/stat")")
PEAK=$(cat "$WORK/peak_kb" 2>/dev/null || echo 0)
echo "done: $ROUND round(s) in $(( ($(date +%s) - START) / 60 )) min; broker alive;" \
     "peak RSS $(awk -v r="$PEAK" 'BEGIN {printf "%.1f", r / 1024}') MiB, CPU ${CPU} s"
echo "  warnings and errors logged: $(grep -c "WARNING\|ERROR" "$WORK/broker.log" || true)"
