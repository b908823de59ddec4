"""The answers: which noise to use, if any (`recommend`), and which of two configurations is
better (`compare_verdict`). Both decide by one rule, `decide`: the better mean in the study's
direction, significant when its p-value is below stats.SIGNIFICANCE — the paired t-test's
(seeds paired: same initial weights, data order and noise draws), Holm-adjusted over every
comparison with the baseline for the recommendation, unadjusted for a single pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from search import format as fmt_
from search.analysis import stats
from search.analysis.paired import PairedComparison, Versus, compare_paired, paired_test
from search.analysis.results import ConfigResult, Pair, StudyResults
from search.noise import BASELINE


@dataclass(frozen=True)
class Verdict:
    """A − B judged in the study's direction."""

    better: bool | None  # True: A is better, False: B is, None: the means are equal
    significant: bool  # the better one's lead has p < stats.SIGNIFICANCE


def decide(diff: float, p: float | None, maximize: bool) -> Verdict:
    """The decision rule: ``diff`` = mean(A) − mean(B), ``p`` its p-value (None: no test)."""
    if diff == 0:
        return Verdict(None, False)
    better = diff > 0 if maximize else diff < 0
    return Verdict(better, p is not None and p < stats.SIGNIFICANCE)


def _named(config: str) -> str:
    """A configuration as a sentence names it: the baseline is called so."""
    return "the baseline (no noise)" if config == BASELINE else config


def _judged(c: PairedComparison, a: str, b: str, maximize: bool, what: str) -> str:
    verdict = decide(c.diff, c.p_paired, maximize)
    if verdict.better is None:
        return f"A and B have the same {what}"
    winner = _named(a if verdict.better else b)
    if verdict.significant:
        return f"{winner} has the significantly better {what} (paired p < {stats.SIGNIFICANCE:g})"
    return (f"{winner} has the better {what}, but the difference is not significant "
            f"(paired p >= {stats.SIGNIFICANCE:g} or undefined)")


def compare_verdict(pair: Pair, maximize: bool) -> str:
    """The verdict line of `noise-search compare` (one paired comparison, unadjusted p): on the
    clean mean, and with [robustness] on the robust score too, each by the same rule."""
    a, b = pair.a["config"], pair.b["config"]
    text = _judged(pair.paired, a, b, maximize, "mean")
    if pair.robust is not None:
        text += "; " + _judged(pair.robust, a, b, maximize, "robust score")
    return text


@dataclass(frozen=True)
class Recommendation:
    """The answer to "which noise, if any?": the best configuration and if its gain is real."""

    best: str | None  # None: no baseline to compare with, or nothing completed
    beats_baseline: bool
    significant: bool  # the gain survives Holm's correction at stats.SIGNIFICANCE
    significant_configs: list[str]  # every configuration significantly better than baseline
    text: str


def _p(value: float | None) -> str:
    return fmt_.p_value(value, missing="undefined")


def recommend(results: StudyResults) -> Recommendation:
    """Best configuration by the study's objective in its direction, and whether it beats the
    baseline; with [robustness], what it does under test-time noise too."""
    if results.objective == "robust" and results.has_robustness:
        rec = _recommend(_robust_view(results))
    else:
        rec = _recommend(results)
    if not results.has_robustness or rec.best is None:
        return rec
    return dataclasses.replace(rec, text=rec.text + _robustness_note(results, rec.best))


def _robust_view(results: StudyResults) -> StudyResults:
    """The results with the robust score in the place of the clean mean (objective robust):
    the same decision rule, on the robust score's paired comparison with the baseline."""
    configs = [dataclasses.replace(c, mean=c.robust.mean if c.robust else None,
                                   versus=c.robust.versus if c.robust else None,
                                   bootstrap_ci_low=None, bootstrap_ci_high=None)
               for c in results.configs]
    return dataclasses.replace(results, configs=configs, values=results.robust_values,
                               metric=f"robust score ({results.metric} under test noise)")


