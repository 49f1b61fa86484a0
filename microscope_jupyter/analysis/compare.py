"""Two recordings compared: ``mic.compare(before, after)``.

    diff = mic.compare(mic.load("buggy/"), mic.load("fixed/"))
    diff                 # in a notebook: what changed, in plain words
    diff.frame()         # aspect, what, before, after, change, significant
    diff.modules         # md5, application version and git commit per module

Aspects, each lined up by what a process is, never by its pid (pids differ
between runs): its registered name, else its role (``roles``: the nearest
named ancestor and the function it runs, ``a child of MyApp.Pool running
:my_app.work/1``), and messages by their shape:

- ``module``: a module whose md5 differs (with the commits of the checkouts
  the sources came from, when they were in one), or ``added``/``removed``
  when only one recording ran it;
- ``finding``: a finding kind per process that appeared or disappeared, or
  whose count changed (one that counts a measure past a threshold, such as
  ``slow_handler``, only when its count tells the two apart: ``BY_CHANCE``);
- ``cause``: a kind of cause ``s.explain`` names in one and not the other;
- ``messages``: every send per flow (sender, receiver, message shape):
  counts and rates per second;
- ``transitions``: GenServer transitions per (process, callback, message shape);
- ``latency``, ``rate``, ``state_size``: what ``after.anomalies(before)``
  finds significant (robust z-scores and rank tests; see ``anomalies``);
  rates are judged against the app's pace, which a row says when it moved.

Two recordings of the same build should differ only in counts that the
statistics do not call significant.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from ..store import joins
from ..render.names import erlang_module_name
from .anomalies import anomalies, pace
from .causes import find_causes
from .observed import observed_seconds
from .facts import Facts
from .findings import findings_table
from .roles import flows, role_of


__all__ = ["Comparison", "compare", "COMPARISON_COLUMNS", "VERSION_COLUMNS", "modules_seen"]

COMPARISON_COLUMNS = ["aspect", "what", "before", "after", "change", "significant"]


@dataclass
class Comparison:
    """What changed between two recordings; ``.frame()`` has one row per difference."""

    rows: pd.DataFrame
    modules: pd.DataFrame

    def frame(self) -> pd.DataFrame:
        return self.rows.copy()

    def significant(self) -> pd.DataFrame:
        return self.rows[self.rows["significant"]].reset_index(drop=True)

    def summary(self) -> list[str]:
        """The significant differences, one sentence each."""
        out = []
        for row in self.significant().itertuples(index=False):
            out.append(f"{row.aspect}: {row.what}: {row.change}")
        return out or ["No significant difference: the same findings, causes, modules, and "
                       "no latency, rate or state size the statistics call different."]

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- {line}" for line in self.summary())

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.summary())
        return f"<ul>{items}</ul>"


def compare(before: Facts, after: Facts, versions: tuple[pd.DataFrame, pd.DataFrame]) -> Comparison:
    """What changed from ``before`` to ``after``; ``versions``: each one's modules
    (a session's ``versions()``), to tell changed code from changed behaviour."""
    modules = _modules(*versions)
    rows = []
    for m in modules[modules["changed"]].itertuples(index=False):
        commits = (f" (commit {_commit(m.commit_before)} -> {_commit(m.commit_after)})"
                   if m.commit_before != m.commit_after else "")
        rows.append(("module", m.module, m.md5_before, m.md5_after,
                     "changed" + commits if m.md5_before and m.md5_after
                     else ("added" if m.md5_after else "removed"), True))
    rows += _by_chance(_counted("finding", _findings(before), _findings(after),
                                significant_if_new=True), before, after)
    rows += _counted("cause", _causes(before), _causes(after), significant_if_new=True)
    rows += _counted("messages", _flows(before), _flows(after), rates=(before, after))
    rows += _counted("transitions", _transitions(before), _transitions(after))
    speed = pace(after, before)
    if not 1 / 1.5 < speed < 1.5:   # a busier machine, or the app's own: said, not flagged
        rows.append(("rate", "every flow", 1.0, speed, f"the app ran at {speed:.2f}x the "
                     "baseline's pace (the median over the flows both have); each flow's "
                     "rate is judged against it", False))
    for a in anomalies(after, before).itertuples(index=False):
        what = a.what if str(a.what).startswith(str(a.process)) else f"{a.process}: {a.what}"
        change = str(a.summary).removeprefix(f"{what}: ")
        rows.append((a.kind, what, a.baseline, a.now, change, True))
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    frame["significant"] = frame["significant"].astype(bool)
    return Comparison(frame, modules)


VERSION_COLUMNS = ["module", "md5", "application", "vsn", "source", "commit"]


def modules_seen(facts: Facts) -> list[str]:
    """Erlang names of the modules the recording ran: the GenServers it
    recorded (their initial calls) and the modules it call-traced."""
    events = facts.events
    acting = set(events.loc[events["kind"].isin(["state", "exit"]), "pid"].dropna())
    tree = facts.recorded_tree()
    calls = tree.loc[tree["pid"].isin(acting), "initial_call"].dropna().tolist()
    calls += events.loc[events["kind"] == "call", "mfa"].dropna().unique().tolist()
    out = []
    for call in calls:
        module = str(call).lstrip(":").rsplit("/", 1)[0].rsplit(".", 1)[0]
        if module and '"' not in module and module not in ("proc_lib", "gen", "erlang"):
            out.append(erlang_module_name(module))
    return sorted(set(out))


# -- what is lined up -------------------------------------------------------------

def _findings(facts: Facts) -> dict[str, int]:
    found = findings_table(facts)
    out: dict[str, int] = {}
    for kind, name, pid, count in zip(found["kind"], found["name"], found["pid"], found["count"]):
        if kind != "trace_gap":
            key = f"{kind} ({name if isinstance(name, str) else role_of(facts, pid)})"
            out[key] = out.get(key, 0) + int(count)
    return out


def _causes(facts: Facts) -> dict[str, int]:
    out: dict[str, int] = {}
    for cause in find_causes(facts):
        key = f"{cause.kind} ({', '.join(p for p in cause.processes if not p.startswith('<'))})"
        out[key] = out.get(key, 0) + 1
    return out


def _flows(facts: Facts) -> dict[str, int]:
    return flows(facts)["flow"].value_counts().to_dict()


def _transitions(facts: Facts) -> dict[str, int]:
    # shapes read off the payloads: decoding every state would cost seconds
    states = facts.cached("state headings", lambda: joins.state_headings(facts.store))
    who = {pid: role_of(facts, pid) for pid in states["pid"].unique()}
    keys = [f"{n if isinstance(n, str) else who[p]} {c} of {shape}" for n, p, c, shape in zip(
        *(states[c].to_numpy(dtype=object) for c in ("name", "pid", "callback", "shape")))]
    return pd.Series(keys, dtype=object).value_counts().to_dict() if keys else {}


def _seconds(facts: Facts) -> float:
    return max(observed_seconds(facts.store), 1e-3)


def _counted(aspect: str, old: dict, new: dict, significant_if_new: bool = False,
             rates: tuple | None = None) -> list[tuple]:
    """A row per key whose count differs: gone and new keys are significant for
    findings and causes; plain count changes are left to the statistics."""
    rows = []
    per = (_seconds(rates[0]), _seconds(rates[1])) if rates else None
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, 0), new.get(key, 0)
        if a == b:
            continue
        if a and b:
            change = f"{a} -> {b}"
        else:
            change = "gone" if a else "new"
        if per:
            change += f" ({a / per[0]:.1f}/s -> {b / per[1]:.1f}/s)"
        rows.append((aspect, key, a, b, change, significant_if_new and not (a and b)))
    return rows


