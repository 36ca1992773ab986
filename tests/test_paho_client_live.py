"""turbomqtt.client against a real broker (mosquitto on 127.0.0.1): the paho behaviours
users rely on, checked end to end."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest
import turbomqtt.client as mqtt
from conftest import MOSQUITTO_BIN, mosquitto_tool, need_mosquitto
from turbomqtt import _core
from turbomqtt.packettypes import PacketTypes
from turbomqtt.properties import Properties
from turbomqtt.reasoncodes import ReasonCode
from turbomqtt.subscribeoptions import SubscribeOptions

pytestmark = [
    pytest.mark.skipif(not hasattr(_core, "ClientCore"), reason="core without ClientCore"),
]

V2 = mqtt.CallbackAPIVersion.VERSION2
V1 = mqtt.CallbackAPIVersion.VERSION1
WAIT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A mosquitto process on a free 127.0.0.1 port that can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tmqtt-mosq-")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "persistence false\nmax_queued_messages 10000\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        need_mosquitto()
        self.proc = subprocess.Popen([MOSQUITTO_BIN, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class EmbeddedBroker(Mosquitto):
    """turbomqtt's own broker, run as `python -m turbomqtt broker` (same start/stop/port)."""

    def start(self) -> None:
        # TURBOMQTT_BROKER_PYTHON lets a build without the broker test against one with it.
        python = os.environ.get("TURBOMQTT_BROKER_PYTHON", sys.executable)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [python, "-m", "turbomqtt", "broker", "--host", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # A deadline, not a wait: a slow machine (or emulation) may need long to start
        # the interpreter and import turbomqtt.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("turbomqtt broker did not start")


def embedded_broker_available() -> bool:
    python = os.environ.get("TURBOMQTT_BROKER_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import turbomqtt.broker"], capture_output=True,
                           timeout=60, check=False,
                           env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    return probe.returncode == 0


@pytest.fixture(params=["mosquitto", "embedded"])
def broker(request):
    if request.param == "embedded" and not embedded_broker_available():
        pytest.skip("turbomqtt.broker not in this build")
    b = Mosquitto() if request.param == "mosquitto" else EmbeddedBroker()
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


class Recorder:
    """Collects callback invocations and lets tests wait for them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, int]] = []
        self.cond = threading.Condition()

    def hook(self, name):
        def callback(*args):
            with self.cond:
                self.calls.append((name, args, threading.get_ident()))
                self.cond.notify_all()
        return callback

    def of(self, name):
        return [args for n, args, _ in self.calls if n == name]

    def wait_for(self, name, count=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.of(name)) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"timed out waiting for {count} x {name}: {self.calls}"
                self.cond.wait(left)
        return self.of(name)


def client_with(rec, api=V2, **kwargs):
    if api == V1:
        with pytest.warns(DeprecationWarning):
            c = mqtt.Client(api, **kwargs)
    else:
        c = mqtt.Client(api, **kwargs)
    for name in ("on_connect", "on_message", "on_publish", "on_subscribe", "on_unsubscribe",
                 "on_disconnect", "on_connect_fail"):
        setattr(c, name, rec.hook(name))
    return c


def stop(c):
    c.disconnect()
    c.loop_stop()


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_round_trip_with_version2_callbacks(broker, protocol):
    rec = Recorder()
    c = client_with(rec, protocol=protocol, client_id="rt")
    assert c.connect("127.0.0.1", broker.port, 30) == mqtt.MQTT_ERR_SUCCESS
    assert not c.is_connected()
    assert c.loop_start() == mqtt.MQTT_ERR_SUCCESS
    (_, _, flags, reason, props), = rec.wait_for("on_connect")
    assert isinstance(flags, mqtt.ConnectFlags) and flags.session_present is False
    assert isinstance(reason, ReasonCode) and reason == 0 and isinstance(props, Properties)
    assert c.is_connected()
    # One mid counter for SUBSCRIBE, PUBLISH (QoS 0 too) and UNSUBSCRIBE.
    rc, sub_mid = c.subscribe("t/#", 2)
    assert (rc, sub_mid) == (0, 1)
    (_, _, mid, codes, _), = rec.wait_for("on_subscribe")
    assert mid == 1 and [c2.value for c2 in codes] == [2]
    infos = [c.publish(f"t/{q}", f"payload {q}".encode(), q) for q in (0, 1, 2)]
    assert [i.mid for i in infos] == [2, 3, 4]
    for info in infos:
        info.wait_for_publish(WAIT)
        assert info.is_published()
    msgs = [args[2] for args in rec.wait_for("on_message", 3)]
    assert sorted((m.topic, m.payload, m.qos) for m in msgs) == [
        ("t/0", b"payload 0", 0), ("t/1", b"payload 1", 1), ("t/2", b"payload 2", 2)]
    assert all(isinstance(m, mqtt.MQTTMessage) and m.retain is False for m in msgs)
    if protocol == mqtt.MQTTv5:
        assert all(isinstance(m.properties, Properties) for m in msgs)
    pubs = rec.wait_for("on_publish", 3)
    assert sorted(a[2] for a in pubs) == [2, 3, 4]
    assert all(isinstance(a[3], ReasonCode) and a[3] == 0 for a in pubs)
    rc, unsub_mid = c.unsubscribe("t/#")
    assert (rc, unsub_mid) == (0, 5)
    rec.wait_for("on_unsubscribe")
    assert c.disconnect() == mqtt.MQTT_ERR_SUCCESS
    (_, _, dflags, dreason, _), = rec.wait_for("on_disconnect")
    assert dflags.is_disconnect_packet_from_server is False and dreason == 0
    c.loop_stop()
    # Callbacks only ever ran on the loop thread.
    assert {t for _, _, t in rec.calls} != {threading.get_ident()}
    assert len({t for _, _, t in rec.calls}) == 1


def test_version1_mqtt311_callback_argument_types(broker):
    rec = Recorder()
    c = client_with(rec, V1, client_id="v1")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    (_, _, flags, rc), = rec.wait_for("on_connect")
    assert flags == {"session present": 0} and rc == 0 and type(rc) is int
    c.subscribe([("a", 1), ("b", 2)])
    (_, _, mid, granted), = rec.wait_for("on_subscribe")
    assert granted == (1, 2)
    c.publish("a", "x", 1)
    (_, _, mid), = rec.wait_for("on_publish")
    assert isinstance(mid, int)
    c.unsubscribe(["a", "b"])
    rec.wait_for("on_unsubscribe")
    c.disconnect()
    (_, _, drc), = rec.wait_for("on_disconnect")
    assert drc == mqtt.MQTT_ERR_SUCCESS and isinstance(drc, mqtt.MQTTErrorCode)
    c.loop_stop()


def test_loop_start_twice_thread_name_and_daemon(broker):
    c = mqtt.Client(V2, client_id="named")
    c.connect("127.0.0.1", broker.port)
    assert c.loop_start() == mqtt.MQTT_ERR_SUCCESS
    thread = c._thread
    assert c.loop_start() == mqtt.MQTT_ERR_INVAL
    assert thread.name == "paho-mqtt-client-named" and thread.daemon
    assert c.loop_stop() == mqtt.MQTT_ERR_SUCCESS
    assert not thread.is_alive()
    assert c.loop_stop() == mqtt.MQTT_ERR_INVAL
    c.disconnect()


def test_message_callback_add_filters_take_precedence(broker):
    rec = Recorder()
    c = client_with(rec, client_id="filters")
    c.message_callback_add("sensors/+/temp", rec.hook("temp"))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    rec.wait_for("on_connect")
    c.subscribe("sensors/#", 1)
    rec.wait_for("on_subscribe")
    c.publish("sensors/k/temp", "21", 1)
    c.publish("sensors/k/hum", "40", 1)
    rec.wait_for("temp")
    (_, _, other), = rec.wait_for("on_message")
    assert other.topic == "sensors/k/hum"
    assert [a[2].topic for a in rec.of("temp")] == ["sensors/k/temp"]
    stop(c)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_external_loop_contract(broker, protocol):
    rec = Recorder()
    c = client_with(rec, protocol=protocol, client_id="ext")
    events: list[tuple] = []
    c.on_socket_open = lambda cl, ud, sock: events.append(("open", sock, sock.fileno()))
    c.on_socket_close = lambda cl, ud, sock: events.append(("close", sock, sock.fileno()))
    c.on_socket_register_write = lambda *a: events.append(("register",))
    c.on_socket_unregister_write = lambda *a: events.append(("unregister",))
    c.connect("127.0.0.1", broker.port)
    assert events and events[0][0] == "open"
    sock = c.socket()
    assert sock is events[0][1] and not isinstance(sock, socket.socket)
    # As paho with CONNECT: one write turn is requested, CONNECT goes out in the host
    # loop's loop_write(), and nothing is dispatched before.
    assert [e[0] for e in events] == ["open", "register"] and c.want_write() is True
    assert c.loop_read() == mqtt.MQTT_ERR_SUCCESS and rec.of("on_connect") == []
    assert c.loop_write() == mqtt.MQTT_ERR_SUCCESS and c.want_write() is False
    assert [e[0] for e in events] == ["open", "register", "unregister"]

    def pump(name, count=1):
        deadline = time.monotonic() + WAIT
        while len(rec.of(name)) < count:
            assert time.monotonic() < deadline, rec.calls
            import select
            select.select([sock.fileno()], [], [], 0.2)
            c.loop_read()
            assert c.loop_misc() in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    pump("on_connect")
    c.subscribe("ext/t", 1)
    pump("on_subscribe")
    info = c.publish("ext/t", b"hello", 1)
    assert not info.is_published()  # changes only when on_publish is dispatched
    pump("on_message")
    pump("on_publish")
    assert info.is_published()
    c.disconnect()
    pump("on_disconnect")
    close = [e for e in events if e[0] == "close"]
    assert close and close[0][2] >= 0  # fd still valid inside on_socket_close
    assert sock.fileno() == -1 and c.socket() is None
    assert [e[0] for e in events].count("register") == 1
    assert c.loop_misc() == mqtt.MQTT_ERR_NO_CONN and c.loop_read() == mqtt.MQTT_ERR_NO_CONN
    assert {t for _, _, t in rec.calls} == {threading.get_ident()}


def test_asyncio_add_reader_drives_the_client(broker):
    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        c = mqtt.Client(V2, client_id="aio")
        c.on_socket_open = lambda cl, ud, s: loop.add_reader(s.fileno(), cl.loop_read)
        c.on_socket_close = lambda cl, ud, s: loop.remove_reader(s.fileno())
        c.on_connect = lambda cl, ud, f, rc, p: cl.subscribe("aio/x", 1)
        c.on_subscribe = lambda cl, ud, mid, rcs, p: cl.publish("aio/x", b"async", 1)
        c.on_message = lambda cl, ud, m: got.done() or got.set_result(m.payload)
        c.connect("127.0.0.1", broker.port)
        assert await asyncio.wait_for(got, WAIT) == b"async"
        c.disconnect()
        for _ in range(100):
            if c.socket() is None:
                break
            await asyncio.sleep(0.05)
        assert c.socket() is None
    asyncio.run(main())


def test_publish_from_eight_threads_while_messages_arrive(broker):
    rec = Recorder()
    c = client_with(rec, client_id="threads")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    rec.wait_for("on_connect")
    c.subscribe("load/#", 1)
    rec.wait_for("on_subscribe")
    per_thread = 50
    infos: list = []
    lock = threading.Lock()

    def worker(n):
        mine = [c.publish(f"load/{n}", str(i), 1) for i in range(per_thread)]
        with lock:
            infos.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i.mid for i in infos}) == 8 * per_thread
    for info in infos:
        info.wait_for_publish(WAIT)
        assert info.rc == 0 and info.is_published()
    rec.wait_for("on_message", 8 * per_thread)
    got = sorted((m[2].topic, int(m[2].payload)) for m in rec.of("on_message"))
    assert got == sorted((f"load/{n}", i) for n in range(8) for i in range(per_thread))
    stop(c)


def test_connect_errors_are_raised_synchronously():
    c = mqtt.Client(V2)
    with pytest.raises(ConnectionRefusedError):
        c.connect("127.0.0.1", free_port())
    with pytest.raises(socket.gaierror):
        c.connect("invalid.invalid", 1883)


def test_loop_forever_raises_first_failure_and_calls_on_connect_fail():
    rec = Recorder()
    c = client_with(rec)
    c.connect_async("127.0.0.1", free_port())
    with pytest.raises(ConnectionRefusedError):
        c.loop_forever()
    assert len(rec.of("on_connect_fail")) == 1


def test_reconnect_after_broker_restart_loses_no_qos1_or_qos2_message(broker):
    rec = Recorder()
    sub = client_with(rec, client_id="durable-sub", clean_session=False)
    sub.reconnect_delay_set(1, 1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    rec.wait_for("on_connect")
    sub.subscribe("keep/#", 1)
    rec.wait_for("on_subscribe")

    prec = Recorder()
    pub = client_with(prec, client_id="durable-pub")
    pub.reconnect_delay_set(1, 1)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    prec.wait_for("on_connect")
    pub.publish("keep/0", "before", 1).wait_for_publish(WAIT)
    rec.wait_for("on_message", 1)

    broker.stop()
    rec.wait_for("on_disconnect")
    prec.wait_for("on_disconnect")
    (_, _, flags, reason, _), = prec.of("on_disconnect")
    assert reason != 0 and flags.is_disconnect_packet_from_server is False
    # Published while the broker is down: kept and delivered after the reconnect.
    down = [pub.publish(f"keep/{i}", f"down {i}", 1 + i % 2) for i in range(1, 6)]
    assert all(info.rc == mqtt.MQTT_ERR_NO_CONN for info in down)
    broker.start()
    prec.wait_for("on_connect", 2, timeout=20)
    rec.wait_for("on_connect", 2, timeout=20)
    # The durable subscription was kept by... nothing: mosquitto restarted without
    # persistence, so subscribe again as paho users do in on_connect.
    sub.subscribe("keep/#", 1)
    rec.wait_for("on_subscribe", 2)
    for i in range(6, 9):
        pub.publish(f"keep/{i}", f"after {i}", 1)
    # The "down" messages may arrive too (when the subscription is back before the
    # publisher's queue is sent), in any order with these: wait for these three.
    want = {b"after 6", b"after 7", b"after 8"}
    deadline = time.monotonic() + 20
    with rec.cond:
        while not want <= {m[2].payload for m in rec.of("on_message")}:
            left = deadline - time.monotonic()
            assert left > 0, [m[2].payload for m in rec.of("on_message")]
            rec.cond.wait(left)
    assert all(prec.of("on_publish")) and len({a[2] for a in prec.wait_for("on_publish", 9,
                                                                             timeout=20)}) == 9
    stop(pub)
    stop(sub)


def test_will_is_published_on_abrupt_close(broker):
    rec = Recorder()
    watcher = client_with(rec, client_id="watcher")
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    rec.wait_for("on_connect")
    watcher.subscribe("wills/#", 1)
    rec.wait_for("on_subscribe")
    dying = mqtt.Client(V2, client_id="dying")
    dying.will_set("wills/dying", "gone", 1)
    connected = threading.Event()
    dying.on_connect = lambda *a: connected.set()
    dying.connect("127.0.0.1", broker.port)
    dying.loop_start()
    assert connected.wait(WAIT)
    dying.loop_stop()
    dying._sock_close()
    (_, _, msg), = rec.wait_for("on_message")
    assert (msg.topic, msg.payload) == ("wills/dying", b"gone")
    stop(watcher)


def test_callback_exception_ends_loop_unless_suppressed(broker):
    c = mqtt.Client(V2, client_id="raiser")
    c.on_message = lambda *a: 1 / 0
    c.on_connect = lambda cl, *a: cl.subscribe("boom", 0)
    c.on_subscribe = lambda cl, *a: cl.publish("boom", "x")
    c.connect("127.0.0.1", broker.port)
    with pytest.raises(ZeroDivisionError):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            c.loop(0.2)
    c.suppress_exceptions = True
    seen = threading.Event()

    def on_message(*a):
        seen.set()
        raise ValueError("ignored")

    c.on_message = on_message
    c.publish("boom", "y")
    deadline = time.monotonic() + WAIT
    while not seen.is_set() and time.monotonic() < deadline:
        assert c.loop(0.2) == mqtt.MQTT_ERR_SUCCESS
    assert seen.is_set()
    c.disconnect()


def test_mqtt5_properties_reach_the_subscriber(broker):
    rec = Recorder()
    c = client_with(rec, protocol=mqtt.MQTTv5, client_id="props")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    rec.wait_for("on_connect")
    c.subscribe("p/t", options=SubscribeOptions(qos=1, noLocal=False))
    rec.wait_for("on_subscribe")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    props.ContentType = "text/plain"
    props.CorrelationData = b"\x01\x02"
    c.publish("p/t", "body", 1, properties=props)
    (_, _, msg), = rec.wait_for("on_message")
    assert msg.properties.UserProperty == [("k", "v")]
    assert msg.properties.ContentType == "text/plain"
    assert msg.properties.CorrelationData == b"\x01\x02"
    stop(c)


def test_manual_ack(broker):
    rec = Recorder()
    c = client_with(rec, client_id="manual", manual_ack=True)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    rec.wait_for("on_connect")
    c.subscribe("m", 1)
    rec.wait_for("on_subscribe")
    c.publish("m", "1", 1)
    (_, _, msg), = rec.wait_for("on_message")
    assert c.ack(msg.mid, msg.qos) == mqtt.MQTT_ERR_SUCCESS
    stop(c)


def test_enable_logger_gets_paho_packet_lines(broker, caplog):
    caplog.set_level(logging.DEBUG, logger="turbomqtt.client")
    rec = Recorder()
    c = client_with(rec, client_id="logged")
    c.enable_logger()
    logs: list[str] = []
    c.on_log = lambda cl, ud, level, buf: logs.append(buf)
    c.connect("127.0.0.1", broker.port, 62)
    c.loop_start()
    rec.wait_for("on_connect")
    stop(c)
    assert any(line.startswith("Sending CONNECT (u0, p0, wr0, wq0, wf0, c1, k62) "
                               "client_id=b'logged'") for line in logs), logs
    assert any(line.startswith("Received CONNACK") for line in logs)
    assert any(r.getMessage().startswith("Sending CONNECT") for r in caplog.records)


def test_publish_and_subscribe_helpers(broker):
    from turbomqtt import publish, subscribe

    publish.single("helpers/retained", "kept", qos=1, retain=True, hostname="127.0.0.1",
                   port=broker.port)
    msg = subscribe.simple("helpers/#", qos=1, hostname="127.0.0.1", port=broker.port)
    assert (msg.topic, msg.payload, msg.retain) == ("helpers/retained", b"kept", True)
    publish.multiple([{"topic": "helpers/a", "payload": "1", "retain": True},
                      ("helpers/b", "2", 0, True)], hostname="127.0.0.1", port=broker.port)
    msgs = subscribe.simple("helpers/+", msg_count=3, hostname="127.0.0.1", port=broker.port)
    assert sorted(m.topic for m in msgs) == ["helpers/a", "helpers/b", "helpers/retained"]


def run_child(code, broker, sig=None):
    env = dict(os.environ, BROKER_PORT=str(broker.port))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if sig is not None:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, err


def test_ctrl_c_interrupts_loop_forever(broker):
    code, _, err = run_child("""
        import os, sys
        import turbomqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_connect = lambda *a: print("ready", flush=True)
        c.connect("127.0.0.1", int(os.environ["BROKER_PORT"]))
        try:
            c.loop_forever()
        except KeyboardInterrupt:
            sys.exit(42)
    """, broker, signal.SIGINT)
    assert code == 42, err


def test_interpreter_exit_with_running_loop_thread_does_not_hang(broker):
    code, out, err = run_child("""
        import os, threading
        import turbomqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        done = threading.Event()
        c.on_connect = lambda *a: done.set()
        c.connect("127.0.0.1", int(os.environ["BROKER_PORT"]))
        c.loop_start()
        assert done.wait(10)
        print("exiting", flush=True)
    """, broker)
    assert code == 0 and "exiting" in out, err


def test_version1_mqtt5_callback_argument_types(broker):
    rec = Recorder()
    c = client_with(rec, V1, protocol=mqtt.MQTTv5, client_id="v1v5")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    (_, _, flags, reason, props), = rec.wait_for("on_connect")
    assert flags == {"session present": 0} and isinstance(reason, ReasonCode) and reason == 0
    assert isinstance(props, Properties)
    c.subscribe("v/a", 1)
    (_, _, _, codes, sprops), = rec.wait_for("on_subscribe")
    assert [x.getName() for x in codes] == ["Granted QoS 1"] and isinstance(sprops, Properties)
    c.unsubscribe("v/a")
    (_, _, _, uprops, ucodes), = rec.wait_for("on_unsubscribe")
    # paho's VERSION1 MQTT 5 quirk: properties first, a single ReasonCode for one topic.
    assert isinstance(uprops, Properties) and isinstance(ucodes, ReasonCode) and ucodes == 0
    c.disconnect()
    (_, _, drc, dprops), = rec.wait_for("on_disconnect")
    assert drc == 0 and dprops is None
    c.loop_stop()


def test_queue_limit_while_disconnected_gives_rc_15():
    c = mqtt.Client(V2, client_id="queued")
    c.max_queued_messages_set(2)
    infos = [c.publish("q", str(i), 1) for i in range(3)]
    assert [i.rc for i in infos] == [mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_NO_CONN,
                                     mqtt.MQTT_ERR_QUEUE_SIZE]
    with pytest.raises(ValueError, match="ERR_QUEUE_SIZE"):
        infos[2].is_published()
    with pytest.raises(RuntimeError, match="not currently connected"):
        infos[0].wait_for_publish(0.1)
    assert c.publish("q", "qos0", 0).rc == mqtt.MQTT_ERR_NO_CONN


def test_qos1_published_while_disconnected_is_sent_after_connect(broker):
    rec = Recorder()
    watcher = client_with(rec, client_id="offline-watch")
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    rec.wait_for("on_connect")
    watcher.subscribe("offline/#", 1)
    rec.wait_for("on_subscribe")
    prec = Recorder()
    c = client_with(prec, client_id="offline-pub")
    early = c.publish("offline/1", "early", 1)
    assert early.rc == mqtt.MQTT_ERR_NO_CONN
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    (_, _, msg), = rec.wait_for("on_message")
    assert msg.payload == b"early"
    (_, _, mid, _, _), = prec.wait_for("on_publish")
    assert mid == early.mid
    stop(c)
    stop(watcher)


def test_reconnect_from_on_disconnect_with_plain_loop(broker):
    rec = Recorder()
    c = client_with(rec, client_id="taken-over")
    record = rec.hook("on_disconnect")

    def on_disconnect(cl, ud, flags, reason, props):
        record(cl, ud, flags, reason, props)
        if len(rec.of("on_disconnect")) == 1:
            cl.reconnect()  # as paho's tests/lib clients do

    c.on_disconnect = on_disconnect
    c.connect("127.0.0.1", broker.port)
    deadline = time.monotonic() + WAIT
    while not rec.of("on_connect") and time.monotonic() < deadline:
        c.loop(0.1)
    # Another client with the same id takes the session over: the broker drops us.
    other = mqtt.Client(V2, client_id="taken-over")
    other.connect("127.0.0.1", broker.port)
    while len(rec.of("on_connect")) < 2 and time.monotonic() < deadline:
        c.loop(0.1)
    assert len(rec.of("on_connect")) == 2 and c.is_connected()
    (_, _, flags, reason, _), = rec.of("on_disconnect")
    assert reason == "Unspecified error" and not flags.is_disconnect_packet_from_server
    c.disconnect()
    while c.socket() is not None and time.monotonic() < deadline:
        c.loop(0.1)
    assert rec.of("on_disconnect")[-1][3] == 0
    other.disconnect()


@pytest.fixture
def auth_broker():
    b = Mosquitto()
    passwd = os.path.join(b.dir, "passwd")
    open(passwd, "w").close()
    subprocess.run([mosquitto_tool("mosquitto_passwd"), "-b", passwd, "user", "secret"], check=True,
                   capture_output=True, timeout=30)
    os.chmod(passwd, 0o644)
    os.chmod(b.dir, 0o755)
    with open(b.conf, "w") as f:
        f.write(f"listener {b.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n")
    b.start()
    yield b
    b.stop()
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.mark.requires_mosquitto("mosquitto", "mosquitto_passwd")
def test_refused_connack_and_authentication(auth_broker):
    rec = Recorder()
    c = client_with(rec, V1, client_id="bad-auth", reconnect_on_failure=False)
    c.username_pw_set("user", "wrong")
    c.connect("127.0.0.1", auth_broker.port)
    rc = c.loop_forever()
    (_, _, _, code), = rec.of("on_connect")
    assert code == mqtt.CONNACK_REFUSED_NOT_AUTHORIZED
    assert mqtt.connack_string(code) == "Connection Refused: not authorised."
    assert rec.of("on_disconnect")[0][2] == mqtt.MQTT_ERR_CONN_REFUSED
    assert rc == mqtt.MQTT_ERR_CONN_REFUSED and not c.is_connected()

    ok = Recorder()
    good = client_with(ok, protocol=mqtt.MQTTv5, client_id="good-auth")
    good.username_pw_set("user", "secret")
    good.connect("127.0.0.1", auth_broker.port)
    good.loop_start()
    (_, _, _, reason, _), = ok.wait_for("on_connect")
    assert reason == 0
    stop(good)

    bad5 = Recorder()
    v5 = client_with(bad5, protocol=mqtt.MQTTv5, client_id="bad5", reconnect_on_failure=False)
    v5.username_pw_set("nobody", "x")
    v5.connect("127.0.0.1", auth_broker.port)
    v5.loop_forever()
    (_, _, _, reason, _), = bad5.of("on_connect")
    assert reason.is_failure and str(reason) in ("Not authorized", "Bad user name or password")


@pytest.mark.requires_mosquitto
def test_loop_start_retries_until_the_broker_comes_up():
    b = Mosquitto()
    rec = Recorder()
    c = client_with(rec, client_id="patient")
    c.reconnect_delay_set(1, 1)
    c.connect_async("127.0.0.1", b.port)
    c.loop_start()
    try:
        rec.wait_for("on_connect_fail")  # nothing listens yet
        b.start()
        (_, _, _, reason, _), = rec.wait_for("on_connect")
        assert reason == 0 and c.is_connected()
        with pytest.raises(RuntimeError, match="updating max_inflight_messages on established"):
            c.max_inflight_messages = 5
    finally:
        stop(c)
        b.stop()
        shutil.rmtree(b.dir, ignore_errors=True)


def test_disconnect_without_any_loop_completes_inline(broker):
    # paho writes synchronously when no loop runs, so on_disconnect happens inside
    # disconnect(); scripts that connect, publish and disconnect rely on the flush.
    rec = Recorder()
    watcher = client_with(rec, client_id="inline-watch")
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    rec.wait_for("on_connect")
    watcher.subscribe("inline/#", 1)
    rec.wait_for("on_subscribe")
    drec = Recorder()
    c = client_with(drec, client_id="inline")
    c.connect("127.0.0.1", broker.port)
    c.publish("inline/x", "flushed", 1)
    assert c.disconnect() == mqtt.MQTT_ERR_SUCCESS
    (args,) = drec.of("on_disconnect")
    assert args[3] == 0 and c.socket() is None
    assert [t for n, _, t in drec.calls if n == "on_disconnect"] == [threading.get_ident()]
    (_, _, msg), = rec.wait_for("on_message")
    assert msg.payload == b"flushed"
    stop(watcher)


def test_outgoing_topic_alias_with_empty_topic(broker):
    rec = Recorder()
    c = client_with(rec, protocol=mqtt.MQTTv5, client_id="alias")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    (_, _, _, _, connack), = rec.wait_for("on_connect")
    if getattr(connack, "TopicAliasMaximum", 0) < 1:
        stop(c)
        pytest.skip("broker takes no topic aliases")
    c.subscribe("alias/t", 1)
    rec.wait_for("on_subscribe")
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 1
    c.publish("alias/t", "one", 1, properties=first)
    again = Properties(PacketTypes.PUBLISH)
    again.TopicAlias = 1
    c.publish("", "two", 1, properties=again)  # empty topic: allowed under MQTT 5 only
    msgs = [a[2] for a in rec.wait_for("on_message", 2)]
    assert [(m.topic, m.payload) for m in msgs] == [("alias/t", b"one"), ("alias/t", b"two")]
    stop(c)


PAHO1_STYLE_SCRIPT = """
import json, sys, time
import paho.mqtt.client as mqtt

port = int(sys.argv[1])
received = []

def on_connect(client, userdata, flags, rc):
    assert rc == 0 and isinstance(flags, dict)
    client.subscribe("shelf/#", qos=2)

def on_subscribe(client, userdata, mid, granted_qos):
    for i in range(3):
        client.publish("shelf/" + str(i), json.dumps({"n": i}), qos=2)

def on_message(client, userdata, msg):
    received.append(json.loads(msg.payload)["n"])

client = mqtt.Client(client_id="seedish", clean_session=True)   # paho 1.x call style
client.username_pw_set("user", "pass")
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.reconnect_delay_set(min_delay=1, max_delay=2000)
client.connect("127.0.0.1", port, 62)
deadline = time.monotonic() + 10
while len(received) < 3 and time.monotonic() < deadline:
    assert client.loop_start() in (0, 3)   # called in a loop, as the seed subscriber does
    time.sleep(0.05)
client.disconnect()
client.loop_stop()
print(type(client).__module__, sorted(received))
"""


def test_paho1_style_script_runs_unchanged_through_the_switch(broker, tmp_path):
    script = tmp_path / "paho_script.py"
    script.write_text(PAHO1_STYLE_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "turbomqtt", "run", str(script),
                           str(broker.port)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["turbomqtt.client", "[0,", "1,", "2]"]
    # The 1.x call style gets paho 2.x's deprecation warning, attributed to the script.
    assert "Callback API version 1 is deprecated" in proc.stderr


def test_ctrl_c_interrupts_subscribe_simple(broker):
    code, _, err = run_child("""
        import os, sys, threading
        import turbomqtt.subscribe as subscribe
        import turbomqtt.client as mqtt
        real_connect = mqtt.Client.connect
        def connect(self, *a, **k):
            rc = real_connect(self, *a, **k)
            print("ready", flush=True)
            return rc
        mqtt.Client.connect = connect
        try:
            subscribe.simple("never/arrives", hostname="127.0.0.1",
                             port=int(os.environ["BROKER_PORT"]))
        except KeyboardInterrupt:
            sys.exit(42)
    """, broker, signal.SIGINT)
    assert code == 42, err


def test_drop_out_messages_removes_unsent_qos1(broker):
    rec = Recorder()
    watcher = client_with(rec, client_id="drop-watch")
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    rec.wait_for("on_connect")
    watcher.subscribe("drop/#", 1)
    rec.wait_for("on_subscribe")
    prec = Recorder()
    c = client_with(prec, client_id="dropper")
    dropped = c.publish("drop/old", "stale", 1)
    dropped_msgs = c.drop_out_messages()
    assert [m.mid for m in dropped_msgs] == [dropped.mid] and dropped_msgs[0].qos == 1
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    prec.wait_for("on_connect")
    c.publish("drop/new", "fresh", 1)
    (_, _, msg), = rec.wait_for("on_message")
    assert msg.payload == b"fresh"  # the dropped one was never sent
    stop(c)
    stop(watcher)


def test_every_qos0_info_is_published_when_mids_wrap_around(broker):
    """More QoS 0 messages than there are message ids, queued at once: each
    MQTTMessageInfo must still become published (their mids repeat), as with paho."""
    rec = Recorder()
    c = client_with(rec, client_id="wrap")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    rec.wait_for("on_connect")
    infos = [c.publish("wrap/x", b"p", 0) for _ in range(70_000)]
    assert len({i.mid for i in infos}) == 65535
    infos[-1].wait_for_publish(30)
    # Callbacks are dispatched in order, so every earlier info is done by now too.
    late = [(k, i.mid) for k, i in enumerate(infos) if not i.is_published()]
    assert late == [], (late[:5], len(rec.of("on_publish")), c._core.pending_infos())
    assert len(rec.of("on_publish")) >= 70_000
    stop(c)


def test_on_publish_exception_keeps_the_remaining_qos0_callbacks(broker):
    """A raising on_publish ends that loop call as in paho; the messages written with it
    still get their on_publish on the next call, in order, each exactly once."""
    c = mqtt.Client(V2, client_id="raising-pub")
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    seen: list[int] = []

    def on_publish(client, userdata, mid, reason_code, properties):
        seen.append(mid)
        if len(seen) == 1:
            raise RuntimeError("first on_publish fails")

    c.on_publish = on_publish
    c.connect("127.0.0.1", broker.port)
    deadline = time.monotonic() + WAIT
    while not connected.is_set():
        assert time.monotonic() < deadline
        c.loop(0.1)
    mids = [c.publish("raising/x", b"p", 0).mid for _ in range(5)]
    raised = 0
    while len(seen) < 5:
        assert time.monotonic() < deadline, seen
        try:
            c.loop(0.1)
        except RuntimeError:
            raised += 1
    assert raised == 1
    assert seen == mids
    c.disconnect()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_without_on_publish_infos_complete_and_wait_for_publish_returns(broker, qos):
    # With on_publish unset the core marks infos published itself (no event for the
    # loop thread); what a user sees must be the same: wait_for_publish() returns, every
    # info is published with rc 0, and loop_stop() waits for the last acknowledgement.
    c = mqtt.Client(V2, client_id=f"quiet-pub-{qos}")
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert connected.wait(WAIT)
    infos = [c.publish("quiet/t", b"x" * 10, qos) for _ in range(500)]
    infos[-1].wait_for_publish(WAIT)
    assert all(i.rc == mqtt.MQTT_ERR_SUCCESS for i in infos)
    if qos:
        # Acknowledged in order, so every earlier one is done when the last one is.
        assert all(i.is_published() for i in infos)
    stop(c)
    assert all(i.is_published() for i in infos)


def test_on_publish_set_after_publishing_is_called_for_the_pending_messages(broker):
    # Published while on_publish was unset (completed by the core), then the callback is
    # set before the acknowledgement is handled: paho calls the callback in force when
    # the loop handles it, so must we (with the QoS the message had).
    rec = Recorder()
    c = mqtt.Client(V2, client_id="late-on-publish", protocol=mqtt.MQTTv5)
    early = [c.publish("late/t", b"m", qos) for qos in (1, 2)]
    assert [i.rc for i in early] == [mqtt.MQTT_ERR_NO_CONN] * 2
    c.on_publish = rec.hook("on_publish")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    calls = rec.wait_for("on_publish", 2)
    assert sorted(args[2] for args in calls) == sorted(i.mid for i in early)
    by_mid = {args[2]: args[3] for args in calls}
    assert by_mid[early[0].mid].packetType == PacketTypes.PUBACK
    assert by_mid[early[1].mid].packetType == PacketTypes.PUBCOMP
    stop(c)
