"""ExUnit tests written from a recording: ``s.exunit(proc, mode=...)``.

    test = s.exunit("Demo.WorkerB")                      # mode="reproduce"
    test.write("test/")                                  # test/demo_worker_b_reproduce_test.exs
    s.exunit("Demo.WorkerB", mode="regression").source

The test replays the last steps (``MAX_STEPS``) before the end of the
recording or the crash, or the seqs ``between=(first, last)`` names. It runs
the GenServer's own module from the recorded state before the first replayed
message: a ``start_supervised`` child enters
``:gen_server.enter_loop/3`` with that state, so ``init/1`` (whose argument
the recording does not hold) is not called and no registered name clashes
with the running app. It then replays the recorded messages in order
(``send`` for infos, ``GenServer.cast``, ``GenServer.call`` asserting the
recorded reply), with ``:sys.get_state/1`` as the barrier after each, and
asserts each recorded state. Pids in the state and the messages are live
stand-in processes. The test traces the GenServer's sends, so what each
callback sent (to a stand-in, a name or a pid) is asserted with
``assert_receive {:trace, ^pid, :send, message, to}``; replies to the caller
are checked by the call's own assertion.

- ``reproduce`` asserts what happened, a crash and its reason included: it
  passes while the bug is there.
- ``regression`` asserts what should have happened: the process survives the
  message that crashed it, and expected-state rules given to ``s.expect``
  (``rule(before, message) -> expected``) replace the recorded states. A call
  it crashed on is made as a caller makes it, never asserted as a crash: its
  reply is held to the shape of the replies to calls of the same shape, or
  left for the person to write where the recording has none. It fails until
  the bug is fixed, and passes once it is.

Limits, said in the generated file where they apply: timers the callbacks
start are real during the replay; messages to registered names reach the
real processes of the app under ``mix test``. A gen_statem's test is
``statem.py``'s (``generate.py`` routes each process to its kind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..analysis.expect import expects_state
from ..analysis.facts import Facts
from ..analysis.unread import crash_messages
from ..beam.terms import Atom, Pid, pids_in
from ..errors import QueryError
from ..render.elixir import render
from ..render.elixir_code import ElixirCode
from ..store.otp import message_kind, message_shape, state_recorded
from .elixir_helpers import BARRIER, START, STAND_IN

if TYPE_CHECKING:  # pragma: no cover
    from .mix import ExUnitRun


__all__ = ["ExUnitTest", "exunit", "MODES"]

MODES = ("reproduce", "regression")
MAX_STEPS = 12       # recorded steps replayed at most (the last ones), unless between= says
_WIDE = 600          # a state pattern longer than this asserts only the changed keys


@dataclass
class ExUnitTest:
    """A generated ExUnit test: ``.source`` (Elixir), ``.write(path)``."""

    source: str
    module: str          # the test module
    filename: str        # a name for it under test/

    def write(self, path: str | Path) -> Path:
        """Write the test; a directory gets ``filename`` inside it."""
        target = Path(path)
        if target.is_dir() or str(path).endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            target = target / self.filename
        target.write_text(self.source)
        return target

    def __str__(self) -> str:
        return self.source

    def run(self, app: str | Path, timeout: float = 300.0) -> "ExUnitRun":
        """Write the test into the Mix app ``app`` (its ``test/`` folder, with a
        ``test_helper.exs`` if it has none) and run it with ``mix test``
        (``$BEAM_MICROSCOPE_HOOKS`` set for apps that use ``inspect_line``)."""
        from .mix import run_in_app

        return run_in_app(self, Path(app), timeout)

    def _repr_markdown_(self) -> str:
        return f"```elixir\n{self.source}```"


def exunit(facts: Facts, proc: Any, *, between: tuple[int, int] | None = None,
           mode: str = "reproduce", module: str | None = None,
           rules: list[Callable] = ()) -> ExUnitTest:
    if mode not in MODES:
        raise QueryError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    states = every = facts.states(proc)
    if between is not None:
        states = states[(states["seq"] >= between[0]) & (states["seq"] <= between[1])]
    crashed = crash_messages(facts)       # pid -> the receive its callback raised on
    pid = _which_pid(states, crashed)
    mine = states[states["pid"] == pid].reset_index(drop=True)
    if (mine["callback"] == "handle_event").all():     # what a gen_statem's hook reports
        raise QueryError(f"{proc} is a gen_statem: generated tests cover GenServers (and "
                         "Agents) only, since the recording holds a gen_statem's state names "
                         "but not its data; s.query.state_timeline shows its transitions")
    left_out = 0
    if between is None and len(mine) > MAX_STEPS:
        # the last steps before the end (the crash): the state before the first
        # of them is recorded, so the test starts there, not at the beginning
        k = len(mine) - MAX_STEPS
        while k < len(mine) - 1 and not state_recorded(mine["before"].iloc[k]):
            k += 1
        left_out, mine = k, mine.iloc[k:].reset_index(drop=True)
    start = mine["before"].iloc[0]
    if not state_recorded(start):
        raise QueryError(f"the recording has no full state of {proc!r} before seq "
                         f"{int(mine['seq'].iloc[0])} (too large for payload_limit?): trace "
                         "again with a larger payload_limit to replay it")
    name = next((n for n in mine["name"] if isinstance(n, str)), None)
    target = _module_of(facts, proc, pid, name, module)
    crash = _crash(facts, crashed.get(pid), pid, between)
    messages = [m for m in mine["message"]] + ([_unwrap(crash[0])] if crash else [])
    code = ElixirCode(_stand_ins(facts, pid, [start] + messages + list(mine["after"])
                                 + list(mine["reply"])))
    test_module = f"{target}.{mode.capitalize()}Test"
    lines = _header(facts, name or pid, pid, mine, mode, crash)
    if left_out:
        lines[1:1] = [f"# It starts from the state recorded before seq {int(mine['seq'].iloc[0])}: "
                      f"the {left_out} step(s) before it are left out (between=(FIRST, LAST) "
                      "replays others)."]
    lines += [f"defmodule {test_module} do", "  use ExUnit.Case, async: false", ""]
    title = (f"{name or pid} replays {len(messages)} recorded message(s)"
             + (" and crashes as it did" if crash and mode == "reproduce" else "")
             + (" and survives the message that crashed it" if crash and mode == "regression"
                else ""))
    lines.append(f"  test {_string(title)} do")
    for pid_seen, var in code.bound.items():
        lines.append(f"    {var} = stand_in({_string(var)})   # stands in for {pid_seen}")
    lines.append(f"    pid = start_recorded({target}, {code.value(start)})")
    lines.append("    ref = Process.monitor(pid)")
    frame = facts.store.frame()     # with the peer's id
    sends = frame[(frame["kind"].isin(["send", "send_to_dead"])) & (frame["pid"] == pid)
                  & (frame["seq"] < int(mine["seq"].iloc[-1]))]
    targets = {int(g): facts.store.term_of(int(g)) for g in sends["_peer"].unique()}
    found: dict = {}
    for term in sends["term"]:
        pids_in(term, found)
    own = next((p for p in found if str(p) == pid), None)
    sent_code = ElixirCode({**code.bound, **({own: "pid"} if own is not None else {})})
    if len(sends):
        lines.append("    :erlang.trace(pid, true, [:send])   # what it sends comes to the test")
    # what the first callback sent counts from the callback before it (if any)
    earlier = every[(every["pid"] == pid) & (every["seq"] < int(mine["seq"].iloc[0]))]
    previous = int(earlier["seq"].iloc[-1]) if len(earlier) else -1
    expected_state = [r for r in rules if expects_state(r)] if mode == "regression" else []
    before = start
    for row in mine.itertuples(index=False):
        lines.append("")
        lines.append(f"    # seq {int(row.seq)}: {row.callback}")
        lines += _replay(code, row.callback, row.message, row.reply)
        lines += _sent(sent_code, sends, targets, previous, int(row.seq))
        after = row.after
        for rule in expected_state:
            after = rule(before, row.message)
        lines += _assert_state(code, before, after)
        before, previous = row.after, int(row.seq)
    if crash:
        message, reason, seq = crash
        lines.append("")
        if mode == "reproduce":
            lines.append(f"    # seq {seq}: the message it crashed on")
            lines.append(_deliver(code, message))
            lines.append("    assert_receive {:DOWN, ^ref, :process, ^pid, reason}, 5000")
            lines.append(f"    assert {_reason_pattern(code, reason)} = reason")
        else:
            lines.append(f"    # seq {seq}: it crashed here in the recording; it must survive it")
            if message_kind(message) == "call":
                lines += _call_survived(code, message, mine, name or pid)
            else:
                lines.append(_deliver(code, message))
            lines.append("    result = barrier(pid)")
            lines.append(f"    assert match?({{:ok, _}}, result), "
                         f"{_string(f'{name or pid} crashed on ' + render(_unwrap(message), 'elixir', 80))}")
            for rule in expected_state:
                lines.append("    {:ok, state} = result")
                lines.append(f"    assert {code.pattern(rule(before, _unwrap(message)))} = state")
            lines.append("    refute_received {:DOWN, ^ref, :process, ^pid, _}")
    lines.append("  end")
    lines += START + (STAND_IN if code.bound else []) + (
        BARRIER if crash and mode == "regression" else [])
    lines.append("end")
    filename = _snake(target.replace(".", ""))
    return ExUnitTest("\n".join(lines) + "\n", test_module, f"{filename}_{mode}_test.exs")


# -- what to replay -------------------------------------------------------------

def _which_pid(states, crashed: dict[str, int]) -> str:
    """The life to replay: the first that crashed, else the first with transitions."""
    if states.empty:
        raise QueryError("no GenServer transitions to replay: the process handled no message "
                         "while it was traced (or in the range asked for); trace it "
                         "(state=True) while it works")
    for pid in dict.fromkeys(states["pid"]):
        if pid in crashed:
            return pid
    return states["pid"].iloc[0]


def _crash(facts: Facts, seq: int | None, pid: str,
           between) -> tuple[Any, Any, int] | None:
    """(message as received, exit reason, receive seq) when ``pid`` died in a
    callback, taking the message received at ``seq``."""
    if seq is None or (between is not None and not between[0] <= seq <= between[1]):
        return None
    events = facts.events
    exits = events[(events["kind"] == "exit") & (events["pid"] == pid)]
    return events["term"].iloc[seq], exits["term"].iloc[0], seq


def _module_of(facts: Facts, proc: Any, pid: str, name: str | None,
               module: str | None) -> str:
    if module:
        return module.removeprefix("Elixir.")
    tree = facts.recorded_tree()     # not the live node's: the pid may be long gone
    calls = tree.loc[(tree["pid"] == pid) | (tree["name"] == name), "initial_call"].dropna()
    for call in calls:
        found = re.match(r"^([A-Z][\w.]*)\.init/1$", str(call))
        if found:
            return found.group(1)
    if name and re.match(r"^[A-Z][\w]*(\.[A-Z]\w*)*$", name):
        return name                  # registered under its own module's name
    raise QueryError(f"cannot tell which module {proc!r} runs; pass module='MyApp.Server'")


def _stand_ins(facts: Facts, own: str, terms: list) -> dict[Pid, str]:
    """A variable per pid the replay's terms hold (not the process itself)."""
    found: dict[Pid, None] = {}
    for term in terms:
        pids_in(term, found)
    store = facts.store
    names = {store.id_text(gid): name for gid, name in store.names().last_names().items()}
    out, taken = {}, set()
    for pid in found:
        if str(pid) == own:
            continue
        base = names.get(str(pid))
        var = (_snake(base.split(".")[-1])
               if isinstance(base, str) else f"pid_{pid.id}")
        var = re.sub(r"\W", "_", var)
        while var in taken or var in ("pid", "ref", "state", "reason"):
            var += "_"
        taken.add(var)
        out[pid] = var
    return out


