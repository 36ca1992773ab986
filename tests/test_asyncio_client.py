"""turbomqtt.asyncio against mosquitto: connect, awaited acknowledgements per QoS,
subscribe/unsubscribe codes, streams, properties, request/response, errors."""

# ruff: noqa: F811 - pytest fixtures imported from _asyncio_support shadow their names
from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import turbomqtt.asyncio as mqtt
from _asyncio_support import make_broker, mosquitto_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module", params=["mosquitto", "embedded"])
def broker(request):
    b = make_broker(request.param)
    yield b
    b.stop()


@pytest.fixture
def prefix() -> str:
    return f"t/{uuid.uuid4().hex[:10]}"


def client(broker, **kw) -> mqtt.Client:
    return mqtt.Client("127.0.0.1", broker.port, **kw)


async def test_connect_and_disconnect(broker):
    c = client(broker)
    async with c:
        assert c.is_connected
        await asyncio.wait_for(c.connected(), 5)
    assert not c.is_connected
    with pytest.raises(mqtt.NotConnectedError):
        await c.publish("a", "b")


@pytest.mark.parametrize("protocol", [3, 4, 5, mqtt.ProtocolVersion.V311])
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_is_acknowledged_and_delivered_per_qos(broker, prefix, protocol, qos):
    async with client(broker, protocol=protocol) as c, c.subscription(f"{prefix}/#", qos=2) as sub:
        code = await asyncio.wait_for(c.publish(f"{prefix}/x", b"hello", qos=qos), 5)
        assert code == 0
        m = await asyncio.wait_for(sub.get(), 5)
    assert (m.topic, m.payload, m.qos, m.retain) == (f"{prefix}/x", b"hello", qos, False)
    assert isinstance(m.topic, mqtt.Topic) and m.topic.matches(f"{prefix}/+")
    assert (m.mid != 0) == (qos > 0)


async def test_publish_awaits_until_every_qos2_message_is_complete(broker, prefix):
    async with client(broker) as c, c.subscription(f"{prefix}/n", qos=2) as sub:
        codes = await asyncio.wait_for(
            asyncio.gather(*(c.publish(f"{prefix}/n", str(i), qos=2) for i in range(200))), 10
        )
        assert codes == [0] * 200
        assert c.pending_operations() == 0
        got = [int((await asyncio.wait_for(sub.get(), 5)).payload) for _ in range(200)]
    assert got == list(range(200))


async def test_payload_conversions_as_paho(broker, prefix):
    async with client(broker) as c, c.subscription(f"{prefix}/p") as sub:
        for payload in ["text", b"raw", bytearray(b"ba"), 42, 1.5, None]:
            await c.publish(f"{prefix}/p", payload)
        got = [(await asyncio.wait_for(sub.get(), 5)).payload for _ in range(6)]
        assert got == [b"text", b"raw", b"ba", b"42", b"1.5", b""]
        with pytest.raises(TypeError):
            await c.publish(f"{prefix}/p", [1, 2])


async def test_invalid_publish_arguments_raise_value_error(broker):
    async with client(broker) as c:
        with pytest.raises(ValueError, match="wildcard"):
            await c.publish("a/+", "x")
        with pytest.raises(ValueError, match="wildcard"):
            await c.publish("a/#", "x")
        with pytest.raises(ValueError):
            await c.publish("", "x")
        with pytest.raises(ValueError):
            await c.publish("a", "x", qos=3)
        with pytest.raises(ValueError):
            await c.subscribe("a/#/b")
        # The client is still fine afterwards; v5 PUBACK 0x10: no matching subscribers.
        assert await c.publish(f"nobody/{uuid.uuid4().hex}", "x", qos=1) == 0x10


async def test_subscribe_argument_forms_return_granted_codes(broker, prefix):
    async with client(broker) as c:
        assert await c.subscribe(f"{prefix}/a", 1) == [1]
        assert await c.subscribe((f"{prefix}/b", 2)) == [2]
        assert await c.subscribe([(f"{prefix}/c", 0), (f"{prefix}/d", 2)]) == [0, 2]
        opts = mqtt.SubscribeOptions(qos=1, no_local=True)
        assert await c.subscribe(f"{prefix}/e", options=opts) == [1]
        assert await c.unsubscribe([f"{prefix}/a", f"{prefix}/b"]) == [0, 0]
    async with client(broker, protocol=4) as c:
        assert await c.subscribe([(f"{prefix}/c", 0), (f"{prefix}/d", 2)]) == [0, 2]
        assert await c.unsubscribe(f"{prefix}/c") == []


