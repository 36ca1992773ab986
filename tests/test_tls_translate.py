"""What the core is told about TLS: turbomqtt._tls's translation of an ssl.SSLContext
(paho's tls_set/tls_set_context/tls_insecure_set, the asyncio client's tls=context) and of
plain settings (TLSParameters, dicts) into the options the core's rustls takes.
No network: the translation only."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import warnings
from typing import Any, Callable

import pytest
import turbomqtt.asyncio as aio
from turbomqtt import _tls
from turbomqtt.asyncio._client import _tls_dict as asyncio_tls
from turbomqtt.client import CallbackAPIVersion, Client

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]

TLS12_ONLY_NAMES = {"ECDHE-RSA-AES128-GCM-SHA256"}


@pytest.fixture(scope="module")
def pem(tmp_path_factory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("tls-translate")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=translate test CA", "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return {"cert": cert, "key": key, "der": der}


def context(cafile: str | None = None, **attrs: Any) -> ssl.SSLContext:
    # PROTOCOL_TLS_CLIENT verifies and checks the name, as create_default_context, but
    # loads no CA certificates unless asked (the system bundle may be loaded eagerly).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is not None:
        ctx.load_verify_locations(cafile)
    # The system's OpenSSL policy may raise the default minimum (Debian: TLS 1.2).
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 bounds
        for name, value in attrs.items():
            if name == "ciphers":
                ctx.set_ciphers(value)
            else:
                setattr(ctx, name, value)
    return ctx


def without_ciphers(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "ciphers"}


# --- an SSLContext, as both faces hand it over -----------------------------------------

V = ssl.TLSVersion
CONTEXT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("default context: verify, check the name, system roots", {},
     {"verify": True, "check_hostname": True, "use_native_roots": True}),
    ("hostname check off", {"check_hostname": False},
     {"verify": True, "check_hostname": False, "use_native_roots": True}),
    ("no verification", {"check_hostname": False, "verify_mode": ssl.CERT_NONE},
     {"verify": False, "check_hostname": False, "use_native_roots": True}),
    ("TLS 1.3 only", {"minimum_version": V.TLSv1_3},
     {"verify": True, "check_hostname": True, "use_native_roots": True, "min_version": "1.3"}),
    ("TLS 1.2 only", {"minimum_version": V.TLSv1_2, "maximum_version": V.TLSv1_2},
     {"verify": True, "check_hostname": True, "use_native_roots": True,
      "min_version": "1.2", "max_version": "1.2"}),
    ("a minimum below 1.2 leaves the bound open", {"minimum_version": V.TLSv1},
     {"verify": True, "check_hostname": True, "use_native_roots": True}),
    ("a maximum below 1.2 reaches the core, which refuses it",
     {"minimum_version": V.TLSv1, "maximum_version": V.TLSv1_1},
     {"verify": True, "check_hostname": True, "use_native_roots": True, "max_version": "1.1"}),
    ("MAXIMUM_SUPPORTED is no bound", {"maximum_version": V.MAXIMUM_SUPPORTED},
     {"verify": True, "check_hostname": True, "use_native_roots": True}),
]


@pytest.mark.parametrize("attrs,expected", [c[1:] for c in CONTEXT_CASES],
                         ids=[c[0] for c in CONTEXT_CASES])
def test_context_settings_are_read(attrs, expected):
    assert without_ciphers(_tls.from_context(context(**attrs))) == expected


@pytest.mark.parametrize("ciphers,present,absent", [
    ("ECDHE-RSA-AES128-GCM-SHA256", {"ECDHE-RSA-AES128-GCM-SHA256"},
     {"ECDHE-RSA-AES256-GCM-SHA384"}),
    ("ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA", {"ECDHE-RSA-AES256-GCM-SHA384", "AES128-SHA"},
     {"ECDHE-RSA-AES128-GCM-SHA256"}),
])
def test_enabled_ciphers_are_the_ones_openssl_resolved(ciphers, present, absent):
    names = _tls.from_context(context(ciphers=ciphers))["ciphers"]
    assert present <= set(names)
    assert not absent & set(names)
    # set_ciphers leaves the TLS 1.3 suites enabled; the core does the same.
    assert "TLS_AES_256_GCM_SHA384" in names


def test_ca_certificates_loaded_into_a_context_go_as_der(pem):
    options = _tls.from_context(context(cafile=pem["cert"]))
    assert options["ca_data"] == [pem["der"]]
    assert options["use_native_roots"] is False


def test_insecure_overrides_the_context_hostname_check():
    options = _tls.from_context(context(), insecure=True)
    assert (options["verify"], options["check_hostname"]) == (True, False)


def test_server_hostname_only_when_given():
    assert "server_hostname" not in _tls.from_context(context())
    assert _tls.from_context(context(), server_hostname="h")["server_hostname"] == "h"


def test_protocol_pinned_to_one_version():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1_2)
    options = _tls.from_context(ctx)
    assert (options["min_version"], options["max_version"]) == ("1.2", "1.2")


# --- files beside the context (paho's tls_set) -----------------------------------------

def files(**given: Any) -> _tls.Files:
    base: _tls.Files = {"ca_certs": None, "certfile": None, "keyfile": None,
                        "keyfile_password": None, "alpn": None}
    base.update(given)  # type: ignore[typeddict-item]
    return base


@pytest.mark.parametrize("given,expected", [
    ({}, {"use_native_roots": True}),
    ({"ca_certs": "ca.pem"}, {"ca_certs": "ca.pem"}),
    ({"ca_certs": "ca.pem", "certfile": "c.pem", "keyfile": "k.pem", "keyfile_password": b"pw"},
     {"ca_certs": "ca.pem", "certfile": "c.pem", "keyfile": "k.pem", "keyfile_password": b"pw"}),
    ({"alpn": ["mqtt"]}, {"alpn": ["mqtt"], "use_native_roots": True}),
], ids=["system roots", "CA file", "client certificate", "ALPN"])
def test_files_are_handed_to_the_core_by_name(pem, given, expected):
    # The context's loaded CAs are not sent as well: the core loads ca_certs itself.
    options = _tls.from_context(context(cafile=pem["cert"]), files=files(**given))
    assert without_ciphers(options) == {"verify": True, "check_hostname": True, **expected}


# --- the paho face: tls_set / tls_set_context / tls_insecure_set -------------------------

def paho(setup: Callable[[Client], Any]) -> dict[str, Any]:
    c = Client(CallbackAPIVersion.VERSION2)
    c._host = "broker.example"
    setup(c)
    return c._tls_dict()


# What a new context's minimum reads as under the system's OpenSSL policy (tls_set builds
# one): "1.2" where the policy sets it (Debian), no bound otherwise.
SYSTEM_MINIMUM = {
    k: v for k, v in _tls.from_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)).items()
    if k == "min_version"
}


PAHO_CASES: list[tuple[str, Callable[[Client, dict[str, Any]], Any], dict[str, Any]]] = [
    ("tls_set() uses the system roots", lambda c, p: c.tls_set(),
     {**SYSTEM_MINIMUM, "verify": True, "check_hostname": True, "use_native_roots": True}),
    ("tls_set(ca_certs) names the file", lambda c, p: c.tls_set(ca_certs=p["cert"]),
     {**SYSTEM_MINIMUM, "verify": True, "check_hostname": True, "ca_certs": "<cert>"}),
    ("client certificate and password",
     lambda c, p: c.tls_set(ca_certs=p["cert"], certfile=p["cert"], keyfile=p["key"],
                            keyfile_password="pw"),
     {**SYSTEM_MINIMUM, "verify": True, "check_hostname": True, "ca_certs": "<cert>",
      "certfile": "<cert>", "keyfile": "<key>", "keyfile_password": "pw"}),
    ("cert_reqs=CERT_NONE checks nothing", lambda c, p: c.tls_set(cert_reqs=ssl.CERT_NONE),
     {**SYSTEM_MINIMUM, "verify": False, "check_hostname": False, "use_native_roots": True}),
    ("tls_insecure_set(True) keeps the chain check",
     lambda c, p: (c.tls_set(ca_certs=p["cert"]), c.tls_insecure_set(True)),
     {**SYSTEM_MINIMUM, "verify": True, "check_hostname": False, "ca_certs": "<cert>"}),
    ("ALPN", lambda c, p: c.tls_set(alpn_protocols=["mqtt"]),
     {**SYSTEM_MINIMUM, "verify": True, "check_hostname": True, "use_native_roots": True,
      "alpn": ["mqtt"]}),
    ("tls_set_context with a CA loaded",
     lambda c, p: c.tls_set_context(context(cafile=p["cert"])),
     {"verify": True, "check_hostname": True, "ca_data": "<der>", "use_native_roots": False}),
    ("tls_set_context without hostname check",
     lambda c, p: c.tls_set_context(context(check_hostname=False)),
     {"verify": True, "check_hostname": False, "use_native_roots": True}),
]


@pytest.mark.parametrize("setup,expected", [c[1:] for c in PAHO_CASES],
                         ids=[c[0] for c in PAHO_CASES])
def test_paho_face(pem, setup, expected):
    names = {"<cert>": pem["cert"], "<key>": pem["key"], "<der>": [pem["der"]]}
    expected = {k: names.get(v, v) if isinstance(v, str) else v for k, v in expected.items()}
    options = paho(lambda c: setup(c, pem))
    assert without_ciphers(options) == {"server_hostname": "broker.example", **expected}
    assert options["ciphers"]  # what OpenSSL enabled, always passed on


def test_paho_cipher_string_is_resolved_by_openssl():
    options = paho(lambda c: c.tls_set(ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    assert TLS12_ONLY_NAMES <= set(options["ciphers"])
    assert "ECDHE-RSA-AES256-GCM-SHA384" not in options["ciphers"]


# --- the asyncio face: tls= -------------------------------------------------------------

@pytest.mark.parametrize("tls,expected", [
    (None, None),
    (False, None),
    (True, {}),
    ({"verify": False, "alpn": ["x"]}, {"verify": False, "alpn": ["x"]}),
    (aio.TLSParameters(), {"verify": True, "check_hostname": True, "alpn": []}),
    (aio.TLSParameters(ca_certs="ca.pem", certfile="c.pem", keyfile="k.pem",
                       keyfile_password="pw", verify=False, check_hostname=False,
                       min_version="1.2", max_version="1.3", alpn=("mqtt",),
                       server_hostname="sni.example"),
     {"ca_certs": "ca.pem", "certfile": "c.pem", "keyfile": "k.pem", "keyfile_password": "pw",
      "verify": False, "check_hostname": False, "min_version": "1.2", "max_version": "1.3",
      "alpn": ["mqtt"], "server_hostname": "sni.example"}),
], ids=["None", "False", "True", "dict as given", "TLSParameters defaults",
        "TLSParameters every field"])
def test_asyncio_face(tls, expected):
    assert asyncio_tls(tls) == expected


def test_asyncio_tls_parameters_cipher_string_is_resolved_by_openssl():
    options = asyncio_tls(aio.TLSParameters(ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    assert TLS12_ONLY_NAMES <= set(options["ciphers"])
    assert "ECDHE-RSA-AES256-GCM-SHA384" not in options["ciphers"]


def test_asyncio_cipher_string_selecting_nothing_raises_as_set_ciphers():
    with pytest.raises(ssl.SSLError, match="No cipher can be selected"):
        asyncio_tls(aio.TLSParameters(ciphers="NO-SUCH-CIPHER"))


def test_both_faces_read_a_context_alike(pem):
    # The asyncio face has no tls_set files and the core defaults server_hostname to the
    # host it connects to: otherwise the same context means the same options.
    ctx = context(cafile=pem["cert"], maximum_version=V.TLSv1_2, ciphers="AES128-SHA")
    from_paho = paho(lambda c: c.tls_set_context(ctx))
    del from_paho["server_hostname"]
    assert asyncio_tls(ctx) == from_paho
    assert from_paho["max_version"] == "1.2"


def test_anything_else_is_a_type_error():
    with pytest.raises(TypeError, match="tls must be"):
        asyncio_tls(42)  # type: ignore[arg-type]
