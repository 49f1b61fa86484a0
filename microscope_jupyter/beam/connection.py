"""One distribution connection: the socket, framing, and the tick discipline.

A dedicated reader thread owns the receive side. It answers every tick at
once and sends one of its own whenever we have been quiet for a quarter of
``net_ticktime``, so a notebook cell that keeps the interpreter busy for
minutes never costs the connection. If nothing arrives for a whole
``net_ticktime`` the peer is declared down, as ``net_kernel`` would.

Frames after the handshake carry a 4-byte length; a zero-length frame is a
tick. Every other frame is ``112`` (pass-through) + control term + optional
payload term. The socket layer takes an optional ``ssl.SSLContext`` for TLS
distribution, or an SSH tunnel (beam/ssh.py) whose channel stands in for the
socket; the tunnel closes with the connection.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable

from ..errors import AttachError, ConnectRefused, DecodeError, HandshakeError, NodeDown, TLSError
from . import etf
from .tls import certificate_names

__all__ = ["Connection"]

# Control message operations (erl_dist_protocol.md)
LINK, SEND, EXIT, UNLINK, REG_SEND, EXIT2 = 1, 2, 3, 4, 6, 8
MONITOR_P, DEMONITOR_P, MONITOR_P_EXIT, SEND_SENDER = 19, 20, 21, 22
PAYLOAD_EXIT, PAYLOAD_EXIT2, PAYLOAD_MONITOR_P_EXIT = 24, 26, 28
ALIAS_SEND, UNLINK_ID, UNLINK_ID_ACK = 33, 35, 36

log = logging.getLogger(__name__)

PASS_THROUGH = 112
_MAX_FRAME = 1 << 30
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TICK = b"\0\0\0\0"

Handler = Callable[[Any, Any], None]


class Connection:
    """A connected socket to one node. Thread-safe for sending."""

    def __init__(self, sock: socket.socket, target: str, net_ticktime: float):
        self.sock = sock
        self.target = target
        self.net_ticktime = float(net_ticktime)
        self.peer_flags = 0
        self._buf = bytearray()
        self._handshake_length = _U16
        self._send_lock = threading.Lock()
        self._closed = threading.Event()
        self.down_reason: str | None = None
        self.last_recv = time.monotonic()
        self.last_send = time.monotonic()
        self._reader: threading.Thread | None = None
        self.tunnel: Any = None    # the SshTunnel the socket is a channel of, if any
        self._on_message: Handler | None = None
        self._on_down: Callable[[str], None] | None = None

    # -- opening

    @classmethod
    def open(cls, host: str, port: int, target: str, net_ticktime: float,
             timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
             tunnel: Any = None) -> "Connection":
        """``tunnel``: dial through it (``tunnel.connect``, as ``socket.create_connection``);
        the connection owns it from then on."""
        connect = tunnel.connect if tunnel is not None else socket.create_connection
        try:
            sock = connect((host, port), timeout=timeout)
        except AttachError:   # the tunnel's own (an SSH host that will not forward)
            raise
        except ConnectionRefusedError as exc:
            raise ConnectRefused(f"{target} is registered in EPMD at port {port} but refused the "
                                 "connection; the node may have just died or a firewall blocks it"
                                 ) from exc
        except OSError as exc:
            raise ConnectRefused(f"could not connect to {target} at {host}:{port} "
                                 f"({exc.strerror or exc}); check the host is reachable") from exc
        if isinstance(sock, socket.socket):   # an SSH channel has no socket options
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, ConnectionResetError, TimeoutError) as exc:
                sock.close()
                names = (certificate_names(host, port, ssl_context, timeout)
                         if _wrong_host(exc) else [])
                raise tls_error(exc, target, host, names) from None
        conn = cls(sock, target, net_ticktime)
        conn.tunnel = tunnel
        if ssl_context is not None:
            # inet_tls_dist frames its handshake with 4-byte lengths ({packet, 4});
            # inet_tcp_dist with 2-byte ones.
            conn._handshake_length = _U32
        return conn

    # -- handshake framing (2-byte lengths over TCP, 4-byte over TLS)

    def send_handshake(self, payload: bytes) -> None:
        self._sendall(self._handshake_length.pack(len(payload)) + payload)

    def recv_handshake(self) -> bytes:
        header = self._handshake_length
        size = header.unpack(self._recv_exact(header.size))[0]
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout:
                raise HandshakeError(f"{self.target} stopped answering during the handshake; "
                                     "is that port an Erlang distribution port?") from None
            except ssl.SSLError as exc:   # TLS 1.3: a refused client certificate shows here
                raise tls_error(exc, self.target) from None
            except OSError as exc:
                raise EOFError(str(exc)) from exc
            if not chunk:
                raise EOFError("closed")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    # -- connected phase

    def start(self, on_message: Handler, on_down: Callable[[str], None]) -> None:
        """Switch to 4-byte frames and start the reader thread."""
        self._on_message = on_message
        self._on_down = on_down
        # The reader wakes at least every quarter tick to send our own tick.
        self.sock.settimeout(max(0.05, self.net_ticktime / 4))
        self.last_recv = self.last_send = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name=f"microscope-dist-{self.target}",
                                        daemon=True)
        self._reader.start()

    def set_net_ticktime(self, seconds: float) -> None:
        """Adopt the peer's net_ticktime, so we tick as often as it expects."""
        self.net_ticktime = float(seconds)
        if self._reader is not None:
            self.sock.settimeout(max(0.05, self.net_ticktime / 4))

    @property
    def alive(self) -> bool:
        return not self._closed.is_set()

    def send(self, control: Any, message: Any = None, *, has_message: bool = False) -> None:
        if self._closed.is_set():
            raise self.down_error()
        out = bytearray(b"\0\0\0\0")
        out.append(PASS_THROUGH)
        out.append(etf.VERSION)
        etf.encode_into(out, control)
        if has_message:
            out.append(etf.VERSION)
            etf.encode_into(out, message)
        _U32.pack_into(out, 0, len(out) - 4)
        self._sendall(bytes(out))

    def down_error(self) -> NodeDown:
        reason = self.down_reason or "closed"
        since = time.monotonic() - self.last_recv
        return NodeDown(f"lost the connection to {self.target} ({reason}; last heard from it "
                        f"{since:.1f} s ago); attach again once the node is back",
                        node=self.target, reason=reason, seconds_since_last_tick=since)

    def close(self, reason: str = "closed by us") -> None:
        self._mark_down(reason)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except (OSError, EOFError):   # an SSH channel whose connection just went
            pass
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2)
        self._close_tunnel()

    def _close_tunnel(self) -> None:
        if self.tunnel is not None:   # a tunnel serves one connection: it goes with it
            self.tunnel.close()

    def _sendall(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except (socket.timeout, OSError, EOFError) as exc:   # EOFError: an SSH channel's
                self._mark_down(f"send failed: {exc}")
                raise self.down_error() from exc
            self.last_send = time.monotonic()

    def _mark_down(self, reason: str) -> bool:
        if self._closed.is_set():
            return False
        self.down_reason = reason
        self._closed.set()
        return True

    def _read_loop(self) -> None:
        reason = "closed"
        try:
            reason = self._read_frames()
        except Exception as exc:  # the reader must never die silently
            log.exception("distribution reader for %s failed", self.target)
            reason = f"reader failed: {exc}"
        by_itself = self._mark_down(reason)   # else close() is closing it, tunnel included
        try:
            self.sock.close()
        except (OSError, EOFError):
            pass
        if by_itself:
            self._close_tunnel()
        if self._on_down is not None:
            self._on_down(self.down_reason or reason)

    def _read_frames(self) -> str:
        buf = self._buf
        while not self._closed.is_set():
            # Parse every complete frame in the buffer.
            while len(buf) >= 4:
                size = _U32.unpack_from(buf, 0)[0]
                if size == 0:
                    del buf[:4]
                    self._send_tick()  # answer every tick at once
                    continue
                if size > _MAX_FRAME:
                    return f"frame of {size} bytes exceeds the {_MAX_FRAME}-byte cap"
                if len(buf) < 4 + size:
                    break
                with memoryview(buf) as view:   # one copy, not two (a slice, then bytes)
                    frame = bytes(view[4:4 + size])
                del buf[:4 + size]
                self._dispatch(frame)
            try:
                chunk = self.sock.recv(1 << 18)
            except socket.timeout:
                chunk = None
            except OSError as exc:
                if self._closed.is_set():
                    return self.down_reason or "closed by us"
                return f"socket error: {exc}"
            now = time.monotonic()
            if chunk is None:
                if now - self.last_recv > self.net_ticktime:
                    return f"no tick for {now - self.last_recv:.1f} s (net_ticktime {self.net_ticktime:g} s)"
            elif not chunk:
                return "the node closed the connection"
            else:
                self.last_recv = now
                buf += chunk
            if now - self.last_send >= max(0.05, self.net_ticktime / 4):
                self._send_tick()
        return self.down_reason or "closed by us"

    def _send_tick(self) -> None:
        try:
            self._sendall(_TICK)
        except NodeDown:
            pass

    def _dispatch(self, frame: bytes) -> None:
        if frame[0] != PASS_THROUGH:
            log.warning("dropping frame with header %d from %s (not negotiated)", frame[0], self.target)
            return
        try:
            control, offset = etf.decode_from(frame, 1)
            message = etf.decode_from(frame, offset)[0] if offset < len(frame) else _NO_MESSAGE
        except DecodeError as exc:
            # One bad frame must not take the connection down; say so loudly.
            log.error("undecodable frame from %s: %s", self.target, exc)
            return
        if self._on_message is not None:
            self._on_message(control, message)


class _NoMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no message>"


_NO_MESSAGE = _NoMessage()
NO_MESSAGE = _NO_MESSAGE


# X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: the chain verified
# (OpenSSL checks the name last), so the CA was right and the host name was not.
_NAME_MISMATCH = (62, 64)


def _wrong_host(exc: BaseException) -> bool:
    return isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code in _NAME_MISMATCH


def tls_error(exc: BaseException, target: str, host: str = "",
              names: list[str] | None = None) -> TLSError:
    """One line for what went wrong setting up TLS distribution, and what to do.
    ``names``: what the certificate is for, when the host name was the trouble."""
    if _wrong_host(exc):
        if not names:
            return TLSError(f"{target}'s certificate is not for the host {host} it was reached "
                            f"at ({exc.verify_message}); attach by a host name its "
                            f"subjectAltName lists, or add {host} to it")
        return TLSError(f"{target}'s certificate is for {', '.join(names)}, not for the host "
                        f"{host} it was reached at; attach by a host name it lists, or add "
                        f"{host} to its subjectAltName")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSError(f"{target}'s certificate did not verify ({exc.verify_message}); pass "
                        "the CA that signed it: tls={'cafile': ...}")
    reason = getattr(exc, "reason", None) or str(exc)
    if any(word in str(reason).upper() for word in ("CERTIFICATE", "UNKNOWN_CA", "ACCESS_DENIED",
                                                     "HANDSHAKE_FAILURE")):
        return TLSError(f"{target} refused our client certificate ({reason}); pass a certfile "
                        "and keyfile signed by a CA the node trusts: tls={'certfile': ..., "
                        "'keyfile': ...}")
    # A plain port reads our ClientHello as a 2-byte length and waits for that
    # many bytes: until our timeout, or its net_setuptime (7 s), when it hangs up.
    if ("WRONG_VERSION_NUMBER" in str(reason).upper()
            or isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, TimeoutError))):
        return TLSError(f"{target} does not speak TLS on its distribution port ({reason}); "
                        "attach without tls=")
    return TLSError(f"TLS with {target} failed ({reason})")
