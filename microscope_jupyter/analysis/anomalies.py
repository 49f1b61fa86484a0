"""Anomalies: what behaves unlike its baseline, with robust statistics.

    s.anomalies()                      # the later half against the earlier half
    s.anomalies(mic.load("good/"))     # against a recording of a good run

Behaviour is keyed so that two recordings line up: a process by its
registered name, or against a baseline by what it is (``roles``: pids differ
between runs), a callback by the shape of its message (``{:tick, _}``),
traffic by sender and receiver names (against a baseline, every send by its
flow: roles and the message's shape). Compared:

- ``latency``: callback durations per (process, callback, message shape):
  a robust z-score of the median against the baseline's median and MAD
  (``0.6745 (x - median) / MAD``, flagged past 3.5) and a Mann-Whitney U
  test, and at least 1.5 times slower;
- ``rate``: messages per second between two named processes (a flow), Poisson
  means test, at least twice (or half) the baseline's rate, or stopped;
  against a baseline, its rate relative to the app's ``pace``;
- ``state_size``: the entries a process's state holds (map keys, list and
  tuple elements, nested) against the baseline, the same robust z-score.

Each row has evidence seqs in this recording.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from ..beam.etf import decode
from ..store import joins
from ..store.otp import state_recorded, transition
from .detector_kit import state_entries
from .observed import observed_seconds
from .roles import flows, role_of
from .facts import Facts


__all__ = ["anomalies", "pace", "ANOMALY_COLUMNS", "Z_LIMIT"]

ANOMALY_COLUMNS = ["kind", "process", "what", "baseline", "now", "z", "p_value", "summary",
                   "evidence"]
Z_LIMIT = 3.5
_MIN_SAMPLES = 5
SIZE_SAMPLES = 60     # states decoded per process and window: a median needs no more


def anomalies(facts: Facts, baseline: Facts | None = None) -> pd.DataFrame:
    if baseline is None:
        old, new = _halves(facts)
    else:
        old, new = _Window(baseline, None, True), _Window(facts, None, True)
    rows = _latency(old, new) + _rates(old, new) + _state_sizes(old, new)
    frame = pd.DataFrame(rows, columns=ANOMALY_COLUMNS)
    return frame.sort_values(["kind", "process", "what"], kind="stable").reset_index(drop=True)


class _Window:
    """A recording, or the part of it between two timestamps (ns); ``across``:
    lined up with another recording, so an unnamed process goes by its role."""

    def __init__(self, facts: Facts, span: tuple[int, int] | None, across: bool = False):
        self.facts = facts
        self.span = span
        self.across = across

    def who(self, pid, name) -> str:
        """A process as this window keys it."""
        if isinstance(name, str):
            return name
        return role_of(self.facts, pid) if self.across else pid

    def _within(self, table: pd.DataFrame, column: str) -> pd.DataFrame:
        if self.span is None or table.empty:
            return table
        ns = table[column].to_numpy(dtype="datetime64[ns]").view(np.int64)
        return table[(ns >= self.span[0]) & (ns < self.span[1])]

    def seconds(self) -> float:
        """The time traced within the span (not the gaps between traces)."""
        return observed_seconds(self.facts.store, self.span)

    def headings(self) -> pd.DataFrame:
        """Every transition's process, callback, message shape and duration:
        read off the payloads, no state decoded."""
        return self._within(self.facts.cached("state headings",
                                              lambda: joins.state_headings(self.facts.store)),
                            "ts")

    def messages(self) -> pd.DataFrame:
        return self._within(self.facts.messages().dropna(subset=["sent_at"]), "sent_at")

    def state_sizes(self) -> pd.DataFrame:
        """Entries in recorded states (map keys and list or tuple elements,
        nested): at most ``SIZE_SAMPLES`` transitions per process, evenly
        spread, each decoded alone, so a median costs the same at any length."""
        headings = self.headings()
        raw = self.facts.store.raw()
        rows = []
        for pid, group in headings.groupby("pid", sort=True):
            seqs = group["seq"].to_numpy()
            if len(seqs) > SIZE_SAMPLES:
                seqs = seqs[np.linspace(0, len(seqs) - 1, SIZE_SAMPLES).astype(int)]
            name = self.who(pid, next((n for n in group["name"] if isinstance(n, str)), None))
            for seq in seqs.tolist():
                after = transition(decode(raw.payload(seq)))["after"]
                if state_recorded(after):
                    rows.append((name, state_entries(after), seq))
        return pd.DataFrame(rows, columns=["name", "entries", "seq"])


def _halves(facts: Facts) -> tuple[_Window, _Window]:
    ts = facts.events["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    if not len(ts):
        return _Window(facts, (0, 0)), _Window(facts, (0, 0))
    middle = int(ts.min() + (ts.max() - ts.min()) // 2)
    return _Window(facts, (int(ts.min()), middle)), _Window(facts, (middle, int(ts.max()) + 1))


def _robust_z(values: np.ndarray, base: np.ndarray) -> float:
    median = float(np.median(base))
    mad = float(np.median(np.abs(base - median)))
    spread = max(mad, 0.05 * abs(median), 1e-9)   # a constant baseline is not infinitely tight
    return 0.6745 * (float(np.median(values)) - median) / spread


def _keyed_states(window: _Window) -> pd.DataFrame:
    states = window.headings()
    keys = [(p, n if isinstance(n, str) else None) for p, n in
            zip(states["pid"].to_numpy(dtype=object), states["name"].to_numpy(dtype=object))]
    who = {key: window.who(*key) for key in set(keys)}
    return pd.DataFrame({
        "process": np.array([who[key] for key in keys], dtype=object),
        "what": [f"{c} of {shape}" for c, shape in zip(states["callback"].to_numpy(dtype=object),
                                                          states["shape"].to_numpy(dtype=object))],
        "us": states["duration_us"].to_numpy(dtype=float),
        "seq": states["seq"].to_numpy()})


def _latency(old: _Window, new: _Window) -> list[tuple]:
    base, now = _keyed_states(old), _keyed_states(new)
    rows = []
    base_groups = {key: group for key, group in base.groupby(["process", "what"], sort=True)}
    for key, group in now.groupby(["process", "what"], sort=True):
        before = base_groups.get(key)
        if before is None or len(before) < _MIN_SAMPLES or len(group) < _MIN_SAMPLES:
            continue
        z = _robust_z(group["us"].to_numpy(), before["us"].to_numpy())
        slower = np.median(group["us"]) / max(np.median(before["us"]), 1e-9)
        if abs(z) <= Z_LIMIT or not (slower >= 1.5 or slower <= 1 / 1.5):
            continue
        from scipy import stats   # here, not at import: scipy.stats takes a while to load

        p = float(stats.mannwhitneyu(group["us"], before["us"], alternative="two-sided").pvalue)
        if p >= 0.01:
            continue
        process, what = key
        rows.append(("latency", process, what, float(np.median(before["us"])),
                     float(np.median(group["us"])), z, p,
                     f"{process}: {what} takes {np.median(group['us']) / 1000:.2f} ms (median) "
                     f"against {np.median(before['us']) / 1000:.2f} ms in the baseline, "
                     f"{slower:.1f}x", [int(s) for s in group.nlargest(5, "us")["seq"]]))
    return rows


def _pairs(window: _Window) -> pd.DataFrame:
    if window.across:
        sent = flows(window.facts)
        if window.span is not None:
            sent = sent[(sent["ts_ns"] >= window.span[0]) & (sent["ts_ns"] < window.span[1])]
        return pd.DataFrame({"pair": sent["flow"].to_numpy(dtype=object),
                             "seq": sent["seq"].to_numpy(dtype=np.int64)})
    messages = window.messages()
    named = messages[messages["sender_name"].notna() & messages["receiver_name"].notna()]
    return pd.DataFrame({"pair": [f"{a} -> {b}" for a, b in zip(named["sender_name"],
                                                                named["receiver_name"])],
                         "seq": named["send_seq"].to_numpy(dtype=np.int64)})


def pace(facts: Facts, baseline: Facts) -> float:
    """How fast the app ran against a baseline: the median ratio of the rates
    of the flows both have, past ``_MIN_SAMPLES`` each (1 with fewer than three).
    A machine twice as busy slows every flow alike: against a baseline each
    rate is judged against this pace, not the clock alone."""
    return _pace(*_counts(_Window(baseline, None, True), _Window(facts, None, True)))


def _counts(old: _Window, new: _Window) -> tuple:
    base, now = _pairs(old), _pairs(new)
    return (base, now, base["pair"].value_counts(), now["pair"].value_counts(),
            old.seconds(), new.seconds())


def _pace(base, now, before, after, t_old: float, t_new: float) -> float:
    both = [p for p in before.index.intersection(after.index)
            if before[p] >= _MIN_SAMPLES and after[p] >= _MIN_SAMPLES]
    ratios = [(after[p] / t_new) / (before[p] / t_old) for p in both]
    return float(np.median(ratios)) if len(ratios) >= 3 else 1.0


def _rates(old: _Window, new: _Window) -> list[tuple]:
    base, now, before, after, t_old, t_new = counts = _counts(old, new)
    speed = _pace(*counts) if new.across else 1.0
    rows = []
    for pair in sorted(set(before.index) | set(after.index)):
        k_old, k_new = int(before.get(pair, 0)), int(after.get(pair, 0))
        if k_old + k_new < 2 * _MIN_SAMPLES:
            continue
        r_old, r_new = k_old / t_old, k_new / t_new
        ratio = r_new / (r_old * speed) if r_old else np.inf
        if 0.5 < ratio < 2:
            continue
        from scipy import stats

        p = float(stats.poisson_means_test(k_new, t_new, k_old, t_old * speed).pvalue)
        if p >= 0.001:
            continue
        what = ("stopped" if k_new == 0 else "started: none in the baseline" if k_old == 0
                else f"{r_new / r_old:.1f}x the baseline rate" + (
                    f", the app as a whole {speed:.2f}x" if speed != 1.0 else ""))
        seqs = now.loc[now["pair"] == pair, "seq"].head(5).tolist() or \
            base.loc[base["pair"] == pair, "seq"].tail(5).tolist()
        rows.append(("rate", pair.split(" -> ")[0], pair, r_old, r_new, np.nan, p,
                     f"{pair}: {r_new:.1f} messages/s against {r_old:.1f} in the baseline "
                     f"({what})", [int(s) for s in seqs]))
    return rows


def _state_sizes(old: _Window, new: _Window) -> list[tuple]:
    base, now = old.state_sizes(), new.state_sizes()
    rows = []
    base_groups = {name: group for name, group in base.groupby("name", sort=True)}
    for name, group in now.groupby("name", sort=True):
        before = base_groups.get(name)
        if before is None or len(before) < _MIN_SAMPLES or len(group) < _MIN_SAMPLES:
            continue
        was, is_ = float(np.median(before["entries"])), float(np.median(group["entries"]))
        z = _robust_z(group["entries"].to_numpy(float), before["entries"].to_numpy(float))
        if z <= Z_LIMIT or is_ < 1.5 * was or is_ - was < 20:
            continue
        rows.append(("state_size", name, "state", was, is_, z, np.nan,
                     f"{name}: its state holds {is_:.0f} entries (median) against {was:.0f} "
                     "in the baseline", [int(group["seq"].iloc[-1])]))
    return rows
