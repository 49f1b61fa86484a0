"""What ``BeamMicroscope.inspect_line(binding())`` costs a caller, per call.

    .venv/bin/python bench/inspect_line.py [--calls 20000000] [--runs 7]

Runs one Elixir VM (Debian's Elixir on OTP 25) with the hooks package and a
module of tight loops, each timed with :timer.tc and divided by --calls:

  baseline      the loop with a plain function call where inspect_line would be
  no recording  inspect_line(binding()) with no agent on the node: the cost
                every call pays in production (target: under 50 ns over baseline)
  recording     a real agent trace with lines on (the tracer takes every event,
                limits raised so none is shed): what a call costs while a
                notebook records (fewer calls: every one is an event)

Medians of --runs rounds, the three interleaved in each, and ratios against the
baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ROOT / "elixir_hooks" / "lib" / "beam_microscope.ex"
AGENT = ROOT / "elixir_hooks" / "agent"

SCRIPT = r"""
Code.require_file(__HOOKS__)
for source <- Path.wildcard(Path.join(__AGENT__, "*.erl")) do
  {:ok, module, beam} = :compile.file(String.to_charlist(source), [:binary])
  {:module, _} = :code.load_binary(module, String.to_charlist(source), beam)
end

defmodule Bench.Loops do
  require BeamMicroscope

  def plain(0, acc), do: acc
  def plain(n, acc), do: plain(n - 1, keep(acc + n))

  def inspected(0, acc), do: acc
  def inspected(n, acc) do
    BeamMicroscope.inspect_line("bench", binding())
    inspected(n - 1, keep(acc + n))
  end

  # Out of line and never inlined: the work both loops do besides the call.
  @compile {:inline, keep: 1}
  def keep(x), do: x
end

defmodule Bench.Run do
  def ns(fun, calls) do
    {us, _} = :timer.tc(fun)
    us * 1000 / calls
  end

  def drain do
    receive do
      _ -> drain()
    after 0 -> :ok
    end
  end

  def round(calls, recorded_calls) do
    base = ns(fn -> Bench.Loops.plain(calls, 0) end, calls)
    idle = ns(fn -> Bench.Loops.inspected(calls, 0) end, calls)
    {:ok, agent, _} =
      :microscope_agent.start(self(), %{procs: [self()], state: false, messages: false,
                                        lifecycle: false, adaptive: false,
                                        max_events: 100_000_000, max_rate: 100_000_000,
                                        shed_queue: 10_000_000, max_queue: 20_000_000})
    rec = ns(fn -> Bench.Loops.inspected(recorded_calls, 0) end, recorded_calls)
    {:ok, stats} = :microscope_agent.stop(agent)
    drain()
    IO.puts("ROUND #{base} #{idle} #{rec} #{stats.kept} #{stats.dropped}")
  end
end

[calls, recorded, runs] = Enum.map(System.argv(), &String.to_integer/1)
for _ <- 1..runs, do: Bench.Run.round(calls, recorded)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000_000)
    parser.add_argument("--recorded-calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    elixir = shutil.which("elixir")
    if elixir is None:
        raise SystemExit("Elixir is not installed: apt-get install -y elixir")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.exs"
        script.write_text(SCRIPT.replace("__HOOKS__", repr(str(HOOKS)).replace("'", '"'))
                          .replace("__AGENT__", repr(str(AGENT)).replace("'", '"')))
        out = subprocess.run([elixir, str(script), str(args.calls), str(args.recorded_calls),
                              str(args.runs)], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    rounds = [list(map(float, line.split()[1:])) for line in out.stdout.splitlines()
              if line.startswith("ROUND ")]
    base, idle, rec, kept = (statistics.median([r[i] for r in rounds]) for i in range(4))
    dropped = sum(r[4] for r in rounds)
    print(f"inspect_line, {len(rounds)} rounds of {args.calls:,} calls "
          f"({args.recorded_calls:,} while recording); medians in ns per call")
    print(f"  baseline (plain call)   {base:8.2f} ns")
    print(f"  no recording            {idle:8.2f} ns   +{idle - base:6.2f} ns over baseline "
          f"({idle / base:.2f}x)   target: under 50 ns")
    print(f"  recording (lines on)    {rec:8.2f} ns   +{rec - base:6.2f} ns over baseline "
          f"({rec / base:.2f}x); events kept {int(kept):,} per round, "
          f"dropped {int(dropped)} in all")


if __name__ == "__main__":
    main()
