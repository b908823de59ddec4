"""The report: collected data against the stored numbers, the HTML in real headless Chromium,
the dashboard copies, and bad input.

One tiny study is run once per module with the real engine; the decision boundaries are drawn
by the study's engine from repeat 0's stored weights (or, for a study without them, weights
retrained from the stored spec), and checked against the numbers the study stored.
"""

from __future__ import annotations

import html as html_module
import importlib
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest

from search import format as fmt
from search import report
from search.cli import main
from search.storage import open_storage
from search.study.record import stored_curves
from tests.conftest import REPORT_FIGURE_IDS as FIGURE_IDS
from tests.conftest import ROBUSTNESS_SECTION, TINY_STUDY

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def finished(finished_tiny_study) -> str:
    return finished_tiny_study


@pytest.fixture(scope="module")
def collected(finished) -> tuple[report.ReportData, optuna.Study]:
    study = optuna.load_study(study_name="tiny", storage=open_storage(finished))
    return report.with_boundaries(report.collect(study)), study


def test_collected_configurations_are_the_stored_numbers(collected):
    data, study = collected
    trials = {t.user_attrs["config"]: t for t in study.trials}
    assert {c.config for c in data.configs} == set(trials) and len(trials) == 5
    assert data.finished and data.total == 5 and report.status_line(data) is None
    means = [c.mean for c in data.completed]
    assert means == sorted(means, reverse=True)  # best first (accuracy is maximized)
    for c in data.configs:
        a = trials[c.config].user_attrs
        assert c.mean == a["test_mean"] and c.ci_low == a["test_ci_low"]
        assert c.ci_high == a["test_ci_high"] and c.train_mean == a["train_mean"]
        assert list(c.test_values) == a["test_values"] and len(c.test_values) == 3
        assert c.diff == pytest.approx(a["test_mean"] - trials["none"].user_attrs["test_mean"])
    assert data.baseline is not None and data.baseline.config == "none"
    assert data.placements == ("input", "hidden_pre")
    for placement in data.placements:
        best = data.best_of(placement)
        assert best.mean == max(c.mean for c in data.completed if c.placement == placement)


def test_learning_curves_are_the_stored_curves(collected):
    data, study = collected
    trials = {t.user_attrs["config"]: t for t in study.trials}
    expected = ["none"] + [data.best_of(p).config for p in data.placements]
    assert [c.config for c in data.curves] == expected
    for curves in data.curves:
        stored = stored_curves(trials[curves.config])
        assert list(curves.epochs) == stored["epochs"] == [5, 10, 15, 20]
        test = np.array(stored["test_metric"])
        assert np.allclose(curves.test.mean, test.mean(axis=0), atol=1e-6)
        assert np.allclose(curves.train.mean, np.mean(stored["train_metric"], axis=0), atol=1e-6)
        # The band is the 95% CI of the mean over the 3 repeats (t with 2 dof).
        half = 4.302653 * test.std(axis=0, ddof=1) / np.sqrt(3)
        assert np.allclose(curves.test.high, test.mean(axis=0) + half, atol=1e-5)
        assert np.allclose(curves.test.low, test.mean(axis=0) - half, atol=1e-5)
        # The mean curve is also what optuna-dashboard shows as intermediate values.
        inter = trials[curves.config].intermediate_values
        assert [inter[e] for e in curves.epochs] == pytest.approx(list(curves.test.mean),
                                                                   abs=1e-5)


def test_decision_boundaries_are_the_stored_models_that_match_the_study(collected):
    data, _ = collected
    assert [b.config for b in data.boundaries] == ["none", data.best.config] \
        or (data.best.config == "none" and [b.config for b in data.boundaries] == ["none"])
    for b in data.boundaries:
        # The model drawn (repeat 0's stored weights) scores what the study stored for it.
        assert b.test_metric == pytest.approx(b.stored_test_metric, abs=1e-6)
        assert b.kind == "probability" and len(b.xs) == len(b.ys) == report.BOUNDARY_GRID
        z = np.array(b.z)
        assert z.shape == (len(b.ys), len(b.xs)) and ((z >= 0) & (z <= 1)).all()
    assert not [n for n in data.notes if "retrained" in n]
    points = data.points
    assert points is not None and len(points.x_train) == 20 and len(points.x_test) == 40
    assert set(points.y_train) <= {0, 1}


