"""A tiny study on SQLite: stored attributes, resume, refusal to mix specs, progress.

Trained for real where the numbers are the point (the stored statistics and curves, a real
divergence); elsewhere with the fake trainer (tests/conftest.py), which imports no TensorFlow.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import spec as spec_module
from search.cli import main
from search.storage import open_storage
from search.study.record import stored_blocks, stored_curves, stored_weights


def _run(study_file, url, *extra):
    return main(["run", str(study_file), "--storage", url, "--quiet", *extra])


@pytest.fixture
def finished(write_study, sqlite_url, fake_engine):
    path = write_study()
    assert _run(path, sqlite_url) == 0
    return path, sqlite_url


def test_every_grid_point_runs_once_with_its_statistics(write_study, sqlite_url):
    path, url = write_study(), sqlite_url
    assert _run(path, url) == 0  # real training
    spec = spec_module.load(path)
    study = optuna.load_study(study_name="tiny", storage=url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials)
    keys = [t.user_attrs["config"] for t in trials]
    assert sorted(keys) == sorted(c.key for c in spec.configurations())
    assert len(keys) == 5  # baseline + 2 placements × 2 σ
    for t in trials:
        a = t.user_attrs
        values = np.array(a["test_values"])
        assert a["repeats"] == len(values) == 3
        assert a["test_mean"] == pytest.approx(values.mean())
        assert a["test_sd"] == pytest.approx(values.std(ddof=1))
        assert a["test_ci_low"] <= a["test_mean"] <= a["test_ci_high"]
        assert a["train_mean"] == pytest.approx(np.mean(a["train_values"]))
        assert t.value == pytest.approx(a["test_mean"])
        # Recorded as every study records: in blocks, here one block of all the repeats, the
        # values per repeat rounded from its full-precision ones.
        (block,) = stored_blocks(t)
        assert block["repeats"] == [0, 3]
        assert a["test_values"] == [round(v, 6) for v in block["test_metric"]]
        # Intermediate values: the mean clean test curve, one per record point.
        assert sorted(t.intermediate_values) == [5, 10, 15, 20]
        assert t.intermediate_values[20] == pytest.approx(a["test_mean"], abs=1e-6)
        # Repeat 0's final weights, for the report's decision boundary without retraining.
        weights = stored_weights(t)
        assert [w.shape for w in weights] == [(2, 8), (8,), (8, 1), (1,)]
        assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights)
        curves = stored_curves(t)
        assert curves["epochs"] == [5, 10, 15, 20]
        assert np.array(curves["test_metric"]).shape == (3, 4)
        # Parameters as the dashboard shows them.
        if a["config"] == "none":
            assert t.params == {}
        else:
            assert t.params["placement"] == a["placement"]
            for site in a["placement"].split("+"):  # σ once per site, as the view reads it
                assert t.params["std"] == a[f"sigma_{site}"]
            assert "std" not in a  # σ is not stored a third time
    stored = study.user_attrs["spec"]
    assert stored == spec.to_dict()


def test_resume_adds_no_duplicate_trial(finished, capsys):
    path, url = finished
    before = len(optuna.load_study(study_name="tiny", storage=url).trials)
    assert _run(path, url) == 0
    after = optuna.load_study(study_name="tiny", storage=url).trials
    assert len(after) == before
    assert "5 of 5 configurations done" in capsys.readouterr().out


def test_interrupted_configuration_is_run_again_on_resume(write_study, sqlite_url,
                                                          fake_engine):
    path = write_study()
    spec = spec_module.load(path)
    from search.study.runner import StudyRunner

    calls = []

    def train_then_stop(spec_, data, config):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(config.key)
        return fake_engine(spec_, data, config)

    runner = StudyRunner(spec, open_storage(sqlite_url), train=train_then_stop)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 1
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    assert failed.user_attrs["failure"] == "interrupted"
    assert _run(path, sqlite_url) == 0
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    complete = [t.user_attrs["config"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.key for c in spec.configurations())
    assert len(complete) == len(set(complete))


@pytest.mark.slow
def test_different_spec_under_the_same_name_is_refused(finished, capsys):
    path, url = finished
    code = _run(path, url, "--set", "model.epochs=21")
    err = capsys.readouterr().err
    assert code == 2
    assert "different spec" in err and "model.epochs (stored 20, now 21)" in err
    assert "Traceback" not in err
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 5
    # Another name starts another study.
    assert _run(path, url, "--set", "model.epochs=21", "--study-name", "tiny-21") == 0


def test_diverging_configuration_fails_and_the_study_goes_on(write_study, sqlite_url, capsys):
    path = write_study()
    assert _run(path, sqlite_url, "--set", "noise.std=[0.1, 1e30]") == 0
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    by_key = {t.user_attrs["config"]: t for t in study.trials}
    assert by_key["input:1e+30"].state == TrialState.FAIL
    assert "diverged" in by_key["input:1e+30"].user_attrs["failure"]
    assert by_key["input:0.1"].state == TrialState.COMPLETE
    # A diverged configuration is deterministic: resuming does not run it again.
    assert _run(path, sqlite_url, "--set", "noise.std=[0.1, 1e30]") == 0
    assert len(optuna.load_study(study_name="tiny", storage=sqlite_url).trials) == 5
    # ... and the study is finished: nothing reads as still running or "may change".
    capsys.readouterr()
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert ("tiny: 3/5 configurations complete, 2 diverged, 0 running, 0 queued, 0 failed"
            in capsys.readouterr().out)
    assert main(["results", "tiny", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "3 of 5 configurations complete, 2 diverged" in out and "may change" not in out


def test_results_formats(finished, capsys):
    _, url = finished
    capsys.readouterr()
    assert main(["results", "tiny", "--storage", url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5
    for key in ("placement", "std", "kind", "n", "mean", "sd", "sem", "ci_low", "ci_high",
                "train_mean", "state", "diff"):
        assert key in rows[0]
    means = [r["mean"] for r in rows]
    assert means == sorted(means, reverse=True)
    base = next(r for r in rows if r["placement"] == "none")
    assert base["std"] == 0.0 and base["diff"] == 0.0
    for r in rows:
        assert r["diff"] == pytest.approx(r["mean"] - base["mean"])

    assert main(["results", "tiny", "--storage", url, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("config,placement,std") and len(lines) == 6

    assert main(["results", "tiny", "--storage", url]) == 0
    table = capsys.readouterr().out
    assert "hidden_pre" in table and "Δ baseline" in table and "95% CI" in table

    assert main(["studies", "--storage", url]) == 0
    assert "tiny: 5/5 configurations complete" in capsys.readouterr().out


def test_unknown_study_lists_the_existing_ones(finished, capsys):
    _, url = finished
    assert main(["results", "nope", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and "tiny" in err and "Traceback" not in err


def test_storage_from_environment(write_study, sqlite_url, monkeypatch, fake_engine):
    monkeypatch.setenv("NOISE_SEARCH_STORAGE", sqlite_url)
    assert main(["run", str(write_study()), "--quiet"]) == 0
    assert len(optuna.load_study(study_name="tiny", storage=sqlite_url).trials) == 5


def test_default_storage_is_sqlite_in_working_directory(write_study, tmp_path, fake_engine):
    assert main(["run", str(write_study()), "--quiet"]) == 0
    assert (tmp_path / "noise-search.db").exists()


def test_site_grids_are_their_own_parameters(write_study, sqlite_url, recwarn, fake_engine):
    path = write_study()
    assert _run(path, sqlite_url, "--set", "noise.site_std.input=[0.01, 0.02]") == 0
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    by_key = {t.user_attrs["config"]: t for t in study.trials}
    assert set(by_key) == {"none", "input:0.01", "input:0.02", "hidden_pre:0.1", "hidden_pre:0.3"}
    site = by_key["input:0.01"]
    assert site.params == {"placement": "input", "std_input": 0.01}
    assert (site.distributions["std_input"].low, site.distributions["std_input"].high) == (
        0.01, 0.02)
    shared = by_key["hidden_pre:0.3"]
    assert shared.params == {"placement": "hidden_pre", "std": 0.3}
    assert (shared.distributions["std"].low, shared.distributions["std"].high) == (0.1, 0.3)
    assert not [w for w in recwarn if "out of range" in str(w.message)]


def test_study_from_another_engine_version_is_refused(finished, capsys):
    path, url = finished
    study = optuna.load_study(study_name="tiny", storage=url)
    assert study.user_attrs["engine_version"] >= 2
    study.set_user_attr("engine_version", 1)
    assert _run(path, url) == 2
    err = capsys.readouterr().err
    assert "engine version 1" in err and "--study-name" in err and "Traceback" not in err
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 5


def test_a_sampler_study_is_complete_at_its_n_trials(write_study, sqlite_url, fake_engine,
                                                     capsys, recwarn):
    """tpe / random: the total is n_trials (not the one queued baseline), and it follows an
    n_trials raised on resume."""
    path = write_study()
    random = ["--set", 'study.sampler="random"']
    assert _run(path, sqlite_url, *random, "--set", "study.n_trials=4") == 0
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    capsys.readouterr()
    assert main(["results", "tiny", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "study 'tiny': 4 of 4 configurations complete" in out and "may change" not in out
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "tiny: 4/4 configurations complete" in capsys.readouterr().out
    assert _run(path, sqlite_url, *random, "--set", "study.n_trials=6") == 0
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "tiny: 6/6 configurations complete" in capsys.readouterr().out
    assert len(fake_engine.calls) == 6
    assert not [w for w in recwarn if "Heartbeat" in str(w.message)]  # none reaches the user


def test_the_record_holds_what_the_trainer_measured(write_study, sqlite_url, fake_engine):
    from search.study.record import TrialRecord

    assert _run(write_study(), sqlite_url) == 0
    trials = optuna.load_study(study_name="tiny", storage=sqlite_url).trials
    assert sorted(fake_engine.calls) == sorted(t.user_attrs["config"] for t in trials)
    for t in trials:
        rec = TrialRecord.from_trial(t)
        expected = fake_engine.values(rec.config, 3)
        assert rec.key == rec.config.key and rec.done and rec.repeats == 3
        assert rec.test_values == pytest.approx(tuple(expected), abs=1e-9)
        assert rec.train_values == pytest.approx(tuple(expected + 0.05), abs=1e-9)
        assert rec.test.mean == pytest.approx(expected.mean()) == t.value
        assert rec.test.sd == pytest.approx(expected.std(ddof=1))
        assert rec.metric == "accuracy" and rec.engine == "fast" and rec.worker
        assert t.intermediate_values[20] == pytest.approx(expected.mean())


def test_a_given_trainer_never_imports_tensorflow(write_study, sqlite_url):
    """The runner, results and the view with a fake trainer: TensorFlow stays unloaded."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = f"""
