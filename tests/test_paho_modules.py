"""Differential tests: turbomqtt's paho-mirroring modules against the real paho-mqtt 2.2.0."""

from __future__ import annotations

import enum
import inspect
import itertools

import paho.mqtt
import paho.mqtt.client as pclient
import paho.mqtt.enums as penums
import paho.mqtt.matcher as pmatcher
import paho.mqtt.packettypes as ppackettypes
import paho.mqtt.properties as pproperties
import paho.mqtt.publish as ppublish
import paho.mqtt.reasoncodes as preasoncodes
import paho.mqtt.subscribe as psubscribe
import paho.mqtt.subscribeoptions as psubopts
import pytest
import turbomqtt.client as tclient
import turbomqtt.enums as tenums
import turbomqtt.exception as texception
import turbomqtt.matcher as tmatcher
import turbomqtt.packettypes as tpackettypes
import turbomqtt.properties as tproperties
import turbomqtt.publish as tpublish
import turbomqtt.reasoncodes as treasoncodes
import turbomqtt.subscribe as tsubscribe
import turbomqtt.subscribeoptions as tsubopts

assert pclient.__file__ and "paho" in pclient.__file__, "these tests need the real paho-mqtt"


def outcome(func, *args, **kwargs):
    """The result of a call, or (exception type name, message) if it raised."""
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - the exception is the compared value
        return ("raised", type(err).__name__, str(err))


ENUM_NAMES = ["MQTTErrorCode", "MQTTProtocolVersion", "CallbackAPIVersion", "MessageType",
              "LogLevel", "ConnackCode", "_ConnectionState", "MessageState", "PahoClientMode"]


@pytest.mark.parametrize("name", ENUM_NAMES)
def test_enum_members_and_kinds_equal_paho(name):
    ours, theirs = getattr(tenums, name), getattr(penums, name)
    assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]
    assert issubclass(ours, enum.IntEnum) == issubclass(theirs, enum.IntEnum)


def test_packet_types_equal_paho():
    for attr in dir(ppackettypes.PacketTypes):
        if not attr.startswith("_"):
            assert getattr(tpackettypes.PacketTypes, attr) == getattr(
                ppackettypes.PacketTypes, attr), attr


PACKET_TYPES = list(range(17)) + [99]


def test_reason_code_names_values_and_errors_equal_paho():
    for ptype, value in itertools.product(PACKET_TYPES, range(256)):
        ours = outcome(lambda p=ptype, v=value: str(treasoncodes.ReasonCode(p, identifier=v)))
        theirs = outcome(lambda p=ptype, v=value: str(preasoncodes.ReasonCode(p, identifier=v)))
        assert ours == theirs, (ptype, value)


def test_reason_code_by_name_equal_paho():
    names = {n for entries in preasoncodes.ReasonCode.names.values() for n in entries}
    for ptype, name in itertools.product(PACKET_TYPES, sorted(names) + ["Nonsense"]):
        ours = outcome(lambda p=ptype, n=name: treasoncodes.ReasonCode(p, n).value)
        theirs = outcome(lambda p=ptype, n=name: preasoncodes.ReasonCode(p, n).value)
        assert ours == theirs, (ptype, name)


def test_reason_code_comparisons_repr_pack_json():
    rc = treasoncodes.ReasonCode(tpackettypes.PacketTypes.CONNACK, "Not authorized")
    prc = preasoncodes.ReasonCode(ppackettypes.PacketTypes.CONNACK, "Not authorized")
    assert rc == 135 and rc == "Not authorized" and rc != "Success" and rc != 0
    assert rc > 0 and rc < 200 and rc.value == 135 and rc.is_failure
    assert (repr(rc), str(rc), rc.json(), rc.getName(), rc.pack()) == (
        repr(prc), str(prc), prc.json(), prc.getName(), prc.pack())
    assert rc == treasoncodes.ReasonCode(tpackettypes.PacketTypes.CONNACK, identifier=135)
    assert treasoncodes.ReasonCode(tpackettypes.PacketTypes.DISCONNECT).getName() == \
        "Normal disconnection"
    with pytest.raises(TypeError):
        hash(rc)


def test_reason_codes_alias_warns_and_isinstance():
    with pytest.deprecated_call():
        old = treasoncodes.ReasonCodes(tpackettypes.PacketTypes.PUBACK, "Success")
    assert old == 0
    assert isinstance(treasoncodes.ReasonCode(4), treasoncodes.ReasonCodes)


def test_exception_classes_are_shared_as_in_paho():
    assert tproperties.MQTTException is texception.MQTTException
    assert issubclass(texception.MalformedPacket, texception.MQTTException)
    assert tsubopts.MQTTException is not texception.MQTTException
    assert pproperties.MQTTException is paho.mqtt.MQTTException  # the fact we mirror