def test_figures_draw_the_collected_data(collected):
    data, _ = collected
    figs = report.figures(data)
    assert [f.id for f in figs] == FIGURE_IDS
    heat = figs[0].figure.data[0]
    assert list(heat.y) == ["none (baseline)", "input", "hidden_pre"]
    assert list(heat.x) == ["0 (baseline)", "0.1", "0.3"]
    by_cell = {(row, col): heat.z[i][j] for i, row in enumerate(heat.y)
               for j, col in enumerate(heat.x)}
    for c in data.completed:
        cell = ("none (baseline)", "0 (baseline)") if c.is_baseline else (c.placement,
                                                                           c.sigma_label)
        assert by_cell[cell] == c.mean
    boxes = figs[2].figure.data
    assert boxes[0].name == "none" and len(boxes) == 5  # baseline first
    assert {b.name: list(b.y) for b in boxes} == {c.config: list(c.test_values)
                                                  for c in data.completed}
    # No numpy arrays in a figure: they would serialize as typed arrays the dashboard's
    # plotly.js does not read.
    for f in figs:
        assert '"bdata"' not in f.figure.to_json()


def test_robustness_profiles_are_the_stored_per_seed_values(collected):
    """The profiles the report draws, against a NumPy computation on the values stored on the
    trials (per test σ: mean over seeds, t-based 95% CI, paired Δ from the baseline)."""
    import numpy as np
    from scipy import stats as sps

    data, study = collected
    stored = {t.user_attrs["config"]: np.array([e["values"] for e in t.user_attrs["robustness"]])
              for t in study.trials}  # (S, R) per configuration
    assert {p.config for p in data.profiles} == set(stored)
    for p in data.profiles:
        values = stored[p.config]
        assert p.test_stds == (0.0, 0.1, 0.3)
        np.testing.assert_allclose(p.mean, values.mean(axis=1), atol=1e-6)
        for k, col in enumerate(values):
            if np.ptp(col) > 0:
                low, high = sps.t.interval(0.95, col.size - 1, loc=col.mean(),
                                           scale=sps.sem(col))
                assert (p.low[k], p.high[k]) == pytest.approx((low, high), abs=1e-6)
        if p.placement == "none":
            assert p.diff == (None, None, None)
        else:
            np.testing.assert_allclose(p.diff, (values - stored["none"]).mean(axis=1),
                                       atol=1e-6)
    shown = data.shown_profiles()
    assert shown[0].config == "none" and {p.placement for p in shown[1:]} == {"input",
                                                                             "hidden_pre"}


def test_robustness_figures_draw_the_profiles(collected):
    data, _ = collected
    figs = {f.id: f.figure for f in report.figures(data)}
    heat = figs["noise-search-8-robustness"].data[0]
    assert list(heat.y) == [p.config for p in data.profiles]
    assert list(heat.x) == ["0", "0.1", "0.3"]
    for row, p in zip(heat.z, data.profiles):
        assert list(row) == ([0.0] * 3 if p.placement == "none" else list(p.diff))
    lines = [t for t in figs["noise-search-9-profiles"].data if t.mode == "lines+markers"]
    assert [t.name for t in lines][0] == "no noise"
    for t, p in zip(lines, data.shown_profiles()):
        assert list(t.x) == list(p.test_stds) and list(t.y) == list(p.mean)


def test_recommendation_and_summary_name_the_best(collected):
    data, _ = collected
    words = report.answer(data)
    assert data.best.config in words or "no noise" in words.lower()
    note = report.summary_markdown(data)
    assert note.startswith("## noise-search: tiny")
    for c in data.configs:
        assert f"`{c.config}`" in note


