"""What a check finds: :class:`Problem` (one culprit) and :class:`Report` (all of them).

Both are plain data. ``str(report)`` is the table a person reads in a terminal
(the CLI prints exactly that); :meth:`Report.to_dict` is what ``--json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["VERDICTS", "Problem", "Report", "worst"]

# Ordered from best to worst: a combined verdict is the worst of its parts.
VERDICTS = ("ok", "lossy", "fails")


def worst(verdicts: list[str]) -> str:
    """The worst verdict of ``verdicts`` ("ok" when empty)."""
    return max(verdicts, key=VERDICTS.index, default="ok")


@dataclass(frozen=True)
class Problem:
    """One reason a transport cannot carry the object (or carries it changed).

    ``path`` reads like Python from the root (``fn``, ``args[0]``, ``obj``) to
    the culprit; ``rule`` names the rule that decided, so a verdict can always
    be traced to the reasoning behind it. ``start_methods`` lists where the
    problem happens (a load-side problem may hit spawn but not fork).
    """

    transport: str
    stage: str
    path: str
    type_name: str
    error: str
    reason: str
    fix: str
    rule: str = "unknown"
    verdict: str = "fails"
    start_methods: tuple[str, ...] = ()


@dataclass
class Report:
    """Verdicts per transport (and per start method) plus the problems behind them.

    ``verdicts[t]`` is the worst verdict of transport ``t`` over the start
    methods checked; ``matrix[t][m]`` is the verdict for one start method.
    """

    target: str
    transports: tuple[str, ...]
    start_methods: tuple[str, ...]
    matrix: dict[str, dict[str, str]]
    problems: list[Problem] = field(default_factory=list)
    verified: bool = False

    @property
    def verdicts(self) -> dict[str, str]:
        return {t: worst(list(self.matrix[t].values())) for t in self.transports}

    @property
    def ok(self) -> bool:
        """True when every transport checked is "ok" under every start method checked."""
        return all(v == "ok" for v in self.verdicts.values())

    def carriers(self) -> list[str]:
        """Transports whose verdict is "ok" everywhere checked."""
        return [t for t, v in self.verdicts.items() if v == "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdicts": self.verdicts,
            "matrix": self.matrix,
            "start_methods": list(self.start_methods),
            "verified": self.verified,
            "problems": [asdict(p) for p in self.problems],
        }

    def __str__(self) -> str:
        lines = [f"check {self.target}" + ("  (verified in a fresh interpreter)" if self.verified else "")]
        lines.extend(_table(self))
        groups = _group(self.problems)
        if groups:
            lines.append("")
            lines.append("problems:")
        for transports, p in groups:
            where = "" if set(p.start_methods) >= set(self.start_methods) else f", {'/'.join(p.start_methods)}"
            lines.append(f"  {p.verdict.upper()} {', '.join(transports)} ({p.stage}{where}) at {p.path}: {p.type_name}")
            if p.error:
                lines.append(f"    error: {_one_line(p.error)}")
            lines.append(f"    why:   {p.reason}")
            lines.append(f"    fix:   {p.fix}")
            lines.append(f"    rule:  {p.rule}")
        return "\n".join(lines)


def _table(report: Report) -> list[str]:
    head = ["transport", *report.start_methods, "verdict"]
    rows = [head]
    for t in report.transports:
        rows.append([t, *(report.matrix[t][m] for m in report.start_methods), report.verdicts[t]])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _group(problems: list[Problem]) -> list[tuple[list[str], Problem]]:
    """Problems that differ only by transport are shown once, naming every transport."""
    groups: dict[tuple[Any, ...], tuple[list[str], Problem]] = {}
    for p in problems:
        key = (p.stage, p.path, p.rule, p.verdict, p.start_methods, p.reason)
        if key in groups:
            groups[key][0].append(p.transport)
        else:
            groups[key] = ([p.transport], p)
    return list(groups.values())


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
