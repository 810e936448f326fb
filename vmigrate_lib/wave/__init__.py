"""Waves: many VMs migrated as one planned change (issue 15).

``model`` (the plan as data: what any runner or DAG writer reads), ``spec`` (the wave
file), ``estimate`` and ``schedule`` (the paper plan, pure), ``planning`` (preflight and
measured facts per VM), ``gantt`` (table and charts), ``state``, ``procs`` and ``runner``
(the embedded runner), ``report`` (the wave report notebook).  See docs/waves.md.
"""
