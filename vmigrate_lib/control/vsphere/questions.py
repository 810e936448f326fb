"""Questions a VM asks while it powers on (``runtime.question``), and its NICs after.

A VM whose files were copied to another host may stop at a question during its
power-on (VMware KB 1541: "This virtual machine might have been moved or
copied..."); ``PowerOnVM_Task`` then stays running until someone answers with
``AnswerVM``.  Waiting for the task alone would sit out the whole timeout in the
downtime window.  :func:`wait_power_on` polls the task and the question:

* the "moved or copied" question (message ``msg.uuid.altered``) is answered
  "I moved it" (``button.uuid.movedTheVM``), the same choice as the
  ``uuid.action = "keep"`` Bob's ``.vmx`` carries: the copy keeps Alice's BIOS
  UUID and MAC addresses, because she is stopped and retired;
* any other question is not answered on its own: if it offers a Cancel choice
  that is chosen (so the copy cannot start later behind a rollback that powers
  the source on), and the power-on fails at once with the question's text and
  choices.

:func:`disconnected_nics` reads ``connectable.connected`` of each NIC once the
VM runs (a distributed port still owned by Alice leaves Bob's NIC down).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ...errors import NicNotConnected, PowerOnQuestion, TimeoutExpired
from ._vmomi import vim, vmodl
from .connection import Connection
from .tasks import wait_task

_POLL = 0.5

#: message id -> the choice label vmigrate answers (see the module docstring)
SAFE_ANSWERS = {"msg.uuid.altered": "button.uuid.movedTheVM"}


@dataclass(frozen=True)
class Choice:
    key: str  #: what AnswerVM takes ("0", "1"...)
    label: str  #: e.g. button.uuid.movedTheVM
    summary: str  #: e.g. I Moved It


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    messages: tuple[str, ...]  #: message ids, e.g. msg.uuid.altered
    choices: tuple[Choice, ...]

    def describe(self) -> str:
        """One line: the text and the choices as ``key label (summary)``."""
        opts = ", ".join(f"{c.key} {c.label} ({c.summary})" for c in self.choices)
        return f"{' '.join(self.text.split())} [choices: {opts}]"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "messages": list(self.messages),
                "choices": [c.__dict__ for c in self.choices]}

    def choice(self, label: str) -> Choice | None:
        return next((c for c in self.choices if c.label == label), None)

    def cancel(self) -> Choice | None:
        """The choice that cancels (label ``*.cancel`` or summary ``Cancel``), if any."""
        return next((c for c in self.choices if c.label.lower().endswith("cancel")
                     or c.summary.strip().lower() == "cancel"), None)


def read(conn: Connection, vm: Any) -> Question | None:
    """The VM's pending question, or None."""

    def run() -> Question | None:
        q = vm.runtime.question
        if q is None:
            return None
        infos = list(q.choice.choiceInfo or []) if q.choice is not None else []
        return Question(
            id=str(q.id), text=str(q.text or ""),
            messages=tuple(str(m.id) for m in (q.message or [])),
            choices=tuple(Choice(str(c.key), str(c.label or ""), str(c.summary or ""))
                          for c in infos))

    return conn.call(run, f"reading the pending question of VM {vm.name}")


def answer(conn: Connection, vm: Any, q: Question, choice: Choice) -> None:
    conn.call(lambda: vm.AnswerVM(questionId=q.id, answerChoice=choice.key),
              f"answering question {q.id} of VM {vm.name}", vm=vm.name)


def handle(conn: Connection, vm: Any, q: Question, notes: list[str]) -> None:
    """Answer ``q`` if it is one vmigrate understands (noting it), else raise
    :class:`PowerOnQuestion` (after choosing Cancel where the question offers it)."""
    name = str(vm.name)
    for msg in q.messages:
        label = SAFE_ANSWERS.get(msg)
        choice = q.choice(label) if label else None
        if choice is not None:
            answer(conn, vm, q, choice)
            notes.append(f"VM {name} asked at power-on: {q.describe()}; answered {choice.label} "
                         f"({choice.summary}), as uuid.action = keep in its .vmx: it keeps the "
                         "source's BIOS UUID and MAC addresses")
            return
    cancel = q.cancel()
    if cancel is not None:
        answer(conn, vm, q, cancel)
    raise PowerOnQuestion(
        f"VM {name} stopped at a question while powering on: {q.describe()}"
        + (f"; vmigrate answered {cancel.label or cancel.summary}, so it did not start"
           if cancel is not None else "; it is still waiting for an answer"),
        hint=("fix what the question is about on the destination host, then run vmigrate "
              "cutover again" if cancel is not None else
              "answer it in the vSphere Client (the VM's 'Answer question') or with "
              "'govc vm.question', then run vmigrate cutover again"),
        vm=name, question=q.to_dict(), cancelled=cancel is not None)


def wait_power_on(conn: Connection, vm: Any, task: Any, timeout: float, what: str,
                  notes: list[str]) -> None:
    """Wait for ``task`` (PowerOnVM_Task), reading the VM's question every 0.5 s."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        state = conn.call(lambda: task.info.state, what)
        if state in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
            conn.call(lambda: wait_task(task, timeout, what, vm=vm.name), what)
            return
        q = read(conn, vm)
        if q is not None and q.id not in seen:
            seen.add(q.id)
            handle(conn, vm, q, notes)
        if time.monotonic() >= deadline:
            _cancel(conn, task, what)
            raise TimeoutExpired(f"{what} did not finish within {timeout:.0f} s and asked "
                                 "no question", vm=vm.name, timeout=timeout)
        time.sleep(_POLL)


def _cancel(conn: Connection, task: Any, what: str) -> None:
    def run() -> None:
        try:
            task.CancelTask()
        except vmodl.MethodFault:
            pass  # not cancelable: it goes on on the host

    conn.call(run, what)


def disconnected_nics(conn: Connection, vm: Any) -> list[str]:
    """Labels of the NICs that are set to connect at power-on but are not connected."""

    def run() -> list[str]:
        out = []
        for dev in vm.config.hardware.device:
            if not isinstance(dev, vim.vm.device.VirtualEthernetCard):
                continue
            c = dev.connectable
            if c is not None and c.startConnected and not c.connected:
                out.append(str(dev.deviceInfo.label) if dev.deviceInfo else f"NIC {dev.key}")
        return out

    return conn.call(run, f"reading the NICs of VM {vm.name}")


def check_nics(conn: Connection, vm: Any) -> None:
    """Raise :class:`NicNotConnected` naming each NIC that did not connect at power-on."""
    down = disconnected_nics(conn, vm)
    if down:
        raise NicNotConnected(
            f"VM {vm.name} powered on but {', '.join(down)} "
            f"{'is' if len(down) == 1 else 'are'} not connected", vm=str(vm.name), nics=down)


__all__ = [
    "SAFE_ANSWERS",
    "Choice",
    "Question",
    "answer",
    "check_nics",
    "disconnected_nics",
    "handle",
    "read",
    "wait_power_on",
]
