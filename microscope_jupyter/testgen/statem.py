"""ExUnit tests for a ``:gen_statem``, written from a recording.

    s.exunit("MyApp.Conn")       # a gen_statem: routed here (testgen.generate)

The recording holds, for each event the machine handled, its type
(``{:call, from}``, ``:cast``, ``:info``, ``{:timeout, :retry}``...), content,
the callback that took it (``connected/3`` or ``handle_event/4``), the state
and data before and after (state enter calls included), its replies, and
whether it was postponed (``store/statem_calls.py``). The test starts the
module from the recorded state and data (``:gen_statem.enter_loop/5`` through
a shim that hands over with ``change_callback_module``, so neither ``init/1``
nor the first state's enter call runs again), then, in recorded order:

- sends what came from the mailbox (``:gen_statem.send_request`` for a call,
  its reply asserted where the recording has it, ``:gen_statem.cast``,
  ``send``), and asserts ``{state, data}`` with ``:sys.get_state/1``;
- leaves alone what the machine gave itself: a postponed event retried after
  a state change, an ``internal`` event, which run before ``:sys.get_state``
  answers;
- waits for its own timeouts (``state_timeout``, event and generic timeouts),
  which it cannot deliver: they fire by themselves, the test polls the state
  until it is the recorded one (up to the recorded time plus a second).

``reproduce`` asserts what happened, a crash included; ``regression`` the same
steps, but the machine must survive the event that crashed it.
"""

from __future__ import annotations

import re
from typing import Any

from ..analysis.facts import Facts
from ..analysis.unread import crash_messages
from ..beam.terms import Atom, pids_in
from ..errors import QueryError
from ..render.elixir import render
from ..render.elixir_code import ElixirCode, elixir_atom
from ..store.otp import message_kind, state_recorded
from ..store.statem_calls import statem_steps, timers
from .exunit import MAX_STEPS, ExUnitTest

__all__ = ["statem_exunit", "SUPPORTED"]

SUPPORTED = "GenServer, Agent and :gen_statem processes whose state the recorder captured"

_CALL, _CAST, _INFO = Atom("call"), Atom("cast"), Atom("info")
_GRACE_MS = 1000        # past a timer's recorded time, how long the test waits for it


def statem_exunit(facts: Facts, proc: Any, *, between: tuple[int, int] | None = None,
                  mode: str = "reproduce", module: str | None = None) -> ExUnitTest:
    states = facts.states(proc)
    states = states[states["postponed"].notna()]
    if between is not None:
        states = states[(states["seq"] >= between[0]) & (states["seq"] <= between[1])]
    crashed = crash_messages(facts)
    pids = list(dict.fromkeys(states["pid"]))
    pid = next((p for p in pids if p in crashed), pids[0] if pids else None)
    if pid is None:
        raise QueryError(f"no gen_statem events of {proc!r} to replay: trace it while it works")
    mine = states[states["pid"] == pid].reset_index(drop=True)
    terms = facts.events["term"]
    info = [terms.iloc[int(seq)]["statem"] for seq in mine["seq"]]
    first = _first_step(mine, info, between is None)
    if first is None:
        raise QueryError(f"{proc} is a gen_statem recorded without its data (an agent before "
                         "v31, or another tool's trace pattern on its module): generated tests "
                         f"cover {SUPPORTED}; trace it again to generate one")
    gid = next(iter(facts.store.pid_ids(pid)))
    steps = statem_steps(facts.store, {gid: [(int(s), i["event_type"], m) for s, i, m in
                                             zip(mine["seq"], info, mine["message"])]})
    left_out = first
    mine, info = mine.iloc[first:].reset_index(drop=True), info[first:]
    details = [steps[int(seq)] for seq in mine["seq"]]
    target = (module.removeprefix("Elixir.") if module else
              elixir_atom(str(next(d.module for d in details if d.module is not None))))
    crash = _crash(facts, crashed.get(pid), pid, between)
    start = (mine["before"].iloc[0], details[0].data_before)
    found: dict = {}
    for term in [start] + list(mine["message"]) + [d.data_after for d in details] + (
            [crash[0]] if crash else []):
        pids_in(term, found)
    code = ElixirCode({p: f"pid_{p.id}" for p in found if str(p) != pid})
    base = target.removeprefix(":")
    test_module = (base if target[0].isupper() else
                   "".join(p[:1].upper() + p[1:] for p in re.split(r"[_.]", base) if p)
                   ) + f".{mode.capitalize()}Test"
    lines = _header(facts, mine, details, pid, mode, crash, left_out)
    lines += [f"defmodule {test_module} do", "  use ExUnit.Case, async: false", ""]
    lines += SHIM
    title = f"{pid} replays {len(mine)} recorded event(s)" + (
        " and crashes as it did" if crash and mode == "reproduce" else
        " and survives the event that crashed it" if crash else "")
    lines.append(f"  test {_string(title)} do")
    for seen, var in code.bound.items():
        lines.append(f"    {var} = spawn(fn -> Process.sleep(:infinity) end)   # stands in for {seen}")
    lines.append(f"    pid = start_recorded({target}, {code.value(start[0])}, {code.value(start[1])})")
    if crash:
        lines.append("    ref = Process.monitor(pid)")
    lines += _steps(code, mine, info, details)
    if crash:
        message, reason, seq = crash
        lines.append("")
        lines.append(f"    # seq {seq}: the event it crashed on"
                     + ("" if mode == "reproduce" else "; it must survive it"))
        lines.append(_deliver(code, message))
        if mode == "reproduce":
            lines.append("    assert_receive {:DOWN, ^ref, :process, ^pid, reason}, 5000")
            lines.append(f"    assert {_reason(code, reason)} = reason")
        else:
            lines.append("    :sys.get_state(pid)")
            lines.append("    refute_received {:DOWN, ^ref, :process, ^pid, _}")
    lines.append("  end")
    lines += HELPERS + ["end"]
    filename = re.sub(r"\W", "_", _snake(test_module.rsplit(".", 1)[0].replace(".", "")))
    return ExUnitTest("\n".join(lines) + "\n", test_module, f"{filename}_{mode}_test.exs")