def test_summary_table_shows_the_corruption_errors_with_their_legend(collected):
    """[robustness]: the report's table (HTML and dashboard note) has the robust columns of
    `results`, CE and relative CE included, with the legend that says how to read them."""
    data, _ = collected
    assert data.table_columns[-5:] == ("robust", "robust_diff", "robust_p_holm", "ce",
                                       "relative_ce")
    rows = [r for r in data.rows if r.get("ce") is not None]
    assert rows  # relative_ce may be None: then the cell is "-"
    note = report.summary_markdown(data)
    assert next(li for li in note.splitlines() if li.startswith("| configuration")).endswith(
        "| robust | robust Δ | robust p Holm | CE | rel. CE |")
    for row in rows:
        line = next(li for li in note.splitlines() if li.startswith(f"| `{row['config']}` |"))
        assert line.endswith(f"| {fmt.number(row['ce'], 3)} | "
                             f"{fmt.number(row['relative_ce'], 3)} |")
    clean, robust, *needed = data.table_notes
    assert robust == fmt.ROBUST_NOTE  # the same words as under `results`
    # The seeds a comparison that is not significant would need, as under `results` too.
    assert needed == [fmt.seeds_needed_note(data.rows)] and "seeds needed" in needed[0]
    assert needed[0] in note
    assert clean in note and robust in note
    page = report.render_html(data, [])
    assert "<th>CE</th><th>rel. CE</th>" in page
    assert html_module.escape(robust) in page and html_module.escape(clean) in page


def test_the_legend_explains_the_columns_shown_and_no_other(collected):
    """The legend is made from the table's columns: the report's table has no Wilcoxon p,
    wins, Δ CI or bootstrap CI, so its legend does not explain them; it explains every column
    it shows that needs it (the gap, which `results` does not show, among them)."""
    data, _ = collected
    legend = " ".join(data.table_notes)
    described = {key: column.about for key, column in fmt.COLUMNS.items() if column.about}
    for key, about in described.items():
        assert (about in legend) == (key in data.table_columns), key
    for hidden in ("p Wilcoxon", "wins", "Δ 95% CI", "bootstrap CI", "pareto"):
        assert hidden not in data.table_columns and f"{hidden}:" not in legend
    assert "gap: train − test mean" in legend
    # `results` shows those columns, and its legend explains them.
    for shown in ("p Wilcoxon:", "wins:", "Δ 95% CI:", "bootstrap CI:"):
        assert shown in fmt.TABLE_NOTE
    assert "gap:" not in fmt.TABLE_NOTE
    both = fmt.legend(fmt.robust_columns(True, "both"))
    assert both is not None and "pareto: no other configuration" in both
    assert fmt.legend(("config", "mean")) is None  # nothing to explain


def _many_profiles(data: report.ReportData, rows: int) -> report.ReportData:
    """The collected data with ``rows`` robustness profiles (copies under other names)."""
    from dataclasses import replace

    return replace(data, profiles=tuple(replace(data.profiles[i % len(data.profiles)],
                                                config=f"hidden_pre:0.{i + 1:02d}")
                                        for i in range(rows)))


@pytest.mark.parametrize("rows", [5, 13, 33])
def test_robustness_heatmap_is_tall_enough_for_its_cell_text(collected, rows):
    """Plotly shrinks a cell's text to fit the cell (13 rows in a fixed height gave 4 px
    text): the page's figure grows with its rows, two lines of text a row, and labels every
    row; the dashboard's card (fixed height) gets one line while it fits, else none."""
    from search.report.figures import DASHBOARD_ROWS_PX, LINE_PX, robustness_heatmap_figure

    data = _many_profiles(collected[0], rows)
    fig = robustness_heatmap_figure(data)
    heat = fig.data[0]
    assert len(heat.y) == rows and list(fig.layout.yaxis.tickvals) == list(heat.y)
    per_row = (fig.layout.height - 170) / rows
    assert per_row >= 2 * LINE_PX  # mean and Δ, one line each
    assert all(cell.count("<br>") <= 1 for line in heat.text for cell in line)
    assert fig.layout.yaxis.tickfont.size >= 12
    card = robustness_heatmap_figure(data, compact=True)
    per_row = DASHBOARD_ROWS_PX / rows
    cells = [cell for line in card.data[0].text for cell in line]
    if per_row >= LINE_PX:
        assert all(cell and "<br>" not in cell for cell in cells)  # one line: the Δ
    else:
        assert not any(cells)  # no text squeezed below readability: on hover
    assert card.layout.yaxis.tickfont.size <= max(7, per_row)
    assert list(card.layout.yaxis.tickvals) == list(card.data[0].y)


