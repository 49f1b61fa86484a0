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

import ssl
from typing import Any, Mapping

from ..errors import TLSError

__all__ = ["client_context"]

_KEYS = {"cafile", "certfile", "keyfile", "verify"}


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