def _first_step(mine, info, trim: bool) -> int | None:
    """The first step to replay: the last MAX_STEPS (unless between= says),
    moved on to one whose data before is recorded with nothing postponed then
    (the test could not hold back what the machine postponed before it)."""
    data = list(mine["data_before"])
    pending = []
    start = max(0, len(mine) - MAX_STEPS) if trim else 0
    for i, (row, step) in enumerate(zip(mine.itertuples(index=False), info)):
        if i >= start and not pending and state_recorded(data[i]):
            return i
        if step["how"] == "postpone":
            pending.append(row.message)
        elif row.message in pending and not step["from_mailbox"]:
            pending.remove(row.message)
    return None


def _steps(code: ElixirCode, mine, info, details) -> list[str]:
    lines: list[str] = []
    requests: dict = {}          # a caller's From -> the test's request variable
    armed: dict = {}             # timeout event type (rendered) -> its recorded time (ms)
    rows = list(mine.itertuples(index=False))
    for i, (row, step, detail) in enumerate(zip(rows, info, details)):
        etype, how = step["event_type"], step["how"]
        lines.append("")
        shown = "{:call, from}" if _kind(etype) == "call" else render(etype, "elixir", 40)
        what = f"{shown} {render(row.message, 'elixir', 60)}"
        done = f"{row.before} -> {row.after}" + (", postponed" if how == "postpone" else "")
        lines.append(f"    # seq {int(row.seq)}: {detail.callback} {what} ({done})")
        kind = _kind(etype)
        if kind and step["from_mailbox"] is not False:
            if kind == "call":
                var = requests[etype[1]] = f"request_{len(requests) + 1}"
                lines.append(f"    {var} = :gen_statem.send_request(pid, {code.value(row.message)})")
            elif kind == "cast":
                lines.append(f"    :gen_statem.cast(pid, {code.value(row.message)})")
            else:
                lines.append(f"    send(pid, {code.value(row.message)})")
        elif kind:
            lines.append("    # (postponed before: the machine retries it itself after a state change)")
        elif _is_timeout(etype):
            ms = armed.get(render(etype, "elixir", 60))
            after = f" after {ms} ms" if ms is not None else ""
            lines.append(f"    # its own timeout fires by itself{after}: the test waits for it")
        else:
            lines.append("    # (an event the machine gave itself)")
        for caller, reply in step["replies"]:
            var = requests.get(caller)
            if var is not None:
                lines.append(f"    assert {{:reply, {code.pattern(reply)}}} = "
                             f":gen_statem.receive_response({var}, 5000)")
            else:
                lines.append(f"    # it replied {render(reply, 'elixir', 60)} to a caller from "
                             "before the replay")
        for ttype, ms, _ in timers(detail.actions):
            armed[render(ttype, "elixir", 60)] = ms
        follow_up = i + 1 < len(rows) and _follows(info[i + 1], rows[i + 1])
        if follow_up:
            continue
        expected = (row.after, detail.data_after)
        opener = info[_group_start(info, rows, i)]["event_type"]
        if not state_recorded(detail.data_after):
            lines.append("    :sys.get_state(pid)   # (its data here was not recorded)")
        elif _is_timeout(opener):
            ms = armed.get(render(opener, "elixir", 60))
            wait = (ms if isinstance(ms, int) else max(
                [t for t in armed.values() if isinstance(t, int)] + [0])) + _GRACE_MS
            lines.append(f"    await_state(pid, &match?({code.pattern(expected)}, &1), {wait})")
        else:
            lines.append(f"    assert {code.pattern(expected)} = :sys.get_state(pid)")
    return lines


