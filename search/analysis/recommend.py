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
from search.analysis.paired import PairedComparison, compare_paired, paired_test
from search.analysis.results import Pair, StudyResults
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
    row = next((r for r in results.rows if r["config"] == best), None)
    base = results.baseline
    if row is None or base is None or row.get("robust_mean") is None:
        return ""
    sign = 1 if results.maximize else -1
    if row is base:
        most = max((r for r in results.completed if r.get("robust_diff") is not None),
                   key=lambda r: r["robust_diff"] * sign, default=None)
        if most is None:
            return ""
        row = most
        if most["robust_diff"] * sign > 0:
            lead = (f". Under test-time noise the most robust configuration, {most['config']}, "
                    f"is")
        else:  # the baseline itself is the most robust: say so, and name the closest
            lead = (f". Under test-time noise no noise configuration is more robust than the "
                    f"baseline; the closest is {most['config']}")
    else:
        lead = f". Under test-time noise, {best} is"
    verdict = decide(row.get("robust_diff") or 0.0, row.get("robust_p_holm"), results.maximize)
    if verdict.better is None and "the closest is" not in lead:
        lead += " as robust as the baseline"
    elif verdict.better is not None and "the closest is" not in lead:
        lead += (" significantly " if verdict.significant else " (not significantly) ") + (
            "more" if verdict.better else "less") + " robust than the baseline"
    # CE counts clean error too; the relative CE only what the noise adds to it (robustness).
    ce, rel = row.get("ce"), row.get("relative_ce")
    ce_says = "" if ce is None else (
        f" ({'fewer' if ce < 1 else 'no fewer'} errors under noise than the baseline)")
    rel_says = (" (undefined: the baseline does not degrade under this noise)" if rel is None
                else f" (it degrades {'faster' if rel > 1 else 'no faster'} than the baseline "
                     "as σ grows)")
    return (f"{lead}: robust score {fmt_.number(row['robust_mean'])} vs "
            f"{fmt_.number(base.get('robust_mean'))} without noise (Δ "
            f"{fmt_.signed(row.get('robust_diff'))}, Holm-adjusted paired p = "
            f"{_p(row.get('robust_p_holm'))}), CE {fmt_.number(ce, 3)}{ce_says}, relative CE "
            f"{fmt_.number(rel, 3)}{rel_says}")


def _recommend(results: StudyResults) -> Recommendation:
    """Best configuration by mean in the study's direction, and whether it beats the baseline."""
    completed = results.completed
    baseline = results.baseline
    metric = results.metric
    if not completed:
        return Recommendation(None, False, False, [], "no configuration has completed yet")
    if baseline is None:
        return Recommendation(None, False, False, [],
                              "no recommendation: the baseline (none) has not completed, so "
                              "nothing can be compared with training without noise")
    judged = [(r, decide(r["diff"], r["p_holm"], results.maximize)) for r in completed
              if r is not baseline and r["diff"] is not None]
    better = [r for r, verdict in judged if verdict.better]
    significant = [r["config"] for r, verdict in judged if verdict.better and verdict.significant]
    pending = ""
    if results.total and not results.progress.finished:
        pending = (f" ({len(completed)} of {results.total} configurations complete; this "
                   "may change)")
    if not better:
        runner_up = next((r for r in completed if r is not baseline), None)
        text = (f"recommendation: no noise. No configuration beats the baseline "
                f"(mean {metric} {fmt_.number(baseline['mean'])})")
        if runner_up is not None and runner_up["mean"] is not None:
            text += (f"; the best with noise, {runner_up['config']}, has "
                     f"{fmt_.number(runner_up['mean'])}")
        return Recommendation(BASELINE, False, False, [], text + pending)
    best = better[0]  # rows are sorted best first
    n_tests = sum(r["p_holm"] is not None for r in results.rows)
    gain = (f"{best['config']}: mean {metric} {fmt_.number(best['mean'])} vs "
            f"{fmt_.number(baseline['mean'])} without noise (Δ {fmt_.signed(best['diff'])}")
    adjusted = adjusted_interval(results, best)
    if adjusted is not None and adjusted.bounded(results.metric):
        gain += (f", {fmt_.ci(adjusted.low, adjusted.high, is_signed=True)} at 95% adjusted "
                 f"for the {n_tests} comparisons as its p is")
    elif adjusted is not None:
        gain += f"; {best['n']} seeds cannot bound it at 95% adjusted for {n_tests} comparisons"
    gain += ")"
    if best["win_share"] is not None:
        gain += f", better on {round(best['win_share'] * (best['n'] or 0))} of {best['n']} seeds"
    test = "paired t" if best.get("paired_test") == "t" else "sign-flip"
    holm_p = (f"Holm-adjusted paired p = {_p(best['p_holm'])} over {n_tests} comparisons "
              f"({test} p = {_p(best['p_paired'])}, Welch p = {_p(best['p_welch'])})")
    if best["config"] in significant:
        text = (f"recommendation: {gain}. The gain is significant after correction: "
                f"{holm_p} < {stats.SIGNIFICANCE:g}; {len(significant)} of {n_tests} "
                "configurations are significantly better than the baseline")
        return Recommendation(best["config"], True, True, significant,
                              text + _runner_up(results, best) + pending)
    if significant:  # a smaller but steadier gain elsewhere passed the test
        text = (f"best: {gain}. Its gain is NOT significant after correction ({holm_p}). "
                f"Significantly better than the baseline: {', '.join(significant)}")
    else:
        text = (f"recommendation: no noise. No configuration is significantly better than "
                f"the baseline after correction; the best, {gain}, has a gain that is NOT "
                f"significant ({holm_p}) and may be seed-to-seed variation")
    return Recommendation(best["config"], True, False, significant,
                          text + _seeds_needed(best) + pending)