# --- the HTML in a real browser ---------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is required: apt-get install -y chromium (.ci/run does)")
    return found


def _chromium_run(page: Path, tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"chromium-profile-{uuid.uuid4().hex[:8]}"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
           "--virtual-time-budget=15000", *args, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rendered(dom: str) -> tuple[dict[str, bool], str]:
    """Each plot div -> whether Plotly drew an svg.main-svg into it; the page's error box."""
    ids = re.findall(r'<div id="([^"]+)" class="[^"]*plotly-graph-div', dom)
    drawn = {}
    for i, div_id in enumerate(ids):
        start = dom.index(f'<div id="{div_id}"')
        end = dom.index(f'<div id="{ids[i + 1]}"') if i + 1 < len(ids) else len(dom)
        drawn[div_id] = 'class="main-svg"' in dom[start:end]
    errors = re.search(r'<pre id="page-errors"[^>]*>(.*?)</pre>', dom, re.S)
    return drawn, html_module.unescape(errors.group(1)) if errors else "<no error box>"


@pytest.mark.browser
def test_report_html_renders_every_figure_in_headless_chromium(finished, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", "tiny", "--storage", finished, "-o", str(out), "--quiet"]) == 0
    page = out.read_text()
    # Self-contained: plotly.js is inlined, nothing is fetched.
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in page
    ours = page.replace(get_plotlyjs(), "")
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=", ours), "fetches something"
    dom = _chromium_run(out, tmp_path, "--dump-dom")
    drawn, errors = _rendered(dom)
    assert list(drawn) == FIGURE_IDS
    assert all(drawn.values()), drawn
    assert errors == "", errors
    assert "Recommend" in dom or "recommend" in dom
    shot = tmp_path / "report.png"
    _chromium_run(out, tmp_path, f"--screenshot={shot}", "--window-size=1280,5200")
    assert shot.stat().st_size > 50_000  # a drawn page, not a blank one
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "report-tiny.png")
    except OSError:
        pass  # the screenshot in tmp_path is the one the test keeps


@pytest.mark.browser
def test_the_browser_check_catches_a_failing_page(finished, tmp_path):
    """The check above can fail: a broken figure and a script error are both seen."""
    out = tmp_path / "report.html"
    assert main(["report", "tiny", "--storage", finished, "-o", str(out), "--quiet",
                 "--no-boundary"]) == 0
    page = out.read_text()
    # Break one figure's data and add a failing script.
    broken = page.replace('Plotly.newPlot(                        "noise-search-5-gap"',
                          'Plotly.newPlot(                        "no-such-div"', 1)
    assert broken != page
    broken = broken.replace("</body>", "<script>undefinedFunction();</script></body>")
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    drawn, errors = _rendered(_chromium_run(bad, tmp_path, "--dump-dom"))
    assert drawn["noise-search-5-gap"] is False
    assert "undefinedFunction" in errors


# --- progress of a running study, the dashboard copies, bad input ----------------------------


def test_report_of_a_study_still_running_says_so(write_study, sqlite_url, tmp_path, capsys):
    from search import spec as spec_module
    from search.engine import fast
    from search.study.runner import StudyRunner

    spec = spec_module.load(write_study())
    calls: list[str] = []

    def train_two_then_stop(spec_, data, config):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(config.key)
        return fast.train(spec_, data, config)

    runner = StudyRunner(spec, open_storage(sqlite_url), train=train_two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    out = tmp_path / "partial.html"
    assert main(["report", "tiny", "--storage", sqlite_url, "-o", str(out), "--quiet",
                 "--no-boundary"]) == 0
    said = capsys.readouterr().out
    assert "Study still running: 2 of 5 configurations complete" in said
    page = out.read_text()
    assert "Study still running: 2 of 5 configurations complete" in page
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    data = report.collect(study)
    assert [c.config for c in data.completed] == sorted(
        calls, key=lambda k: -next(c.mean for c in data.completed if c.config == k))
    assert not data.finished and len(data.configs) == 5


def test_saving_to_the_dashboard_twice_replaces(finished, tmp_path, capsys):
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
    from optuna_dashboard._note import get_note_from_system_attrs

    storage = open_storage(finished)
    study_id = storage.get_study_id_from_name("tiny")
    # The run already saved them once (its last step); save twice more.
    before = storage.get_study_system_attrs(study_id)
    assert sorted(get_plotly_graph_objects(before)) == FIGURE_IDS
    for _ in range(2):
        assert main(["report", "tiny", "--storage", finished, "-o", str(tmp_path / "r.html"),
                     "--quiet", "--to-dashboard"]) == 0
    after = storage.get_study_system_attrs(study_id)
    graphs = get_plotly_graph_objects(after)
    assert sorted(graphs) == FIGURE_IDS  # replaced, not duplicated
    import json

    for text in graphs.values():
        assert json.loads(text)["data"]
    note = get_note_from_system_attrs(after, None)
    assert note["version"] == get_note_from_system_attrs(before, None)["version"] + 2
    assert note["body"].startswith("## noise-search: tiny")
    assert note["body"].count("## noise-search: tiny") == 1
    assert "saved 8 figures and a summary note" in capsys.readouterr().out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_study_lists_the_studies(finished, capsys):
    assert main(["report", "tinny", "--storage", finished, "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert "no study named 'tinny'" in line and "tiny" in line


def test_study_without_a_completed_trial(write_study, sqlite_url, capsys):
    from search import spec as spec_module
    from search.study.runner import StudyRunner

    StudyRunner(spec_module.load(write_study()), open_storage(sqlite_url))  # creates, runs none
    assert main(["report", "tiny", "--storage", sqlite_url, "--quiet"]) == 2
    assert "has no completed trial" in _one_line_error(capsys)


# /proc refuses new files even to root, and passes the early permission check, so it
# exercises the failure at the end (after the figures are drawn) as well.
@pytest.mark.parametrize("where", ["missing-dir/report.html", "a-directory", "/proc/report.html"])
def test_output_that_cannot_be_written(finished, tmp_path, capsys, monkeypatch, where):
    """Refused by a real write probe before the storage is even opened (it was refused only
    after the figures, two minutes later, for /proc)."""
    (tmp_path / "a-directory").mkdir()
    target = tmp_path / where  # an absolute `where` stays as it is

    def too_late(*args, **kwargs):
        raise AssertionError("the storage was opened before the output path was checked")

    monkeypatch.setattr("search.storage.open_storage", too_late)
    assert main(["report", "tiny", "--storage", finished, "-o", str(target), "--quiet",
                 "--no-boundary"]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"noise-search: error: cannot write the report to '{target}'")
    assert not target.is_file()


def test_the_write_probe_leaves_no_file_and_changes_none(tmp_path):
    new = tmp_path / "new.html"
    report.check_writable(new)
    assert not new.exists()
    old = tmp_path / "old.html"
    old.write_text("keep")
    report.check_writable(old)
    assert old.read_text() == "keep"


def test_to_dashboard_writes_no_html_unless_asked(finished, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "tiny", "--storage", finished, "--to-dashboard", "--quiet",
                 "--no-boundary"]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [] and "wrote" not in out
    assert "saved 7 figures and a summary note into study 'tiny'" in out


@pytest.mark.slow
def test_regression_study_minimizes_and_explains_the_missing_boundary(write_study, sqlite_url,
                                                                     tmp_path):
    path = write_study()
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet", "--study-name", "reg",
                 "--set", 'data.dataset="friedman1"', "--set", "data.n_features=5"]) == 0
    study = optuna.load_study(study_name="reg", storage=open_storage(sqlite_url))
    data = report.with_boundaries(report.collect(study))
    assert data.direction == "minimize" and data.metric == "rmse"
    means = [c.mean for c in data.completed]
    assert means == sorted(means) and data.best.mean == min(means)  # best = lowest error
    assert data.boundaries == () and data.points is None
    assert data.notes == ("decision boundaries are drawn for 2-D data only; this dataset has "
                          "5 features",)
    figs = report.figures(data)
    assert [f.id for f in figs] == FIGURE_IDS[:5]
    # Lower is better: the colour scale is reversed so that blue still means better.
    low_colour = figs[0].figure.data[0].colorscale[0][1]
    r, _, blue = (int(v) for v in re.findall(r"\d+", low_colour))
    assert blue > r, low_colour
    out = tmp_path / "reg.html"
    assert main(["report", "reg", "--storage", sqlite_url, "-o", str(out), "--quiet"]) == 0
    assert "2-D data only" in out.read_text()


def test_run_draws_dashboard_figures_once_per_set_of_completed_trials(write_study, sqlite_url,
                                                                      capsys):
    path = write_study(TINY_STUDY + ROBUSTNESS_SECTION)  # all the figures, robustness too
    assert main(["run", str(path), "--storage", sqlite_url]) == 0
    assert "saved 8 figures" in capsys.readouterr().out
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    assert study.user_attrs["dashboard_figures_for"] == ",".join(
        str(t.number) for t in study.trials)
    # A resume with nothing to do does not retrain and redraw.
    assert main(["run", str(path), "--storage", sqlite_url]) == 0
    assert "saved 8 figures" not in capsys.readouterr().out
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    storage = open_storage(sqlite_url)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("tiny"))
    assert sorted(get_plotly_graph_objects(attrs)) == FIGURE_IDS


# --- decision boundaries through the study's own engine ---------------------------------------


def test_a_study_without_stored_weights_retrains_repeat_0_with_its_own_engine(finished,
                                                                            monkeypatch):
    collect_module = importlib.import_module("search.report.collect")  # not report.collect()

    study = optuna.load_study(study_name="tiny", storage=open_storage(finished))
    stored = report.with_boundaries(report.collect(study))
    monkeypatch.setattr(collect_module, "stored_weights", lambda trial: None)  # an older study
    steps: list[str] = []
    retrained = report.with_boundaries(report.collect(study),
                                       progress=lambda what, advance: steps.append(what))
    assert [s for s in steps if s.startswith("retrained")] == [
        f"retrained {b.config}" for b in stored.boundaries]
    for old, new in zip(stored.boundaries, retrained.boundaries):
        # Common random numbers: retrained repeat 0 is the study's repeat 0.
        assert new.test_metric == pytest.approx(new.stored_test_metric, abs=1e-6)
        assert np.allclose(new.z, old.z, atol=2e-3)
    assert retrained.notes == ()


def test_reading_the_report_trains_nothing_and_reads_no_engine(finished, monkeypatch):
    """collect only reads: decision boundaries are their own step (with_boundaries), so an
    outage retried while reading never repeats training."""
    from search import engine
    collect_module = importlib.import_module("search.report.collect")  # not report.collect()

    def no_engine(name, builder=False):
        raise AssertionError("reading the report's data loaded an engine")

    monkeypatch.setattr(engine, "load", no_engine)
    monkeypatch.setattr(collect_module, "stored_weights", lambda trial: None)  # would retrain
    study = optuna.load_study(study_name="tiny", storage=open_storage(finished))
    data = report.collect(study)
    assert data.boundaries == () and data.points is None
    assert set(data.weights) == {c.config for c in (data.baseline, data.best) if c}


def test_an_engine_that_cannot_predict_gives_a_note_not_another_engines_boundary(finished,
                                                                                 monkeypatch):
    from types import SimpleNamespace

    from search import engine

    study = optuna.load_study(study_name="tiny", storage=open_storage(finished))
    no_predict = SimpleNamespace(NAME="fast", train=engine.train)
    monkeypatch.setattr(engine, "load", lambda name, builder=False: no_predict)
    data = report.with_boundaries(report.collect(study))
    assert data.boundaries == () and data.points is None
    assert data.notes == ("decision boundary not available: the fast engine cannot predict "
                          "from weights",)
    # Every figure but the boundary (the shared study measures robustness too).
    assert [f.id for f in report.figures(data)] == [
        i for i in FIGURE_IDS if i != "noise-search-6-boundary"]


@pytest.mark.slow
def test_a_keras_study_gets_a_keras_boundary_or_a_clear_note(write_study, sqlite_url,
                                                              monkeypatch, tmp_path):
    """Never a fast-engine retrain of a keras study that then claims the engine changed."""
    from search.engine import fast

    def not_for_keras(*args, **kwargs):
        raise AssertionError("a keras-engine study was retrained with the fast engine")

    monkeypatch.setattr(fast, "train", not_for_keras)
    monkeypatch.setattr(fast, "train_with_weights", not_for_keras)
    path = write_study()
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet", "--set",
                 "study.engine='keras'", "--set", "study.repeats=2", "--set",
                 "model.epochs=4", "--set", "noise.placements=['input']", "--set",
                 "noise.std=[0.1]"]) == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(sqlite_url))
    data = report.with_boundaries(report.collect(study))
    assert not [n for n in data.notes if "engine has changed" in n], data.notes
    if data.boundaries:  # keras predicts: the boundary is of the model the study trained
        for b in data.boundaries:
            assert b.test_metric == pytest.approx(b.stored_test_metric, abs=1e-6)
    else:
        assert data.notes and all(n.startswith(report.NOT_AVAILABLE) for n in data.notes)
    out = tmp_path / "keras.html"
    assert main(["report", "tiny", "--storage", sqlite_url, "-o", str(out), "--quiet"]) == 0
    assert "engine has changed" not in out.read_text()