async def test_no_local_keeps_our_own_messages_away(broker, prefix):
    async with client(broker) as c:
        stream = c.messages()
        await c.subscribe(f"{prefix}/nl", options=mqtt.SubscribeOptions(qos=1, no_local=True))
        await c.subscribe(f"{prefix}/marker", 1)
        await c.publish(f"{prefix}/nl", "mine", qos=1)
        await c.publish(f"{prefix}/marker", "end", qos=1)
        m = await asyncio.wait_for(stream.get(), 5)
        assert m.topic == f"{prefix}/marker"


async def test_overlapping_streams_each_get_their_copy(broker, prefix):
    async def until_end(stream):
        topics = []
        while True:
            m = await asyncio.wait_for(stream.get(), 5)
            if m.topic.endswith("/end/temp"):
                return topics
            topics.append(m.topic)

    temp, humidity = f"{prefix}/kitchen/temp", f"{prefix}/kitchen/humidity"
    async with client(broker) as c:
        everything = c.messages()
        async with (
            c.subscription(f"{prefix}/+/temp", qos=1) as temps,
            c.subscription(f"{prefix}/#", qos=0) as alls,
        ):
            await c.publish(temp, "21", qos=1)
            await c.publish(humidity, "40", qos=1)
            await c.publish(f"{prefix}/end/temp", "", qos=1)
            # mosquitto (v5) sends one copy per matching subscription; every copy
            # reaches every stream whose filter matches it, and only those.
            assert set(await until_end(temps)) == {temp}
            assert set(await until_end(alls)) == {temp, humidity}
            assert set(await until_end(everything)) == {temp, humidity}


async def test_subscription_exit_unsubscribes(broker, prefix):
    async with client(broker) as c:
        stream = c.messages()
        async with c.subscription(f"{prefix}/a") as sub:
            await c.publish(f"{prefix}/a", "1")
            assert (await asyncio.wait_for(sub.get(), 5)).payload == b"1"
        assert (await asyncio.wait_for(stream.get(), 5)).payload == b"1"
        await c.subscribe(f"{prefix}/marker")
        await c.publish(f"{prefix}/a", "2")
        await c.publish(f"{prefix}/marker", "m")
        assert (await asyncio.wait_for(stream.get(), 5)).topic == f"{prefix}/marker"
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()


async def test_v5_properties_round_trip(broker, prefix):
    props = {
        "content_type": "application/json",
        "user_property": [("a", "1"), ("b", "2")],
        "message_expiry_interval": 60,
        "payload_format_indicator": 1,
    }
    async with client(broker) as c, c.subscription(f"{prefix}/p", qos=1) as sub:
        await c.publish(f"{prefix}/p", "{}", qos=1, properties=props)
        m = await asyncio.wait_for(sub.get(), 5)
    assert m.properties["content_type"] == "application/json"
    assert m.properties["user_property"] == [("a", "1"), ("b", "2")]
    assert m.properties["payload_format_indicator"] == 1
    assert 0 < m.properties["message_expiry_interval"] <= 60


async def test_properties_need_mqtt5(broker):
    async with client(broker, protocol=4) as c:
        with pytest.raises(ValueError, match="MQTT 5"):
            await c.publish("a", "b", properties={"content_type": "x"})
        with pytest.raises(NotImplementedError):
            await c.request("a", "b")


async def test_request_response(broker, prefix):
    async with client(broker) as server, client(broker) as requester:
        requests = server.messages()
        await server.subscribe(f"{prefix}/service", 1)

        async def serve():
            async for m in requests:
                await server.publish(
                    m.properties["response_topic"],
                    b"re:" + m.payload,
                    qos=1,
                    properties={"correlation_data": m.properties["correlation_data"]},
                )

        task = asyncio.create_task(serve())
        try:
            answers = await asyncio.gather(
                *(requester.request(f"{prefix}/service", f"q{i}", timeout=5) for i in range(5))
            )
            assert [a.payload for a in answers] == [f"re:q{i}".encode() for i in range(5)]
        finally:
            task.cancel()
        with pytest.raises(mqtt.RequestTimeoutError):
            await requester.request(f"{prefix}/nobody", "x", timeout=0.2)


async def test_retained_message_flag(broker, prefix):
    async with client(broker) as c:
        await c.publish(f"{prefix}/r", "kept", qos=1, retain=True)
        async with c.subscription(f"{prefix}/r") as sub:
            m = await asyncio.wait_for(sub.get(), 5)
        assert (m.payload, m.retain) == (b"kept", True)
        await c.publish(f"{prefix}/r", None, qos=1, retain=True)