# Findings that count a measure past a threshold (a callback's time, a GC's, a
# heap's size): on a busy machine a few crossings come by chance, so one that
# came or went is a change only if its count tells the two recordings apart.
BY_CHANCE = ("slow_handler", "long_gc", "long_schedule", "large_heap")


def _by_chance(rows: list[tuple], before: Facts, after: Facts) -> list[tuple]:
    """A new or gone finding of ``BY_CHANCE`` is significant when all its n
    crossings falling in one recording is unlikely at one rate for both:
    2 share^n < 0.01, share: that recording's part of the time traced (equal
    times: 8 crossings or more)."""
    out = []
    for aspect, key, a, b, change, significant in rows:
        if significant and key.split(" ", 1)[0] in BY_CHANCE:
            t_old, t_new = _seconds(before), _seconds(after)
            share = (t_new if b else t_old) / (t_old + t_new)
            significant = 2 * share ** (a + b) < 0.01
            change += "" if significant else " (too few to tell from chance)"
        out.append((aspect, key, a, b, change, significant))
    return out


def _commit(commit) -> str:
    return str(commit)[:10] if isinstance(commit, str) else "not in a git checkout"


def _modules(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    a = before.set_index("module") if len(before) else None
    b = after.set_index("module") if len(after) else None
    names = sorted(set(a.index if a is not None else []) | set(b.index if b is not None else []))
    rows = []
    for name in names:
        left = a.loc[name].where(a.loc[name].notna(), None) if a is not None and name in a.index \
            else None
        right = b.loc[name].where(b.loc[name].notna(), None) if b is not None and name in b.index \
            else None
        md5_a = left["md5"] if left is not None else None
        md5_b = right["md5"] if right is not None else None
        rows.append((name, md5_a, md5_b, md5_a != md5_b,
                     left["commit"] if left is not None else None,
                     right["commit"] if right is not None else None,
                     left["vsn"] if left is not None else None,
                     right["vsn"] if right is not None else None))
    # object columns: a module one side lacks keeps None there (pandas' text
    # columns would make it NaN, which reads as true and as unequal to itself)
    frame = pd.DataFrame(rows, columns=["module", "md5_before", "md5_after", "changed",
                                        "commit_before", "commit_after", "vsn_before",
                                        "vsn_after"], dtype=object)
    frame["changed"] = frame["changed"].astype(bool)
    return frame