PROPERTY_VALUES = {
    "PayloadFormatIndicator": [0, 1, 2],
    "MessageExpiryInterval": [0, 1, 2**32 - 1],
    "ContentType": ["", "text/plain", "é✓"],
    "ResponseTopic": ["a/b"],
    "CorrelationData": [b"", b"\x00\xff"],
    "SubscriptionIdentifier": [0, 1, 127, 128, 16384, 268435455, 268435456, [3, 4]],
    "SessionExpiryInterval": [0, 0xFFFFFFFF],
    "AssignedClientIdentifier": ["cid"],
    "ServerKeepAlive": [0, 65535],
    "AuthenticationMethod": ["SCRAM"],
    "AuthenticationData": [b"data"],
    "RequestProblemInformation": [0, 1, 5],
    "WillDelayInterval": [10],
    "RequestResponseInformation": [0, 1, 2],
    "ResponseInformation": ["resp"],
    "ServerReference": ["other:1883"],
    "ReasonString": ["because"],
    "ReceiveMaximum": [0, 1, 65535, 65536],
    "TopicAliasMaximum": [0, 65535, 65536, -1],
    "TopicAlias": [0, 1, 65535, 65536],
    "MaximumQoS": [0, 1],
    "RetainAvailable": [0, 1],
    "UserProperty": [("k", "v"), [("a", "1"), ("b", "2")], ("é", "✓")],
    "MaximumPacketSize": [0, 1, 268435455, 268435456],
    "WildcardSubscriptionAvailable": [1],
    "SubscriptionIdentifierAvailable": [0],
    "SharedSubscriptionAvailable": [1],
    "NotAProperty": [1],
}


def build(module, ptype, assignments):
    props = module.Properties(ptype)
    for name, value in assignments:
        setattr(props, name, value)
    return props


def describe(props):
    return (props.pack(), str(props), props.json(), props.isEmpty())


def describe_built(module, ptype, assignments):
    return describe(build(module, ptype, assignments))


def describe_unpacked(module, ptype, data):
    return describe(module.Properties(ptype).unpack(data)[0])


def test_properties_set_pack_str_json_equal_paho_for_every_packet_type():
    for ptype in PACKET_TYPES[1:]:
        for name, values in PROPERTY_VALUES.items():
            for value in values:
                ours = outcome(describe_built, tproperties, ptype, [(name, value)])
                theirs = outcome(describe_built, pproperties, ptype, [(name, value)])
                assert ours == theirs, (ptype, name, value)


def test_properties_combinations_and_accumulation_equal_paho():
    assignments = [("UserProperty", ("a", "1")), ("MessageExpiryInterval", 30),
                   ("UserProperty", ("b", "2")), ("ContentType", "json"),
                   ("SubscriptionIdentifier", 5), ("SubscriptionIdentifier", 7000),
                   ("CorrelationData", b"\x01\x02"), ("PayloadFormatIndicator", 1),
                   ("TopicAlias", 3), ("ResponseTopic", "r/t")]
    for n in range(len(assignments) + 1):
        ours = build(tproperties, tpackettypes.PacketTypes.PUBLISH, assignments[:n])
        theirs = build(pproperties, ppackettypes.PacketTypes.PUBLISH, assignments[:n])
        assert describe(ours) == describe(theirs)
        # Round trip through both decoders.
        wire = theirs.pack()
        back = tproperties.Properties(tpackettypes.PacketTypes.PUBLISH)
        assert back.unpack(wire)[1] == len(wire)
        assert describe(back) == describe(theirs)
    ours.clear()
    assert ours.isEmpty() and ours.pack() == b"\x00"


UNPACK_INPUTS = [
    b"\x00", b"", b"\x80", b"\xff\xff\xff\xff\x7f", b"\x02\x01\x01", b"\x02\x01",
    b"\x05\x03\x00\x02ab", b"\x05\x03\x00\x05ab", b"\x03\x09\x00\x05", b"\x04\x09\x00\x01x",
    b"\x03\x03\x00\x00", b"\x05\x03\x00\x02\xed\xa0", b"\x06\x03\x00\x03\xef\xbb\xbf",
    b"\x04\x03\x00\x01\x00", b"\x02\x63\x00", b"\x04\x01\x01\x01\x00",
    b"\x0b\x26\x00\x01a\x00\x01b\x26\x00\x00\x00\x00"[:12], b"\x05\x0b\x80\x80\x80\x01",
    b"\x06\x0b\x80\x80\x80\x80\x01", b"\x03\x23\x00\x00", b"\x02\x02\x00",
]


def test_properties_unpack_equal_paho_including_malformed_input():
    for data in UNPACK_INPUTS:
        for ptype in (tpackettypes.PacketTypes.PUBLISH, tpackettypes.PacketTypes.CONNACK):
            ours = outcome(describe_unpacked, tproperties, ptype, data)
            theirs = outcome(describe_unpacked, pproperties, ptype, data)
            assert ours == theirs, (ptype, data)


