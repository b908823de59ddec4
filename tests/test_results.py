"""Result rows, comparisons with the baseline, the recommendation, and the `results` / `compare`
commands, on studies whose trials are written directly (training is not the point here)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from scipy import stats as sps

from search import format as fmt
from search.analysis import stats
from search.analysis.recommend import recommend
from search.analysis.results import compare_configs, read_results
from search.cli import main
from search.engine._common import ENGINE_VERSION
from search.noise import parse_config_key
from search.study import record
from search.study.record import StudyMeta, TrialRecord

BASE = [0.76, 0.77, 0.75, 0.78, 0.76, 0.74]
GOOD = [0.82, 0.81, 0.80, 0.84, 0.83, 0.80]  # clearly better on every seed
SLIGHT = [0.77, 0.76, 0.76, 0.78, 0.77, 0.75]  # a little better, within the noise
WORSE = [0.70, 0.72, 0.69, 0.71, 0.70, 0.72]


def completed_record(key: str, values: list[float], metric: str = "accuracy") -> TrialRecord:
    """The record the study runner stores for a completed configuration."""
    config = parse_config_key(key)
    train = [min(1.0, v + 0.1) for v in values]
    return TrialRecord(config, config.key, state=TrialState.COMPLETE, metric=metric,
                       repeats=len(values), test_values=tuple(values), train_values=tuple(train),
                       test=stats.summarize(values), train=stats.summarize(train),
                       duration_s=1.5)


def trial_attrs(key: str, values: list[float], metric: str = "accuracy") -> dict:
    return completed_record(key, values, metric).to_attrs()


def make_study(url: str, configs: dict[str, list[float]], *, name: str = "built",
               metric: str = "accuracy", direction: str = "maximize",
               waiting: tuple[str, ...] = (), failed: tuple[str, ...] = (),
               diverged: tuple[str, ...] = (), sampler: str = "grid",
               n_trials: int = 0) -> optuna.Study:
    """A noise-search study with the given completed configurations (key -> test values)."""
    study = optuna.create_study(study_name=name, storage=url, direction=direction)
    spec = {"study": {"name": name, "sampler": sampler, "n_trials": n_trials}}
    queued = (*configs, *waiting, *failed, *diverged) if sampler == "grid" else ("none",)
    meta = StudyMeta(spec, queued, metric, direction, ENGINE_VERSION)
    for key, value in meta.to_attrs().items():
        study.set_user_attr(key, value)
    for key, values in configs.items():
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=float(np.mean(values)),
            user_attrs=trial_attrs(key, values, metric)))
    for keys, why, diverging in ((failed, "error: boom", False),
                                 (diverged, "diverged: training loss became NaN", True)):
        for key in keys:
            config = parse_config_key(key)
            attrs = {**TrialRecord.started(config, "host:1").to_attrs(),
                     **record.failure_attrs(why, diverged=diverging)}
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs))
    for key in waiting:
        study.enqueue_trial({}, user_attrs=record.queued_attrs(parse_config_key(key)))
    return study


def _json(capsys, *argv) -> list[dict] | dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    # parse_constant raises on NaN / Infinity: undefined numbers must be null.
    return json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))


def test_rows_carry_the_comparison_with_the_baseline(sqlite_url):
    configs = {"none": BASE, "hidden_pre:0.1": GOOD, "input:0.01": SLIGHT, "input:0.3": WORSE}
    res = read_results(make_study(sqlite_url, configs))
    rows = {r["config"]: r for r in res.rows}
    assert [r["config"] for r in res.rows] == ["hidden_pre:0.1", "input:0.01", "none",
                                               "input:0.3"]
    raw = {}
    for key in ("hidden_pre:0.1", "input:0.01", "input:0.3"):
        r = rows[key]
        welch = sps.ttest_ind(configs[key], BASE, equal_var=False)
        paired = sps.ttest_rel(configs[key], BASE)
        ci = paired.confidence_interval()
        raw[key] = paired.pvalue
        assert r["p_paired"] == pytest.approx(paired.pvalue)
        assert r["p_welch"] == pytest.approx(welch.pvalue)
        assert r["p_wilcoxon"] == pytest.approx(sps.wilcoxon(configs[key], BASE).pvalue)
        assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx((ci.low, ci.high))
        better = np.mean(np.array(configs[key]) > BASE) + 0.5 * np.mean(
            np.array(configs[key]) == BASE)
        assert r["p_improve"] == pytest.approx(better)
        assert r["p_improve_low"] <= r["p_improve"] <= r["p_improve_high"]
        assert r["diff"] == pytest.approx(np.mean(configs[key]) - np.mean(BASE))
        wins = sum(v > b for v, b in zip(configs[key], BASE))
        assert r["win_share"] == pytest.approx(wins / len(BASE))
        assert r["cohen_d"] == pytest.approx(stats.cohen_d(configs[key], BASE))
    # Holm over the three paired comparisons, by hand: smallest ×3, next ×2, largest ×1, monotone.
    order = sorted(raw, key=raw.get)
    expected, running = {}, 0.0
    for factor, key in zip((3, 2, 1), order):
        running = max(running, min(1.0, factor * raw[key]))
        expected[key] = running
    for key, p in expected.items():
        assert rows[key]["p_holm"] == pytest.approx(p)
    for key, values in configs.items():
        assert (rows[key]["bootstrap_ci_low"], rows[key]["bootstrap_ci_high"]) == \
            stats.bootstrap_ci(values)
    base = rows["none"]
    assert base["diff"] == 0.0
    assert all(base[k] is None for k in ("p_paired", "p_wilcoxon", "p_welch", "p_holm",
                                         "p_improve", "cohen_d", "win_share"))
    assert "p_value" not in base  # renamed p_welch: the comparison that counts is paired


def test_recommendation_names_a_significant_best(sqlite_url):
    res = read_results(make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD,
                                          "input:0.01": SLIGHT}))
    rec = recommend(res)
    assert rec.best == "hidden_pre:0.1" and rec.beats_baseline and rec.significant
    assert rec.significant_configs == ["hidden_pre:0.1"]
    assert rec.text.startswith("recommendation: hidden_pre:0.1")
    assert "significant after correction" in rec.text and "6 of 6 seeds" in rec.text
    assert "1 of 2 configurations are significantly better" in rec.text
    assert "runner-up" not in rec.text  # SLIGHT is clearly behind GOOD


def test_recommendation_warns_when_the_runner_up_is_as_good(sqlite_url):
    twin = [v - 0.005 for v in GOOD[:3]] + GOOD[3:]
    res = read_results(make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD,
                                          "hidden_post:0.1": twin}))
    rec = recommend(res)
    p = sps.ttest_rel(GOOD, twin).pvalue
    assert rec.best == "hidden_pre:0.1" and rec.significant
    assert rec.significant_configs == ["hidden_pre:0.1", "hidden_post:0.1"]
    assert (f"The runner-up hidden_post:0.1 (mean {np.mean(twin):.4f}) is not significantly "
            f"different from it (paired p = {p:.4f})") in rec.text


def test_recommendation_says_when_a_gain_is_not_significant(sqlite_url):
    res = read_results(make_study(sqlite_url, {"none": BASE, "input:0.01": SLIGHT,
                                          "input:0.3": WORSE}))
    rec = recommend(res)
    assert rec.best == "input:0.01" and rec.beats_baseline and not rec.significant
    assert rec.text.startswith("recommendation: no noise. No configuration is significantly "
                               "better than the baseline after correction; the best, input:0.01")
    assert "NOT significant (Holm-adjusted paired p = " in rec.text


def test_recommendation_says_plainly_when_nothing_beats_the_baseline(sqlite_url):
    res = read_results(make_study(sqlite_url, {"none": GOOD, "input:0.01": BASE,
                                               "input:0.3": WORSE}))
    rec = recommend(res)
    assert rec.best == "none" and not rec.beats_baseline and not rec.significant
    assert rec.text.startswith("recommendation: no noise. No configuration beats the baseline")


def test_minimized_metric_counts_lower_as_better(sqlite_url):
    # rmse: GOOD's larger numbers are worse, WORSE's smaller numbers are better.
    study = make_study(sqlite_url, {"none": BASE, "input:0.1": GOOD, "hidden_pre:0.1": WORSE},
                       metric="rmse", direction="minimize")
    res = read_results(study)
    assert [r["config"] for r in res.rows] == ["hidden_pre:0.1", "none", "input:0.1"]
    rows = {r["config"]: r for r in res.rows}
    assert rows["hidden_pre:0.1"]["win_share"] == 1.0 and rows["input:0.1"]["win_share"] == 0.0
    rec = recommend(res)
    assert rec.best == "hidden_pre:0.1" and rec.significant and "mean rmse" in rec.text


def test_no_baseline_no_recommendation(sqlite_url):
    res = read_results(make_study(sqlite_url, {"input:0.01": SLIGHT}, waiting=("none",)))
    rec = recommend(res)
    assert rec.best is None and "baseline (none) has not completed" in rec.text
    assert res.rows[0]["p_paired"] is None


def test_identical_values_stay_null_in_json(sqlite_url, capsys):
    make_study(sqlite_url, {"none": [0.8] * 4, "input:0.1": [0.8] * 4, "input:0.2": [0.7] * 4})
    rows = {r["config"]: r for r in _json(capsys, "results", "built", "--storage", sqlite_url,
                                          "--format", "json")}
    same = rows["input:0.1"]
    # Four identical seeds: the exact sign-flip test says p = 1, and on four seeds it can
    # exclude no difference at all, so the Δ CI is the whole range of an accuracy difference.
    assert (same["sd"], same["diff"], same["diff_ci_low"], same["diff_ci_high"],
            same["p_paired"], same["p_holm"], same["p_welch"], same["p_wilcoxon"],
            same["cohen_d"], same["tie_share"], same["p_improve"], same["paired_test"]) == (
        0.0, 0.0, -1.0, 1.0, 1.0, 1.0, 1.0, None, None, 1.0, 0.5, "sign-flip")
    assert (same["bootstrap_ci_low"], same["bootstrap_ci_high"]) == (0.8, 0.8)
    apart = rows["input:0.2"]
    # Every seed 0.1 worse: 2 of the 2⁴ sign vectors are as extreme, never p = 0.
    assert apart["p_paired"] == 0.125 and apart["p_holm"] == 0.25


def test_results_json_csv_and_table(sqlite_url, capsys):
    make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD, "input:0.3": WORSE},
               waiting=("input:0.5",), failed=("hidden_pre:0.5",))
    url = sqlite_url
    rows = _json(capsys, "results", "built", "--storage", url, "--format", "json")
    assert len(rows) == 5
    for key in ("config", "placement", "std", "kind", "n", "mean", "sd", "sem", "ci_low",
                "ci_high", "train_mean", "state", "diff", "bootstrap_ci_low",
                "bootstrap_ci_high", "diff_ci_low", "diff_ci_high", "p_paired", "p_wilcoxon",
                "p_holm", "p_welch", "p_improve", "p_improve_low", "p_improve_high",
                "cohen_d", "win_share", "tie_share", "pruned_reason"):
        assert all(key in r for r in rows), key
    by_key = {r["config"]: r for r in rows}
    assert by_key["input:0.5"]["state"] == "WAITING"
    assert by_key["input:0.5"]["placement"] == "input" and by_key["input:0.5"]["std"] == 0.5
    assert by_key["hidden_pre:0.5"]["state"] == "FAIL" and by_key["hidden_pre:0.5"]["p_paired"] \
        is None

    assert main(["results", "built", "--storage", url, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(parsed) == 5
    best = parsed[0]
    assert best["config"] == "hidden_pre:0.1"
    assert float(best["p_holm"]) == pytest.approx(by_key["hidden_pre:0.1"]["p_holm"])
    assert float(best["win_share"]) == 1.0

    assert main(["results", "built", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "p Holm" in out and "bootstrap CI" in out and "6/6" in out
    assert out.strip().splitlines()[-1].startswith("recommendation: hidden_pre:0.1")
    assert "(3 of 5 configurations complete; this may change)" in out


def _table_blocks(out: str) -> list[list[str]]:
    """The table's blocks in `results` output: after the header line, each from its line of
    column names to a blank line; the notes follow."""
    lines = out.splitlines()[1:]
    blocks: list[list[str]] = []
    while lines and lines[0].startswith("placement"):
        end = lines.index("")
        blocks.append(lines[:end])
        lines = lines[end + 1:]
    return blocks


@pytest.mark.parametrize("width", [80, 200])
def test_results_table_fits_the_terminal_and_wide_shows_it_whole(width, sqlite_url, capsys,
                                                                  monkeypatch):
    study = make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD, "input:0.3": WORSE,
                                    "input+hidden_pre:hidden_pre=0.1,input=0.01": SLIGHT},
                       waiting=("input:0.5",))
    res = read_results(study)
    table = fmt.summary_table(res.rows, res.metric, fmt.RESULTS_COLUMNS)
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    assert main(["results", "built", "--storage", sqlite_url]) == 0
    blocks = _table_blocks(capsys.readouterr().out)
    assert len(blocks) > 1  # today's table is wider than 200
    headers = []
    for block in blocks:
        assert all(len(line) <= width for line in block)
        assert block[0].split()[:2] == ["placement", "std"]
        assert [line.split()[0] for line in block[1:]] == [r["placement"] for r in res.rows]
        headers.append(block[0])
    for header in table[0]:  # every column in some block
        assert any(header in line for line in headers), header

    assert main(["results", "built", "--storage", sqlite_url, "--wide"]) == 0
    assert _table_blocks(capsys.readouterr().out) == [fmt.aligned(table)]


def test_compare_any_two_configurations(sqlite_url, capsys):
    make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD, "input:0.01": SLIGHT})
    res = read_results(optuna.load_study(study_name="built", storage=sqlite_url))
    pair = compare_configs(res, "hidden_pre:0.10", "input:0.01")  # 0.10 names 0.1
    assert pair.a["config"] == "hidden_pre:0.1"
    expected = sps.ttest_ind(GOOD, SLIGHT, equal_var=False)
    assert pair.comparison.p_value == pytest.approx(expected.pvalue)
    assert pair.comparison.diff == pytest.approx(np.mean(GOOD) - np.mean(SLIGHT))
    paired = sps.ttest_rel(GOOD, SLIGHT)
    assert pair.paired.p_paired == pytest.approx(paired.pvalue)
    assert (pair.paired.diff_ci_low, pair.paired.diff_ci_high) == pytest.approx(
        tuple(paired.confidence_interval()))

    out = _json(capsys, "compare", "built", "input:0.01", "hidden_pre:0.1", "--storage",
                sqlite_url, "--format", "json")
    assert out["a"]["config"] == "input:0.01" and out["b"]["config"] == "hidden_pre:0.1"
    assert out["diff"] == pytest.approx(np.mean(SLIGHT) - np.mean(GOOD))
    assert out["wins"] == 0 and out["losses"] == 6
    assert out["p_paired"] == pytest.approx(sps.ttest_rel(SLIGHT, GOOD).pvalue)
    assert out["p_welch"] == pytest.approx(sps.ttest_ind(SLIGHT, GOOD, equal_var=False).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(sps.wilcoxon(SLIGHT, GOOD).pvalue)
    assert (out["p_improve"], out["n"]) == (0.0, 6)

    assert main(["compare", "built", "hidden_pre:0.1", "none", "--storage", sqlite_url]) == 0
    text = capsys.readouterr().out
    assert "A better on 6 of 6" in text
    assert "verdict: hidden_pre:0.1 has the significantly better mean" in text


@pytest.mark.parametrize("argv, message", [
    (["compare", "built", "hidden_pre:0.2", "none"],
     "study 'built' has no configuration 'hidden_pre:0.2'; measured configurations: "
     "hidden_pre:0.1, none"),
    (["compare", "built", "sideways", "none"],
     "configuration 'sideways': expected PLACEMENT:STD"),
    (["compare", "built", "none", "input:0.5"],
     "configuration 'input:0.5' of study 'built' has not been measured (state waiting)"),
    (["compare", "nope", "none", "none"], "no study named 'nope' in this storage; studies: built"),
    (["results", "nope"], "no study named 'nope'"),
])
def test_bad_input_is_one_line(sqlite_url, capsys, argv, message):
    make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD}, waiting=("input:0.5",))
    assert main([*argv, "--storage", sqlite_url]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert captured.out == ""


@pytest.mark.parametrize("command", [["results", "empty"], ["results", "empty", "--format",
                                                                         "json"],
                                     ["compare", "empty", "none", "none"]])
def test_study_without_completed_trials_says_so(sqlite_url, capsys, command):
    make_study(sqlite_url, {}, name="empty", waiting=("none", "input:0.1"))
    assert main([*command, "--storage", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert "study 'empty' has no completed trial yet" in err and len(err.splitlines()) == 1


def test_non_finite_stored_numbers_become_null(sqlite_url, capsys):
    study = make_study(sqlite_url, {"none": BASE})
    attrs = trial_attrs("input:0.1", GOOD)
    attrs.update(test_mean=float("nan"), test_values=[*GOOD[:-1], float("nan")])
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5,
                                              user_attrs=attrs))
    rows = {r["config"]: r for r in _json(capsys, "results", "built", "--storage", sqlite_url,
                                          "--format", "json")}
    odd = rows["input:0.1"]
    assert odd["mean"] is None and odd["diff"] is None and odd["p_paired"] is None
    assert rows["none"]["mean"] == pytest.approx(np.mean(BASE))
    assert main(["results", "built", "--storage", sqlite_url]) == 0
    assert "No configuration beats the baseline" in capsys.readouterr().out


def test_recommendation_when_the_best_mean_is_too_noisy_but_another_gain_is_real(sqlite_url):
    noisy = [0.99, 0.65, 0.99, 0.70, 0.99, 0.70]  # highest mean, but all over the place
    res = read_results(make_study(sqlite_url, {"none": BASE, "input:0.1": noisy,
                                          "hidden_pre:0.1": GOOD}))
    rec = recommend(res)
    assert rec.best == "input:0.1" and rec.beats_baseline and not rec.significant
    assert rec.significant_configs == ["hidden_pre:0.1"]
    assert rec.text.startswith("best: input:0.1")
    assert "Significantly better than the baseline: hidden_pre:0.1" in rec.text


def test_a_sampler_study_counts_its_n_trials_not_its_queue(sqlite_url, capsys):
    """A tpe / random study queues only the baseline; its total is n_trials."""
    make_study(sqlite_url, {"none": BASE, "input:0.1": GOOD, "hidden_pre:0.2": SLIGHT},
               sampler="tpe", n_trials=4)
    res = read_results(optuna.load_study(study_name="built", storage=sqlite_url))
    assert res.total == 4 and not res.progress.finished
    assert "(3 of 4 configurations complete; this may change)" in recommend(res).text
    assert main(["results", "built", "--storage", sqlite_url]) == 0
    assert "study 'built': 3 of 4 configurations complete (maximize" in capsys.readouterr().out
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert "built: 3/4 configurations complete, 0 running" in capsys.readouterr().out


def test_a_study_with_a_diverged_configuration_is_finished(sqlite_url, capsys):
    """Divergence is deterministic: the configuration is done, and the study with it."""
    from search import report

    study = make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD},
                       diverged=("input:1e+30",))
    res = read_results(study)
    assert (res.progress.complete, res.progress.diverged, res.progress.failed) == (2, 1, 0)
    assert res.progress.finished
    rec = recommend(res)
    assert rec.best == "hidden_pre:0.1" and "may change" not in rec.text
    data = report.collect(study)
    assert data.finished and report.status_line(data) is None
    assert main(["studies", "--storage", sqlite_url]) == 0
    assert ("built: 2/3 configurations complete, 1 diverged, 0 running, 0 queued, 0 failed"
            in capsys.readouterr().out)
    # An error, unlike a divergence, is run again on resume: not finished.
    make_study(sqlite_url, {"none": BASE}, name="erred", failed=("input:0.1",))
    erred = optuna.load_study(study_name="erred", storage=sqlite_url)
    assert not read_results(erred).progress.finished


def test_compare_verdict_and_recommendation_share_one_rule():
    from search.analysis.recommend import decide

    assert decide(0.02, 0.01, maximize=True) == decide(-0.02, 0.01, maximize=False)
    assert decide(0.02, 0.01, maximize=True).better and decide(0.02, 0.01, True).significant
    assert not decide(0.02, 0.05, maximize=True).significant  # p must be below 0.05
    assert decide(0.02, None, maximize=True).significant is False
    assert decide(-0.02, 0.001, maximize=True).better is False
    assert decide(0.0, 0.0, maximize=True).better is None


# Stored test accuracies of the tutorial grid (studies/circles.toml, 30 seeds, engine
# version 2): the baseline and the full run's best. Many ties and zero differences, which is
# where a paired test's details (Wilcoxon's zero handling) show.
TUTORIAL_NONE = [0.785714, 0.757143, 0.771429, 0.771429, 0.742857, 0.785714, 0.771429, 0.771429,
                 0.757143, 0.771429, 0.771429, 0.771429, 0.771429, 0.771429, 0.757143, 0.771429,
                 0.785714, 0.771429, 0.785714, 0.757143, 0.785714, 0.757143, 0.771429, 0.771429,
                 0.771429, 0.771429, 0.8, 0.757143, 0.771429, 0.757143]
TUTORIAL_BEST = [0.828571, 0.828571, 0.842857, 0.842857, 0.842857, 0.828571, 0.814286, 0.842857,
                 0.828571, 0.828571, 0.842857, 0.8, 0.8, 0.828571, 0.814286, 0.814286, 0.871429,
                 0.828571, 0.842857, 0.8, 0.828571, 0.842857, 0.828571, 0.828571, 0.8, 0.828571,
                 0.785714, 0.828571, 0.828571, 0.828571]
TUTORIAL_CLOSE = [0.857143, 0.828571, 0.814286, 0.842857, 0.814286, 0.828571, 0.814286, 0.842857,
                  0.814286, 0.814286, 0.814286, 0.8, 0.842857, 0.8, 0.785714, 0.785714, 0.842857,
                  0.842857, 0.8, 0.8, 0.828571, 0.828571, 0.8, 0.828571, 0.814286, 0.828571,
                  0.814286, 0.814286, 0.8, 0.8]  # hidden_post:0.1


def test_paired_statistics_of_stored_tutorial_values_match_scipy(sqlite_url, capsys):
    make_study(sqlite_url, {"none": TUTORIAL_NONE, "hidden_post:0.2": TUTORIAL_BEST,
                            "hidden_post:0.1": TUTORIAL_CLOSE})
    rows = {r["config"]: r for r in _json(capsys, "results", "built", "--storage", sqlite_url,
                                          "--format", "json")}
    raw = []
    for key, values in (("hidden_post:0.2", TUTORIAL_BEST), ("hidden_post:0.1", TUTORIAL_CLOSE)):
        r = rows[key]
        t = sps.ttest_rel(values, TUTORIAL_NONE)
        raw.append(t.pvalue)
        assert r["p_paired"] == pytest.approx(t.pvalue, rel=1e-9)
        assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx(
            tuple(t.confidence_interval(0.95)), rel=1e-9)
        w = sps.wilcoxon(values, TUTORIAL_NONE, zero_method="wilcox")
        assert r["p_wilcoxon"] == pytest.approx(w.pvalue, rel=1e-9)
        assert r["p_welch"] == pytest.approx(
            sps.ttest_ind(values, TUTORIAL_NONE, equal_var=False).pvalue, rel=1e-9)
        share = np.mean(np.array(values) > TUTORIAL_NONE) + 0.5 * np.mean(
            np.array(values) == TUTORIAL_NONE)
        assert r["p_improve"] == pytest.approx(share)
    assert [rows["hidden_post:0.2"]["p_holm"], rows["hidden_post:0.1"]["p_holm"]] == \
        pytest.approx(stats.holm(raw))
    # The two best of the tutorial: pairing by seed removes the seed's share of the spread, so
    # the paired test separates them where Welch's cannot.
    out = _json(capsys, "compare", "built", "hidden_post:0.2", "hidden_post:0.1", "--storage",
                sqlite_url, "--format", "json")
    assert out["p_paired"] == pytest.approx(sps.ttest_rel(TUTORIAL_BEST, TUTORIAL_CLOSE).pvalue)
    assert out["p_welch"] == pytest.approx(
        sps.ttest_ind(TUTORIAL_BEST, TUTORIAL_CLOSE, equal_var=False).pvalue)
    assert out["p_paired"] < 0.05 < out["p_welch"]


def test_a_configuration_stopped_early_is_compared_on_the_seeds_it_has(sqlite_url, capsys):
    study = make_study(sqlite_url, {"none": BASE, "hidden_pre:0.1": GOOD})
    config = parse_config_key("input:0.3")
    stopped = WORSE[:3]
    pruned = TrialRecord(config, config.key, state=TrialState.PRUNED, metric="accuracy",
                         repeats=3, test_values=tuple(stopped), test=stats.summarize(stopped),
                         pruned_reason="worse than the baseline after 3 seeds")
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED,
                                              user_attrs=pruned.to_attrs()))
    rows = {r["config"]: r for r in _json(capsys, "results", "built", "--storage", sqlite_url,
                                          "--format", "json")}
    r = rows["input:0.3"]
    assert (r["state"], r["n"], r["pruned_reason"]) == (
        "PRUNED", 3, "worse than the baseline after 3 seeds")
    # Three pairs: the exact sign-flip test, 3 seeds all worse → 2/2³; Δ is the mean of the
    # same three differences its CI and p describe, not the 3-seed mean − the 30-seed mean.
    assert r["p_paired"] == 0.25 and r["paired_test"] == "sign-flip"
    assert r["diff"] == pytest.approx(np.mean(np.subtract(stopped, BASE[:3])))
    assert r["diff_ci_low"] <= r["diff"] <= r["diff_ci_high"]
    assert r["p_welch"] == pytest.approx(sps.ttest_ind(stopped, BASE, equal_var=False).pvalue)
    assert r["win_share"] == 0.0
    res = read_results(study)
    assert recommend(res).best == "hidden_pre:0.1"  # a stopped configuration is never the answer
    assert [row["state"] for row in res.rows] == ["COMPLETE", "COMPLETE", "PRUNED"]
    out = _json(capsys, "compare", "built", "input:0.3", "none", "--storage", sqlite_url,
                "--format", "json")
    assert (out["n"], out["pairs"], out["losses"]) == (3, 3, 3)


@pytest.mark.parametrize("configs, decision, use, best", [
    ({"none": BASE, "hidden_pre:0.1": GOOD, "input:0.01": SLIGHT}, "noise", "hidden_pre:0.1",
     "hidden_pre:0.1"),
    ({"none": BASE, "input:0.01": SLIGHT, "input:0.3": WORSE}, "no noise", "none",
     "input:0.01"),
    ({"none": GOOD, "input:0.01": BASE}, "no noise", "none", "none"),
    ({"none": BASE, "input:0.1": [0.99, 0.65, 0.99, 0.70, 0.99, 0.70], "hidden_pre:0.1": GOOD},
     "not significant", None, "input:0.1"),
    ({"input:0.01": BASE}, "none", None, None),
])
def test_results_json_with_recommendation(sqlite_url, capsys, configs, decision, use, best):
    """--format json stays the row list; --with-recommendation wraps the same rows with the
    recommendation a script can act on, its numbers those of the rows."""
    make_study(sqlite_url, configs)
    rows = _json(capsys, "results", "built", "--storage", sqlite_url, "--format", "json")
    out = _json(capsys, "results", "built", "--storage", sqlite_url, "--format", "json",
                "--with-recommendation")
    assert isinstance(rows, list) and out["rows"] == rows
    rec = out["recommendation"]
    expected = recommend(read_results(optuna.load_study(study_name="built", storage=sqlite_url)))
    assert (rec["decision"], rec["configuration"]) == (decision, use)
    assert rec["text"] == expected.text
    assert rec["significant_configurations"] == expected.significant_configs
    assert (rec["best"] or {}).get("config") == best
    if best is not None:
        row = next(r for r in rows if r["config"] == best)
        assert all(rec["best"][k] == row[k] for k in ("mean", "diff", "p_holm", "p_paired"))
        assert rec["baseline"]["mean"] == next(r["mean"] for r in rows if r["config"] == "none")
    assert out["study"] == "built" and out["metric"] == "accuracy" and rec["alpha"] == 0.05


def test_with_recommendation_needs_json(sqlite_url, capsys):
    make_study(sqlite_url, {"none": BASE})
    assert main(["results", "built", "--storage", sqlite_url, "--with-recommendation"]) == 2
    assert "--with-recommendation needs --format json" in capsys.readouterr().err


def test_the_stored_spec_is_read_typed_once_with_the_defaults_of_older_studies(write_study):
    """record.StoredSpec: what reports read of the stored study file, with no string paths;
    a study that predates a key (here: all of them) reads as its default, not as a KeyError."""
    from search import spec as spec_module

    spec = spec_module.load(write_study(), ["racing.first=5", "study.repeats=8"])
    stored = record.StoredSpec.parse(spec.to_dict())
    assert (stored.sampler, stored.repeats, stored.objective, stored.races) == (
        "grid", 8, "clean", True)
    assert stored.placements == tuple(spec.noise.placements)
    assert (stored.dataset, stored.epochs, stored.builder) == (
        spec.data.dataset, spec.model.epochs, None)
    assert stored.raw == spec.to_dict()  # the whole spec stays there, for from_dict
    old = record.StoredSpec.parse({"study": {"name": "old"}})
    assert (old.sampler, old.repeats, old.objective, old.races, old.placements,
            old.n_trials) == ("grid", 0, "clean", False, (), None)
    assert record.StoredSpec.parse(None).raw == {}
    meta = StudyMeta({"study": {"sampler": "tpe", "n_trials": 7}}, ("none",), "accuracy",
                     "maximize", ENGINE_VERSION)
    assert meta.stored is meta.stored and meta.total == 7
