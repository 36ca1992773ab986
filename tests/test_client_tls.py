"""turbomqtt.client TLS as paho on CPython's ssl does it: OpenSSL's host-name rule (subject
CN when there is no dNSName subjectAltName), cipher names, traditional encrypted PEM keys.

Certificates and keys are made by the openssl CLI at test time; servers are the embedded
broker's TLS listeners and mosquitto, on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings

import pytest
import turbomqtt.client as mqtt
from turbomqtt import Broker, _core

pytestmark = [
    pytest.mark.skipif(not hasattr(_core, "ClientCore"), reason="core without ClientCore"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

WAIT = 10.0
PASSWORD = "s3cret"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class Pki:
    """A CA, server certificates with various names, and a client certificate whose
    key is also written in each encrypted format under test."""

    def __init__(self, d: str) -> None:
        self.dir = d
        self.ca_key, self.ca = self.path("ca.key"), self.path("ca.crt")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=turbomqtt TLS test CA", "-keyout", self.ca_key, "-out", self.ca)
        # One RSA server key for every server certificate (ECDHE-RSA suites only).
        self.server_key = self.path("server.key")
        openssl("genrsa", "-out", self.server_key, "2048")
        self.serial = 1
        # Host name in the subject CN only, as paho's own test certificates.
        self.cn_only = self.sign("cn-only", self.server_key, "/O=Test/CN=LocalHost", san=None)
        self.cn_other = self.sign("cn-other", self.server_key, "/CN=otherhost", san=None)
        # A dNSName subjectAltName present: the CN is ignored even though it matches.
        self.san_other = self.sign("san-other", self.server_key, "/CN=localhost",
                                   san="DNS:other.example")
        # Only an iPAddress subjectAltName: OpenSSL still falls back to the CN for names.
        self.ip_san_cn = self.sign("ip-san", self.server_key, "/CN=localhost",
                                   san="IP:127.0.0.1")
        self.expired = self.sign_expired()
        self.client_key = self.path("client.key")
        openssl("genrsa", "-out", self.client_key, "2048")
        self.client = self.sign("client", self.client_key, "/CN=tls client", san=None,
                                usage="clientAuth")
        self.ec_key = self.path("client-ec.key")
        openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", self.ec_key)
        self.ec_client = self.sign("client-ec", self.ec_key, "/CN=tls ec client", san=None,
                                   usage="clientAuth")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def sign(self, name: str, key: str, subject: str, san: str | None,
             usage: str = "serverAuth") -> str:
        csr, crt, ext = self.path(name + ".csr"), self.path(name + ".crt"), self.path(name + ".ext")
        openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage={usage}\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        self.serial += 1
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                "-set_serial", str(self.serial), "-days", "2", "-extfile", ext, "-out", crt)
        return crt

    def sign_expired(self) -> str:
        """A certificate valid for one day in 2020 (`openssl x509` cannot backdate)."""
        csr, crt, conf = self.path("expired.csr"), self.path("expired.crt"), self.path("ca.cnf")
        openssl("req", "-new", "-key", self.server_key, "-subj", "/CN=localhost", "-out", csr)
        with open(self.path("index.txt"), "w"), open(self.path("serial"), "w") as f:
            f.write("64\n")
        with open(conf, "w") as f:
            f.write(f"[ca]\ndefault_ca = test\n[test]\ndatabase = {self.path('index.txt')}\n"
                    f"new_certs_dir = {self.dir}\nserial = {self.path('serial')}\n"
                    "default_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n"
                    "[ext]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:localhost\n")
        openssl("ca", "-batch", "-config", conf, "-cert", self.ca, "-keyfile", self.ca_key,
                "-extensions", "ext", "-startdate", "20200101000000Z", "-enddate",
                "20200102000000Z", "-in", csr, "-out", crt)
        return crt

    def legacy_key(self, source: str, name: str, *cipher_args: str) -> str:
        """`source` rewritten as an OpenSSL traditional encrypted PEM key."""
        out = self.path(name)
        kind = "ec" if "ec" in os.path.basename(source) else "rsa"
        # `openssl rsa` writes PKCS#8 unless told otherwise; `openssl ec` writes SEC1.
        fmt = ["-traditional"] if kind == "rsa" else []
        openssl(kind, "-in", source, *cipher_args, *fmt, "-passout", f"pass:{PASSWORD}",
                "-out", out)
        with open(out) as f:
            text = f.read()
        assert "Proc-Type: 4,ENCRYPTED" in text, text[:200]
        return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(str(tmp_path_factory.mktemp("tls-pki")))


@pytest.fixture(scope="module")
def broker(pki):
    """The embedded broker with one TLS listener per server certificate, and one that
    requires a client certificate from our CA."""
    names = ["cn_only", "cn_other", "san_other", "ip_san_cn", "expired"]
    listeners = [{"port": 0, "certfile": getattr(pki, n), "keyfile": pki.server_key}
                 for n in names]
    listeners.append({"port": 0, "certfile": pki.cn_only, "keyfile": pki.server_key,
                      "cafile": pki.ca, "require_certificate": True})
    with Broker(listeners=listeners) as b:
        ports = [entry["port"] for entry in b.listeners]
        yield dict(zip(names + ["mutual"], ports))


@pytest.fixture(scope="module")
def mosquitto_tls(pki):
    """mosquitto serving the CN-only certificate, twice: the second listener allows a
    single TLS 1.2 cipher (its tls_version is a minimum, so TLS 1.3 stays possible)."""
    from conftest import MosquittoProcess, _free_port, need_mosquitto

    need_mosquitto()
    # mosquitto started as root drops to its own user: it needs a world-readable copy
    # (pytest's tmp root is private).
    d = tempfile.mkdtemp(prefix="tmqtt-tls-")
    os.chmod(d, 0o755)
    crt, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    shutil.copy(pki.cn_only, crt)
    shutil.copy(pki.server_key, key)
    for f in (crt, key):
        os.chmod(f, 0o644)
    ports = {"cn_only": _free_port(), "one_cipher": _free_port()}
    extra = (f"listener {ports['cn_only']} 127.0.0.1\ncertfile {crt}\nkeyfile {key}\n"
             f"listener {ports['one_cipher']} 127.0.0.1\ncertfile {crt}\nkeyfile {key}\n"
             "tls_version tlsv1.2\nciphers ECDHE-RSA-AES128-GCM-SHA256\n")
    m = MosquittoProcess(d, extra).start()  # waits for its plain listener only
    deadline = time.monotonic() + WAIT
    for port in ports.values():
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    m.stop()
                    raise
                time.sleep(0.02)  # polling a port: there is no event to wait on
    yield ports
    m.stop()
    shutil.rmtree(d, ignore_errors=True)


def client() -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)


def connect_ok(c: mqtt.Client, port: int, host: str = "localhost") -> None:
    """connect() succeeds and the broker's CONNACK arrives over the TLS stream."""
    connected = threading.Event()
    codes: list = []

    def on_connect(_c, _u, _flags, rc, _props):
        codes.append(rc)
        connected.set()

    c.on_connect = on_connect
    c.connect(host, port)
    c.loop_start()
    try:
        assert connected.wait(WAIT)
        assert codes == [0]
    finally:
        c.disconnect()
        c.loop_stop()