def test_variable_byte_integers_equal_paho():
    for value in [0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456, -1]:
        assert outcome(tproperties.VariableByteIntegers.encode, value) == outcome(
            pproperties.VariableByteIntegers.encode, value)
    for data in [b"", b"\x00", b"\x7f", b"\x80\x01", b"\xff\xff\xff\x7f", b"\x80",
                 b"\xff\xff\xff\xff\x01", b"\x80\x80\x80\x80"]:
        assert outcome(tproperties.VariableByteIntegers.decode, data) == outcome(
            pproperties.VariableByteIntegers.decode, data)


def test_property_helper_functions_equal_paho():
    for name, args in [("writeInt16", (513,)), ("readInt16", (b"\x02\x01",)),
                       ("writeInt32", (70000,)), ("readInt32", (b"\x00\x01\x11\x70",)),
                       ("writeUTF", ("hé",)), ("writeUTF", (b"raw",)),
                       ("readUTF", (b"\x00\x02hi", 4)), ("readUTF", (b"\x00\x02hi", 3)),
                       ("readUTF", (b"\x00", 1)), ("writeBytes", (b"ab",)),
                       ("readBytes", (b"\x00\x01z", 3)), ("readBytes", (b"\x00\x05z", 3))]:
        assert outcome(getattr(tproperties, name), *args) == outcome(
            getattr(pproperties, name), *args), name


def options_made(module, args):
    opts = module.SubscribeOptions(*args)
    return (opts.pack(), str(opts), repr(opts), opts.json())


def options_read(module, data):
    opts = module.SubscribeOptions()
    used = opts.unpack(data)
    return used, opts.json()


def test_subscribe_options_equal_paho():
    for qos, no_local, rap, rh in itertools.product([0, 1, 2, 3], [False, True],
                                                     [False, True], [0, 1, 2, 3]):
        args = (qos, no_local, rap, rh)
        assert outcome(options_made, tsubopts, args) == outcome(options_made, psubopts, args)
    for byte in range(256):
        data = bytes([byte])
        assert outcome(options_read, tsubopts, data) == outcome(options_read, psubopts, data)
    assert outcome(setattr, tsubopts.SubscribeOptions(), "bad", 1)[1:] == outcome(
        setattr, psubopts.SubscribeOptions(), "bad", 1)[1:]


FILTERS = ["#", "+", "a", "a/#", "a/+", "+/b", "a/b", "a/+/c", "+/+", "/#", "/+", "$SYS/#",
           "$SYS/+", "+/#", "a/b/#", "", "a//b", "a/+/+", "sport/tennis/#", "$share/g/a"]
TOPICS = ["a", "a/b", "a/", "/a", "a/b/c", "$SYS/x", "$SYS", "b", "", "/", "a//b",
          "sport/tennis/player1", "sport", "x/b", "$foo/b"]


def test_topic_matching_equals_paho():
    for sub, topic in itertools.product(FILTERS, TOPICS):
        assert tclient.topic_matches_sub(sub, topic) == pclient.topic_matches_sub(sub, topic), (
            sub, topic)


def test_matcher_add_remove_iter_equal_paho():
    ours, theirs = tmatcher.MQTTMatcher(), pmatcher.MQTTMatcher()
    for i, sub in enumerate(FILTERS):
        ours[sub] = theirs[sub] = i
    for sub in FILTERS[::3] + ["missing/x"]:
        assert outcome(ours.__delitem__, sub) == outcome(theirs.__delitem__, sub)
    for key in FILTERS + ["zz"]:
        assert outcome(ours.__getitem__, key) == outcome(theirs.__getitem__, key)
    for topic in TOPICS:
        assert list(ours.iter_match(topic)) == list(theirs.iter_match(topic)), topic


def test_error_and_connack_strings_equal_paho():
    for value in range(-2, 20):
        assert tclient.error_string(value) == pclient.error_string(value)
        assert tclient.connack_string(value) == pclient.connack_string(value)
        assert str(tclient.convert_connack_rc_to_reason_code(value)) == str(
            pclient.convert_connack_rc_to_reason_code(value))
        ours = tclient.convert_disconnect_error_code_to_reason_code(value)
        theirs = pclient.convert_disconnect_error_code_to_reason_code(value)
        assert (ours.value, str(ours)) == (theirs.value, str(theirs))
    rc = treasoncodes.ReasonCode(tpackettypes.PacketTypes.CONNACK, "Banned")
    assert tclient.connack_string(rc) == "Banned"


def public_names(module):
    return {n for n in dir(module) if not n.startswith("_")}


