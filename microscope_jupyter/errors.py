"""Every error the library raises, in one tree.

Each message says what happened and what to do next, in one line, so a
notebook user sees a sentence rather than a stack of frames. A cookie never
appears in any message: errors are built from node names, hosts, ports and
flags only.

    MicroscopeError
    ├── AttachError                 could not reach or join the node
    │   ├── EpmdUnreachable         no EPMD answered on host:port
    │   ├── NodeNotFound            EPMD does not know the name (lists the ones it does)
    │   ├── ConnectRefused          EPMD knows the node, but its port refused us
    │   ├── AuthError               the node rejected the cookie
    │   ├── CookieMissing           no cookie in the argument, env or ~/.erlang.cookie
    │   ├── HandshakeError          protocol or capability-flag mismatch
    │   ├── TLSError                TLS distribution: a certificate not trusted or refused,
    │   │                           or one side not speaking TLS
    │   └── SSHError                attaching through an SSH host (ssh=): it could not be
    │                               reached, refused our keys, has an unknown host key, or
    │                               does not forward TCP
    ├── NodeDown                    an established connection was lost
    ├── RpcError
    │   ├── RpcTimeout              no reply within the timeout
    │   └── BadRpc                  the remote call raised; carries the remote reason
    ├── AgentError                  the in-node agent could not be built, loaded or run
    ├── TraceError                  a trace could not start (one already runs, ...)
    │   ├── TraceSpecError          the agent refused the trace spec (unknown or dangerous target)
    │   └── TraceLimitError         a limit that cannot work (zero, negative, wrong type)
    ├── QueryError                  a question about a recording with no answer (no such
    │                               process, nothing matches, empty recording, bad rule)
    ├── PatternError                an Elixir pattern string that does not parse
    ├── RecordingError              a saved recording that cannot be written (the path holds
    │                               one already, or other files) or read (damaged, partial,
    │                               mixed, an unknown format version); says which file
    ├── NotebookError               a file ``microscope report`` cannot read as a notebook
    │                               (not JSON, not a notebook, invalid, bad widget state)
    ├── BisectError                 git bisect could not run (no repository, unknown
    │                               commit) or the scenario raised
    ├── DecodeError                 malformed external term format (names offset and tag)
    └── EncodeError                 a Python value with no Erlang term form

Lower-level exceptions (``OSError``, ``socket.timeout``, ``struct.error``)
never escape: they are mapped to the most specific error above and chained
with ``raise ... from``. The tree mixes in the matching builtin
(``ConnectionError``, ``TimeoutError``, ``ValueError``) so generic handlers
keep working.
"""

from __future__ import annotations

__all__ = [
    "MicroscopeError",
    "AttachError",
    "EpmdUnreachable",
    "NodeNotFound",
    "ConnectRefused",
    "AuthError",
    "CookieMissing",
    "HandshakeError",
    "TLSError",
    "SSHError",
    "NodeDown",
    "RpcError",
    "RpcTimeout",
    "BadRpc",
    "AgentError",
    "TraceError",
    "TraceSpecError",
    "TraceLimitError",
    "QueryError",
    "PatternError",
    "RecordingError",
    "NotebookError",
    "BisectError",
    "DecodeError",
    "EncodeError",
]


class MicroscopeError(Exception):
    """Base of every error raised by microscope_jupyter."""


class AttachError(MicroscopeError, ConnectionError):
    """Attaching to a node failed before a connection was established."""


class EpmdUnreachable(AttachError):
    """No EPMD (Erlang port mapper) answered on the node's host."""


class NodeNotFound(AttachError):
    """EPMD is up but does not know the requested node name."""

    def __init__(self, message: str, known_names: list[str] | None = None):
        super().__init__(message)
        self.known_names = list(known_names or [])


class ConnectRefused(AttachError):
    """EPMD gave a port for the node but the connection was refused."""


class AuthError(AttachError):
    """The node rejected our cookie."""


class CookieMissing(AttachError):
    """No cookie was given and none could be found."""


class TLSError(AttachError):
    """TLS distribution could not be set up: the node's certificate did not
    verify, the node refused ours, or one side does not speak TLS."""


class SSHError(AttachError):
    """The SSH host given as ``ssh=`` could not carry the attach: unreachable,
    our keys refused, its host key unknown or changed, or TCP forwarding off."""


class HandshakeError(AttachError):
    """The distribution handshake failed (flags, version or protocol)."""

    def __init__(self, message: str, missing_flags: list[str] | None = None):
        super().__init__(message)
        self.missing_flags = list(missing_flags or [])


class NodeDown(MicroscopeError, ConnectionError):
    """An established connection to the node was lost."""

    def __init__(self, message: str, node: str = "", reason: str = "",
                 seconds_since_last_tick: float | None = None):
        super().__init__(message)
        self.node = node
        self.reason = reason
        self.seconds_since_last_tick = seconds_since_last_tick


class RpcError(MicroscopeError):
    """A remote procedure call did not produce a result."""


class RpcTimeout(RpcError, TimeoutError):
    """The node did not reply to an rpc within the timeout."""


class BadRpc(RpcError):
    """The remote call raised; ``reason`` holds the decoded remote term."""

    def __init__(self, message: str, reason: object = None):
        super().__init__(message)
        self.reason = reason


class AgentError(MicroscopeError):
    """The in-node agent could not be built, loaded or started."""


class TraceError(MicroscopeError):
    """A trace could not be started as asked."""


class TraceSpecError(TraceError, ValueError):
    """The trace spec names something unknown or dangerous; nothing was traced."""

    def __init__(self, message: str, reason: object = None):
        super().__init__(message)
        self.reason = reason


class TraceLimitError(TraceSpecError):
    """A limit that cannot work, such as ``max_events=0``; nothing was traced."""


class QueryError(MicroscopeError, LookupError):
    """A query about a recording that has no answer; the message says what to ask instead."""


class PatternError(MicroscopeError, ValueError):
    """A pattern string that is not a valid Elixir match pattern."""


class RecordingError(MicroscopeError, ValueError):
    """A saved recording that cannot be written or read; nothing was half-written or half-read."""


class NotebookError(MicroscopeError, ValueError):
    """A file that ``microscope report`` cannot read as a Jupyter notebook."""


class BisectError(MicroscopeError):
    """git bisect could not run (no repository, an unknown commit), or the scenario raised."""


class DecodeError(MicroscopeError, ValueError):
    """Bytes that are not valid Erlang external term format."""

    def __init__(self, message: str, offset: int | None = None, tag: int | None = None):
        super().__init__(message)
        self.offset = offset
        self.tag = tag


class EncodeError(MicroscopeError, TypeError):
    """A Python value that has no Erlang term representation."""