def assert_hostname_mismatch(err: ssl.SSLCertVerificationError, host: str) -> None:
    # What CPython's ssl reports, hence what paho users see (and what paho's tests check:
    # errno 1 and "certificate verify failed" in strerror).
    assert err.errno == 1
    assert "certificate verify failed" in err.strerror
    assert err.verify_code == 62
    assert err.verify_message == f"Hostname mismatch, certificate is not valid for '{host}'."
    assert err.strerror.startswith("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                   "Hostname mismatch")


# --- host names ------------------------------------------------------------------------


def test_cn_only_certificate_is_accepted_for_its_name(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    connect_ok(c, broker["cn_only"])  # CN "LocalHost": case-insensitive, as OpenSSL


def test_cn_only_certificate_is_accepted_by_python_ssl_too(pki, broker):
    # The reference: CPython's ssl (OpenSSL) accepts the same server for "localhost".
    ctx = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(("localhost", broker["cn_only"]), timeout=WAIT) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_cn_only_certificate_for_another_name_is_refused(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        c.connect("localhost", broker["cn_other"])
    assert_hostname_mismatch(info.value, "localhost")


def test_cn_is_ignored_when_a_dns_subject_alt_name_exists(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        c.connect("localhost", broker["san_other"])
    assert_hostname_mismatch(info.value, "localhost")


def test_cn_still_counts_when_the_only_subject_alt_name_is_an_ip(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    connect_ok(c, broker["ip_san_cn"])


def test_an_ip_address_is_never_matched_against_the_cn(pki, broker):
    # OpenSSL checks IP addresses against iPAddress subjectAltNames only.
    c = client()
    c.tls_set(ca_certs=pki.ca)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        c.connect("127.0.0.1", broker["cn_only"])
    assert info.value.verify_code == 64
    assert info.value.verify_message == (
        "IP address mismatch, certificate is not valid for '127.0.0.1'.")


def test_tls_insecure_set_accepts_a_wrong_name_but_still_checks_the_chain(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    c.tls_insecure_set(True)
    connect_ok(c, broker["cn_other"])
    # An unknown CA is still refused.
    other = client()
    other.tls_set_context(ssl.create_default_context(cafile=pki.ca))
    other.tls_insecure_set(True)
    connect_ok(other, broker["cn_other"])
    stranger = client()
    stranger.tls_set()  # system roots only
    stranger.tls_insecure_set(True)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        stranger.connect("localhost", broker["cn_other"])
    assert info.value.verify_code == 20
    assert "unable to get local issuer certificate" in str(info.value)


def test_expired_certificate_is_refused_as_openssl_reports_it(pki, broker):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        c.connect("localhost", broker["expired"])
    assert info.value.verify_code == 10
    assert info.value.verify_message == "certificate has expired"
    assert str(info.value) == ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                               "certificate has expired")
    # Without verification it connects.
    c = client()
    c.tls_set(ca_certs=pki.ca, cert_reqs=ssl.CERT_NONE)
    connect_ok(c, broker["expired"])


def test_cn_only_certificate_served_by_mosquitto(pki, mosquitto_tls):
    c = client()
    c.tls_set(ca_certs=pki.ca)
    connect_ok(c, mosquitto_tls["cn_only"])


def test_cn_only_certificate_through_tls_set_context(pki, mosquitto_tls):
    c = client()
    c.tls_set_context(ssl.create_default_context(cafile=pki.ca))
    connect_ok(c, mosquitto_tls["cn_only"])
    c = client()
    c.tls_set_context(ssl.create_default_context(cafile=pki.ca))
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        c.connect("127.0.0.1", mosquitto_tls["cn_only"])
    assert info.value.verify_code == 64


# --- cipher suites ---------------------------------------------------------------------


def tls12_context(pki: Pki, ciphers: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    return ctx


def test_tls12_cipher_the_server_can_use_connects(pki, broker):
    c = client()
    c.tls_set_context(tls12_context(pki, "ECDHE-RSA-AES256-GCM-SHA384"))
    connect_ok(c, broker["cn_only"])


def test_tls12_cipher_the_server_cannot_use_fails_the_handshake(pki, broker):
    # The server's key is RSA: an ECDSA-only cipher list leaves nothing in common.
    c = client()
    c.tls_set_context(tls12_context(pki, "ECDHE-ECDSA-AES128-GCM-SHA256"))
    with pytest.raises(ssl.SSLError) as info:
        c.connect("localhost", broker["cn_only"])
    assert not isinstance(info.value, ssl.SSLCertVerificationError)
    # CPython's wording of the server's alert.
    assert info.value.errno == 1
    assert info.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"
    assert str(info.value).startswith(
        "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure")


def test_cipher_list_is_honoured_against_mosquitto(pki, mosquitto_tls):
    # mosquitto offers only ECDHE-RSA-AES128-GCM-SHA256 for TLS 1.2 on this listener.
    c = client()
    c.tls_set_context(tls12_context(pki, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"))
    with pytest.raises(ssl.SSLError) as info:
        c.connect("localhost", mosquitto_tls["one_cipher"])
    assert not isinstance(info.value, ssl.SSLCertVerificationError)
    c = client()
    c.tls_set_context(tls12_context(pki, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"))
    connect_ok(c, mosquitto_tls["one_cipher"])


def test_tls13_suites_stay_enabled_as_with_openssl(pki, broker):
    # set_ciphers() restricts TLS 1.2 only: a CBC-only string still connects over TLS 1.3.
    c = client()
    c.tls_set(ca_certs=pki.ca, ciphers="AES128-SHA")
    connect_ok(c, broker["cn_only"])


def test_no_usable_cipher_raises_like_cpython(pki, broker):
    # AES128-SHA (CBC) exists in OpenSSL but not in rustls; TLS 1.2 only leaves nothing.
    c = client()
    c.tls_set_context(tls12_context(pki, "AES128-SHA"))
    with pytest.raises(ssl.SSLError) as info:
        c.connect("localhost", broker["cn_only"])
    assert info.value.args == ("No cipher can be selected.",)


def test_tls_version_pinned_by_tls_set(pki, broker):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl.PROTOCOL_TLSv1_2
        c = client()
        c.tls_set(ca_certs=pki.ca, tls_version=ssl.PROTOCOL_TLSv1_2, ciphers="AES128-SHA")
    with pytest.raises(ssl.SSLError) as info:
        c.connect("localhost", broker["cn_only"])
    assert info.value.args == ("No cipher can be selected.",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        c = client()
        c.tls_set(ca_certs=pki.ca, tls_version=ssl.PROTOCOL_TLSv1_2,
                  ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    connect_ok(c, broker["cn_only"])


def test_tls_below_1_2_is_not_implemented(pki, broker):
    ctx = ssl.create_default_context(cafile=pki.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    c = client()
    c.tls_set_context(ctx)
    with pytest.raises(NotImplementedError, match="TLS version 1.1"):
        c.connect("localhost", broker["cn_only"])


# --- traditional encrypted PEM client keys ---------------------------------------------


@pytest.mark.parametrize("name,source,cipher", [
    ("rsa-aes256.key", "client_key", "-aes256"),
    ("rsa-des3.key", "client_key", "-des3"),
    ("rsa-aes128.key", "client_key", "-aes128"),
    ("ec-aes128.key", "ec_key", "-aes128"),
])
def test_traditional_encrypted_key_authenticates(pki, broker, name, source, cipher):
    key = pki.legacy_key(getattr(pki, source), name, cipher)
    cert = pki.ec_client if source == "ec_key" else pki.client
    c = client()
    c.tls_set(ca_certs=pki.ca, certfile=cert, keyfile=key, keyfile_password=PASSWORD)
    # This listener refuses a handshake without a certificate from our CA.
    connect_ok(c, broker["mutual"])


@pytest.mark.parametrize("password", [PASSWORD.encode(), bytearray(PASSWORD.encode()),
                                      lambda: PASSWORD, lambda: PASSWORD.encode()],
                         ids=["bytes", "bytearray", "callable-str", "callable-bytes"])
def test_key_password_as_load_cert_chain_takes_it(pki, broker, password):
    key = pki.legacy_key(pki.client_key, "rsa-pw-kinds.key", "-aes128")
    c = client()
    c.tls_set(ca_certs=pki.ca, certfile=pki.client, keyfile=key, keyfile_password=password)
    connect_ok(c, broker["mutual"])


def test_password_callable_is_not_asked_for_a_plain_key(pki, broker):
    asked: list[int] = []
    c = client()
    c.tls_set(ca_certs=pki.ca, certfile=pki.client, keyfile=pki.client_key,
              keyfile_password=lambda: asked.append(1) or PASSWORD)
    connect_ok(c, broker["mutual"])
    assert asked == []


def test_mutual_listener_refuses_a_client_without_certificate(pki, broker):
    # Shows the key above is really used: no certificate, no connection.
    c = client()
    c.tls_set(ca_certs=pki.ca)
    disconnected = threading.Event()
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.on_disconnect = lambda *a: disconnected.set()
    try:
        c.connect("localhost", broker["mutual"])
    except (ssl.SSLError, OSError):
        return  # TLS 1.2 style: refused inside the handshake
    # TLS 1.3: the server's refusal arrives after the client's handshake completed.
    c.loop_start()
    try:
        assert disconnected.wait(WAIT)
        assert not connected.is_set()
    finally:
        c.loop_stop()


def test_tls12_server_refusing_a_missing_client_certificate_raises_ssl_error(pki, broker):
    c = client()
    c.tls_set_context(tls12_context(pki, "ECDHE-RSA-AES128-GCM-SHA256"))
    with pytest.raises(ssl.SSLError) as info:
        c.connect("localhost", broker["mutual"])
    assert info.value.library == "SSL"
    assert str(info.value) == f"[SSL: {info.value.reason}] {info.value.reason.lower().replace('_', ' ')}"


def test_server_hanging_up_in_the_handshake_raises_ssl_eof_error(pki):
    with socket.create_server(("127.0.0.1", 0)) as server:
        def hang_up() -> None:
            conn, _ = server.accept()
            conn.settimeout(WAIT)
            # Read the whole ClientHello record (closing with unread data would reset).
            with conn, conn.makefile("rb") as f:
                header = f.read(5)
                f.read(int.from_bytes(header[3:5], "big"))

        t = threading.Thread(target=hang_up, daemon=True)
        t.start()
        c = client()
        c.tls_set(ca_certs=pki.ca)
        with pytest.raises(ssl.SSLEOFError) as info:
            c.connect("localhost", server.getsockname()[1])
        t.join(WAIT)
    assert info.value.errno == 8
    assert str(info.value) == ("[SSL: UNEXPECTED_EOF_WHILE_READING] "
                               "EOF occurred in violation of protocol")


def test_wrong_password_for_a_traditional_key(pki):
    key = pki.legacy_key(pki.client_key, "rsa-wrongpw.key", "-aes256")
    c = client()
    # CPython loads the key in tls_set(), as paho does, and refuses it there.
    with pytest.raises(ssl.SSLError):
        c.tls_set(ca_certs=pki.ca, certfile=pki.client, keyfile=key, keyfile_password="nope")


def test_wrong_password_in_the_core_raises_ssl_error(pki, broker):
    key = pki.legacy_key(pki.client_key, "rsa-core.key", "-aes256")
    core = _core.ClientCore()
    tls = {"ca_certs": pki.ca, "certfile": pki.client, "keyfile": key,
           "keyfile_password": "nope"}
    with pytest.raises(ssl.SSLError) as info:
        core.connect(host="localhost", port=broker["mutual"], keepalive=60, client_id="k",
                     protocol=4, clean_start=True, tls=tls)
    assert "PEM lib" in str(info.value)
    assert "bad decrypt" in str(info.value)
    with pytest.raises(ssl.SSLError, match="no keyfile_password"):
        core.connect(host="localhost", port=broker["mutual"], keepalive=60, client_id="k",
                     protocol=4, clean_start=True, tls={**tls, "keyfile_password": None})
    core.connect(host="localhost", port=broker["mutual"], keepalive=60, client_id="k",
                 protocol=4, clean_start=True, tls={**tls, "keyfile_password": PASSWORD})
    assert core.wait(WAIT)
    events = core.drain()
    assert events[0][0] == _core.EV_CONNACK and events[0][2] == 0
    core.close()
