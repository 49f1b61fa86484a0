"""RemoteNode's control-message handling against a fake connection.

The real-node tests cover what OTP 25/28 send; this covers the forms they
do not send to us because of the flags we negotiate (non-payload EXIT,
EXIT2, MONITOR_P_EXIT, plain SEND) and what we answer.
"""

from __future__ import annotations

import pytest

from microscope_jupyter.beam import node as n
from microscope_jupyter.beam import rpc
from microscope_jupyter.beam.handshake import OUR_FLAGS
from microscope_jupyter.beam.terms import Atom, Pid, Reference
from microscope_jupyter.errors import BadRpc, NodeDown

PEER = "peer@host"


class FakeConnection:
    def __init__(self):
        self.sent: list = []
        self.alive = True
        self.down_reason = None

    def send(self, control, message=None, *, has_message=False):
        self.sent.append((control, message) if has_message else (control,))

    def down_error(self):
        return NodeDown(f"lost the connection to {PEER}", node=PEER, reason="test")

    def close(self):
        self.alive = False


@pytest.fixture
def wired():
    local = n.LocalNode()
    local.name_for("host")
    conn = FakeConnection()
    remote = n.RemoteNode(local, conn, PEER, OUR_FLAGS)
    local.connections[PEER] = remote
    return local, remote, conn


def remote_pid(i=1):
    return Pid(Atom(PEER), i, 0, 5)


def test_plain_send_and_legacy_exit_forms(wired):
    local, remote, conn = wired
    box = local.mailbox()
    remote._on_message((n.SEND, Atom(""), box.pid), "hello")
    remote._on_message((n.EXIT, remote_pid(), box.pid, Atom("boom")), n.NO_MESSAGE)
    remote._on_message((n.EXIT2, remote_pid(2), box.pid, Atom("kill")), n.NO_MESSAGE)
    assert box.drain() == ["hello", (n.A_EXIT, remote_pid(), Atom("boom")),
                           (n.A_EXIT, remote_pid(2), Atom("kill"))]


def test_legacy_monitor_exit(wired):
    local, remote, conn = wired
    box = local.mailbox()
    ref = Reference(Atom(local.name), 1, (1, 2, 3))
    remote._on_message((n.MONITOR_P_EXIT, remote_pid(), box.pid, ref, Atom("gone")), n.NO_MESSAGE)
    assert box.receive(timeout=0) == (n.A_DOWN, ref, n.A_PROCESS, remote_pid(), Atom("gone"))


def test_link_to_unknown_pid_answers_noproc(wired):
    local, remote, conn = wired
    ghost = Pid(Atom(local.name), 999, 0, local.creation)
    remote._on_message((n.LINK, remote_pid(), ghost), n.NO_MESSAGE)
    assert conn.sent == [((n.PAYLOAD_EXIT, ghost, remote_pid()), n.A_NOPROC)]


def test_unlink_id_is_acknowledged(wired):
    local, remote, conn = wired
    box = local.mailbox()
    remote._on_message((n.LINK, remote_pid(), box.pid), n.NO_MESSAGE)
    assert remote_pid() in box.links
    remote._on_message((n.UNLINK_ID, 42, remote_pid(), box.pid), n.NO_MESSAGE)
    assert not box.links
    assert conn.sent == [((n.UNLINK_ID_ACK, 42, box.pid, remote_pid()),)]


def test_malformed_control_messages_are_ignored(wired):
    local, remote, conn = wired
    box = local.mailbox()
    for bad in ["junk", (), ("x",), (n.SEND,), (n.LINK, 1)]:
        remote._on_message(bad, "x")
    assert box.drain() == [] and conn.sent == []


def test_connection_loss_fires_links_and_wakes_waiters(wired):
    local, remote, conn = wired
    box = local.mailbox()
    box.links.add(remote_pid())
    box.watch(remote)
    conn.alive = False
    remote._on_down("test")
    assert box.receive(timeout=0) == (n.A_EXIT, remote_pid(), n.A_NOCONNECTION)
    with pytest.raises(NodeDown):
        box.receive(timeout=1)
    assert PEER not in local.connections


def test_rpc_request_shape_and_badrpc(wired):
    local, remote, conn = wired

    def reply_badrpc(control, message=None, *, has_message=False):
        conn.sent.append((control, message))
        caller = message[0]
        remote._on_message((n.SEND_SENDER, remote_pid(), caller),
                           (rpc.A_REX, (rpc.A_BADRPC, (n.A_EXIT, (Atom("badarg"), [])))))

    conn.send = reply_badrpc
    with pytest.raises(BadRpc, match=r"erlang:halt/0 raised on peer@host: \{'EXIT',\{badarg,\[\]\}\}"):
        remote.rpc("erlang", "halt")
    control, request = conn.sent[0]
    assert control[0] == n.REG_SEND and control[3] == Atom("rex")
    assert request[1] == (rpc.A_CALL, Atom("erlang"), Atom("halt"), [], rpc.A_USER)
    assert not local.mailboxes, "the rpc mailbox is closed after the call"


def test_mailbox_selective_receive_keeps_other_messages(wired):
    local, remote, conn = wired
    box = local.mailbox()
    for m in [1, "two", 3]:
        box.deliver(m)
    assert box.receive(timeout=0, match=lambda m: isinstance(m, str)) == "two"
    assert box.drain() == [1, 3]
    with pytest.raises(TimeoutError):
        box.receive(timeout=0.05)