# --- a raced study: every measured configuration in every figure and table --------------------


@pytest.fixture
def raced(write_study, sqlite_url, fake_train) -> report.ReportData:
    """A race (15 seeds at most, rounds of 5) with [robustness] and the fake trainer of
    tests/test_race.py: the baseline and hidden_pre:0.1 run to the end, input:0.1 and
    input:0.3 stop after 5 seeds, hidden_pre:0.3 after 10."""
    from search import spec as spec_module
    from search.study.runner import StudyRunner
    from tests.test_race import RACE, scored

    fake_train.score = scored
    spec = spec_module.load(write_study(), [*RACE, "robustness.input_std=[0.0, 0.1, 0.2]"])
    runner = StudyRunner(spec, open_storage(sqlite_url), train=fake_train)
    runner.run()
    return report.collect(runner.study)


STOPPED = {"input:0.1": 5, "input:0.3": 5, "hidden_pre:0.3": 10}


def test_a_raced_study_is_collected_with_its_stopped_configurations(raced):
    data = raced
    assert {c.config for c in data.completed} == {"none", "hidden_pre:0.1"}
    assert {c.config: c.n for c in data.measured if c.stopped} == STOPPED
    assert len(data.measured) == len(data.configs) == 5
    for c in data.measured:
        assert len(c.test_values) == c.n and c.mean == pytest.approx(np.mean(c.test_values))
        if c.stopped:
            assert c.reason.startswith("worse than the ") and c.label == f"{c.config} (stopped)"
            assert c.status.startswith(f"stopped by racing after {c.n} seeds: worse than")
        else:
            assert c.reason is None and c.label == c.config
    assert data.best.config == "hidden_pre:0.1"  # only one that ran to the end can be best
    assert {p.config: (p.n, p.stopped) for p in data.profiles} == {
        c.config: (c.n, c.stopped) for c in data.measured}
    assert not [n for n in data.notes if "against σ" in n]  # the σ figure is drawn