def _robustness_note(results: StudyResults, best: str) -> str:
    """One sentence on the named configuration's robust score against the baseline's."""
    config = next((c for c in results.configs if c.config == best), None)
    base = results.baseline_config
    if (config is None or base is None or config.robust is None
            or config.robust.mean is None):
        return ""
    sign = 1 if results.maximize else -1
    if config.config == base.config:
        most = max((c for c in results.completed_configs if _robust_vs(c).diff is not None),
                   key=lambda c: (_robust_vs(c).diff or 0.0) * sign, default=None)
        if most is None:
            return ""
        config = most
        if (_robust_vs(most).diff or 0.0) * sign > 0:
            lead = (f". Under test-time noise the most robust configuration, {most.config}, "
                    f"is")
        else:  # the baseline itself is the most robust: say so, and name the closest
            lead = (f". Under test-time noise no noise configuration is more robust than the "
                    f"baseline; the closest is {most.config}")
    else:
        lead = f". Under test-time noise, {best} is"
    robust = _robust_vs(config)
    verdict = decide(robust.diff or 0.0, robust.p_holm, results.maximize)
    if verdict.better is None and "the closest is" not in lead:
        lead += " as robust as the baseline"
    elif verdict.better is not None and "the closest is" not in lead:
        lead += (" significantly " if verdict.significant else " (not significantly) ") + (
            "more" if verdict.better else "less") + " robust than the baseline"
    assert config.robust is not None
    # CE counts clean error too; the relative CE only what the noise adds to it (robustness).
    ce, rel = config.robust.ce, config.robust.relative_ce
    ce_says = "" if ce is None else (
        f" ({'fewer' if ce < 1 else 'no fewer'} errors under noise than the baseline)")
    rel_says = (" (undefined: the baseline does not degrade under this noise)" if rel is None
                else f" (it degrades {'faster' if rel > 1 else 'no faster'} than the baseline "
                     "as σ grows)")
    return (f"{lead}: robust score {fmt_.number(config.robust.mean)} vs "
            f"{fmt_.number(base.robust.mean if base.robust else None)} without noise (Δ "
            f"{fmt_.signed(robust.diff)}, Holm-adjusted paired p = "
            f"{_p(robust.p_holm)}), CE {fmt_.number(ce, 3)}{ce_says}, relative CE "
            f"{fmt_.number(rel, 3)}{rel_says}")


def _vs(c: ConfigResult) -> Versus:
    """A result's comparison with the baseline (all None when it has none)."""
    return c.versus or Versus()


def _robust_vs(c: ConfigResult) -> Versus:
    """A result's robust score compared with the baseline's (all None when none)."""
    return (c.robust.versus if c.robust is not None else None) or Versus()


