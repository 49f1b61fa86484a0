"""Tests written from what happened: ExUnit tests generated from a recording
(``exunit``), and run in the user's Mix app (``ExUnitTest.run``)."""

from .exunit import MODES, ExUnitTest
from .generate import exunit
from .mix import ExUnitRun

__all__ = ["ExUnitTest", "ExUnitRun", "exunit", "MODES"]
