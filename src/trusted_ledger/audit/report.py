"""What bundle verification found: every finding with where it is, not only the first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem: the part (member name in the bundle), an index inside it (a height, a
    record number, a vote) or None, the field, and what is wrong."""

    part: str
    field: str
    message: str
    index: int | None = None

    def json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "index": self.index,
            "field": self.field,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = self.part if self.index is None else f"{self.part} [{self.index}]"
        return f"{where} {self.field}: {self.message}"


@dataclass
class BundleReport:
    chain_id: str = ""
    from_height: int = 0
    to_height: int = -1
    blocks: int = 0
    certificates_verified: int = 0
    membership_changes: list[int] = field(default_factory=list)
    trails: dict[str, int] = field(default_factory=dict)
    """Trail name -> records verified."""
    anchors_checked: int = 0
    anchors_matched: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the bundle does not let a verifier check (not a fault of the bundle)."""

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, part: str, field_name: str, message: str, index: int | None = None) -> None:
        self.findings.append(Finding(part, field_name, message, index))

    def parts_with_findings(self) -> set[str]:
        return {finding.part for finding in self.findings}

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "from_height": self.from_height,
            "to_height": self.to_height,
            "blocks": self.blocks,
            "certificates_verified": self.certificates_verified,
            "membership_changes": self.membership_changes,
            "trails": self.trails,
            "anchors_checked": self.anchors_checked,
            "anchors_matched": self.anchors_matched,
            "findings": [finding.json() for finding in self.findings],
            "notes": self.notes,
        }
