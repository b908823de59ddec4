"""The report: collect a study's numbers, draw them with Plotly, write HTML or save them into
the study for optuna-dashboard.

collect.py reads (ReportData) and trains nothing; boundary.py (`with_boundaries`, its own
step) asks the study's engine for decision boundaries,
figures.py draws, html.py writes the page, dashboard.py saves figures and note into the study.
"""

from __future__ import annotations

from search.report.boundary import BOUNDARY_GRID, NOT_AVAILABLE, with_boundaries
from search.report.collect import Boundary, ConfigData, Progress, ReportData, collect
from search.report.dashboard import save_after_run, save_to_dashboard, summary_markdown
from search.report.figures import Figure, figures
from search.report.html import answer, check_writable, render_html, status_line, write_html

__all__ = ["BOUNDARY_GRID", "Boundary", "ConfigData", "Figure", "NOT_AVAILABLE", "Progress",
           "ReportData", "answer", "check_writable", "collect", "figures", "render_html",
           "save_after_run", "save_to_dashboard", "status_line", "summary_markdown",
           "with_boundaries", "write_html"]
