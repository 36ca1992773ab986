"""Bad input to Client raises exactly what paho-mqtt 2.2.0 raises (type and message);
configuration calls without a connection behave as paho's."""

from __future__ import annotations

import logging
import ssl
import warnings

import paho.mqtt.client as pclient
import paho.mqtt.properties as pproperties
import paho.mqtt.subscribeoptions as psubopts
import pytest
import turbomqtt.client as tclient
import turbomqtt.properties as tproperties
import turbomqtt.subscribeoptions as tsubopts

V2 = "VERSION2"


def make(module, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return module.Client(*args, **kwargs)


def outcome(func, *args, **kwargs):
    try:
        result = func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the exception is the compared value
        return ("raised", type(err).__name__, str(err))
    return ("ok", plain(result))


def plain(value):
    # Enum members of the two implementations differ as objects; compare their values.
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return getattr(value, "value", value)


def both(protocol=4, **kwargs):
    cb = kwargs.pop("api", V2)
    return (
        make(tclient, getattr(tclient.CallbackAPIVersion, cb), protocol=protocol, **kwargs),
        make(pclient, getattr(pclient.CallbackAPIVersion, cb), protocol=protocol, **kwargs),
    )


CONSTRUCTOR_CASES = [
    ((), {}),
    (("client-id",), {}),
    ((b"client-id",), {}),
    ((3,), {}),
    ((None,), {}),
    ((), {"client_id": "x", "clean_session": False}),
    ((), {"clean_session": False}),
    ((), {"client_id": None, "clean_session": False}),
    ((), {"protocol": 5, "clean_session": True}),
    ((), {"protocol": 5, "clean_session": False}),
    ((), {"transport": "udp"}),
    ((), {"transport": "WebSockets"}),
    ((), {"transport": "UNIX"}),
]


@pytest.mark.parametrize("args,kwargs", CONSTRUCTOR_CASES)
def test_constructor_errors_equal_paho(args, kwargs):
    def build(module):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = module.Client(*args, **kwargs)
        return (client.transport, client.protocol, client._client_id if client.protocol != 3
                else len(client._client_id))
    assert outcome(build, tclient) == outcome(build, pclient)


def test_version1_default_warns_like_paho():
    for module in (tclient, pclient):
        with pytest.warns(DeprecationWarning,
                          match="Callback API version 1 is deprecated, update to latest version"):
            module.Client(client_id="a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tclient.Client(tclient.CallbackAPIVersion.VERSION2)


def test_mqtt31_generates_a_22_character_id():
    client = make(tclient, tclient.CallbackAPIVersion.VERSION2, protocol=tclient.MQTTv31)
    assert len(client._client_id) == 22 and client._client_id.isalnum()
    assert client._client_id != make(tclient, tclient.CallbackAPIVersion.VERSION2,
                                     protocol=tclient.MQTTv31)._client_id


def props(module, ptype=3):
    p = module.Properties(ptype)
    p.UserProperty = ("a", "b")
    return p


PUBLISH_CASES = [
    ("", "x", 0), (None, "x", 0), ("a/+", "x", 0), ("a/#", "x", 0), ("#", "x", 0),
    ("a" * 65536, "x", 0), (b"a/b", "x", 0), ("a", "x", -1), ("a", "x", 3),
    ("a", object(), 0), ("a", ["list"], 0), ("a", {"d": 1}, 0),
]


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("topic,payload,qos", PUBLISH_CASES)
def test_publish_argument_errors_equal_paho(protocol, topic, payload, qos):
    ours, theirs = both(protocol)
    if protocol == 5 and topic == "":
        pytest.skip("valid under MQTT 5 (topic alias)")
    assert outcome(ours.publish, topic, payload, qos) == outcome(theirs.publish, topic, payload, qos)


def test_publish_payload_too_large_equals_paho():
    big = bytearray(268435456)
    ours, theirs = both()
    assert outcome(ours.publish, "a", big) == outcome(theirs.publish, "a", big)


def subscribe_cases(mod, opts):
    return [
        (("",), {}), ((None,), {}), (("a", -1), {}), (("a", 3), {}), ((("a", 1),), {}),
        ((("a", opts.SubscribeOptions(1)),), {}), (([],), {}), (([("a", 0), ("b", 3)],), {}),
        (([("a", 0), ("", 1)],), {}), (([("a", opts.SubscribeOptions(2))],), {}),
        (([("a", 0), (None, 1)],), {}), (([("a", 0), (b"b", 1)],), {}),
        ((5,), {}), (({"a": 1},), {}), ((b"bytes",), {}), (("a/#/b",), {}), (("a+",), {}),
        (("a/b#",), {}), (("#/",), {}), (("a" * 65536,), {}), (("a", 1),
                                                               {"options": opts.SubscribeOptions()}),
        (("a",), {"options": opts.SubscribeOptions(1)}), (("a",), {"options": "bad"}),
        ((("a", "notopts"),), {}), (([("a", 1), ("b", 2)],), {}), (("ok/+/x",), {}),
    ]


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.parametrize("index", range(26))
def test_subscribe_argument_errors_and_no_connection_result_equal_paho(protocol, index):
    ours, theirs = both(protocol)
    args_o, kw_o = subscribe_cases(tclient, tsubopts)[index]
    args_t, kw_t = subscribe_cases(pclient, psubopts)[index]
    assert outcome(ours.subscribe, *args_o, **kw_o) == outcome(theirs.subscribe, *args_t, **kw_t)


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("topic", [None, "", [], ["a", ""], ["a", None], ["a", 5], 5, b"x",
                                   "a/#", ["a", "b"], {"a"}])
def test_unsubscribe_argument_errors_equal_paho(protocol, topic):
    ours, theirs = both(protocol)
    assert outcome(ours.unsubscribe, topic) == outcome(theirs.unsubscribe, topic)


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("args", [("",), (None,), ("a", "p", -1), ("a", "p", 3), ("a", 5, 1),
                                  ("a", object()), ("w/+", "p"), ("a", "p", 0, False, "notprops")])
def test_will_set_errors_equal_paho(protocol, args):
    ours, theirs = both(protocol)
    assert outcome(ours.will_set, *args) == outcome(theirs.will_set, *args)
    assert (ours.will_topic, ours.will_payload) == (theirs.will_topic, theirs.will_payload)


def test_will_set_with_properties_and_clear():
    ours, theirs = both(5)
    ours.will_set("w", "bye", 1, True, props(tproperties, 99))
    theirs.will_set("w", "bye", 1, True, props(pproperties, 99))
    assert (ours.will_topic, ours.will_payload) == (theirs.will_topic, theirs.will_payload)
    ours.will_clear()
    theirs.will_clear()
    assert (ours.will_topic, ours.will_payload) == (theirs.will_topic, theirs.will_payload)


SETTERS = [("host", ""), ("host", "h"), ("port", 0), ("port", -1), ("port", 1884),
           ("keepalive", -1), ("keepalive", 0), ("connect_timeout", 0), ("connect_timeout", 2.5),
           ("max_inflight_messages", -1), ("max_inflight_messages", 5),
           ("max_queued_messages", -1), ("max_queued_messages", 3), ("username", "üser"),
           ("password", "pw"), ("username", None), ("transport", "websockets")]


@pytest.mark.parametrize("name,value", SETTERS)
def test_property_setters_equal_paho(name, value):
    ours, theirs = both()
    assert outcome(setattr, ours, name, value) == outcome(setattr, theirs, name, value)
    assert getattr(ours, name) == getattr(theirs, name)


@pytest.mark.parametrize("call,args", [
    ("connect", ("",)), ("connect", ("h", 1883, 60, "", 0, False)),
    ("connect", ("h", 1883, 60, "", 0, 3, "props")), ("connect_async", ("h", 1883, 60, "", -1)),
    ("connect_async", ("",)), ("connect_async", ("h", 0)), ("connect_async", ("h", 1, -1)),
    ("reconnect", ()), ("loop", (-1,)), ("loop", (0,)), ("loop_stop", ()), ("loop_read", ()),
    ("loop_write", ()), ("loop_misc", ()), ("want_write", ()), ("disconnect", ()),
    ("socket", ()), ("is_connected", ()), ("max_queued_messages_set", ("3",)),
    ("message_callback_add", (None, print)), ("message_callback_add", ("a", None)),
    ("message_callback_remove", (None,)), ("message_callback_remove", ("never/added",)),
    ("ws_set_options", ("/p", 5)), ("ws_set_options", ("/p", {"a": "b"})),
    ("tls_insecure_set", (True,)), ("tls_set", ("/nonexistent/ca.pem",)),
    ("user_data_get", ()), ("ack", (1, 1)), ("reconnect_delay_set", (2, 30)),
])
def test_calls_without_connection_equal_paho(call, args):
    ours, theirs = both()
    assert outcome(getattr(ours, call), *args) == outcome(getattr(theirs, call), *args)


def test_tls_set_twice_and_context_mapping():
    client = make(tclient, tclient.CallbackAPIVersion.VERSION2)
    client.tls_set(cert_reqs=ssl.CERT_NONE)
    assert outcome(client.tls_set) == ("raised", "ValueError", "SSL/TLS has already been configured.")
    client._host = "example.org"
    tls = client._tls_dict()
    assert tls["verify"] is False and tls["check_hostname"] is False
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    other = make(tclient, tclient.CallbackAPIVersion.VERSION2)
    other.tls_set_context(ctx)
    other._host = "h"
    tls = other._tls_dict()
    assert tls["verify"] is True and tls["check_hostname"] is True
    assert tls["min_version"] == "1.3" and tls["server_hostname"] == "h"
    other.tls_insecure_set(True)
    assert other._tls_dict()["check_hostname"] is False and ctx.check_hostname is False


def test_logger_and_decorators_and_userdata():
    client = make(tclient, tclient.CallbackAPIVersion.VERSION2, userdata={"u": 1})
    assert client.user_data_get() == {"u": 1}
    client.enable_logger()
    assert client.logger is logging.getLogger("turbomqtt.client")
    mine = logging.getLogger("mine")
    client.logger = mine
    client.enable_logger()  # keeps the logger already set, as paho
    assert client.logger is mine
    client.disable_logger()
    assert client.logger is None

    @client.connect_callback()
    def on_connect(*args):
        pass

    @client.topic_callback("a/+")
    def on_a(*args):
        pass

    @client.socket_register_write_callback()
    def reg(*args):
        pass

    assert client.on_connect is on_connect and client.on_socket_register_write is reg
    assert list(client._on_message_filtered.iter_match("a/b")) == [on_a]
    client.message_callback_remove("a/+")
    assert list(client._on_message_filtered.iter_match("a/b")) == []


def test_proxy_set_validation_and_mapping():
    client = make(tclient, tclient.CallbackAPIVersion.VERSION2)
    assert outcome(client.proxy_set, proxy_type=9, proxy_addr="h") == (
        "raised", "ValueError", "proxy_type and/or proxy_addr are invalid.")
    client.proxy_set(proxy_type=2, proxy_addr="127.0.0.1", proxy_port=1081,
                     proxy_username="u", proxy_password="p")
    client._host = "broker"
    assert client._get_proxy() == {"type": "socks5", "host": "127.0.0.1", "port": 1081,
                                   "username": "u", "password": "p"}


def test_connect_srv_without_dnspython_raises_as_paho():
    ours, theirs = both()
    if pclient.HAVE_DNS:
        pytest.skip("dnspython installed")
    assert outcome(ours.connect_srv, "example.org") == outcome(theirs.connect_srv, "example.org")


def test_subclass_can_override_callbacks_as_methods():
    class Sub(tclient.Client):
        def on_connect(self, client, userdata, flags, rc, props):
            return "method"

    sub = Sub(tclient.CallbackAPIVersion.VERSION2)
    assert sub.on_connect(None, None, None, None, None) == "method"
