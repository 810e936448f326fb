"""The cutover's record in ``state.json``: one attempt, step by step.

What a killed cutover resumes from (``CutoverRecord.step``, each step's ``StepRecord``);
loaded and checked like the rest of the state (:mod:`vmigrate_lib.engine.state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..modes import CUTOVER_STATUSES, STEP_STATUSES, CutoverStatus, StepStatus
from .state_fields import FieldReader, bad_state


@dataclass
class StepRecord:
    """One cutover step: how often it ran, when, and how it ended."""

    status: StepStatus = "pending"
    runs: int = 0
    start: float | None = None
    end: float | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "runs": self.runs, "start": self.start,
                                "end": self.end}
        if self.error is not None:
            body["error"] = self.error
        return body

    @classmethod
    def from_json(cls, data: object, where: str, path: str) -> StepRecord:
        r = FieldReader(data, where, path)
        return cls(status=r.word_("status", STEP_STATUSES, "pending"), runs=r.int_("runs"),
                   start=r.float_("start", None), end=r.float_("end", None),
                   error=r.obj("error"))


#: Fields of the cutover record that are timestamps (epoch seconds) or None.
_CO_TIMES = ("started", "ended", "sync_age", "shutdown_requested_at", "alice_off_at",
             "register_started_at", "bob_powered_on_at", "bob_ready_at")
_CO_FLAGS = ("hard_poweroff", "registering", "registered", "bob_powered_on")
_CO_TEXTS = ("reason", "operator", "certify", "bob_uuid", "bob_ip")
_CO_OBJECTS = ("options", "prediction", "measured", "go", "final_cycle", "retire")


@dataclass
class CutoverRecord:
    """One cutover attempt, step by step: what a killed cutover resumes from."""

    attempt: int
    status: CutoverStatus
    step: str = ""
    steps: dict[str, StepRecord] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    reason: str | None = None
    operator: str | None = None
    options: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  #: earlier attempts
    warnings: list[str] = field(default_factory=list)
    prediction: dict[str, Any] | None = None
    go: dict[str, Any] | None = None
    sync_age: float | None = None
    shutdown_requested_at: float | None = None
    hard_poweroff: bool = False
    alice_off_at: float | None = None
    cycles_before_final: int | None = None
    final_cycle: dict[str, Any] | None = None
    certify: str | None = None
    files_copied: list[str] = field(default_factory=list)
    register_started_at: float | None = None
    registering: bool = False
    registered: bool = False
    bob_uuid: str | None = None
    bob_powered_on: bool = False
    bob_powered_on_at: float | None = None  #: when vmigrate asked for Bob's power-on
    bob_ready_at: float | None = None
    bob_ip: str | None = None
    probes: list[dict[str, Any]] | None = None
    measured: dict[str, Any] | None = None
    #: cutover.identity retire-source: the source's RetirePlan (saved before anything
    #: changes) and ``state``: planned | retired | restored
    retire: dict[str, Any] | None = None

    def step_record(self, name: str) -> StepRecord:
        return self.steps.setdefault(name, StepRecord())

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "attempt": self.attempt, "status": self.status, "step": self.step,
            "steps": {k: v.to_json() for k, v in self.steps.items()},
            "history": list(self.history), "warnings": list(self.warnings),
            "files_copied": list(self.files_copied),
            "cycles_before_final": self.cycles_before_final, "probes": self.probes,
        }
        for name in (*_CO_TIMES, *_CO_FLAGS, *_CO_TEXTS, *_CO_OBJECTS):
            body[name] = getattr(self, name)
        return body

    @classmethod
    def from_json(cls, data: object, path: str) -> CutoverRecord:
        r = FieldReader(data, "cutover", path)
        steps = r.obj("steps") or {}
        lists: dict[str, list[Any] | None] = {}
        for name in ("history", "warnings", "files_copied", "probes"):
            value = r.data.get(name)
            if value is not None and not isinstance(value, list):
                raise bad_state(path, f"cutover.{name} is {value!r}, not a list")
            lists[name] = value
        rec = cls(
            attempt=r.int_("attempt"), status=r.word_("status", CUTOVER_STATUSES), step=r.str_("step", "") or "",
            steps={str(k): StepRecord.from_json(v, f"cutover.steps[{k}]", path)
                   for k, v in steps.items()},
            history=list(lists["history"] or []),
            warnings=[str(w) for w in lists["warnings"] or []],
            files_copied=[str(f) for f in lists["files_copied"] or []],
            probes=lists["probes"], cycles_before_final=r.int_("cycles_before_final", None),
        )
        for n in _CO_TIMES:
            setattr(rec, n, r.float_(n, None))
        for n in _CO_FLAGS:
            setattr(rec, n, r.bool_(n))
        for n in _CO_TEXTS:
            setattr(rec, n, r.str_(n, None))
        for n in _CO_OBJECTS:
            setattr(rec, n, r.obj(n))
        return rec
