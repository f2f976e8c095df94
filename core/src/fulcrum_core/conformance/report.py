"""Show a :class:`~fulcrum_core.conformance.kit.KitReport`: PASS/FAIL lines with fixes, or JSON."""

from __future__ import annotations

import msgspec

from fulcrum_core.conformance.kit import KitReport

__all__ = ["render_json", "render_text"]

_MARKS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def render_text(report: KitReport) -> str:
    """One line per check; a failed one is followed by its details and ``fix:``; then a ``warning:``
    line for each warning (they fail nothing) and a verdict."""
    lines = [f"Built {report.wheel} from {report.project}", ""]
    for check in report.checks:
        lines.append(f"{_MARKS[check.status]}  {check.id}: {check.message}")
        if check.status == "failed":
            lines.extend(f"        - {detail}" for detail in check.details)
            if check.fix:
                lines.append(f"        fix: {check.fix}")
    failed = [c.id for c in report.checks if c.status == "failed"]
    if report.warnings:
        lines += ["", *(f"warning: {warning}" for warning in report.warnings)]
    lines.append("")
    if failed:
        lines.append(f"{len(failed)} of {len(report.checks)} checks failed: {', '.join(failed)}")
    else:
        lines.append(
            f"All {len(report.checks)} checks passed or were skipped: ready for `fulcrum registry submit`"
        )
    return "\n".join(lines)


def render_json(report: KitReport) -> str:
    """The report as JSON, with a top-level ``passed``."""
    data = msgspec.to_builtins(report)
    data["passed"] = report.passed
    return msgspec.json.encode(data).decode()