def _hovers(trace) -> str:
    return str(trace.customdata) + str(trace.hovertemplate)


def test_every_figure_draws_every_measured_configuration_stopped_ones_marked(raced):
    data = raced
    figs = {f.id: f.figure for f in report.figures(data)}
    assert list(figs) == [*FIGURE_IDS[:5], "noise-search-7-race", *FIGURE_IDS[6:]]
    by_config = {c.config: c for c in data.measured}
    # Placement × σ: a cell per configuration, its mean; a stopped one says so, and why on hover.
    heat = figs["noise-search-1-heatmap"].data[0]
    cells = {(y, x): (heat.z[i][j], heat.text[i][j], heat.customdata[i][j])
             for i, y in enumerate(heat.y) for j, x in enumerate(heat.x) if heat.z[i][j]}
    assert len(cells) == 5
    for c in data.measured:
        where = ("none (baseline)", "0 (baseline)") if c.is_baseline else (c.placement,
                                                                           c.sigma_label)
        mean, text, hover = cells[where]
        assert mean == c.mean
        assert ("stopped at" in text) == c.stopped
        assert (f"stopped at {c.n}" in text) == c.stopped
        if c.stopped:
            assert hover.startswith(f"stopped by racing after {c.n} seeds: worse than")
    # Against σ: every noise configuration, stopped ones with open markers.
    points = {}
    for trace in figs["noise-search-2-sigma"].data:
        if trace.mode == "lines+markers":
            for x, y, symbol in zip(trace.x, trace.y, trace.marker.symbol):
                points[(trace.name, x)] = (y, symbol)
    assert points == {(c.placement, c.sigma): (c.mean, "circle-open" if c.stopped else "circle")
                      for c in data.measured if not c.is_baseline}
    # Every repeat: a box per configuration with the seeds it ran.
    boxes = {b.name: list(b.y) for b in figs["noise-search-3-repeats"].data}
    assert boxes == {c.label: list(c.test_values) for c in data.measured}
    # The generalization gap: every configuration, the stopped ones open, with the reason.
    gap = [t for t in figs["noise-search-5-gap"].data if t.text]
    drawn = {name: symbol for t in gap for name, symbol in zip(t.text, t.marker.symbol)}
    assert set(drawn) == set(by_config)
    for name, symbol in drawn.items():
        assert (symbol == "circle-open") == by_config[name].stopped
    assert "stopped by racing after 10 seeds" in "".join(_hovers(t) for t in gap)
    # Robustness: a row per configuration, stopped ones named so; their profiles too.
    robust = figs["noise-search-8-robustness"].data[0]
    assert list(robust.y) == [p.label for p in data.profiles]
    assert {label.removesuffix(" (stopped)") for label in robust.y} == set(by_config)
    assert "stopped by racing" in _hovers(robust)