def _recommend(results: StudyResults) -> Recommendation:
    """Best configuration by mean in the study's direction, and whether it beats the baseline."""
    completed = results.completed_configs
    baseline = results.baseline_config
    metric = results.metric
    if not completed:
        return Recommendation(None, False, False, [], "no configuration has completed yet")
    if baseline is None:
        return Recommendation(None, False, False, [],
                              "no recommendation: the baseline (none) has not completed, so "
                              "nothing can be compared with training without noise")
    judged = [(c, decide(_vs(c).diff or 0.0, _vs(c).p_holm, results.maximize))
              for c in completed if c.config != baseline.config and _vs(c).diff is not None]
    better = [c for c, verdict in judged if verdict.better]
    significant = [c.config for c, verdict in judged if verdict.better and verdict.significant]
    pending = ""
    if results.total and not results.progress.finished:
        pending = (f" ({len(completed)} of {results.total} configurations complete; this "
                   "may change)")
    if not better:
        runner_up = next((c for c in completed if c.config != baseline.config), None)
        text = (f"recommendation: no noise. No configuration beats the baseline "
                f"(mean {metric} {fmt_.number(baseline.mean)})")
        if runner_up is not None and runner_up.mean is not None:
            text += (f"; the best with noise, {runner_up.config}, has "
                     f"{fmt_.number(runner_up.mean)}")
        return Recommendation(BASELINE, False, False, [], text + pending)
    best = better[0]  # results are sorted best first
    vs = _vs(best)
    n_tests = _comparisons(results)
    gain = (f"{best.config}: mean {metric} {fmt_.number(best.mean)} vs "
            f"{fmt_.number(baseline.mean)} without noise (Δ {fmt_.signed(vs.diff)}")
    adjusted = adjusted_interval(results, best)
    if adjusted is not None and adjusted.bounded(results.metric):
        gain += (f", {fmt_.ci(adjusted.low, adjusted.high, is_signed=True)} at 95% adjusted "
                 f"for the {n_tests} comparisons as its p is")
    elif adjusted is not None:
        gain += f"; {best.n} seeds cannot bound it at 95% adjusted for {n_tests} comparisons"
    gain += ")"
    if vs.win_share is not None:
        gain += f", better on {round(vs.win_share * (best.n or 0))} of {best.n} seeds"
    test = "paired t" if vs.paired_test == "t" else "sign-flip"
    holm_p = (f"Holm-adjusted paired p = {_p(vs.p_holm)} over {n_tests} comparisons "
              f"({test} p = {_p(vs.p_paired)}, Welch p = {_p(vs.p_welch)})")
    if best.config in significant:
        text = (f"recommendation: {gain}. The gain is significant after correction: "
                f"{holm_p} < {stats.SIGNIFICANCE:g}; {len(significant)} of {n_tests} "
                "configurations are significantly better than the baseline")
        return Recommendation(best.config, True, True, significant,
                              text + _runner_up(results, best) + pending)
    if significant:  # a smaller but steadier gain elsewhere passed the test
        text = (f"best: {gain}. Its gain is NOT significant after correction ({holm_p}). "
                f"Significantly better than the baseline: {', '.join(significant)}")
    else:
        text = (f"recommendation: no noise. No configuration is significantly better than "
                f"the baseline after correction; the best, {gain}, has a gain that is NOT "
                f"significant ({holm_p}) and may be seed-to-seed variation")
    return Recommendation(best.config, True, False, significant,
                          text + _seeds_needed(best) + pending)


def _comparisons(results: StudyResults) -> int:
    """How many comparisons with the baseline Holm's correction is over."""
    return sum(_vs(c).p_holm is not None for c in results.configs)


def _seeds_needed(config: ConfigResult) -> str:
    needed = _vs(config).seeds_needed
    if needed is None:
        return ""
    return (f". If its Δ is real, about {needed} seeds would show it after the correction "
            f"with 80% power (a best of many overstates its gain: take this as the least)")


@dataclass(frozen=True)
class AdjustedInterval:
    """The interval of a row's Δ at the level its Holm-adjusted p is judged at: 1 − alpha /
    f, f = p_holm / p_paired (the factor Holm's procedure put on this p). It excludes 0
    exactly when p_holm < alpha, so the sentence and the interval never disagree; for the
    comparison Holm ranks first f is the number of comparisons (Bonferroni's simultaneous
    interval, which the best of many — the winner's curse — needs)."""

    low: float | None
    high: float | None
    confidence: float

    def bounded(self, metric: str) -> bool:
        """Whether the test excluded anything: an end inside the range of a difference."""
        lo, hi = stats.bounds_of(metric, difference=True)
        return (self.low is not None and self.low > lo) or (
            self.high is not None and self.high < hi)


