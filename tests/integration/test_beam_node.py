"""Control messages against a real node: sends, links, exits, monitors, aliases."""

from __future__ import annotations

import pytest

from microscope_jupyter.beam.terms import Atom, Pid, Reference

EXIT, DOWN = Atom("EXIT"), Atom("DOWN")

# A remote process that traps exits and forwards everything it gets to Fwd.
# Returns once the forwarder traps exits: an exit signal sent before that
# would kill it instead of reaching it as a message.
FORWARDER = """
Self = self(),
P = spawn(fun() ->
    process_flag(trap_exit, true),
    Self ! {trapping, self()},
    (fun Loop() -> receive M -> Fwd ! {got, self(), M}, Loop() end end)()
end),
receive {trapping, P} -> P end.
"""


@pytest.fixture
def wire(session):
    remote = session._remote
    local = session._local
    return local, remote


def test_node_sends_to_our_pid(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        session.eval_erlang("P ! {hello, self()}.", P=box.pid)
        message = box.receive(timeout=5)
        assert message[0] == Atom("hello") and isinstance(message[1], Pid)


def test_reg_send_to_our_registered_name(session, wire):
    local, remote = wire
    with local.mailbox(register_as="microscope_inbox") as box:
        session.eval_erlang("{microscope_inbox, N} ! ping.", N=Atom(local.name))
        assert box.receive(timeout=5) == Atom("ping")


def test_alias_send(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        alias = local.alias(box)
        session.eval_erlang("erlang:send(A, via_alias).", A=alias)
        assert box.receive(timeout=5) == Atom("via_alias")


def test_we_send_to_pid_and_name(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        forwarder = session.eval_erlang(FORWARDER, Fwd=box.pid)
        remote.send(box, forwarder, {"n": 1})
        assert box.receive(timeout=5) == (Atom("got"), forwarder, {"n": 1})
        session.rpc("erlang", "register", [Atom("mic_fwd"), forwarder])
        remote.send(box, "mic_fwd", "by name")
        assert box.receive(timeout=5) == (Atom("got"), forwarder, "by name")
        session.rpc("erlang", "exit", [forwarder, Atom("kill")])


def test_remote_link_then_crash_delivers_exit(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        crasher = session.eval_erlang(
            "spawn(fun() -> link(P), receive go -> exit(boom) end end).", P=box.pid)
        remote.send(box, crasher, Atom("go"))
        assert box.receive(timeout=5) == (EXIT, crasher, Atom("boom"))
        assert crasher not in box.links


def test_exit2_from_node(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        session.eval_erlang("exit(P, {shutdown, why}).", P=box.pid)
        kind, _, reason = box.receive(timeout=5)
        assert kind == EXIT and reason == (Atom("shutdown"), Atom("why"))


def test_our_link_fires_when_mailbox_closes(session, wire):
    local, remote = wire
    with local.mailbox() as watcher:
        forwarder = session.eval_erlang(FORWARDER, Fwd=watcher.pid)
        linked = local.mailbox()
        remote.link(linked, forwarder)
        links = session.rpc("erlang", "process_info", [forwarder, Atom("links")])
        assert linked.pid in links[1]
        linked.close(reason=Atom("bye"))
        assert watcher.receive(timeout=5) == (Atom("got"), forwarder, (EXIT, linked.pid, Atom("bye")))


def test_unlink_id_both_ways(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        forwarder = session.eval_erlang(FORWARDER, Fwd=box.pid)
        remote.link(box, forwarder)
        remote.unlink(box, forwarder)
        assert session.rpc("erlang", "process_info", [forwarder, Atom("links")]) == (Atom("links"), [])
        # The node unlinks from us: we get UNLINK_ID and answer with the ACK.
        unlinker = session.eval_erlang(
            "spawn(fun() -> link(P), receive go -> unlink(P), P ! done, receive stop -> ok end end end).",
            P=box.pid)
        remote.send(box, unlinker, Atom("go"))
        assert box.receive(timeout=5) == Atom("done")
        assert unlinker not in box.links
        remote.send(box, unlinker, Atom("stop"))


def test_we_send_exit2(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        forwarder = session.eval_erlang(FORWARDER, Fwd=box.pid)
        remote.exit(box, forwarder, Atom("please_stop"))
        assert box.receive(timeout=5) == (Atom("got"), forwarder, (EXIT, box.pid, Atom("please_stop")))


def test_monitor_and_demonitor(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        target = session.eval_erlang("spawn(fun() -> receive _ -> exit(done) end end).")
        ref = remote.monitor(box, target)
        assert isinstance(ref, Reference)
        remote.send(box, target, Atom("go"))
        assert box.receive(timeout=5) == (DOWN, ref, Atom("process"), target, Atom("done"))
        quiet = session.eval_erlang("spawn(fun() -> receive _ -> exit(done) end end).")
        ref2 = remote.monitor(box, quiet)
        remote.demonitor(box, quiet, ref2)
        remote.send(box, quiet, Atom("go"))
        with pytest.raises(TimeoutError):
            box.receive(timeout=0.5)


def test_monitor_by_name_of_missing_process(session, wire):
    local, remote = wire
    with local.mailbox() as box:
        ref = remote.monitor(box, "no_such_registered_name")
        down = box.receive(timeout=5)
        assert down[0] == DOWN and down[1] == ref and down[4] == Atom("noproc")


def test_node_monitors_our_pid(session, wire):
    local, remote = wire
    with local.mailbox() as watcher:
        target = local.mailbox()
        session.eval_erlang(
            "spawn(fun() -> R = erlang:monitor(process, T), W ! monitoring,"
            " receive {'DOWN', R, process, _, Why} -> W ! {down, Why} end end).",
            T=target.pid, W=watcher.pid)
        assert watcher.receive(timeout=5) == Atom("monitoring")
        target.close(reason=Atom("finished"))
        assert watcher.receive(timeout=5) == (Atom("down"), Atom("finished"))
        # Monitoring a pid that is already gone answers noproc at once.
        session.eval_erlang(
            "spawn(fun() -> R = erlang:monitor(process, T),"
            " receive {'DOWN', R, process, _, Why} -> W ! {down, Why} end end).",
            T=target.pid, W=watcher.pid)
        assert watcher.receive(timeout=5) == (Atom("down"), Atom("noproc"))
