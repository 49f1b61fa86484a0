"""attach, rpc, processes() and node_info() against real OTP 25 and OTP 28 nodes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.session import PROCESS_COLUMNS
from nodes import elixir_bin


def test_rpc_returns_decoded_terms(session, any_node):
    assert session.rpc("erlang", "node") == Atom(any_node.name)
    assert session.rpc("lists", "reverse", [[1, 2, 3]]) == [3, 2, 1]
    assert session.rpc("erlang", "list_to_binary", [[104, 105]]) == "hi"
    assert session.rpc("maps", "from_list", [[(Atom("a"), 1), ("b", 2.5)]]) == {Atom("a"): 1, "b": 2.5}


def test_we_are_a_hidden_node(session, any_node):
    # Hidden nodes are not in nodes() but are in nodes(hidden). (Asked about
    # ourselves: an earlier test's connection may still be closing.)
    me = Atom(session._local.name)
    assert str(me).startswith("microscope_")
    assert me not in session.rpc("erlang", "nodes")
    assert me in session.rpc("erlang", "nodes", [Atom("hidden")])


def test_processes_lists_the_live_node(session, any_node):
    frame = session.processes()
    assert list(frame.columns) == PROCESS_COLUMNS
    expected = session.rpc("erlang", "system_info", [Atom("process_count")])
    # The table is taken a moment apart from the count; rpc workers come and go.
    assert abs(len(frame) - expected) <= 3
    names = set(frame["name"].dropna())
    assert {"init", "code_server", "kernel_sup", "rex"} <= names
    init = frame[frame["name"] == "init"].iloc[0]
    assert init["pid"] == "<0.0.0>"
    assert init["current_function"] == ":init.loop/1"
    assert (frame["memory"] > 0).all() and frame["memory"].dtype == "int64"
    code_server = frame[frame["name"] == "code_server"].iloc[0]
    assert code_server["initial_call"].startswith(":")


def test_a_process_state_never_shows_the_node_cookie(session, any_node):
    auth = session.process("auth")          # its state is the node's cookies
    assert any_node.cookie not in repr(auth)
    assert "holds_the_node_cookie" in repr(auth)
    # a GenServer that keeps the cookie in its state, as a client of other nodes might
    keeper = session.eval_erlang(
        "proc_lib:spawn(fun() -> gen_server:enter_loop(mic_no_callbacks, [], "
        "{kept, erlang:get_cookie()}) end).")
    try:
        shown = session.process(str(keeper))
        assert any_node.cookie not in repr(shown)
        assert "cookie_withheld" in repr(shown["state"])
    finally:
        session.rpc("erlang", "exit", [keeper, Atom("kill")])


def test_node_info(session, any_node):
    info = session.node_info()
    assert info["node"] == any_node.name
    assert info["otp_release"] == {"otp25": "25", "otp28": "28"}[any_node.runtime]
    assert info["schedulers"] >= 1
    assert info["process_count"] > 10
    assert info["uptime_s"] > 0
    assert info["elixir_version"] is None
    assert "kernel" in info["applications"]


def test_elixir_version_is_known_before_elixir_has_loaded(node_factory):
    # An Elixir node answers before its elixir application is loaded; with
    # Elixir on the code path but not loaded, the version still shows.
    ebin = Path(elixir_bin()).resolve().parent.parent / "lib" / "elixir" / "ebin"
    if not (ebin / "elixir.app").exists():
        pytest.skip(f"no elixir.app under {ebin}")
    node = node_factory("otp25", prefix="exp", extra_args=["-pa", str(ebin)])
    with mic.attach(node.name, cookie=node.cookie) as s:
        info = s.node_info()
        assert "elixir" not in info["applications"]
        assert info["elixir_version"].startswith("1.")


def test_elixir_node_reports_elixir_version(node_factory):
    node = node_factory("elixir", prefix="ex")
    with mic.attach(node.name, cookie=node.cookie) as s:
        info = s.node_info()
        assert info["elixir_version"].startswith("1.")
        # The node answers while Elixir is still starting its applications.
        deadline = time.monotonic() + 20
        while "Logger.Supervisor" not in set(s.processes()["name"].dropna()):
            assert time.monotonic() < deadline, "Logger.Supervisor never appeared"
            time.sleep(0.2)


def test_long_names(node_factory):
    node = node_factory("otp25", prefix="long", long_name=True)
    with mic.attach(node.name, cookie=node.cookie) as s:
        assert s.rpc("erlang", "node") == Atom(node.name)


def test_detach_closes_and_context_manager(any_node):
    with mic.attach(any_node.name, cookie=any_node.cookie) as s:
        assert s.attached
    assert not s.attached
    with pytest.raises(mic.errors.NodeDown):
        s.rpc("erlang", "node")
    s.detach()  # twice is fine


def test_cookie_never_appears(any_node, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    s = mic.attach(any_node.name, cookie=any_node.cookie)
    texts = [repr(s), str(s), repr(s.__dict__), repr(vars(s._remote)), repr(vars(s._local)),
             repr(vars(s._remote.conn))]
    s.detach()
    try:
        mic.attach(any_node.name, cookie="not-" + any_node.cookie)
    except mic.errors.AuthError as exc:
        texts.append(str(exc))
        texts.append(repr(exc))
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    for text in texts:
        assert any_node.cookie not in text


def test_cookie_from_environment_and_file(any_node, monkeypatch, tmp_path):
    monkeypatch.setenv("MICROSCOPE_COOKIE", any_node.cookie)
    with mic.attach(any_node.name) as s:
        assert s.attached
    monkeypatch.delenv("MICROSCOPE_COOKIE")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".erlang.cookie").write_text(any_node.cookie + "\n")
    with mic.attach(any_node.name) as s:
        assert s.attached
    (tmp_path / ".erlang.cookie").unlink()
    with pytest.raises(mic.errors.CookieMissing, match="MICROSCOPE_COOKIE"):
        mic.attach(any_node.name)


def test_ten_thousand_sequential_rpcs(session):
    total = 0
    for i in range(10_000):
        total += session.rpc("erlang", "abs", [-i])
    assert total == sum(range(10_000))


def test_process_tables_are_read_by_the_agent_which_leaves_with_us(node_factory):
    node = node_factory("otp25", prefix="tbl")
    with mic.attach(node.name, cookie=node.cookie) as observer:
        s = mic.attach(node.name, cookie=node.cookie)
        observer.eval_erlang("[spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 3000)], ok.")
        frame, tree = s.processes(), s.supervision_tree()
        assert len(frame) > 3000 and len(tree) > 3000
        kernel_sup = tree[tree["name"] == "kernel_sup"].iloc[0]
        assert kernel_sup["kind"] == "supervisor" and kernel_sup["application"] == "kernel"
        assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is not False
        s.detach()
        assert observer.rpc("code", "is_loaded", [Atom("microscope_agent")]) is False
