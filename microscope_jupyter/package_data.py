"""Where the files the package ships live, in a wheel or in a checkout."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

__all__ = ["hooks_dir", "version", "VERSION"]

VERSION = "0.1.0"   # pyproject.toml's [project] version (a unit test checks they agree)

_HERE = Path(__file__).resolve().parent


def hooks_dir() -> Path | None:
    """The Elixir hooks package (``BeamMicroscope.inspect_line``): ``$BEAM_MICROSCOPE_HOOKS``,
    else the copy an installed package ships, else a checkout's ``elixir_hooks``;
    None when there is none. Mix apps depend on it by path through the variable
    (the demo app does)."""
    env = os.environ.get("BEAM_MICROSCOPE_HOOKS")
    for path in ([Path(env)] if env else []) + [_HERE / "elixir_hooks", _HERE.parent / "elixir_hooks"]:
        if (path / "mix.exs").exists():
            return path
    return None


def version() -> str:
    """The installed microscope-jupyter's version (``microscope --version``, the MCP
    server's); a checkout that is not installed says ``VERSION``."""
    try:
        return importlib.metadata.version("microscope-jupyter")
    except importlib.metadata.PackageNotFoundError:
        return VERSION
