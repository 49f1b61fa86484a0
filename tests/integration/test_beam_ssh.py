"""Attaching through SSH (beam/ssh.py), against a real sshd the test starts on a
high port with generated keys, forwarding to a real node.

The proof that Python reaches the node only through SSH: while attached, every
TCP connect this process makes is checked, and only the sshd's port is let
through (EPMD and the distribution port are refused to it directly).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import microscope_jupyter as mic
from microscope_jupyter import errors
from nodes import wait_until

USER = getpass.getuser()
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def established(port: int, only_ours: bool = False) -> list[str]:
    """TCP connections from or to ``port`` on this machine that are still up
    (``only_ours``: this process's, to it)."""
    ours = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.islink(f"/proc/self/fd/{fd}")}
    up = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        ends = [int(end.split(":")[1], 16) for end in fields[1:3]]
        if fields[3] != "01" or port not in ends:
            continue
        if not only_ours or (ends[1] == port and f"socket:[{fields[9]}]" in ours):
            up.append(line)
    return up


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd -D on 127.0.0.1:<high port>: a generated host key, one authorised user key;
    on a second port, the same sshd with TCP forwarding off."""
    assert Path(SSHD).exists(), "sshd is missing: apt-get install openssh-server (./dev test does)"
    tmp = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key", "stranger_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / key)],
                       check=True)
    (tmp / "authorized_keys").write_text((tmp / "user_key.pub").read_text())
    port, no_forwarding = free_port(), free_port()
    host_key = (tmp / "host_key.pub").read_text()
    (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}"
                                     f"[127.0.0.1]:{no_forwarding} {host_key}")
    (tmp / "sshd_config").write_text(f"""\
Port {port}
Port {no_forwarding}
ListenAddress 127.0.0.1
HostKey {tmp / 'host_key'}
AuthorizedKeysFile {tmp / 'authorized_keys'}
PidFile none
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
X11Forwarding no
PermitTTY no
LogLevel ERROR
Match LocalPort {no_forwarding}
    AllowTcpForwarding no
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege separation, as root
    log = open(tmp / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(tmp / "sshd_config")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        wait_until(lambda: accepts(port) or proc.poll() is not None, timeout=10)
        assert proc.poll() is None, (tmp / "sshd.log").read_text()
        yield SimpleNamespace(port=port, no_forwarding=no_forwarding, dir=tmp)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def ssh_home(sshd, tmp_path, monkeypatch):
    """A home whose ~/.ssh/config names the sshd four ways; no ssh-agent."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "empty_known_hosts").write_text("")
    entry = ("Host {alias}\n    HostName 127.0.0.1\n    Port {port}\n    IdentityFile {key}\n"
             "    IdentitiesOnly yes\n    UserKnownHostsFile {known}\n")
    (ssh / "config").write_text(
        entry.format(alias="bastion", port=sshd.port, key=sshd.dir / "user_key",
                     known=sshd.dir / "known_hosts")
        + entry.format(alias="with-a-stranger-key", port=sshd.port, key=sshd.dir / "stranger_key",
                       known=sshd.dir / "known_hosts")
        + entry.format(alias="unknown-host-key", port=sshd.port, key=sshd.dir / "user_key",
                       known=ssh / "empty_known_hosts")
        + entry.format(alias="no-forwarding", port=sshd.no_forwarding, key=sshd.dir / "user_key",
                       known=sshd.dir / "known_hosts"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return ssh


@pytest.fixture(scope="module")
def far_node(node_factory):
    return node_factory("otp25", prefix="far", long_name=True)


@pytest.fixture
def only_ssh(sshd, monkeypatch):
    """Refuse every TCP connect this process makes, except to the sshd: what is
    reached at all is reached through it. Yields the addresses dialled."""
    dialled = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        dialled.append(address[:2])
        if tuple(address[:2]) != ("127.0.0.1", sshd.port):
            raise ConnectionRefusedError(f"{address} is reachable only through the SSH host")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return dialled


ECHO = """P = spawn(fun Loop() -> receive stop -> ok; _ -> Loop() end end),
register(ssh_echo, P), P."""


def test_a_node_is_attached_traced_and_detached_through_one_ssh_connection(far_node, ssh_home,
                                                                          sshd, only_ssh):
    s = mic.attach(far_node.name, cookie=far_node.cookie, ssh=f"{USER}@bastion")
    tunnel = s._remote.conn.tunnel
    try:
        assert s.node_info()["otp_release"] == "25"
        s.eval_erlang(ECHO)
        rec = s.trace("ssh_echo", max_events=100)
        s.eval_erlang("ssh_echo ! {hello, over_ssh}, ok.")
        wait_until(lambda: (s.events.kind == "receive").any(), timeout=10)
        rec.stop()
        assert "over_ssh" in s.events[s.events.kind == "receive"].text.iloc[0]
        assert len(established(sshd.port, only_ours=True)) == 1   # one SSH connection
    finally:
        if s.attached:
            s.eval_erlang("ssh_echo ! stop, ok.")
        s.detach()
    assert set(only_ssh) == {("127.0.0.1", sshd.port)}   # EPMD and the node: never directly
    assert only_ssh.count(("127.0.0.1", sshd.port)) == 1
    assert not tunnel.active
    wait_until(lambda: not established(sshd.port), timeout=10)   # the tunnel closed with detach


def test_the_magic_attaches_over_ssh(ip, far_node, ssh_home, sshd, only_ssh, tmp_path):
    cookie_file = tmp_path / "cookie"
    cookie_file.write_text(far_node.cookie)
    s = ip.run_line_magic("beam_attach", f"{far_node.name} --cookie-file {cookie_file} "
                                         f"--ssh {USER}@bastion")
    assert s.attached and s._remote.conn.tunnel.active
    ip.run_line_magic("beam_detach", "")
    assert not s._remote.conn.tunnel.active


def closed_port() -> int:
    return free_port()     # nothing listens there


@pytest.mark.parametrize("node, ssh, epmd_port, error, words", [
    ("far", "with-a-stranger-key", None, errors.SSHError, "refused our SSH keys"),
    ("far", "nobody_here@bastion", None, errors.SSHError, "nobody_here@127.0.0.1"),
    ("far", "unknown-host-key", None, errors.SSHError, "not in known_hosts"),
    ("far", f"{USER}@127.0.0.1:CLOSED", None, errors.SSHError, "could not reach the SSH host"),
    ("far", "no-forwarding", None, errors.SSHError, "does not allow TCP forwarding"),
    ("nobody@127.0.0.1", f"{USER}@bastion", None, errors.NodeNotFound, "knows no node named"),
    ("far", f"{USER}@bastion", "CLOSED", errors.EpmdUnreachable, "no EPMD answered"),
], ids=["wrong-key", "wrong-user", "unknown-host-key", "ssh-host-unreachable", "no-forwarding",
        "node-unknown-on-the-far-side", "no-epmd-on-the-far-side"])
def test_each_failure_is_one_line_and_leaves_no_connection(far_node, ssh_home, sshd, node, ssh,
                                                           epmd_port, error, words):
    ssh = ssh.replace("CLOSED", str(closed_port()))
    epmd_port = closed_port() if epmd_port == "CLOSED" else epmd_port
    with pytest.raises(error) as raised:
        mic.attach(far_node.name if node == "far" else node, cookie=far_node.cookie, ssh=ssh,
                   epmd_port=epmd_port, timeout=5)
    message = str(raised.value)
    assert words in message and "\n" not in message, message
    assert far_node.cookie not in message
    wait_until(lambda: not established(sshd.port), timeout=10)