# Modules paho imports for itself and exposes by accident, not API.
INCIDENTAL = {"base64", "collections", "errno", "hashlib", "logging", "os", "platform", "select",
              "socket", "string", "struct", "threading", "time", "urllib", "uuid", "warnings",
              "Iterator", "Sequence", "TYPE_CHECKING", "Any", "Callable", "NamedTuple", "Union",
              "cast", "overload", "Literal", "annotations", "ssl", "functools", "MappingProxyType",
              "enum", "Iterable", "MessageDict", "mqtt", "paho"}


@pytest.mark.parametrize("ours,theirs", [
    (tclient, pclient), (tenums, penums), (tproperties, pproperties),
    (treasoncodes, preasoncodes), (tsubopts, psubopts), (tpackettypes, ppackettypes),
    (tmatcher, pmatcher), (tpublish, ppublish), (tsubscribe, psubscribe),
])
def test_module_exports_every_public_name_of_paho(ours, theirs):
    missing = public_names(theirs) - INCIDENTAL - public_names(ours)
    assert not missing


def comparable(default):
    # Enum members of the two implementations are distinct objects: compare what they say.
    if isinstance(default, enum.Enum):
        return (type(default).__name__, default.name, default.value)
    return default


def params(func):
    return [(p.name, p.kind, comparable(p.default))
            for p in inspect.signature(func).parameters.values()]


def test_client_methods_and_properties_match_paho_signatures():
    for name, theirs in vars(pclient.Client).items():
        if name.startswith("_") and name != "__init__":
            continue
        ours = getattr(tclient.Client, name, None)
        assert ours is not None, name
        if isinstance(theirs, property):
            assert isinstance(ours, property), name
            assert (ours.fset is None) == (theirs.fset is None), name
        elif callable(theirs):
            assert params(ours) == params(theirs), name


@pytest.mark.parametrize("name", ["error_string", "connack_string", "topic_matches_sub",
                                  "convert_connack_rc_to_reason_code",
                                  "convert_disconnect_error_code_to_reason_code"])
def test_client_function_signatures_match_paho(name):
    assert [p[:2] for p in params(getattr(tclient, name))] == [
        p[:2] for p in params(getattr(pclient, name))]


@pytest.mark.parametrize("ours,theirs", [
    (tpublish.single, ppublish.single), (tpublish.multiple, ppublish.multiple),
    (tsubscribe.simple, psubscribe.simple), (tsubscribe.callback, psubscribe.callback),
    (tclient.MQTTMessageInfo.wait_for_publish, pclient.MQTTMessageInfo.wait_for_publish),
    (tclient.MQTTMessage.__init__, pclient.MQTTMessage.__init__),
    (tproperties.Properties.__init__, pproperties.Properties.__init__),
    (treasoncodes.ReasonCode.__init__, preasoncodes.ReasonCode.__init__),
    (tsubopts.SubscribeOptions.__init__, psubopts.SubscribeOptions.__init__),
])
def test_helper_and_class_signatures_match_paho(ours, theirs):
    assert params(ours) == params(theirs)


def test_module_constants_equal_paho():
    for name in public_names(pclient):
        theirs = getattr(pclient, name)
        if isinstance(theirs, (int, bytes, str, dict)) and not isinstance(theirs, bool):
            assert getattr(tclient, name) == theirs, name
    assert tclient.MQTT_CLEAN_START_FIRST_ONLY == 3 and tclient.sockpair_data == b"0"


def test_message_info_and_message_objects_behave_as_paho():
    for module in (tclient, pclient):
        info = module.MQTTMessageInfo(7)
        rc, mid = info
        assert (rc, mid, info[0], info[1], str(info)) == (0, 7, 0, 7, str((info.rc, 7)))
        with pytest.raises(IndexError):
            info[2]
        assert not info.is_published()
        info.rc = module.MQTT_ERR_QUEUE_SIZE
        with pytest.raises(ValueError, match="ERR_QUEUE_SIZE"):
            info.wait_for_publish(0.01)
        info.rc = module.MQTT_ERR_NO_CONN
        with pytest.raises(RuntimeError, match="not currently connected"):
            info.is_published()
        info.rc = module.MQTT_ERR_SUCCESS
        info.wait_for_publish(0.01)  # times out silently, as paho
        info._set_as_published()
        assert info.is_published()
        info.mid = 9  # a plain attribute in paho
        assert (info.mid, info[1]) == (9, 9)
        msg = module.MQTTMessage(3, b"t/\xc3\xa9")
        assert msg.topic == "t/é" and msg == module.MQTTMessage(3) and msg != module.MQTTMessage(4)
        assert msg.info.mid == 3 and msg.properties is None and msg.payload == b""
        bad = module.MQTTMessage(1, b"\xff")
        with pytest.raises(UnicodeDecodeError):
            _ = bad.topic
