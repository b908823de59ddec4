"""The report inside the study, for optuna-dashboard: figures, a summary note, and drawing
them once when several workers finish together.

optuna-dashboard keys a figure by its id and a note by the study, so saving again replaces
in place instead of adding copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from sqlalchemy.exc import SQLAlchemyError

from search import format as fmt
from search.errors import NoiseSearchError
from search.report.collect import ReportData
from search.report.figures import figures
from search.report.html import answer, status_line
from search.storage import retrying
from search.study.record import DASHBOARD_STAMP_ATTR

if TYPE_CHECKING:
    from search.analysis.results import StudyResults



def summary_markdown(data: ReportData) -> str:
    """The dashboard note: the recommendation and the results table in markdown."""
    lines = [f"## noise-search: {fmt.name(data.name)}", ""]
    status = status_line(data)
    if status:
        lines += [f"**{status}**", ""]
    lines += [answer(data), ""]
    head, *rows = fmt.summary_table(data.rows, data.metric, data.table_columns)
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cells in rows:
        lines.append("| " + " | ".join([f"`{cells[0]}`", *cells[1:]]) + " |")
    for note in data.table_notes:  # the table's legend, a paragraph each
        lines += ["", note]
    lines += ["", *[f"- {note}" for note in data.notes],
              "", f"_Figures: the study's \"noise-search\" graphs above; written {data.created} "
                  "by `noise-search`._"]
    return "\n".join(lines)


def save_to_dashboard(study: optuna.Study, data: ReportData) -> int:
    """Store the (compact) figures and the summary note in the study, replacing earlier ones.
    Returns the number of figures."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    figs = figures(data, compact=True)
    for f in figs:
        save_plotly_graph_object(study, f.figure, graph_object_id=f.id)
    save_note(study, summary_markdown(data))
    return len(figs)


# What drawing after a run can fail on, none of which touches the stored results: the storage
# (gone, or a write refused), a study the report cannot read, plotly / TensorFlow refusing
# the data. A programming error (TypeError, AttributeError, ...) is not caught: it is a bug.
DRAWING_FAILURES: tuple[type[BaseException], ...] = (
    NoiseSearchError, SQLAlchemyError, optuna.exceptions.OptunaError, OSError, ValueError,
    ArithmeticError, RuntimeError)


def save_after_run(study: optuna.Study, results: StudyResults,
                   build: Callable[[], ReportData], warn: Callable[[str], None]) -> int | None:
    """A run's last step: figures and note into the study. Returns how many figures were
    saved, None when there was nothing new to draw or drawing failed (``warn`` says why).

    Skipped when the saved figures already show every completed trial (a resume with nothing
    to do, or the other workers of a study that one of them has just drawn): drawing can
    retrain two configurations. The stamp is claimed before drawing, so that workers
    finishing together draw once; a failure gives the claim back. Every storage call goes
    through the retry policy (``storage.retrying``): a server restart is waited out, and a
    storage gone for good is a warning, since every trial is already safe.
    """
    completed = results.completed
    if not completed:
        return None
    stamp = ",".join(str(n) for n in sorted(r["trial"] for r in completed))
    try:
        if retrying(lambda: study.user_attrs.get(DASHBOARD_STAMP_ATTR),
                    "reading the study") == stamp:
            return None
        retrying(lambda: study.set_user_attr(DASHBOARD_STAMP_ATTR, stamp),
                 "claiming the figures")
    except DRAWING_FAILURES as exc:
        warn(f"figures for optuna-dashboard not saved: {exc}")
        return None
    try:
        data = build()  # reads through the retry policy itself; may train (boundaries)
        return retrying(lambda: save_to_dashboard(study, data),
                        "saving the figures into the study")
    except DRAWING_FAILURES as exc:  # the study itself is intact: report, do not fail the run
        _give_back(study, warn)
        warn(f"figures for optuna-dashboard not saved: {exc}")
        return None


def _give_back(study: optuna.Study, warn: Callable[[str], None]) -> None:
    """Give the claim back, so that the next run or `report --to-dashboard` draws."""
    try:
        retrying(lambda: study.set_user_attr(DASHBOARD_STAMP_ATTR, ""), "giving back the claim")
    except DRAWING_FAILURES as exc:
        warn(f"could not give back the claim on the figures: {exc}")
