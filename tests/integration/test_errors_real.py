"""Every attach/connection error, raised by a real scenario against real nodes."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom, errors
from nodes import HOST


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_cookie(any_node):
    with pytest.raises(errors.AuthError, match="rejected the cookie"):
        mic.attach(any_node.name, cookie="definitely-not-the-cookie")


def test_unknown_node_lists_known_names(any_node):
    with pytest.raises(errors.NodeNotFound) as info:
        mic.attach(f"nobody_here@{HOST}", cookie="x")
    assert any_node.name in info.value.known_names
    assert any_node.name in str(info.value)
    assert "nobody_here" in str(info.value)


def test_an_unknown_node_is_said_before_a_missing_cookie(any_node, monkeypatch, tmp_path):
    monkeypatch.delenv("MICROSCOPE_COOKIE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))           # no ~/.erlang.cookie either
    with pytest.raises(errors.NodeNotFound, match="nobody_here"):
        mic.attach(f"nobody_here@{HOST}")
    # the node found, the cookie is what is missing
    with pytest.raises(errors.CookieMissing, match="no cookie given"):
        mic.attach(any_node.name)


def test_epmd_down():
    port = _free_port()
    with pytest.raises(errors.EpmdUnreachable, match=f"{HOST}:{port}"):
        mic.attach(f"demo@{HOST}", cookie="x", epmd_port=port)


def test_connection_refused_when_registered_port_is_dead():
    # Register a name in the real EPMD with a port where nothing listens: what
    # EPMD reports for a node that just died but has not been cleaned up yet.
    dead_port = _free_port()
    name = b"ghost_" + os.urandom(3).hex().encode()
    body = struct.pack(">BHBBHHH", 120, dead_port, 72, 0, 6, 6, len(name)) + name + b"\0\0"
    epmd = socket.create_connection(("127.0.0.1", 4369))
    try:
        epmd.sendall(struct.pack(">H", len(body)) + body)
        reply = epmd.recv(16)
        assert reply[0] in (118, 121) and reply[1] == 0
        with pytest.raises(errors.ConnectRefused, match="refused the connection"):
            mic.attach(f"{name.decode()}@{HOST}", cookie="x")
    finally:
        epmd.close()


def test_node_killed_during_rpc(node_factory):
    node = node_factory("otp25", prefix="victim")
    s = mic.attach(node.name, cookie=node.cookie)
    outcome = {}

    def slow_call():
        started = time.monotonic()
        try:
            s.rpc("timer", "sleep", [30_000], timeout=60)
        except Exception as exc:  # noqa: BLE001 - the type is the assertion
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=slow_call)
    worker.start()
    time.sleep(0.5)
    os.kill(node.pid, signal.SIGKILL)
    worker.join(timeout=10)
    assert isinstance(outcome.get("error"), errors.NodeDown)
    assert outcome["elapsed"] < 5
    assert "closed the connection" in str(outcome["error"])
    assert not s.attached


@pytest.mark.parametrize("runtime", ["otp25", "otp28"])
def test_node_that_stops_answering_ticks(node_factory, runtime):
    ticktime = 4
    node = node_factory(runtime, prefix="frozen", net_ticktime=ticktime)
    s = mic.attach(node.name, cookie=node.cookie, net_ticktime=ticktime)
    assert s.rpc("erlang", "node") == Atom(node.name)
    os.kill(node.pid, signal.SIGSTOP)  # alive but silent: no ticks, no replies
    try:
        started = time.monotonic()
        while s.attached and time.monotonic() - started < ticktime * 3:
            time.sleep(0.1)
        detected_after = time.monotonic() - started
        assert not s.attached
        assert detected_after <= ticktime * 1.25 + 1.0
        with pytest.raises(errors.NodeDown) as info:
            s.rpc("erlang", "node")
        assert "no tick" in str(info.value)
        assert info.value.seconds_since_last_tick >= ticktime * 0.75
    finally:
        os.kill(node.pid, signal.SIGCONT)


def test_ticks_keep_an_idle_and_a_busy_session_alive(node_factory):
    ticktime = 2
    node = node_factory("otp25", prefix="idle", net_ticktime=ticktime)
    # No net_ticktime given: the session reads the node's and ticks to match.
    with mic.attach(node.name, cookie=node.cookie) as s:
        assert s._remote.conn.net_ticktime == ticktime
        time.sleep(ticktime * 2.5)  # idle: only ticks cross the wire
        assert s.rpc("erlang", "node") == Atom(node.name)
        # A busy cell: pure-Python work on the main thread for several ticktimes.
        deadline = time.monotonic() + ticktime * 2.5
        n = 0
        while time.monotonic() < deadline:
            n += sum(i * i for i in range(1000))
        assert s.rpc("erlang", "node") == Atom(node.name)
        # The node saw us the whole time: still in nodes(hidden).
        assert len(s.rpc("erlang", "nodes", [Atom("hidden")])) == 1


def test_rpc_timeout_and_badrpc(session):
    with pytest.raises(errors.RpcTimeout, match="did not answer within 0.2 s"):
        session.rpc("timer", "sleep", [2000], timeout=0.2)
    # The session is still usable, and the late reply does not leak into later calls.
    assert session.rpc("erlang", "abs", [-3]) == 3
    with pytest.raises(errors.BadRpc, match="not defined") as info:
        session.rpc("no_such_module", "f", [1])
    assert info.value.reason[0] == Atom("EXIT")
    with pytest.raises(errors.BadRpc, match=r"raised on .*\{badarith"):
        session.eval_erlang("1 / Z.", Z=0)
