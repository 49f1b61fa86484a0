"""A report's widget blocks: state as JSON a browser parses, in a <script> it cannot end."""

from __future__ import annotations

import json
import re

import pytest

from microscope_jupyter.report.page import widget_block


def state_of(block: str) -> dict:
    text = re.search(r'<script type="application/json" id="mic-w\d+">(.*?)</script>', block,
                     re.S).group(1)
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))["state"]


def test_non_finite_numbers_become_null_and_script_ends_are_escaped():
    block = widget_block("timeline", {"span": float("nan"), "ends": [1.5, float("inf")],
                                      "text": "</script><b>", "_esm": "bundle"}, "<i>static</i>")
    assert state_of(block) == {"span": None, "ends": [1.5, None], "text": "</script><b>"}
    assert block.count("</script>") == 1