async def test_refused_connection_raises_connect_error_with_reason_code(mosquitto_factory):
    m = mosquitto_factory()
    m.stop()
    m.conf.write_text(m.conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    m.start()
    with pytest.raises(mqtt.MqttConnectError) as e5:
        async with client(m):
            pass
    assert e5.value.reason_code == 0x87  # not authorized
    with pytest.raises(mqtt.MqttConnectError) as e4:
        async with client(m, protocol=4):
            pass
    assert e4.value.reason_code == 5
    assert isinstance(e4.value, mqtt.MqttError)


async def test_transport_failures_are_os_errors():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    with pytest.raises(ConnectionRefusedError):
        async with mqtt.Client("127.0.0.1", free):
            pass
    with pytest.raises(socket.gaierror):
        async with mqtt.Client("does-not-exist.invalid", 1883):
            pass


async def test_connect_times_out_without_connack():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with pytest.raises(TimeoutError):
            async with mqtt.Client("127.0.0.1", silent.getsockname()[1], timeout=0.3):
                pass
    finally:
        silent.close()


async def test_refused_publish_raises_publish_error(mosquitto_factory):
    m = mosquitto_factory()
    m.stop()
    acl = m.dir / "acl"
    acl.write_text("topic readwrite open/#\n")
    # (mosquitto 2.0.11 drops the connection on a refused QoS 2 publish when
    # max_queued_messages is 0, so this broker keeps its default queue limit.)
    conf = m.conf.read_text().replace("max_queued_messages 0\n", "")
    m.conf.write_text(conf + f"acl_file {acl}\n")
    m.start()
    async with client(m) as c:
        for qos in (1, 2):
            with pytest.raises(mqtt.PublishError) as pe:
                await c.publish("closed/x", "no", qos=qos)
            assert pe.value.reason_code == 0x87  # not authorized
        assert await c.publish("open/x", "yes", qos=1) == 0x10  # no subscribers: success


async def test_refused_subscription_raises_subscribe_error():
    # mosquitto grants every SUBSCRIBE, so a scripted 3.1.1 peer on a real socket
    # answers this one with a failure code (0x80, §3.9.3).
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    loop = asyncio.get_running_loop()

    async def peer():
        conn, _ = await loop.sock_accept(server)
        with conn:
            await loop.sock_recv(conn, 1024)  # CONNECT
            await loop.sock_sendall(conn, bytes([0x20, 2, 0, 0]))
            sub = await loop.sock_recv(conn, 1024)
            assert sub[0] == 0x82
            mid = sub[2:4]
            await loop.sock_sendall(conn, bytes([0x90, 4]) + mid + bytes([0x01, 0x80]))
            await loop.sock_recv(conn, 1024)  # DISCONNECT or EOF

    task = asyncio.create_task(peer())
    try:
        async with mqtt.Client("127.0.0.1", server.getsockname()[1], protocol=4) as c:
            with pytest.raises(mqtt.SubscribeError) as e:
                await c.subscribe([("a", 1), ("b", 1)])
            assert e.value.codes == [1, 0x80] and e.value.reason_code == 0x80
        await asyncio.wait_for(task, 5)
    finally:
        server.close()


async def test_manual_ack_withholds_puback_until_ack(broker, prefix):
    ident = f"manual-{uuid.uuid4().hex[:8]}"
    opts = {"identifier": ident, "protocol": 4, "clean_start": False, "manual_ack": True}
    async with client(broker, **opts) as c:
        await c.subscribe(f"{prefix}/m", 1)
    async with client(broker) as pub:
        await pub.publish(f"{prefix}/m", "one", qos=1)
    # Streams made before connecting see what a resumed session delivers at once.
    c = client(broker, **opts)
    stream = c.messages()
    async with c:
        first = await asyncio.wait_for(stream.get(), 5)
        assert first.payload == b"one"
        # Not acknowledged: leaving and coming back gets it again.
    c = client(broker, **opts)
    stream = c.messages()
    async with c:
        again = await asyncio.wait_for(stream.get(), 5)
        assert (again.payload, again.dup) == (b"one", True)
        again.ack()
        await c.subscribe(f"{prefix}/marker", 1)
    async with client(broker) as pub:
        await pub.publish(f"{prefix}/marker", "m", qos=1)
    c = client(broker, **opts)
    stream = c.messages()
    async with c:
        assert (await asyncio.wait_for(stream.get(), 5)).topic == f"{prefix}/marker"
        await c.unsubscribe([f"{prefix}/m", f"{prefix}/marker"])


async def test_will_is_published_on_abrupt_loss_not_on_clean_exit(broker, prefix):
    async with client(broker) as watcher:
        wills = watcher.messages()
        await watcher.subscribe(f"{prefix}/will", 1)
        will = mqtt.Will(f"{prefix}/will", "gone", qos=1)
        async with client(broker, will=will):
            pass
        dying = client(broker, will=mqtt.Will(f"{prefix}/will", "lost", qos=1))
        await dying.connect()
        dying._core.close()  # abrupt: no DISCONNECT, as a crash would be
        m = await asyncio.wait_for(wills.get(), 5)
        assert m.payload == b"lost"
        await dying.disconnect()


async def test_several_clients_on_one_loop(broker, prefix):
    clients = [client(broker) for _ in range(5)]
    for c in clients:
        await c.connect()
    try:
        streams = [c.messages() for c in clients]
        for i, c in enumerate(clients):
            await c.subscribe(f"{prefix}/{i}", 1)
        await asyncio.gather(
            *(c.publish(f"{prefix}/{(i + 1) % 5}", str(i), qos=1) for i, c in enumerate(clients))
        )
        got = [await asyncio.wait_for(s.get(), 5) for s in streams]
        assert [m.payload for m in got] == [str((i - 1) % 5).encode() for i in range(5)]
    finally:
        for c in clients:
            await c.disconnect()


def test_topic_matching_rules():
    tm = mqtt.topic_matches
    assert tm("a/+/c", "a/b/c") and not tm("a/+/c", "a/b/d")
    assert tm("a/#", "a") and tm("a/#", "a/b/c") and tm("#", "a/b")
    assert tm("+/+", "/x") and tm("+", "") is True
    assert not tm("a/+", "a") and not tm("a/b", "a/b/c")
    assert not tm("#", "$SYS/x") and not tm("+/x", "$SYS/x") and tm("$SYS/#", "$SYS/x")
    assert tm("$share/group/a/+", "a/b")
    for bad in ["a/#/b", "a#", "a/b+", ""]:
        with pytest.raises(ValueError):
            tm(bad, "a")


def test_properties_encoding_round_trip():
    props = {
        "response_topic": "r/t",
        "correlation_data": b"\x00\x01",
        "user_property": [("k", "v")],
        "subscription_identifier": [5, 300],
        "session_expiry_interval": 3600,
        "receive_maximum": 10,
    }
    wire = mqtt.encode_properties(props)
    assert wire[0] == len(wire) - 1
    assert mqtt.decode_properties(wire) == props
    assert mqtt.encode_properties({"user_property": ("k", "v")}) == mqtt.encode_properties(
        {"user_property": [("k", "v")]}
    )
    with pytest.raises(ValueError):
        mqtt.encode_properties({"nope": 1})


async def test_malformed_packet_from_the_broker_raises_protocol_error():
    # A scripted 3.1.1 peer on a real socket: CONNACK, then a packet of reserved type 0.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    loop = asyncio.get_running_loop()
    go = asyncio.Event()

    async def peer():
        conn, _ = await loop.sock_accept(server)
        with conn:
            await loop.sock_recv(conn, 1024)  # CONNECT
            await loop.sock_sendall(conn, bytes([0x20, 2, 0, 0]))
            await go.wait()
            await loop.sock_sendall(conn, bytes([0x00, 0x00]))
            await loop.sock_recv(conn, 1024)  # EOF once the client closes

    task = asyncio.create_task(peer())
    try:
        async with mqtt.Client("127.0.0.1", server.getsockname()[1], protocol=4) as c:
            stream = c.messages()
            go.set()
            with pytest.raises(mqtt.ProtocolError) as e:
                await asyncio.wait_for(stream.get(), 5)
            assert e.value.reason_code == 2
            assert isinstance(e.value, mqtt.ConnectionLostError)
        await asyncio.wait_for(task, 5)
    finally:
        server.close()


async def test_two_subscriptions_on_one_filter_unsubscribe_only_with_the_last(broker, prefix):
    topic = f"{prefix}/same"
    async with client(broker) as c:
        async with c.subscription(topic, qos=1) as first:
            async with c.subscription(topic, qos=1) as second:
                await c.publish(topic, "both", qos=1)
                assert (await asyncio.wait_for(first.get(), 5)).payload == b"both"
                assert (await asyncio.wait_for(second.get(), 5)).payload == b"both"
            # The inner exit kept the broker subscription: the outer stream still gets it.
            await c.publish(topic, "still", qos=1)
            m = await asyncio.wait_for(first.get(), 5)
            while m.payload == b"both":  # a broker may have sent one copy per SUBSCRIBE
                m = await asyncio.wait_for(first.get(), 5)
            assert m.payload == b"still"
        assert topic not in c._subscriptions
