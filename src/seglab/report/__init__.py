"""Reports: matplotlib plots and self-contained HTML pages (no torch needed)."""

from seglab.report.run_report import Overlay, build_run_report

__all__ = ["Overlay", "build_run_report"]
