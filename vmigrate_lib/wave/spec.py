"""The wave file: a template of parameters, the VMs with their overrides, groups,
windows and limits.  Read strictly; every problem is one line, and all are reported.

Each VM becomes an ordinary params mapping (the template, then ``vm``, ``dest_name``,
``workspace``, the hosts and datastore, then the VM's own ``params``), checked by the
one schema (:func:`vmigrate_lib.params.validate`), so a wave runs nothing a params
file could not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VmigrateError, WaveFileError
from ..params import LabHostParams, MigrationParams, merge, validate
from ..params.paramfile import read_params_file
from ..params.paths import project_root
from ..units import parse_duration, parse_size
from .fields import Problems, WindowSpec, mapping, parse_rate, window_spec
from .model import Group, HostPair, Limits, VmFacts, VmTask, WavePlan

TOP = frozenset({"wave", "workspaces", "template", "estimate", "limits", "groups", "vms", "run"})
VM_KEYS = frozenset({"name", "group", "source", "destination", "dest_name", "datastore",
                     "disks", "allocated", "dirty_rate", "params"})
PER_VM = frozenset({"vm", "dest_name", "workspace"})  #: never in the template
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class RunOptions:
    """The local runner's standing choices."""

    #: a VM whose probes failed (Bob ran and may have taken writes) is rolled back: the
    #: change owner agreed to lose those writes; false leaves it for the operator
    rollback_after_probes: bool = False
    poll: float = 1.0  #: seconds between the runner's looks at windows and slots
    #: runs of a runbook that failed leaving nothing to undo (a kernel that did not start,
    #: a sync that stopped: both resume) before the VM counts as failed
    attempts: int = 3


@dataclass(frozen=True)
class WaveSpec:
    """A checked wave file."""

    name: str
    path: Path
    workspaces: Path
    groups: tuple[tuple[str, tuple[str, ...], WindowSpec], ...]
    limits: Limits
    vm_params: dict[str, dict[str, Any]]  #: per VM: its full raw params mapping
    tasks: tuple[VmTask, ...]  #: with the file's facts (preflight may replace them)
    interval: float
    cycle_overhead: float
    run: RunOptions = RunOptions()
    checked: dict[str, MigrationParams] = field(default_factory=dict)  #: per VM, validated
    runbook_overhead: float = 60.0  #: seconds a runbook run costs beyond its copy
    #: the file named ``estimate.runbook_overhead`` (else a plan may take the measured one)
    runbook_overhead_set: bool = False

    @property
    def wave_dir(self) -> Path:
        """The wave's own folder: state, journal, per-VM params files, plots, report."""
        return self.workspaces / f"wave-{self.name}"

    def plan(self, start_at: float, tasks: tuple[VmTask, ...] | None = None) -> WavePlan:
        groups = tuple(Group(n, after, w.resolve(start_at)) for n, after, w in self.groups)
        return WavePlan(self.name, tasks or self.tasks, groups, self.limits, self.interval,
                        self.cycle_overhead, self.runbook_overhead, start_at)


