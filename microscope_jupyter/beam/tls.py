"""TLS distribution (nodes started with ``-proto_dist inet_tls``): the client side.

    mic.attach("app@host", tls={"cafile": "ca.pem", "certfile": "me.pem", "keyfile": "me.key"})

EPMD stays plain TCP, as the node's own does; the distribution connection is
wrapped in TLS before the handshake (which ``inet_tls_dist`` frames with
4-byte lengths). The node's certificate is verified against ``cafile`` by
default, host name included; ``verify=False`` skips both (not for
production). A node that asks for a client certificate
(``fail_if_no_peer_cert``) gets ``certfile``/``keyfile``.
"""

from __future__ import annotations

import socket
import ssl
import weakref
from typing import Any, Mapping

from ..errors import TLSError

__all__ = ["client_context", "certificate_names"]

_KEYS = {"cafile", "certfile", "keyfile", "verify"}
# The options each context we made came from: certificate_names makes its twin.
_MADE_FROM: "weakref.WeakKeyDictionary[ssl.SSLContext, dict]" = weakref.WeakKeyDictionary()


def client_context(tls: "ssl.SSLContext | Mapping[str, Any] | None") -> ssl.SSLContext | None:
    """An SSLContext from ``tls``: one already made, or a mapping of ``cafile``,
    ``certfile``, ``keyfile`` and ``verify`` (default True)."""
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    unknown = set(tls) - _KEYS
    if unknown:
        raise TLSError(f"unknown tls option(s) {sorted(unknown)}: use {sorted(_KEYS)}")
    verify = tls.get("verify", True)
    if verify and not tls.get("cafile"):
        raise TLSError("tls= needs the CA that signed the node's certificate: "
                       "tls={'cafile': ...} (or verify=False, not for production)")
    context = _context(tls, verify)
    _MADE_FROM[context] = dict(tls)
    return context


def certificate_names(host: str, port: int, context: ssl.SSLContext, timeout: float) -> list[str]:
    """The names the node's certificate is for (its subjectAltName), so that a
    host-name mismatch can say which to use. Read over a second handshake that
    checks the chain but not the name; [] when that fails too, or for a context
    the caller made (it cannot be copied)."""
    made_from = _MADE_FROM.get(context)
    if made_from is None:
        return []
    twin = _context(made_from, True)
    twin.check_hostname = False
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                twin.wrap_socket(raw) as sock:
            found = sock.getpeercert() or {}
    except (OSError, ValueError):   # ssl.SSLError is an OSError
        return []
    return [str(value) for _, value in found.get("subjectAltName", ())]


def _context(tls: Mapping[str, Any], verify: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=tls.get("cafile"))
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if tls.get("certfile"):
            context.load_cert_chain(tls["certfile"], tls.get("keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"could not load the TLS files ({exc}); check the paths and that the "
                       "key matches the certificate") from None
    return context
