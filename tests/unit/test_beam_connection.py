"""beam.connection against fake peers on a local socket: what each TLS failure says."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

from microscope_jupyter.beam.connection import Connection
from microscope_jupyter.errors import TLSError


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_tls_to_a_plain_port_that_hangs_up_says_it_does_not_speak_tls():
    """A plain distribution port reads our ClientHello as a 2-byte length, waits
    for that many bytes and closes at its net_setuptime: EOF mid-handshake."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def plain_node():
            peer, _ = server.accept()
            with peer:
                peer.recv(65536)        # all of it: a close with unread bytes is a reset
        thread = threading.Thread(target=plain_node, daemon=True)
        thread.start()
        with pytest.raises(TLSError, match=r"^plain@127\.0\.0\.1 does not speak TLS on its "
                                           r"distribution port \(.*\); attach without tls=$"):
            Connection.open("127.0.0.1", server.getsockname()[1], "plain@127.0.0.1", 60,
                            timeout=5, ssl_context=_unverified())
        thread.join(5)
