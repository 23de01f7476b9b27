"""``Finding`` and ``Report``: what the doctor returns. ``print(report)`` gives one block per finding
(readable on a projector); ``report.to_json()`` the list the command line prints with ``--json``.

Taught in notebook 09.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from course_utils.doctor.codes import CODES, SEVERITIES

_ORDER = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One precision problem. ``where`` says where it was found: ``"line 12"``, ``"cell 4, line 3"``
    (a notebook) or the object a live check looked at (``"model"``, ``"args"``, ``"scaler"``...).
    ``line`` and ``cell`` are set by the static checks (``line`` is within the cell for a notebook)."""

    code: str
    severity: str
    message: str
    fix: str
    where: str
    link: str
    line: int | None = None
    cell: int | None = None

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "line": self.line,
            "cell": self.cell,
            "where": self.where,
            "message": self.message,
            "fix": self.fix,
            "link": self.link,
        }

    def __str__(self) -> str:
        return "\n".join(
            [
                f"[{self.severity}] {self.code} ({self.where})",
                f"  {self.message}",
                f"  fix: {self.fix}",
                f"  see: {self.link}",
            ]
        )


def make_finding(
    code: str,
    message: str,
    where: str,
    *,
    fix: str | None = None,
    line: int | None = None,
    cell: int | None = None,
) -> Finding:
    """A finding of a catalogued code: severity and link from ``CODES``, ``fix`` defaults to the
    catalogue's."""
    entry = CODES[code]
    return Finding(
        code=code,
        severity=entry.severity,
        message=message,
        fix=fix or entry.fix,
        where=where,
        link=entry.link,
        line=line,
        cell=cell,
    )


@dataclass
class Report:
    """All findings of one ``diagnose`` call, most severe first."""

    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        unique = list(dict.fromkeys(self.findings))
        self.findings = sorted(
            unique,
            key=lambda f: (_ORDER.get(f.severity, 9), f.cell or 0, f.line or 0, f.code),
        )

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        """The codes found, in report order, each once."""
        return list(dict.fromkeys(f.code for f in self.findings))

    @property
    def ok(self) -> bool:
        """True when no finding is an error (warnings and info may remain)."""
        return not self.errors

    @property
    def exit_code(self) -> int:
        """What the command line exits with: 1 if any error, else 0."""
        return 0 if self.ok else 1

    def to_dicts(self) -> list[dict]:
        return [f.to_dict() for f in self.findings]

    def to_json(self) -> str:
        return json.dumps(self.to_dicts(), indent=2)

    def __len__(self) -> int:
        return len(self.findings)

    def __iter__(self):
        return iter(self.findings)

    def __str__(self) -> str:
        if not self.findings:
            return "No precision problems found."
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}
        head = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
        return f"{head}\n\n" + "\n\n".join(str(f) for f in self.findings)
