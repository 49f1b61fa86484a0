"""Attach through an SSH host: EPMD and the distribution port ride one SSH connection.

    s = mic.attach("app@10.0.0.5", ssh="deploy@bastion")   # %beam_attach app@10.0.0.5 --ssh deploy@bastion

A node in production usually answers only inside its network. Here the node
need only be reachable from the SSH host: we open one SSH connection to it,
and each TCP connection the attach needs is a ``direct-tcpip`` channel of
that connection, which the SSH host opens to ``host:port`` as *it* resolves
them. First EPMD's port (PORT_PLEASE2), then the distribution port EPMD
named. Nothing listens on this machine, so no other local user can ride the
tunnel (a ``-L`` forward would be open to all of them).

The SSH side is paramiko (``pip install 'microscope-jupyter[ssh]'``) with what
``ssh`` itself would use: ``~/.ssh/config`` (HostName, User, Port,
IdentityFile, IdentitiesOnly, UserKnownHostsFile, StrictHostKeyChecking,
ProxyCommand), the keys in ``~/.ssh`` and ssh-agent. A host key not in
known_hosts is refused, as ``ssh`` does. The tunnel closes with the
connection it carries: on detach, or when the node goes down.
"""

from __future__ import annotations

import getpass
import os
import shlex
from pathlib import Path
from typing import Any

from ..errors import SSHError

__all__ = ["SshTunnel", "split_destination"]

# RFC 4254 channel-open failure codes.
_PROHIBITED, _CONNECT_FAILED = 1, 2


def split_destination(destination: str) -> tuple[str | None, str, int | None]:
    """``"deploy@bastion:2222"`` -> ``("deploy", "bastion", 2222)``; user and port optional."""
    user, _, rest = destination.rpartition("@")
    host, port = rest, None
    if rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit():
            raise SSHError(f"expected ssh='user@host' or 'user@host:port', got {destination!r}")
        port = int(port_text)
    if not host:
        raise SSHError(f"expected ssh='user@host' or 'user@host:port', got {destination!r}")
    return user or None, host, port


class SshTunnel:
    """One SSH connection; ``connect((host, port))`` opens a channel to a place
    the SSH host can reach. ``connect`` takes ``socket.create_connection``'s
    arguments and returns a socket-like channel (recv, sendall, settimeout,
    shutdown, close), so EPMD and the distribution connection use it unchanged."""

    def __init__(self, destination: str, timeout: float = 10.0):
        try:
            import paramiko
        except ImportError:
            raise SSHError("attaching over SSH needs paramiko: pip install "
                           "'microscope-jupyter[ssh]'") from None
        self._paramiko = paramiko
        user, alias, port = split_destination(destination)
        options = _config(alias)
        self.host = options.get("hostname", alias)
        self.port = port or int(options.get("port", 22))
        self.user = user or options.get("user") or getpass.getuser()
        self.destination = f"{self.user}@{alias}" + (f":{port}" if port else "")
        if "proxyjump" in options:
            raise SSHError(f"~/.ssh/config gives {alias} a ProxyJump, which attaching does not "
                           "follow; pass the last jump host as ssh= instead")
        client = paramiko.SSHClient()
        for known in _known_hosts_files(options):
            client.load_system_host_keys(str(known))
        strict = options.get("stricthostkeychecking", "yes").lower()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if strict in ("no", "off")
                                           else paramiko.RejectPolicy())
        keys = [str(Path(k).expanduser()) for k in options.get("identityfile", [])
                if Path(k).expanduser().exists()]
        proxy = options.get("proxycommand")
        try:
            client.connect(
                self.host, self.port, username=self.user, key_filename=keys or None,
                look_for_keys=options.get("identitiesonly", "no").lower() != "yes",
                allow_agent=True, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                channel_timeout=timeout,
                sock=paramiko.ProxyCommand(proxy) if proxy and proxy.lower() != "none" else None)
        except BaseException as exc:
            client.close()
            raise self._error(exc) from None
        self._client = client
        self._transport = client.get_transport()
        self._transport.set_keepalive(30)
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"<SshTunnel {self.destination} {'open' if self.active else 'closed'}>"

    @property
    def active(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def connect(self, address: tuple[str, int], timeout: float | None = None) -> Any:
        """A channel to ``address`` as the SSH host reaches it. Where it cannot,
        an OSError naming the SSH host (the callers turn it into their one line)."""
        host, port = address
        if not self.active:
            raise ConnectionAbortedError(f"the SSH connection to {self.destination} is closed")
        try:
            channel = self._transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                                   timeout=timeout or self._timeout)
        except self._paramiko.ChannelException as exc:
            if exc.code == _PROHIBITED:
                raise SSHError(f"the SSH server {self.destination} does not allow TCP forwarding "
                               f"({exc.text}); it needs AllowTcpForwarding yes in its "
                               "sshd_config") from None
            raise ConnectionRefusedError(
                f"{self.destination} could not connect to {host}:{port}: {exc.text}") from None
        except self._paramiko.SSHException as exc:
            raise ConnectionAbortedError(f"through {self.destination}: {exc}") from None
        channel.settimeout(timeout or self._timeout)
        return channel

    def close(self) -> None:
        """Close every channel and the SSH connection. Safe to call twice."""
        client, self._transport = getattr(self, "_client", None), None
        if client is not None:
            client.close()

    def _error(self, exc: BaseException) -> BaseException:
        """One line for an SSH connection that could not be made, and what to do."""
        p = self._paramiko
        where = f"{self.host}:{self.port}" if self.port != 22 else self.host
        if isinstance(exc, p.BadHostKeyException):
            return SSHError(f"the SSH host key of {where} does not match known_hosts; if the "
                            f"host really changed keys, remove the old one (ssh-keygen -R "
                            f"{self.host}) and connect once with ssh to check the new one")
        if isinstance(exc, p.AuthenticationException):
            return SSHError(f"{self.user}@{where} refused our SSH keys; check the user name and "
                            "that your key (IdentityFile in ~/.ssh/config, or ssh-agent) is "
                            f"authorised there: ssh {self.destination} true")
        if isinstance(exc, p.SSHException) and "known_hosts" in str(exc):
            return SSHError(f"the SSH host key of {where} is not in known_hosts; connect once "
                            f"with ssh {self.destination} to check and add it")
        if isinstance(exc, OSError):   # refused, unreachable, unknown name, timeout
            first = next(iter(getattr(exc, "errors", {}).values()), exc)   # one per address tried
            reason = getattr(first, "strerror", None) or str(first) or type(first).__name__
            return SSHError(f"could not reach the SSH host {where} ({reason}); check its name and "
                            "port, and that sshd runs there")
        if isinstance(exc, p.SSHException):
            return SSHError(f"SSH to {self.destination} failed ({exc}); try ssh "
                            f"{self.destination} true")
        return exc


def _config(alias: str) -> dict[str, Any]:
    """What ~/.ssh/config says about ``alias`` (paramiko's lookup: lower-case keys)."""
    import paramiko

    path = Path("~/.ssh/config").expanduser()
    if not path.exists():
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(alias))
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise SSHError(f"could not read {path} ({exc}); fix it, or pass ssh='user@host:port'"
                       ) from None


def _known_hosts_files(options: dict[str, Any]) -> list[Path]:
    listed = options.get("userknownhostsfile")
    names = shlex.split(listed) if listed else ["~/.ssh/known_hosts"]
    names.append("/etc/ssh/ssh_known_hosts")
    files = [Path(os.path.expandvars(n)).expanduser() for n in names]
    return [f for f in files if f.is_file()]