def _seeds_needed(row: dict[str, Any]) -> str:
    needed = row.get("seeds_needed")
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


def adjusted_interval(results: StudyResults, row: dict[str, Any]) -> AdjustedInterval | None:
    """`AdjustedInterval` of ``row``'s Δ against the baseline; None without a test."""
    p, p_holm = row.get("p_paired"), row.get("p_holm")
    base = results.baseline
    own = results.values.get(row["config"])
    if p is None or p_holm is None or p <= 0 or base is None or own is None:
        return None
    reference = results.values.get(base["config"])
    if reference is None:
        return None
    n = min(len(own), len(reference))
    confidence = 1.0 - stats.SIGNIFICANCE * p / p_holm
    low, high, _, _ = paired_test(np.subtract(own[:n], reference[:n]), confidence)
    low, high = stats.clip((low, high), stats.bounds_of(results.metric, difference=True))
    return AdjustedInterval(low, high, confidence)


def _runner_up(results: StudyResults, best: dict[str, Any]) -> str:
    """A warning when the second best is as good as the best, as far as the seeds can tell."""
    second = next((r for r in results.completed if r is not best
                   and r["placement"] != BASELINE and r["config"] in results.values), None)
    if second is None or best["config"] not in results.values:
        return ""
    c = compare_paired(results.values[best["config"]], results.values[second["config"]],
                       maximize=results.maximize)
    if c.p_paired is not None and c.p_paired < stats.SIGNIFICANCE:
        return ""
    return (f". The runner-up {second['config']} (mean {fmt_.number(second['mean'])}) is not "
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


def _evidence(results: StudyResults, row: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``row`` the recommendation rests on, with its adjusted interval."""
    adjusted = adjusted_interval(results, row)
    return {**{k: row.get(k) for k in _EVIDENCE},
            "adjusted_ci_low": adjusted.low if adjusted else None,
            "adjusted_ci_high": adjusted.high if adjusted else None,
            "adjusted_confidence": adjusted.confidence if adjusted else None}


def recommendation_json(results: StudyResults) -> dict[str, Any]:
    """`results --format json --with-recommendation`: the rows (as `--format json` lists
    them) and the recommendation with the numbers it rests on, as one JSON-ready object."""
    rec = recommend(results)
    row = next((r for r in results.rows if r["config"] == rec.best), None)
    baseline = results.baseline
    answer = decision(rec)
    # What to train with: the best configuration, the baseline, or no answer yet.
    use = {"noise": rec.best, "no noise": BASELINE}.get(answer)
    return {
        "study": results.name, "metric": results.metric, "direction": results.direction,
        "complete": len(results.completed), "total": results.total,
        "finished": results.progress.finished,
        "rows": results.rows,
        "recommendation": {
            "configuration": use,
            "decision": answer,
            "significant": rec.significant,
            "significant_configurations": rec.significant_configs,
            "alpha": stats.SIGNIFICANCE,
            "comparisons": sum(r["p_holm"] is not None for r in results.rows),
            # The best mean (the configuration the decision is about) and the baseline.
            "best": _evidence(results, row) if row is not None else None,
            "baseline": ({k: baseline.get(k) for k in ("config", "mean", "sd", "n")}
                         if baseline is not None else None),
            "text": rec.text,
        },
    }
