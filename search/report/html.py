"""The report as one self-contained HTML page: plotly.js inlined, so it opens offline."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from search import format as fmt
from search.errors import ReportError
from search.report.collect import ReportData
from search.report.figures import Figure

# Errors in the page are written into it: a person sees that a figure failed, and the
# browser test reads them from the DOM.
_ERROR_CAPTURE = """<script>
window.__nsErrors = [];
function __nsReport(text) {
  window.__nsErrors.push(String(text));
  var box = document.getElementById("page-errors");
  if (box) { box.hidden = false; box.textContent = window.__nsErrors.join("\\n"); }
}
window.addEventListener("error", function (e) { __nsReport("error: " + e.message); });
window.addEventListener("unhandledrejection",
                        function (e) { __nsReport("rejection: " + e.reason); });
var __nsConsoleError = console.error;
console.error = function () {
  __nsReport("console.error: " + Array.prototype.join.call(arguments, " "));
  __nsConsoleError.apply(console, arguments);
};
</script>"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
.status { background: #fff4ce; border: 1px solid #e0c050; padding: 0.6rem 1rem; }
.answer { background: #eef6ee; border-left: 5px solid #2ca02c; padding: 0.8rem 1rem;
          font-size: 1.05rem; }
#page-errors { background: #fde2e2; border: 1px solid #d62728; padding: 0.6rem 1rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 1rem 0; }
.table { overflow-x: auto; width: calc(100vw - 3rem); position: relative; left: 50%;
         transform: translateX(-50%); }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; } tr.baseline { background: #f2f2f2; }
tr.best { font-weight: 600; } tr.stopped { color: #777; }
.figure { margin: 1.5rem 0; } .notes { color: #666; }
"""


def answer(data: ReportData) -> str:
    """The recommendation (search.results.recommend) as the page's first sentence."""
    return data.advice[:1].upper() + data.advice[1:] + "."


def status_line(data: ReportData) -> str | None:
    """None when the study is finished; else what is done and what is not."""
    if data.finished:
        return None
    return (f"Study still running: {len(data.completed)} of {data.total} configurations "
            f"complete ({data.running} running, {data.waiting} queued, {data.failed} failed "
            f"trials). This report shows what is done.")


def _table(data: ReportData) -> str:
    """The summary table: the columns of ReportData.table_columns, as `results` formats them;
    a configuration racing stopped is greyed, its reason on hover."""
    e = html.escape
    head, *rows = fmt.summary_table(data.rows, data.metric, data.table_columns)
    best = data.best.config if data.best else None
    lines = []
    for config, cells in zip(data.configs, rows):
        cls = ("baseline" if config.is_baseline else "best" if config.config == best
               else "stopped" if config.stopped else "")
        hover = f' title="{e(config.status)}"' if config.stopped else ""
        lines.append(f'<tr class="{cls}"{hover}>' + "".join(f"<td>{e(x)}</td>" for x in cells)
                     + "</tr>")
    # Wider than the figures with the robust columns: as wide as the window, scrolling
    # within itself where even that is too narrow.
    return ('<div class="table"><table><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(lines) + "</tbody></table></div>")


def _meta(data: ReportData) -> str:
    s = data.spec

    def known(value: Any) -> Any:
        return "?" if value is None else value

    return (f"{known(s.dataset)} data, {known(s.n_train)} training rows; "
            f"model hidden {known(s.hidden)}, {known(s.epochs)} epochs; "
            f"{s.repeats or '?'} repeats per configuration; "
            f"{len(data.completed)} of {data.total} configurations complete; written "
            f"{data.created}")


def render_html(data: ReportData, figs: list[Figure]) -> str:
    """One self-contained page: plotly.js inlined, so it opens offline and can be shared."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    e = html.escape
    status = status_line(data)
    divs = []
    for f in figs:
        div = pio.to_html(f.figure, full_html=False, include_plotlyjs=False, div_id=f.id,
                          default_width="100%", config={"displaylogo": False})
        divs.append(f'<section class="figure"><h2>{e(f.title)}</h2>{div}</section>')
    notes = "".join(f"<li>{e(n)}</li>" for n in data.notes)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>noise-search report: {e(data.name)}</title>", _ERROR_CAPTURE,
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>', "</head><body>",
        '<pre id="page-errors" hidden></pre>',
        f"<h1>noise-search report: {e(data.name)}</h1>", f'<p class="meta">{e(_meta(data))}</p>',
        f'<p class="status">{e(status)}</p>' if status else "",
        f'<p class="answer">{e(answer(data))}</p>',
        "<h2>Summary</h2>", _table(data),
        *(f'<p class="notes">{e(note)}</p>' for note in data.table_notes),
        f'<ul class="notes">{notes}</ul>' if notes else "",
        *divs, "</body></html>",
    ])


def check_writable(path: Path) -> None:
    """Fail before the long work, not after it, if the report cannot be written there.

    A real write probe (open for appending, which changes nothing in an existing file; a new
    file is removed again), not a permission check: permissions do not tell about a
    read-only or full file system, /proc, or a path that root may "write" but cannot create.
    """
    if path.is_dir():
        raise ReportError(f"cannot write the report to {str(path)!r}: it is a directory")
    existed = path.exists()
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ReportError(
            f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)


def write_html(data: ReportData, figs: list[Figure], path: Path) -> None:
    text = render_html(data, figs)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None