def adjusted_interval(results: StudyResults,
                      config: ConfigResult) -> AdjustedInterval | None:
    """`AdjustedInterval` of ``config``'s Δ against the baseline; None without a test."""
    p, p_holm = _vs(config).p_paired, _vs(config).p_holm
    base = results.baseline_config
    own = results.values.get(config.config)
    if p is None or p_holm is None or p <= 0 or base is None or own is None:
        return None
    reference = results.values.get(base.config)
    if reference is None:
        return None
    n = min(len(own), len(reference))
    confidence = 1.0 - stats.SIGNIFICANCE * p / p_holm
    low, high, _, _ = paired_test(np.subtract(own[:n], reference[:n]), confidence)
    low, high = stats.clip((low, high), stats.bounds_of(results.metric, difference=True))
    return AdjustedInterval(low, high, confidence)


def _runner_up(results: StudyResults, best: ConfigResult) -> str:
    """A warning when the second best is as good as the best, as far as the seeds can tell."""
    second = next((c for c in results.completed_configs if c.config != best.config
                   and c.placement != BASELINE and c.config in results.values), None)
    if second is None or best.config not in results.values:
        return ""
    c = compare_paired(results.values[best.config], results.values[second.config],
                       maximize=results.maximize)
    if c.p_paired is not None and c.p_paired < stats.SIGNIFICANCE:
        return ""
    return (f". The runner-up {second.config} (mean {fmt_.number(second.mean)}) is not "
            f"significantly different from it (paired p = {_p(c.p_paired)})")


# The numbers of a row the recommendation rests on (`results --with-recommendation`).
_EVIDENCE = ("config", "mean", "sd", "n", "diff", "diff_ci_low", "diff_ci_high", "p_paired",
             "p_holm", "p_welch", "p_wilcoxon", "p_improve", "win_share", "paired_test",
             "seeds_needed")


def decision(rec: Recommendation) -> str:
    """The recommendation as one word for scripts: "noise" (use ``rec.best``: its gain over
    the baseline is significant after Holm's correction), "no noise" (no configuration is
    better, or none significantly), "not significant" (the best mean's gain is not
    significant, but other configurations' gains are: ``significant_configurations``), or
    "none" (nothing to compare yet)."""
    if rec.best is None:
        return "none"
    if rec.significant:
        return "noise"
    return "not significant" if rec.significant_configs else "no noise"


def _evidence(results: StudyResults, config: ConfigResult) -> dict[str, Any]:
    """The numbers of ``config``'s row the recommendation rests on, with its adjusted
    interval."""
    row = results.row_of(config.config) or {}
    adjusted = adjusted_interval(results, config)
    return {**{k: row.get(k) for k in _EVIDENCE},
            "adjusted_ci_low": adjusted.low if adjusted else None,
            "adjusted_ci_high": adjusted.high if adjusted else None,
            "adjusted_confidence": adjusted.confidence if adjusted else None}


def recommendation_json(results: StudyResults) -> dict[str, Any]:
    """`results --format json --with-recommendation`: the rows (as `--format json` lists
    them) and the recommendation with the numbers it rests on, as one JSON-ready object."""
    rec = recommend(results)
    best = next((c for c in results.configs if c.config == rec.best), None)
    baseline = results.baseline_config
    answer = decision(rec)
    # What to train with: the best configuration, the baseline, or no answer yet.
    use = {"noise": rec.best, "no noise": BASELINE}.get(answer)
    return {
        "study": results.name, "metric": results.metric, "direction": results.direction,
        "complete": len(results.completed_configs), "total": results.total,
        "finished": results.progress.finished,
        "rows": results.rows,
        "recommendation": {
            "configuration": use,
            "decision": answer,
            "significant": rec.significant,
            "significant_configurations": rec.significant_configs,
            "alpha": stats.SIGNIFICANCE,
            "comparisons": _comparisons(results),
            # The best mean (the configuration the decision is about) and the baseline.
            "best": _evidence(results, best) if best is not None else None,
            "baseline": ({"config": baseline.config, "mean": baseline.mean,
                          "sd": baseline.sd, "n": baseline.n}
                         if baseline is not None else None),
            "text": rec.text,
        },
    }