import sys
from search import spec as spec_module
from search.analysis.results import read_results
from search.storage import open_storage
from search.study.runner import StudyRunner
from tests.conftest import FakeTrainer
runner = StudyRunner(spec_module.load({str(write_study())!r}), open_storage({sqlite_url!r}),
                     train=FakeTrainer())
assert len(runner.run()) == 5
assert len(read_results(runner.study).completed) == 5
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
"""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_sampler_study_run_again_proposes_the_same_configurations(write_study, sqlite_url,
                                                                    fake_engine):
    """The sampler is the one the file names, seeded by the study's seed: reproducible."""
    from search.study.space import sampler

    path = write_study()
    random = ["--set", 'study.sampler="random"', "--set", "study.n_trials=5"]
    keys = []
    for name in ("first", "again"):
        assert _run(path, sqlite_url, *random, "--study-name", name) == 0
        study = optuna.load_study(study_name=name, storage=sqlite_url)
        keys.append([t.user_attrs["config"] for t in study.trials])
    assert keys[0] == keys[1] and len(set(keys[0])) == 5
    spec = spec_module.load(path, ['study.sampler="random"'])
    assert isinstance(sampler(spec, 3), optuna.samplers.RandomSampler)
    tpe = spec_module.load(path, ['study.sampler="tpe"'])
    assert isinstance(sampler(tpe, 3), optuna.samplers.TPESampler)
    # Another seed, other configurations.
    assert _run(path, sqlite_url, *random, "--set", "study.seed=4", "--study-name", "other") == 0
    other = optuna.load_study(study_name="other", storage=sqlite_url)
    assert [t.user_attrs["config"] for t in other.trials] != keys[0]


