"""mic.bisect drives git bisect run over a throwaway repository of a small
Mix app with five commits, made here; the third plants a crash."""

from __future__ import annotations

import subprocess

import pytest

import microscope_jupyter as mic
from microscope_jupyter.errors import BisectError
from nodes import wait_until

MIX = """defmodule Tally.MixProject do
  use Mix.Project
  def project, do: [app: :tally, version: "0.1.0", elixir: "~> 1.14", deps: []]
  def application, do: [mod: {Tally.Application, []}]
end
"""

APP = """defmodule Tally.Application do
  use Application
  def start(_, _), do: Supervisor.start_link([Tally.Counter], strategy: :one_for_one)
end
"""

COUNTER = """defmodule Tally.Counter do
  use GenServer
  def start_link(_), do: GenServer.start_link(__MODULE__, 0, name: __MODULE__)
  def init(n), do: {:ok, %{count: n}}
  def handle_cast(:bump, %{count: n} = state)BUG, do: {:noreply, %{state | count: n + 1}}
  def handle_call(:count, _from, state), do: {:reply, state.count, state}
end
"""

TALLY = """defmodule Tally do
  def bump_many(n), do: for(_ <- 1..n, do: GenServer.cast(Tally.Counter, :bump))
EXTRA
end
"""


def write(repo, files, message):
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tally_repo(tmp_path):
    repo = tmp_path / "tally"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.email", "t@example.com"], cwd=repo, check=True)
    subprocess.run(["git", "config", "user.name", "Test"], cwd=repo, check=True)
    ok = COUNTER.replace("BUG", "")
    commits = [write(repo, {"mix.exs": MIX, "lib/application.ex": APP, "lib/counter.ex": ok,
                            "lib/tally.ex": TALLY.replace("EXTRA", "")}, "a counter")]
    commits.append(write(repo, {"lib/tally.ex": TALLY.replace(
        "EXTRA", "  def count, do: GenServer.call(Tally.Counter, :count)")}, "read the count"))
    # the planted bug: the seventh bump finds no clause
    commits.append(write(repo, {"lib/counter.ex": COUNTER.replace("BUG", " when n != 6")},
                         "skip a clause for speed"))
    commits.append(write(repo, {"README.md": "# Tally\n"}, "a readme"))
    commits.append(write(repo, {"lib/tally.ex": TALLY.replace(
        "EXTRA", "  def count, do: GenServer.call(Tally.Counter, :count)\n"
                 "  def twice, do: bump_many(2)")}, "bump twice"))
    return repo, commits


def scenario(s):
    """Good when ten bumps leave the counter alive."""
    wait_until(lambda: s.eval_erlang("whereis('Elixir.Tally.Counter') =/= undefined."))
    rec = s.trace("Tally.Counter")
    s.rpc("Elixir.Tally", "bump_many", [10])
    wait_until(lambda: (s.events["kind"] == "exit").any()
               or (s.events["kind"] == "state").sum() >= 10)
    rec.stop()
    return not (s.findings()["kind"] == "crash").any()


def test_bisect_names_the_commit_that_planted_the_crash(tally_repo, tmp_path):
    repo, commits = tally_repo
    found = mic.bisect(repo, good=commits[0], bad=commits[-1], scenario=scenario,
                       out=tmp_path / "recordings")
    assert found.first_bad == commits[2], found.log
    assert found.subject == "skip a clause for speed"
    assert found.verdicts[commits[2]] is False
    assert all(found.verdicts[c] for c in found.verdicts if c in commits[:2])
    crash = found.recording.findings()
    assert "crash" in set(crash["kind"])
    assert "First bad commit" in found._repr_markdown_()
    # the repository's own checkout and bisect state are untouched
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True).stdout.strip()
    assert head == commits[-1]
    assert subprocess.run(["git", "bisect", "log"], cwd=repo, capture_output=True).returncode != 0


def test_bisect_says_what_went_wrong(tally_repo, tmp_path):
    repo, commits = tally_repo
    with pytest.raises(BisectError, match="is not a git repository"):
        mic.bisect(tmp_path, good="a", bad="b", scenario=scenario)
    with pytest.raises(BisectError, match="rev-parse nosuchcommit"):
        mic.bisect(repo, good=commits[0], bad="nosuchcommit", scenario=scenario)

    def broken(s):
        raise RuntimeError("my scenario is wrong")
    with pytest.raises(BisectError, match="the scenario raised RuntimeError: my scenario is wrong"):
        mic.bisect(repo, good=commits[0], bad=commits[-1], scenario=broken)
