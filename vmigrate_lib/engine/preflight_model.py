"""Preflight's lines, report and shared context (the checks are in :mod:`.preflight`
and :mod:`.preflight_space`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..control.host import VmInfo
from ..dataplane.datastore import Datastore
from ..errors import VmigrateError

if TYPE_CHECKING:
    from .preflight_ahead import Lookahead


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    error: VmigrateError | None = None
    #: when this line fails, the later checks do not run (they need what is missing)
    blocks: bool = False


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    vm: VmInfo | None = None
    bytes_needed: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def first_error(self) -> VmigrateError | None:
        return next((c.error for c in self.checks if c.error is not None), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "bytes_needed": self.bytes_needed,
        }


@dataclass
class PreflightContext:
    """What earlier checks found, for the later ones (and the report)."""

    report: PreflightReport
    dest_ds: Datastore | None = None  #: the destination datastore, once found
    ours_at_dest: bool = False  #: Bob's folder exists and is this migration's
    ahead: Lookahead | None = None  #: the data-plane questions asked ahead (data plane check)

    @property
    def vm(self) -> VmInfo:
        assert self.report.vm is not None, "the source VM check runs first"
        return self.report.vm

    @property
    def ds(self) -> Datastore:
        assert self.dest_ds is not None, "the destination datastore check runs first"
        return self.dest_ds


__all__ = ["Check", "PreflightContext", "PreflightReport"]
