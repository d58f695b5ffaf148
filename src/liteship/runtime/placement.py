"""Where LiteRT's CompiledModel put a model's ops — :class:`Placement`, the op types an accelerator
rejected (:class:`RejectedOp`) — and the reading of LiteRT's native log that finds them
(:func:`parse_placement_log`). ``compiled.py`` (the runner) fills them in; reports carry them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from liteship.types import ReportMixin


@dataclass(frozen=True)
class RejectedOp(ReportMixin):
    """One op type an accelerator would not take, with LiteRT's reason."""

    op: str
    reason: str


@dataclass(frozen=True)
class Placement(ReportMixin):
    """Where the runtime put the model's ops, as the compiled model reports it (probed, not from rules).

    Attributes:
        accelerator: The accelerators compiled for, e.g. ``"gpu,cpu"``.
        fully_accelerated: LiteRT's ``is_fully_accelerated()`` (``None`` when compilation failed).
        accelerated_ops: Ops on the non-CPU accelerator (``None`` when LiteRT did not say).
        cpu_ops: Ops left to the CPU (``None`` when LiteRT did not say).
        rejected: Op types the accelerator rejected, with reasons.
        error: Why compilation failed, when it did.
        found_by: Where ``rejected`` comes from: ``"log"`` (LiteRT named them) or ``"bisection"``
            (compiled op by op here, :mod:`liteship.runtime.blame`).
    """

    accelerator: str
    fully_accelerated: bool | None
    accelerated_ops: int | None = None
    cpu_ops: int | None = None
    rejected: tuple[RejectedOp, ...] = ()
    error: str | None = None
    found_by: str = "log"

    def describe(self) -> str:
        if self.error:
            return f"{self.accelerator}: failed ({self.error})"
        where = ""
        if self.accelerated_ops is not None:
            where = f"{self.accelerated_ops} ops on the accelerator, {self.cpu_ops} on the CPU"
        ops = ", ".join(r.op for r in self.rejected)
        return (
            f"{self.accelerator}: fully accelerated={self.fully_accelerated}"
            + (f"; {where}" if where else "")
            + (f"; rejected: {ops}" if ops else "")
        )


_REJECT_HEADER = re.compile(r"Following operations are not supported by \w+ delegate:")
_REJECT_LINE = re.compile(r"^([A-Z][A-Z0-9_]+): (.+)$")
_COUNTS = re.compile(r"(\d+) operations will run on the (\w+), and the remaining (\d+) operations? will run")


def parse_placement_log(text: str) -> tuple[tuple[RejectedOp, ...], int | None, int | None]:
    """``(rejected ops, ops on the accelerator, ops on the CPU)`` from LiteRT's native log."""
    rejected: dict[str, str] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _REJECT_HEADER.search(line):
            for follow in lines[i + 1 :]:
                m = _REJECT_LINE.match(follow.strip())
                if not m:
                    break
                rejected.setdefault(m[1], m[2].strip())
    counts = _COUNTS.findall(text)
    acc, cpu = (int(counts[-1][0]), int(counts[-1][2])) if counts else (None, None)
    return tuple(RejectedOp(k, v) for k, v in rejected.items()), acc, cpu


__all__ = ["Placement", "RejectedOp", "parse_placement_log"]
