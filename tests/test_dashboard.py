"""`noise-search dashboard`: the real optuna-dashboard, started as a subprocess on a finished
study, serves our figures and note over its JSON API; a busy port is one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from search.cli import main
from search.storage import open_storage
from tests.conftest import REPORT_FIGURE_IDS as FIGURE_IDS

CLI = [sys.executable, "-c", "import sys; from search.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def finished(finished_tiny_study) -> str:
    return finished_tiny_study


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.fixture
def served(finished, tmp_path):
    """`noise-search dashboard` on the finished study; yields its base URL."""
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w+")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([*CLI, "dashboard", "--storage", finished, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"dashboard did not start (exit {proc.poll()}): {log.read()}")
                time.sleep(0.3)
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@pytest.mark.processes
def test_dashboard_serves_the_study_with_our_figures_and_note(served):
    base, proc, log = served
    status, body = _get(f"{base}/api/studies")
    assert status == 200
    studies = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["tiny"]
    status, body = _get(f"{base}/api/studies/{studies[0]['study_id']}")
    assert status == 200
    detail = json.loads(body)
    assert len(detail["trials"]) == 5
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert sorted(graphs) == FIGURE_IDS
    heat = graphs["noise-search-1-heatmap"]["data"][0]
    assert heat["type"] == "heatmap" and heat["y"][0] == "none (baseline)"
    # Plain lists, which the dashboard's plotly.js reads (not base64 typed arrays).
    assert isinstance(graphs["noise-search-3-repeats"]["data"][0]["y"], list)
    note = detail["note"]["body"]
    assert note.startswith("## noise-search: tiny") and "`none`" in note
    # The page itself is served too (the browser app that shows these).
    status, page = _get(f"{base}/dashboard")
    assert status == 200 and b"<html" in page.lower()
    log.seek(0)
    assert "optuna-dashboard on sqlite:///" in log.read()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_port_in_use_is_one_line_and_exit_2(sqlite_url, capsys):
    open_storage(sqlite_url)  # the dashboard serves an existing database only
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--storage", sqlite_url, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == (f"noise-search: error: port {port} on 127.0.0.1 is already in use; "
                           "choose another with --port")


@pytest.mark.processes
def test_dashboard_names_the_objective_and_keeps_optuna_warnings_off_its_terminal(served):
    """optuna-dashboard labels an objective by the study's metric names ("Objective 0"
    without them); what Optuna warns while computing the page (parameter importances of a
    grid with one trial per value: "Some regimes ... have less than 2 trials") is not for the
    person browsing."""
    base, proc, log = served
    status, body = _get(f"{base}/api/studies")
    study_id = json.loads(body)["study_summaries"][0]["study_id"]
    detail = json.loads(_get(f"{base}/api/studies/{study_id}")[1])
    assert detail["objective_names"] == ["mean test accuracy"]
    # What the browser asks for besides the study: the importances and Optuna's plots.
    for path in ("param_importances", "plot/slice", "plot/contour", "plot/rank"):
        assert _get(f"{base}/api/studies/{study_id}/{path}")[0] == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    log.seek(0)
    said = log.read()
    assert "Warning" not in said and "warn(" not in said, said


@pytest.mark.parametrize("objective, names", [
    ("clean", ["mean test accuracy"]),
    ("both", ["mean test accuracy", "robust accuracy"]),
])
def test_objectives_are_named_by_metric_when_a_study_is_created_or_opened(
        write_study, sqlite_url, objective, names):
    """study.set_metric_names where the study is created, and for a study created before
    (no names) when it is opened again; Optuna's ExperimentalWarning for it stays quiet."""
    import warnings

    import optuna

    from search import spec as spec_module
    from search.study.opening import open_study
    from tests.conftest import ROBUSTNESS_SECTION, TINY_STUDY

    spec = spec_module.load(write_study(TINY_STUDY + ROBUSTNESS_SECTION),
                            [f"study.objective='{objective}'"])
    storage = open_storage(sqlite_url)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        study = open_study(spec, storage)
        assert study.metric_names == names
        # An older study: no names yet. Opening it names its objectives.
        study_id = storage.get_study_id_from_name("tiny")
        storage.set_study_system_attr(study_id, "study:metric_names", None)
        assert optuna.load_study(study_name="tiny", storage=storage).metric_names is None
        assert open_study(spec, storage).metric_names == names
    assert [str(w.message) for w in seen if issubclass(w.category, UserWarning)] == []
