"""The conformance kit behind ``fulcrum plugin check``: the registry's submission checks plus hook calls."""

from fulcrum_core.conformance.kit import KitCheck, KitError, KitReport, run_kit
from fulcrum_core.conformance.report import render_json, render_text

__all__ = ["KitCheck", "KitError", "KitReport", "render_json", "render_text", "run_kit"]
