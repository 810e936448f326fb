"""The embedded lab hypervisor: hosts as folders, VMs as files, guests as processes.

Modules, bottom up: ``layout`` (paths, atomic writes, locks), ``vmconfig``,
``inventory``, ``blockfmt`` (self-checking guest blocks), ``ctk`` (change
tracking), ``disk`` (base + snapshot delta), ``machine`` (snapshots and
consolidation), ``acks`` and ``verify`` (proof of the guest's last state),
``workload``, ``guest`` (the guest process) and ``guestctl`` (its control
socket), ``power``, ``handle`` (guest or files), ``registration``,
``changes``, ``lifecycle`` (lab up/status/down).  The Host implementation is
:class:`vmigrate_lib.control.lab.LabHost`.
"""
