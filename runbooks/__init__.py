"""The runbooks, shipped as package data ``vmigrate_lib.runbooks`` (see pyproject.toml).

This file makes the folder a regular package, so that setuptools' editable install
can map it under ``vmigrate_lib`` (a namespace package nested in a regular one is not).
"""