def test_final_weights_are_stored_exactly_up_to_a_size(write_study):
    import dataclasses

    from search.study import record
    from tests.conftest import FakeTrainer

    spec = spec_module.load(write_study())
    rng = np.random.default_rng(0)
    weights = (rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32))
    result = dataclasses.replace(FakeTrainer()(spec, None, spec.configurations()[0]),
                                 weights=weights)
    stored = record.weights_value(result)
    trial = optuna.trial.create_trial(value=0.5, system_attrs={record.WEIGHTS_ATTR: stored})
    for got, given in zip(stored_weights(trial), weights, strict=True):
        assert got.dtype == np.float32 and np.array_equal(got, given)  # bit for bit
    big = np.zeros(record.MAX_STORED_WEIGHTS + 1, np.float32)
    assert record.weights_value(dataclasses.replace(result, weights=(big,))) is None
    assert stored_weights(optuna.trial.create_trial(value=0.5)) is None


def test_intermediate_values_are_the_mean_curve_at_no_more_than_fifty_points(
        write_study, sqlite_url, fake_engine):
    """optuna-dashboard's curve: each point is a database write, so a long run's 200 record
    points are thinned, evenly, keeping the first and the last (the trial's final mean)."""
    from search.study.record import MAX_INTERMEDIATE_VALUES

    assert _run(write_study(), sqlite_url, "--set", "model.epochs=1000") == 0
    for t in optuna.load_study(study_name="tiny", storage=sqlite_url).trials:
        epochs = stored_curves(t)["epochs"]
        assert len(epochs) == 200 > MAX_INTERMEDIATE_VALUES == len(t.intermediate_values)
        steps = sorted(t.intermediate_values)
        assert steps[0] == epochs[0] == 5 and steps[-1] == epochs[-1] == 1000
        assert set(np.diff(steps)) <= {20, 25}  # evenly spaced record points
        mean = np.mean(stored_curves(t)["test_metric"], axis=0)
        for step, value in t.intermediate_values.items():
            assert value == pytest.approx(mean[epochs.index(step)], abs=1e-5)
        assert t.intermediate_values[1000] == pytest.approx(t.value, abs=1e-5)