# -- the lines of the test ------------------------------------------------------

def _replay(code: ElixirCode, callback: str, message: Any, reply: Any) -> list[str]:
    if callback == "handle_call":
        return [f"    assert {code.pattern(reply)} = GenServer.call(pid, {code.value(message)})"]
    if callback == "handle_cast":
        return [f"    GenServer.cast(pid, {code.value(message)})"]
    if callback == "handle_continue":
        return ["    # (a handle_continue: the previous callback asked for it)"]
    return [f"    send(pid, {code.value(message)})"]


def _deliver(code: ElixirCode, received: Any) -> str:
    """A message as it arrived (``$gen_call``/``$gen_cast`` wrapped) sent the same way."""
    kind = message_kind(received)
    if kind == "cast":
        return f"    GenServer.cast(pid, {code.value(received[1])})"
    if kind == "call":
        return f"    catch_exit(GenServer.call(pid, {code.value(received[2])}))"
    return f"    send(pid, {code.value(received)})"


def _call_survived(code: ElixirCode, received: Any, mine, who: str) -> list[str]:
    """A call it crashed on, made as a caller makes it: a fixed build answers it
    (never asserted as a crash). Its reply is held to the shape of the replies
    the recording has to calls of the same shape, where it has any."""
    request = received[2]
    shape = message_shape(request)
    replies = [r for m, r, c in zip(mine["message"], mine["reply"], mine["callback"])
               if c == "handle_call" and message_shape(m) == shape]
    pattern = _reply_pattern(code, replies)
    out = [f"    {'reply' if pattern else '_reply'} =",
           "      try do",
           f"        GenServer.call(pid, {code.value(request)})",
           "      catch",
           f"        :exit, reason -> flunk({_string(f'{who} crashed on ' + render(request, 'elixir', 80))}"
           " <> \": \" <> inspect(reason))",
           "      end"]
    if pattern is not None:
        out.append(f"    assert {pattern} = reply   # as it answered the other {shape} calls")
    elif replies:
        seen = ", ".join(dict.fromkeys(render(r, "elixir", 30) for r in replies[:5]))
        out.append(f"    # its answers to the other {shape} calls ({seen}) share no shape: assert "
                   "the reply you expect here")
    else:
        out.append(f"    # the recording holds no answer to a {shape} call to copy: assert the "
                   "reply you expect here, e.g. {:error, _} = _reply")
    return out


