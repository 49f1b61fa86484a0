"""``%load_ext microscope``: a short alias for the microscope_jupyter extension."""

from microscope_jupyter import load_ipython_extension, unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]
