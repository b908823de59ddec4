"""Racing in the queue and the runner, with the fake trainer (training is not the point): one
trial per configuration, seeds in blocks, each block trained and recorded once, losers
PRUNED with their reason, per-seed intermediate values, resume and a dead worker's recovery."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search import spec as spec_module
from search.analysis.results import read_results
from search.cli import main
from search.storage import open_storage
from search.study import queue, record
from search.study.runner import StudyRunner

RACE = ["study.repeats=15", "racing.first=5", "racing.each=5"]

# Known means, and a spread per seed so that the paired test has something to do: the
# baseline, one configuration a little better (hidden_pre:0.1, it stays to the end), one
# within the noise of the baseline (hidden_pre:0.3: 5 seeds cannot stop it, so it is trained
# beyond the first round), two far worse (stopped after 5 seeds).
MEANS = {"none": 0.80, "hidden_pre:0.1": 0.81, "hidden_pre:0.3": 0.797, "input:0.1": 0.6,
         "input:0.3": 0.5}


def scored(config, repeat: int) -> float:
    seed_effect = 0.02 * np.sin(3.0 * repeat)  # shared by every configuration: paired
    own = np.random.default_rng([repeat, sum(map(ord, config.key))]).normal(0.0, 0.004)
    return round(MEANS[config.key] + seed_effect + own, 6)


@pytest.fixture
def racer(fake_train):
    fake_train.score = scored
    return fake_train


def _spec(write_study, extra=()):
    return spec_module.load(write_study(), [*RACE, *extra])


def _blocks(calls) -> Counter:
    return Counter(calls)


def test_losers_stop_after_the_first_round_the_rest_run_to_the_maximum(write_study, sqlite_url,
                                                                        racer):
    spec = _spec(write_study)
    runner = StudyRunner(spec, open_storage(sqlite_url), train=racer)
    runner.run()
    trials = runner.study.get_trials()
    assert len(trials) == 5  # one trial per configuration, however many blocks
    by_key = {t.user_attrs["config"]: t for t in trials}
    for key in ("input:0.1", "input:0.3"):
        t = by_key[key]
        assert t.state == TrialState.PRUNED and t.user_attrs["repeats"] == 5
        assert t.user_attrs["pruned_reason"].startswith("worse than the ")
        assert "after 5 seeds (paired t-test p = " in t.user_attrs["pruned_reason"]
        assert t.value == pytest.approx(np.mean([scored(_config(key), r) for r in range(5)]))
    close = by_key["hidden_pre:0.3"]
    assert close.user_attrs["repeats"] > 5
    if close.state == TrialState.PRUNED:
        assert f"after {close.user_attrs['repeats']} seeds" in close.user_attrs["pruned_reason"]
    else:
        assert close.state == TrialState.COMPLETE and close.user_attrs["repeats"] == 15
    seeds = {key: t.user_attrs["repeats"] for key, t in by_key.items()}
    for key in ("none", "hidden_pre:0.1"):
        t = by_key[key]
        assert t.state == TrialState.COMPLETE and t.user_attrs["repeats"] == 15
        assert t.user_attrs["test_values"] == [scored(_config(key), r) for r in range(15)]
        curves = record.stored_curves(t)
        assert len(curves["test_metric"]) == 15
        # Intermediate values mean what they mean in every study: the mean clean test curve
        # (step = epoch), here over all 15 seeds, rewritten after each block.
        assert t.intermediate_values == pytest.approx(
            {e: float(np.mean([row[i] for row in curves["test_metric"]]))
             for i, e in enumerate(curves["epochs"])})
    # Each (configuration, block) trained exactly once; the blocks end at the checkpoints.
    calls = _blocks(racer.calls)
    assert set(calls.values()) == {1}
    assert sorted(calls) == sorted((k, s, s + 5) for k in MEANS for s in range(0, seeds[k], 5))
    assert runner.study.user_attrs[record.RACE_DECIDED_ATTR] == 10
    # Repeat 0's weights are stored once, from the first block (the fake has none).
    assert record.WEIGHTS_ATTR not in by_key["none"].system_attrs


def _config(key):
    from search.noise import parse_config_key

    return parse_config_key(key)


def test_results_show_seeds_run_and_why_a_configuration_stopped(write_study, sqlite_url, racer,
                                                                capsys):
    spec = _spec(write_study)
    StudyRunner(spec, open_storage(sqlite_url), train=racer).run()
    res = read_results(optuna.load_study(study_name="tiny", storage=sqlite_url))
    rows = {r["config"]: r for r in res.rows}
    assert (rows["input:0.3"]["state"], rows["input:0.3"]["n"]) == ("PRUNED", 5)
    assert rows["input:0.3"]["p_paired"] is not None  # compared on the 5 seeds it has
    assert rows["hidden_pre:0.1"]["n"] == 15 and rows["hidden_pre:0.1"]["pruned_reason"] is None
    assert res.progress.finished and res.progress.pruned == 3  # hidden_pre:0.3 after 10 seeds
    capsys.readouterr()
    assert main(["results", "tiny", "--storage", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "pruned" in out and "input:0.3: worse than the " in out
    assert "5 of 5 configurations done (2 complete, 3 stopped by racing)" in out
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "2/5 configurations complete, 3 stopped by racing, 0 running" in capsys.readouterr().out


def test_no_racing_section_is_todays_behaviour_and_resumes_the_stored_spec(write_study,
                                                                           sqlite_url,
                                                                           fake_train):
    spec = spec_module.load(write_study())
    assert spec.racing is None and "racing" not in spec.to_dict()
    runner = StudyRunner(spec, open_storage(sqlite_url), train=fake_train)
    runner.run()
    assert fake_train.calls == [c.key for c in spec.configurations()]  # whole configurations
    StudyRunner(spec, open_storage(sqlite_url), train=fake_train)  # resumes: same spec


def test_racing_is_part_of_the_stored_spec(write_study, sqlite_url, fake_engine, capsys):
    fake_engine.score = scored
    path = write_study()
    sets = [a for item in RACE for a in ("--set", item)]
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet", *sets]) == 0
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet", *sets]) == 0  # resumes
    stored = optuna.load_study(study_name="tiny", storage=sqlite_url).user_attrs["spec"]
    assert stored["racing"] == {"first": 5, "each": 5, "alpha": 0.05, "test": "t"}
    capsys.readouterr()
    # The same file without racing is another study: the stored spec differs.
    assert main(["run", str(path), "--storage", sqlite_url, "--quiet",
                 "--set", "study.repeats=15"]) == 2
    assert "racing" in capsys.readouterr().err


def test_an_interrupted_race_resumes_without_training_a_block_twice(write_study, sqlite_url,
                                                                    racer):
    spec = _spec(write_study)
    calls: list = []

    def interrupted(spec_, data, config, repeats=None):
        if len(calls) == 7:
            raise KeyboardInterrupt
        calls.append((config.key, repeats.start, repeats.stop))
        return racer(spec_, data, config, repeats=repeats)

    with pytest.raises(KeyboardInterrupt):
        StudyRunner(spec, open_storage(sqlite_url), train=interrupted).run()
    StudyRunner(spec, open_storage(sqlite_url), train=racer).run()
    assert set(Counter(racer.calls).values()) == {1}  # the first run's 7 and the rest
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    final = {t.user_attrs["config"]: t for t in study.get_trials()
             if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert sorted(final) == sorted(MEANS)
    assert final["none"].user_attrs["test_values"] == [scored(_config("none"), r)
                                                       for r in range(15)]
    (failed,) = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert failed.user_attrs["failure"] == "interrupted"


def test_a_dead_workers_block_is_trained_again_by_another_never_twice_recorded(
        write_study, sqlite_url, racer, monkeypatch):
    monkeypatch.setenv("NOISE_SEARCH_HEARTBEAT", "1")
    spec = _spec(write_study)
    storage = open_storage(sqlite_url)
    first = StudyRunner(spec, storage, train=racer)
    first.recover()  # queues the grid, as run() does first
    # Train the first round, then "die" holding a configuration's second block: taken (RUNNING,
    # heartbeat recorded once), never trained, never beating again.
    for _ in range(len(MEANS)):
        first.run_trial(queue.next_trial(first.study, storage, spec, first.meta))
    held = queue.next_trial(first.study, storage, spec, first.meta)
    assert held is not None
    key = held.user_attrs["config"]
    time.sleep(3.5)  # the grace period: 3 heartbeats of 1 s
    StudyRunner(spec, open_storage(sqlite_url), train=racer).run()
    assert set(Counter(racer.calls).values()) == {1}
    study = optuna.load_study(study_name="tiny", storage=sqlite_url)
    mine = [t for t in study.get_trials() if t.user_attrs["config"] == key]
    assert [t.state for t in mine] == [TrialState.FAIL, TrialState.COMPLETE]
    # The retry carried the first block over (recorded once, by the first worker) and trained
    # the rest.
    assert mine[1].system_attrs[record.block_attr(0)] == mine[0].system_attrs[
        record.block_attr(0)]
    assert mine[1].user_attrs["repeats"] == 15


def test_racing_needs_a_grid_and_first_within_repeats(write_study):
    path = write_study()
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, [*RACE, "study.sampler=tpe"])
    assert str(err.value).startswith("--set 'study.sampler=tpe': 'study.sampler' must be "
                                     "'grid' with [racing]")
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, ["racing.first=2", "study.repeats=30"])
    assert str(err.value) == ("--set 'racing.first=2': 'racing.first' must be >= 5 (on fewer "
                              "seeds no exact paired test can find a configuration worse: its "
                              "smallest p is 2/2^n >= 0.125); got 2")
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, ["racing.first=5", "study.repeats=5"])
    assert str(err.value) == ("--set 'racing.first=5': 'racing.first' must be < "
                              "study.repeats (5, the most seeds a configuration gets; with as "
                              "many from the start nothing is left to race); got 5")
    for bad in ("1", "1.0", "0", "nan"):
        with pytest.raises(spec_module.SpecError) as err:
            spec_module.load(path, [f"racing.alpha={bad}"])
        assert "'racing.alpha' must be a finite number > 0 and < 1" in str(err.value)
    with pytest.raises(spec_module.SpecError) as err:
        spec_module.load(path, ["racing.test='welch'"])
    assert "'racing.test' must be one of 't', 'wilcoxon'" in str(err.value)
    defaults = spec_module.load(path, ["racing.test='t'", "study.repeats=10"]).racing
    assert defaults is not None
    assert (defaults.first, defaults.each, defaults.alpha, defaults.test) == (5, 5, 0.05, "t")



def test_the_view_and_the_report_show_the_race(write_study, sqlite_url, racer):
    import sqlalchemy as sa

    from search import views
    from search.report.collect import collect as report_collect
    from search.report.figures import figures, race_figure

    spec = _spec(write_study)
    runner = StudyRunner(spec, open_storage(sqlite_url), train=racer)
    runner.run()
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT config, state, repeats, test_mean, pruned_reason FROM {views.VIEW_NAME} "
            "WHERE state = 'PRUNED' ORDER BY config")).all()
    engine.dispose()
    assert [r[0] for r in rows] == ["hidden_pre:0.3", "input:0.1", "input:0.3"]
    for config, _, repeats, mean, reason in rows:
        assert mean == pytest.approx(np.mean([scored(_config(config), r)
                                              for r in range(repeats)]))
        assert reason.startswith("worse than the ")
    data = report_collect(runner.study)
    seeds = {r.config: (r.seeds, r.state) for r in data.race}
    assert seeds == {"none": (15, "COMPLETE"), "hidden_pre:0.1": (15, "COMPLETE"),
                     "hidden_pre:0.3": (10, "PRUNED"), "input:0.1": (5, "PRUNED"),
                     "input:0.3": (5, "PRUNED")}
    assert data.finished
    fig = race_figure(data)
    drawn = {y: x for trace in fig.data for x, y in zip(trace.x, trace.y)}
    assert drawn == {k: v[0] for k, v in seeds.items()}
    assert "racing trained 50 of 75 seeds (67%)" in fig.layout.title.text
    assert "noise-search-7-race" in [f.id for f in figures(data)]


def test_a_study_without_racing_has_no_race_figure(write_study, sqlite_url, fake_train):
    from search.report.collect import collect as report_collect

    runner = StudyRunner(spec_module.load(write_study()), open_storage(sqlite_url),
                         train=fake_train)
    runner.run()
    assert report_collect(runner.study).race == ()


def test_a_race_with_robustness_keeps_the_profiles_of_the_seeds_it_ran(write_study, sqlite_url,
                                                                       racer):
    spec = _spec(write_study, ["robustness.input_std=[0.0, 0.1, 0.2]"])
    runner = StudyRunner(spec, open_storage(sqlite_url), train=racer)
    runner.run()
    for t in runner.study.get_trials():
        n = t.user_attrs["repeats"]
        assert len(t.user_attrs["robust_values"]) == n
        profile = t.user_attrs["robustness"]
        assert [p["test_std"] for p in profile] == [0.0, 0.1, 0.2]
        assert all(p["n"] == n and len(p["values"]) == n for p in profile)
    with pytest.raises(spec_module.SpecError, match="'study.objective' must be 'clean' with"):
        _spec(write_study, ["robustness.input_std=[0.0, 0.1]", "study.objective='robust'"])
