"""The agent's modules go onto a node together and leave it together.

The agent is one Erlang module per concept (elixir_hooks/agent/*.erl), loaded
diskless by ``ensure_agent``. Checked here as a set: all loaded, all of one
version (one missing, or an agent of another version, has them all loaded
again), all gone at detach or when a dead kernel's controller unloads them,
and left in place while another session's trace still runs them.
"""

from __future__ import annotations

import pytest

import microscope_jupyter as mic
from microscope_jupyter import Atom
from microscope_jupyter.agent.beam_file import (AGENT_MODULE, AGENT_VERSION, agent_modules,
                                                ensure_agent)
from nodes import CLEAN, RUNTIMES, compile_erlang, load_module, wait_clean, wait_until

MODULES = [Atom(m) for m in agent_modules()]
WORKER = "spawn(fun Loop() -> receive {ping, From} -> From ! pong, Loop() end end)."
PING = "W ! {ping, self()}, receive pong -> ok after 5000 -> timeout end."
# An agent from an older microscope: a facade of its own that answers 23.
OLD_AGENT = "-module(microscope_agent).\n-export([version/0]).\nversion() -> 23.\n"


@pytest.fixture(params=RUNTIMES)
def node(request, node_factory):
    return node_factory(request.param, prefix="mods")


def loaded(observer) -> list:
    return observer.eval_erlang("[M || M <- Mods, code:is_loaded(M) =/= false].", Mods=MODULES)


def old_code(observer) -> list:
    return observer.eval_erlang("[M || M <- Mods, erlang:check_old_code(M)].", Mods=MODULES)


def test_every_module_comes_with_the_trace_and_goes_at_detach(node):
    with mic.attach(node.name, cookie=node.cookie) as observer:
        s = mic.attach(node.name, cookie=node.cookie)
        assert loaded(observer) == []
        worker = s.eval_erlang(WORKER)
        rec = s.trace(worker)
        assert sorted(loaded(observer)) == sorted(MODULES)
        assert observer.rpc(AGENT_MODULE, "version", []) == AGENT_VERSION
        assert s.eval_erlang(PING, W=worker) == Atom("ok")
        rec.stop()
        assert (s.events.kind == "receive").sum() >= 1
        s.detach()
        assert loaded(observer) == [] and old_code(observer) == []


def test_a_missing_module_or_an_older_agent_has_them_all_loaded_again(node, tmp_path):
    with mic.attach(node.name, cookie=node.cookie) as s:
        s.processes()
        s.eval_erlang("code:delete(M), code:purge(M).", M=Atom("microscope_agent_tracer"))
        assert s.rpc(AGENT_MODULE, "version", []) == (Atom("stale"),
                                                      [Atom("microscope_agent_tracer")])
        ensure_agent(s._remote)
        assert s.rpc(AGENT_MODULE, "version", []) == AGENT_VERSION

        (tmp_path / "microscope_agent.erl").write_text(OLD_AGENT)
        load_module(s, compile_erlang(tmp_path / "microscope_agent.erl", tmp_path))
        assert s.rpc(AGENT_MODULE, "version", []) == 23
        worker = s.eval_erlang(WORKER)
        rec = s.trace(worker)            # loads this version's modules over it
        assert s.rpc(AGENT_MODULE, "version", []) == AGENT_VERSION
        assert s.eval_erlang(PING, W=worker) == Atom("ok")
        rec.stop()
        assert rec.status()["state"] == "stopped" and (s.events.kind == "receive").sum() >= 1


def test_a_detach_leaves_the_agent_to_another_sessions_trace(node):
    with mic.attach(node.name, cookie=node.cookie) as observer:
        a = mic.attach(node.name, cookie=node.cookie)
        b = mic.attach(node.name, cookie=node.cookie)
        worker = b.eval_erlang(WORKER)
        rec = b.trace(worker)
        a.processes()
        a.detach()          # b's trace still runs the agent's modules: they stay
        assert sorted(loaded(observer)) == sorted(MODULES)
        for _ in range(5):
            assert b.eval_erlang(PING, W=worker) == Atom("ok")
        rec.stop()
        assert rec.status()["state"] == "stopped"
        assert (b.events.kind == "receive").sum() >= 5
        b.detach()
        assert loaded(observer) == []
        assert wait_clean(observer, []) == CLEAN


def test_a_controller_whose_owner_died_unloads_every_module(node):
    """As when a kernel is killed: no detach comes, the controller cleans up,
    then unloads the agent once alone."""
    with mic.attach(node.name, cookie=node.cookie) as s:
        ensure_agent(s._remote)
        s.eval_erlang("""
            Owner = spawn(fun() -> receive stop -> ok end end),
            W = spawn(fun() -> receive stop -> ok end end),
            {ok, _, _} = microscope_agent:start(Owner, #{procs => [W], state => false}),
            exit(Owner, kill), ok.""")
        wait_until(lambda: loaded(s) == [] and old_code(s) == [], timeout=15)
        assert wait_clean(s, []) == CLEAN
