"""The JupyterLab settings vmigrate ships, as package data ``vmigrate_lib.jupyter_settings``.

This file makes the folder a regular package, so that setuptools' editable install
can map it under ``vmigrate_lib`` (a namespace package nested in a regular one is not).
"""