def _group_start(info, rows, i: int) -> int:
    while i > 0 and _follows(info[i], rows[i]):
        i -= 1
    return i


def _follows(step: dict, row) -> bool:
    """An event the machine runs at once after the one before, with no
    message: a postponed event retried, an internal event."""
    etype = step["event_type"]
    return (_kind(etype) is not None and step["from_mailbox"] is False) or etype == Atom("internal")


def _kind(etype: Any) -> str | None:
    if isinstance(etype, tuple) and len(etype) == 2 and etype[0] == _CALL:
        return "call"
    return {_CAST: "cast", _INFO: "info"}.get(etype)


def _is_timeout(etype: Any) -> bool:
    return etype in (Atom("timeout"), Atom("state_timeout")) or (
        isinstance(etype, tuple) and len(etype) == 2 and etype[0] == Atom("timeout"))


def _deliver(code: ElixirCode, received: Any) -> str:
    kind = message_kind(received)
    if kind == "cast":
        return f"    :gen_statem.cast(pid, {code.value(received[1])})"
    if kind == "call":
        return f"    :gen_statem.send_request(pid, {code.value(received[2])})"
    return f"    send(pid, {code.value(received)})"


def _crash(facts: Facts, seq: int | None, pid: str, between) -> tuple | None:
    if seq is None or (between is not None and not between[0] <= seq <= between[1]):
        return None
    events = facts.events
    exits = events[(events["kind"] == "exit") & (events["pid"] == pid)]
    return events["term"].iloc[seq], exits["term"].iloc[0], seq


def _reason(code: ElixirCode, reason: Any) -> str:
    if (isinstance(reason, tuple) and len(reason) == 2 and isinstance(reason[1], list)
            and reason[1] and isinstance(reason[1][0], tuple)):
        return "{" + code.pattern(reason[0]) + ", _}"
    return code.pattern(reason)


def _header(facts, mine, details, pid, mode, crash, left_out) -> list[str]:
    first, last = int(mine["seq"].iloc[0]), int(mine["seq"].iloc[-1])
    verdict = ("passes while the recorded behaviour, bug included, is still there"
               if mode == "reproduce" else
               "the machine must survive what crashed it: fails until the bug is fixed")
    own = sorted({render(t, "elixir", 40) + f" ({ms} ms)" for d in details
                  for t, ms, _ in timers(d.actions)})
    out = [f"# Generated by BEAM Microscope from a recording of the gen_statem {pid} on "
           f"{facts.node or 'the node'},",
           f"# seqs {first}-{crash[2] if crash else last}. Mode: {mode} ({verdict})."]
    if left_out:
        out.append(f"# It starts from the state and data recorded before seq {first}: the "
                   f"{left_out} event(s) before it are left out.")
    out += ["# Timeouts it cannot deliver: the machine's own "
            + (", ".join(own) if own else "timeouts (none were armed in the replay)")
            + " fire by themselves;",
            "# the test waits for each (its recorded time + 1 s) and cannot hold one back.",
            "# Timers armed before the first replayed event are not running here, and state",
            "# enter calls run as the machine makes them (they are not replayed).", ""]
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#") + '"'


SHIM = """  # Enters the machine's loop in a recorded state and hands over to its module:
  # init/1 is not called (the recording does not hold its argument), no name is
  # taken, and the state's enter call is not made again.
  defmodule Shim do
    @moduledoc false
    @behaviour :gen_statem
    def callback_mode, do: :handle_event_function
    def init(_), do: :ignore
    def handle_event(:internal, {:microscope_start, module}, _state, _data),
      do: {:keep_state_and_data, [{:change_callback_module, module}]}
  end
""".split("\n")

HELPERS = """
  defp start_recorded(module, state, data) do
    start_supervised!(%{id: module, restart: :temporary,
                        start: {:proc_lib, :start_link, [__MODULE__, :enter_recorded,
                                                         [module, state, data]]}})
  end

  @doc false
  def enter_recorded(module, state, data) do
    :proc_lib.init_ack({:ok, self()})
    :gen_statem.enter_loop(__MODULE__.Shim, [], state, data,
                           [{:next_event, :internal, {:microscope_start, module}}])
  end

  # The machine's own timeout fires by itself: poll its state until it is the
  # recorded one, or fail with the state it is in.
  defp await_state(pid, matches?, ms),
    do: await_state(pid, matches?, ms, System.monotonic_time(:millisecond) + ms)

  defp await_state(pid, matches?, ms, deadline) do
    state = :sys.get_state(pid)
    cond do
      matches?.(state) -> state
      System.monotonic_time(:millisecond) > deadline ->
        flunk("not in the recorded state after #{ms} ms: " <> inspect(state))
      true -> Process.sleep(5); await_state(pid, matches?, ms, deadline)
    end
  end""".split("\n")
