"""Pin the public names so the API changes only on purpose."""

import microscope_jupyter as mic


def test_top_level_names():
    assert sorted(mic.__all__) == sorted(
        ["attach", "attach_cluster", "demo", "load", "compare", "bisect", "flight_recorders",
         "Session", "Cluster", "OfflineSession", "Atom", "errors", "load_ipython_extension"])


def test_dir_shows_only_the_public_api():
    assert dir(mic) == sorted(mic.__all__ + ["__version__"])
    assert "analysis" not in dir(mic) and hasattr(mic, "analysis")   # still importable


def test_session_surface():
    public = {name for name in dir(mic.Session) if not name.startswith("_")}
    assert public == {"attached", "detach", "rpc", "eval_erlang", "processes", "node_info",
                      "trace", "events", "messages", "calls", "states", "syntax", "query",
                      "time_travel", "expect", "findings", "sql", "save", "supervision_tree",
                      "explain", "investigate", "anomalies", "metrics", "dashboard", "exunit",
                      "versions", "serve_mcp", "process", "source",
                          "flight_recorder", "flight_recorders", "pull_flight_recorder", "lines",
                              "annotate", "annotations", "report", "to_perfetto", "overview"}


def test_load_ext_alias_points_at_the_same_extension():
    import microscope

    assert microscope.load_ipython_extension is mic.load_ipython_extension


def test_importing_does_not_pull_in_ipython():
    import subprocess
    import sys

    code = "import sys, microscope_jupyter; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mic_demo_stays_a_function_after_its_module_is_imported():
    import microscope_jupyter.demo_app  # noqa: F401

    assert callable(mic.demo) and mic.demo.__module__ == "microscope_jupyter.session"