def test_the_race_figure_labels_every_row(raced):
    """Plotly drops the labels of crowded rows; with 33 configurations it labelled every
    other one. Every row is labelled, on the page and on the dashboard's card."""
    from dataclasses import replace

    from search.report.figures import race_figure

    data = raced
    many = replace(data, race=tuple(replace(r, config=f"{r.config}#{k}")
                                    for k in range(7) for r in data.race))  # 35 rows
    for compact in (False, True):
        fig = race_figure(many, compact)
        names = [y for trace in fig.data for y in trace.y]
        assert sorted(fig.layout.yaxis.tickvals) == sorted(names) and len(names) == 35
        assert list(fig.layout.yaxis.ticktext) == list(fig.layout.yaxis.tickvals)
    assert race_figure(many).layout.height >= 20 * 35
    assert "racing trained 50 of 75 seeds (67%)" in race_figure(data).layout.title.text


def test_the_report_table_has_every_measured_configuration_stopped_ones_marked(raced):
    data = raced
    page = report.render_html(data, [])
    for c in data.measured:
        row = re.search(rf'<tr class="(\w*)"( title="[^"]*")?><td>{re.escape(c.config)}</td>',
                        page)
        assert row is not None, c.config
        assert (row.group(1) == "stopped") == c.stopped
        if c.stopped:
            assert row.group(2).startswith(f' title="stopped by racing after {c.n} seeds: ')
    note = report.summary_markdown(data)
    for c in data.measured:
        line = next(li for li in note.splitlines() if li.startswith(f"| `{c.config}` |"))
        assert line.split(" | ")[1] == str(c.n)  # n: the seeds it ran
        assert ("| pruned |" in line) == c.stopped


def test_a_figure_left_out_is_named_in_a_note(raced):
    """With no noise configuration on a σ axis (only the baseline measured), the figure of
    the metric against σ is not drawn, and the report says so instead of leaving it out."""
    from dataclasses import replace

    from search.report.collect import _missing_figures

    data = raced
    only_baseline = replace(data, configs=tuple(c for c in data.configs if c.is_baseline))
    assert "noise-search-2-sigma" not in [f.id for f in report.figures(only_baseline)]
    (note,) = _missing_figures(only_baseline)
    assert note.startswith("Test metric against σ: not drawn")
    assert _missing_figures(data) == ()