def _reply_pattern(code: ElixirCode, replies: list) -> str | None:
    """The replies' common shape, a tagged tuple's tag kept and the rest ``_``
    (``{:ok, _}``); the one reply whole where all were equal; else None."""
    if not replies:
        return None
    if all(r == replies[0] for r in replies):
        return code.pattern(replies[0])
    first = replies[0]
    if (isinstance(first, tuple) and first and isinstance(first[0], Atom)
            and all(isinstance(r, tuple) and len(r) == len(first) and r[0] == first[0]
                    for r in replies)):
        return "{" + ", ".join([code.pattern(first[0])] + ["_"] * (len(first) - 1)) + "}"
    return None


def _unwrap(received: Any) -> Any:
    kind = message_kind(received)
    return received[-1] if kind in ("call", "cast") else received


def _sent(code: ElixirCode, sends, targets: dict, after_seq: int, upto: int) -> list[str]:
    """assert_receive, through the send trace, for what the callback sent. Replies
    to the caller are left out: the call's own assertion checks them."""
    out = []
    window = sends[(sends["seq"] > after_seq) & (sends["seq"] < upto)]
    for kind, peer, term in zip(window["kind"], window["_peer"], window["term"]):
        to = targets.get(int(peer))
        if kind == "send_to_dead":
            out.append(f"    # it sent {render(term, 'elixir', 60)} to {render(to, 'elixir', 40)}, "
                       "dead by then: lost")
        elif message_kind(term) not in ("reply", "service_reply"):
            whom = (("^" + code.bound[to]) if isinstance(to, Pid) and to in code.bound
                    else code.value(to) if isinstance(to, Atom) else "_")
            # a call's From (pid and tag) is the runtime's: only the request is asserted
            what = ('{:"$gen_call", _, ' + code.pattern(term[2]) + "}"
                    if message_kind(term) == "call" else code.pattern(term))
            out.append(f"    assert_receive {{:trace, ^pid, :send, {what}, {whom}}}")
    return out