def test_curves_are_stored_once_in_the_blocks_and_older_studies_still_read():
    """A trial's curves are its blocks' (merged in repeat order), not a second copy; a trial
    of a study recorded before blocks has them in CURVES_ATTR and reads the same way."""
    import optuna

    from search.study import record

    def block(start: int, stop: int, base: float) -> dict:
        rows = [[base + r, base + r + 0.5] for r in range(start, stop)]
        return {"repeats": [start, stop], "seconds": 1.0, "test_metric": [0.5] * (stop - start),
                "curves": {"epochs": [5, 10], "test_metric": rows, "train_metric": rows}}

    raced = optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, value=0.5,
        system_attrs={record.block_attr(0): block(0, 2, 0.0),
                      record.block_attr(2): block(2, 3, 0.0)})
    curves = record.stored_curves(raced)
    assert curves["epochs"] == [5, 10]
    assert curves["test_metric"] == [[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]
    assert record.CURVES_ATTR not in raced.system_attrs
    old = optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, value=0.5,
        system_attrs={record.CURVES_ATTR: {"epochs": [1], "test_metric": [[0.7]]}})
    assert record.stored_curves(old) == {"epochs": [1], "test_metric": [[0.7]]}
    assert record.stored_curves(optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE, value=0.5)) is None


def test_a_record_retried_after_its_commit_lost_its_answer_reports_the_trial_complete(
        write_study, sqlite_url, fake_train):
    """Recording a block is retried through an outage; when the first attempt did commit
    (block, record, COMPLETE) and only its answer was lost, the retry reports the trial
    complete with its numbers, neither as taken over nor by writing it again."""
    from search.study import queue
    from search.study.runner import StudyRunner

    spec = spec_module.load(write_study())
    runner = StudyRunner(spec, open_storage(sqlite_url), train=fake_train)
    runner.recover()
    trial = queue.next_trial(runner.study, runner.storage, spec, runner.meta)
    block = runner.schedule.next_block(0)
    config, result = runner._train_block(trial, block)
    first = runner._record_block(trial, config, block, result, 1.0)
    again = runner._record_block(trial, config, block, result, 1.0)
    assert first[0] == again[0] == TrialState.COMPLETE
    assert first[1] == again[1] and again[2] is None  # the same summary; no failure
    (stored,) = [t for t in runner.study.get_trials() if t.number == trial.number]
    assert len(stored_blocks(stored)) == 1 and stored.value == pytest.approx(first[1].mean)
