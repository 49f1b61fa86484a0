"""mic.compare's modules aspect, from hand-built recordings and module lists."""

from __future__ import annotations

import pandas as pd

from fake_agent import demo_recording, tally
from microscope_jupyter.analysis.compare import VERSION_COLUMNS, compare


def versions(*rows):
    return pd.DataFrame([(m, md5, "demo", "0.1.0", None, None) for m, md5 in rows],
                        columns=VERSION_COLUMNS)


def test_a_module_only_one_recording_ran_is_added_or_removed_not_changed():
    a, b = demo_recording(tally), demo_recording(tally)
    diff = compare(a.facts, b.facts, (versions(("Elixir.Demo.Old", "aa"), ("Elixir.Demo.Both", "bb")),
                                      versions(("Elixir.Demo.Both", "cc"), ("Elixir.Demo.New", "dd"))))
    modules = diff.frame()
    modules = modules[modules["aspect"] == "module"].set_index("what")["change"].to_dict()
    assert modules == {"Elixir.Demo.Both": "changed", "Elixir.Demo.New": "added",
                       "Elixir.Demo.Old": "removed"}