def _assert_state(code: ElixirCode, before: Any, after: Any) -> list[str]:
    if not state_recorded(after):
        return ["    :sys.get_state(pid)   # (its state here was too large to record)"]
    pattern = code.pattern(after)
    if len(pattern) > _WIDE and isinstance(after, dict) and isinstance(before, dict):
        changed = [k for k, v in after.items() if k not in before or before[k] != v]
        pattern = code.pattern(after, only=changed)
    return [f"    assert {pattern} = :sys.get_state(pid)"]


def _reason_pattern(code: ElixirCode, reason: Any) -> str:
    """An exception exit's error (its stacktrace as ``_``); any other reason whole."""
    if (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)
            and reason[1] and isinstance(reason[1][0], tuple)):
        return "{" + code.pattern(reason[0]) + ", _}"
    return code.pattern(reason)


def _header(facts, who, pid, mine, mode: str, crash) -> list[str]:
    first, last = int(mine["seq"].iloc[0]), int(mine["seq"].iloc[-1])
    verdict = ("passes while the recorded behaviour, bug included, is still there"
               if mode == "reproduce" else
               "asserts what should have happened: fails until the bug is fixed")
    node = facts.node or "the node"
    return [f"# Generated by BEAM Microscope from a recording of {who} ({pid}) on {node},",
            f"# seqs {first}-{crash[2] if crash else last}. Mode: {mode} ({verdict}).",
            *_timed(facts, mine),
            "# Timers its callbacks start are real during the replay, and messages to",
            "# registered names reach the app's own processes under `mix test`.", ""]


def _timed(facts, mine) -> list[str]:
    """What the test says of the replayed messages no traced process sent."""
    messages = facts.messages()
    timed = messages[messages["send_seq"].isna() & messages["handled_seq"].isin(mine["seq"])]
    if timed.empty:
        return []
    shapes = ", ".join(dict.fromkeys(message_shape(t) for t in timed["term"]))
    return [f"# {len(timed)} of the replayed messages ({shapes}) came from no traced process:",
            "# a timer's, most likely. The test sends them itself, in order; timers armed during",
            "# the replay are real and cannot be held back: one may arrive between steps."]


def _snake(name: str) -> str:
    """``WorkerB`` -> ``worker_b``: a module's name as a file or variable name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#") + '"'