def _limits(pr: Problems, raw: Mapping[str, Any]) -> Limits:
    known = {"in_flight", "per_source_host", "per_destination_host", "bandwidth"}
    for k in set(raw) - known:
        pr.add(f"limits.{k}", f"unknown key (known: {', '.join(sorted(known))})")

    def count(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError("must be a whole number of at least 1")
        return v

    bw = mapping(pr, "limits.bandwidth", raw.get("bandwidth"))
    pairs: list[tuple[HostPair, float]] = []
    for key, val in bw.items():
        if key == "default":
            continue
        src, sep, dst = str(key).partition("->")
        if not sep or not src.strip() or not dst.strip():
            pr.add(f"limits.bandwidth.{key}", "name a host pair as SOURCE->DESTINATION")
            continue
        pairs.append((HostPair(src.strip(), dst.strip()),
                      pr.take(f"limits.bandwidth.{key}", val, parse_rate, 0.0)))
    return Limits(
        in_flight=pr.take("limits.in_flight", raw.get("in_flight"), count, 4),
        per_source=pr.take("limits.per_source_host", raw.get("per_source_host"), count, 2),
        per_destination=pr.take("limits.per_destination_host",
                                raw.get("per_destination_host"), count, 2),
        default_bandwidth=pr.take("limits.bandwidth.default", bw.get("default"), parse_rate,
                                  125e6),
        bandwidth=tuple(pairs), enforce_bandwidth=bool(bw))


def _groups(pr: Problems, raw: Any) -> tuple[tuple[str, tuple[str, ...], WindowSpec], ...]:
    if raw is None:
        return (("default", (), WindowSpec()),)
    if not isinstance(raw, list) or not raw:
        pr.add("groups", "must be a list of {name, after, window}")
        return ()
    out: list[tuple[str, tuple[str, ...], WindowSpec]] = []
    for i, g in enumerate(raw):
        where = f"groups[{i}]"
        if not isinstance(g, Mapping) or not isinstance(g.get("name"), str):
            pr.add(where, "needs a name")
            continue
        for k in set(g) - {"name", "after", "window"}:
            pr.add(f"{where}.{k}", "unknown key (known: name, after, window)")
        after = g.get("after") or []
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            pr.add(f"{where}.after", "must be a list of group names")
            after = []
        out.append((g["name"], tuple(after), window_spec(pr, f"{where}.window", g.get("window"))))
    _check_order(pr, out)
    return tuple(out)


def _check_order(pr: Problems, groups: list[tuple[str, tuple[str, ...], WindowSpec]]) -> None:
    names = [g[0] for g in groups]
    for n in {n for n in names if names.count(n) > 1}:
        pr.add("groups", f"group {n} is named twice")
    deps = {g[0]: set(g[1]) for g in groups}
    for n, after in deps.items():
        for a in after - set(names):
            pr.add(f"groups.{n}.after", f"no group named {a}")
    done: set[str] = set()
    while True:
        ready = {n for n, a in deps.items() if n not in done and a & set(names) <= done}
        if not ready:
            break
        done |= ready
    if len(done) < len(deps):
        pr.add("groups", "the groups' after lists form a cycle: "
               + ", ".join(sorted(set(deps) - done)))


def load_wave(path: Path | str, base_dir: Path | None = None) -> WaveSpec:
    """Read and check a wave file; raise :class:`WaveFileError` listing every problem."""
    p = Path(path)
    raw = read_params_file(p)  # strict YAML: duplicate keys, anchors, size refused
    base = base_dir or project_root(p.resolve().parent, fallback=Path.cwd())
    pr = Problems()
    for k in set(raw) - TOP:
        pr.add(k, f"unknown key (known: {', '.join(sorted(TOP))})")
    name = raw.get("wave")
    if not isinstance(name, str) or not _NAME.match(name):
        pr.add("wave", "needs a name of letters, digits, . _ - (e.g. wave-1)")
        name = "wave"
    ws = raw.get("workspaces")
    if not isinstance(ws, str) or not ws.strip():
        pr.add("workspaces", "needs the folder under which each VM gets its workspace")
        ws = "workspaces"
    workspaces = (base / ws).resolve()
    template = dict(mapping(pr, "template", raw.get("template")))
    for k in PER_VM & set(template):
        pr.add(f"template.{k}", "is per VM (the wave sets it), remove it from the template")
    est = mapping(pr, "estimate", raw.get("estimate"))
    for k in set(est) - {"dirty_rate", "interval", "cycle_overhead", "runbook_overhead"}:
        pr.add(f"estimate.{k}", "unknown key (known: cycle_overhead, dirty_rate, interval, "
               "runbook_overhead)")
    dirty = pr.take("estimate.dirty_rate", est.get("dirty_rate"), parse_rate, 1e6)
    groups = _groups(pr, raw.get("groups"))
    limits = _limits(pr, mapping(pr, "limits", raw.get("limits")))
    run = _run(pr, mapping(pr, "run", raw.get("run")))
    vm_params, tasks, checked = _vms(pr, raw.get("vms"), template, workspaces, groups, dirty,
                                     base)
    secs = [pr.take(f"estimate.{k}", est.get(k), parse_duration, d)
            for k, d in (("interval", 60.0), ("cycle_overhead", 5.0), ("runbook_overhead", 60.0))]
    if pr.lines:
        raise WaveFileError(f"{p}: {len(pr.lines)} problem(s): {pr.lines[0]}",
                            problems=list(pr.lines), path=str(p))
    return WaveSpec(name, p, workspaces, groups, limits, vm_params, tuple(tasks), secs[0],
                    secs[1], run, checked, secs[2], "runbook_overhead" in est)


def _run(pr: Problems, raw: Mapping[str, Any]) -> RunOptions:
    for k in set(raw) - {"rollback_after_probes", "poll", "attempts"}:
        pr.add(f"run.{k}", "unknown key (known: attempts, poll, rollback_after_probes)")
    rb = raw.get("rollback_after_probes", False)
    if not isinstance(rb, bool):
        pr.add("run.rollback_after_probes", "must be true or false")
        rb = False
    def count(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
            raise ValueError("must be a whole number from 1 to 10")
        return v

    return RunOptions(rb, pr.take("run.poll", raw.get("poll"), parse_duration, 1.0),
                      pr.take("run.attempts", raw.get("attempts"), count, 3))


def _vms(pr: Problems, raw: Any, template: dict[str, Any], workspaces: Path,
         groups: tuple[tuple[str, tuple[str, ...], WindowSpec], ...], dirty: float,
         base: Path) -> tuple[dict[str, dict[str, Any]], list[VmTask],
                              dict[str, MigrationParams]]:
    if not isinstance(raw, list) or not raw:
        pr.add("vms", "needs a list of VMs ({name, source, destination, ...})")
        return {}, [], {}
    names = {g[0] for g in groups}
    params: dict[str, dict[str, Any]] = {}
    checked: dict[str, MigrationParams] = {}
    tasks: list[VmTask] = []
    for i, v in enumerate(raw):
        where = f"vms[{i}]"
        if not isinstance(v, Mapping) or not isinstance(v.get("name"), str):
            pr.add(where, "needs a name")
            continue
        where = f"vms[{i}] ({v['name']})"
        for k in set(v) - VM_KEYS:
            pr.add(where, f"unknown key {k} (known: {', '.join(sorted(VM_KEYS))})")
        if v["name"] in params:
            pr.add(where, "this VM is listed twice")
            continue
        group = v.get("group", groups[0][0] if len(groups) == 1 else None)
        if group not in names:
            pr.add(where, f"group must be one of {', '.join(sorted(names))}")
            continue
        task = _vm(pr, where, v, template, workspaces, str(group), dirty, base)
        if task is not None:
            params[v["name"]], checked[v["name"]] = task[0], task[2]
            tasks.append(task[1])
    return params, tasks, checked


def _vm(pr: Problems, where: str, v: Mapping[str, Any], template: dict[str, Any],
        workspaces: Path, group: str, dirty: float,
        base: Path) -> tuple[dict[str, Any], VmTask, MigrationParams] | None:
    name = str(v["name"])
    over: dict[str, Any] = {"vm": name, "workspace": str(workspaces / name)}
    for key, dotted in (("dest_name", "dest_name"), ("source", "source.host"),
                        ("destination", "destination.host"),
                        ("datastore", "destination.datastore")):
        if v.get(key) is not None:
            over[dotted] = v[key]
    extra = mapping(pr, f"{where}.params", v.get("params"))
    raw = merge(merge(template, {}), over)
    for k, val in extra.items():
        if k in PER_VM:
            pr.add(f"{where}.params.{k}", "is set by the wave (name the VM's dest_name key)")
        elif isinstance(val, Mapping) and isinstance(raw.get(k), Mapping):
            raw[k] = {**raw[k], **val}
        else:
            raw[k] = val
    try:
        checked = validate(raw, base)
    except VmigrateError as exc:
        pr.add(where, exc.one_line())
        return None
    for side in ("source", "destination"):  # the lab's folder as the check resolved it
        hp = getattr(checked, side)
        if isinstance(hp, LabHostParams):
            raw[side] = {**raw.get(side, {}), "lab_root": hp.lab_root}
    sizes = v.get("disks") or []
    caps = [pr.take(f"{where}.disks", s, parse_size, 0) for s in
            (sizes if isinstance(sizes, list) else [sizes])]
    alloc = pr.take(f"{where}.allocated", v.get("allocated"), parse_size, sum(caps))
    rate = pr.take(f"{where}.dirty_rate", v.get("dirty_rate"), parse_rate, dirty)
    facts = VmFacts(capacity=sum(caps), seed_bytes=alloc, dirty_rate=rate,
                    dirty_source="file" if v.get("dirty_rate") is not None else "assumed",
                    shutdown_s=checked.cutover.expected_shutdown,
                    boot_s=checked.cutover.expected_boot)
    task = VmTask(name, group, checked.source.host, checked.destination.host,
                  checked.target_name, float(checked.downtime_budget), facts)
    return raw, task, checked
