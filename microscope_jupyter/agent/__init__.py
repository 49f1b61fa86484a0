"""The in-node agent: its compiled module, and the Python side that drives it."""
