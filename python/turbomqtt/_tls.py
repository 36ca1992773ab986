"""TLS settings of both client faces, translated into the options the core's rustls takes.

The core reads one dict (see ``tls_options`` in the bindings): ``verify``,
``check_hostname``, ``server_hostname``, ``min_version``/``max_version`` ("1.2", "1.3";
lower versions are refused there), ``ciphers`` (OpenSSL names, as
``SSLContext.get_ciphers()`` lists them; the core keeps the suites rustls has),
``ca_certs``/``certfile``/``keyfile`` (file names), ``keyfile_password`` (str or
bytes), ``alpn``, ``ca_data`` (DER certificates) and ``use_native_roots``.

Two sources feed it:

- an ``ssl.SSLContext`` (paho's ``tls_set``/``tls_set_context``, the asyncio client's
  ``tls=context``): :func:`from_context`. A context exposes its verify mode, hostname
  check, version bounds, enabled ciphers and the CA certificates loaded into it; it
  cannot reveal a client certificate, ALPN protocols, lazily loaded CA paths, CRLs or
  an ``sni_callback``, so file names and ALPN travel beside it (:class:`Files`).
- plain settings (the asyncio client's ``TLSParameters`` and dicts): :func:`from_settings`.
"""

from __future__ import annotations

from typing import Any, TypedDict

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

__all__ = ["Files", "from_context", "from_settings", "resolve_ciphers"]


class Files(TypedDict):
    """What ``tls_set`` loads from files, which a context cannot give back."""

    ca_certs: str | None
    certfile: str | None
    keyfile: str | None
    keyfile_password: str | bytes | None
    alpn: list[str] | None


def _versions(context: Any) -> tuple[str | None, str | None]:
    """The context's (minimum, maximum) TLS versions in the core's words.

    ``MINIMUM_SUPPORTED``/``MAXIMUM_SUPPORTED`` and a minimum below 1.2 leave the bound
    open (rustls has nothing older); a maximum of 1.0 or 1.1, or a protocol pinned to
    one version (``ssl.PROTOCOL_TLSv1_2`` etc.), is passed on so the core can refuse
    what rustls cannot speak.
    """
    tls_version = getattr(ssl, "TLSVersion", None)
    named = {
        getattr(tls_version, "TLSv1_2", None): "1.2",
        getattr(tls_version, "TLSv1_3", None): "1.3",
    }
    minimum = named.get(getattr(context, "minimum_version", None))
    maximum = named.get(getattr(context, "maximum_version", None))
    for name, number in (("TLSv1", "1.0"), ("TLSv1_1", "1.1")):
        if getattr(context, "maximum_version", None) == getattr(tls_version, name, 0):
            maximum = number
    for name, number in (
        ("PROTOCOL_TLSv1", "1.0"),
        ("PROTOCOL_TLSv1_1", "1.1"),
        ("PROTOCOL_TLSv1_2", "1.2"),
    ):
        if getattr(context, "protocol", None) == getattr(ssl, name, object()):
            minimum = maximum = number
    return minimum, maximum


def from_context(
    context: Any,
    *,
    insecure: bool = False,
    files: Files | None = None,
    server_hostname: str | None = None,
) -> dict[str, Any]:
    """The core's options for an ``ssl.SSLContext`` (or an object shaped like one).

    ``insecure`` turns the hostname check off whatever the context says (paho's
    ``tls_insecure_set(True)``). With ``files`` (from ``tls_set``) the file names go to
    the core, which loads them itself, and no ``ca_certs`` means the system's roots;
    without, the CA certificates loaded into the context are handed over as DER, or
    the system's roots when it holds none.
    """
    options: dict[str, Any] = {
        "verify": context.verify_mode != ssl.CERT_NONE,
        "check_hostname": bool(getattr(context, "check_hostname", not insecure))
        and not insecure,
    }
    if server_hostname is not None:
        options["server_hostname"] = server_hostname
    minimum, maximum = _versions(context)
    if minimum:
        options["min_version"] = minimum
    if maximum:
        options["max_version"] = maximum
    get_ciphers = getattr(context, "get_ciphers", None)
    if get_ciphers is not None:
        # OpenSSL's resolution of the cipher string; the core maps the names to rustls.
        options["ciphers"] = [c["name"] for c in get_ciphers()]
    if files is not None:
        for key in ("ca_certs", "certfile", "keyfile", "keyfile_password", "alpn"):
            value = files[key]
            if value is not None:
                options[key] = value
        if files["ca_certs"] is None:
            # tls_set() without ca_certs means the system's trust store (load_default_certs).
            options["use_native_roots"] = True
        return options
    cas = context.get_ca_certs(binary_form=True)
    if cas:
        options["ca_data"] = [bytes(c) for c in cas]
        options["use_native_roots"] = False
    else:
        options["use_native_roots"] = True
    return options


def resolve_ciphers(ciphers: str) -> list[str]:
    """The OpenSSL names an OpenSSL cipher string selects, as ``set_ciphers`` resolves it.

    Raises ``ssl.SSLError('No cipher can be selected.')`` for a string selecting nothing,
    as ``SSLContext.set_ciphers`` (and paho's ``tls_set``) does.
    """
    if ssl is None:
        raise ValueError("This platform has no SSL/TLS.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(ciphers)
    return [c["name"] for c in context.get_ciphers()]


def from_settings(
    *,
    ca_certs: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    keyfile_password: str | bytes | None = None,
    verify: bool = True,
    check_hostname: bool = True,
    min_version: str | None = None,
    max_version: str | None = None,
    ciphers: str | None = None,
    alpn: list[str] | tuple[str, ...] = (),
    server_hostname: str | None = None,
) -> dict[str, Any]:
    """The core's options for plain settings (versions as "1.2"/"1.3", ``ciphers`` as an
    OpenSSL cipher string, resolved at once). ``ca_certs=None`` uses the system roots."""
    options: dict[str, Any] = {
        "ca_certs": ca_certs,
        "certfile": certfile,
        "keyfile": keyfile,
        "keyfile_password": keyfile_password,
        "verify": verify,
        "check_hostname": check_hostname,
        "min_version": min_version,
        "max_version": max_version,
        "ciphers": resolve_ciphers(ciphers) if ciphers is not None else None,
        "alpn": list(alpn),
        "server_hostname": server_hostname,
    }
    return {k: v for k, v in options.items() if v is not None}
