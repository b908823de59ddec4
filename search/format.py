"""The one place numbers become text: means, σ, p-values, confidence intervals, the table.

Every output (the `results` and `compare` tables, the run's progress lines, the
recommendation, the HTML report and the dashboard note) formats through these functions,
so one number reads the same everywhere. Undefined values (None, NaN) read as "-".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search.noise import format_std

MISSING = "-"
DIGITS = 4  # metrics, their differences and CIs
P_FIXED_DOWN_TO = 1e-4  # smaller p-values in scientific notation, so they never read as 0


def _defined(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def name(text: str) -> str:
    """A name from the storage or the user (study, configuration) as safe terminal text:
    control characters, terminal escapes and other unprintable characters are written as
    Python escapes (``\\x1b``, ``\\u202e``) instead of reaching the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def quoted(text: str) -> str:
    """A name in quotes, safe for the terminal: 'circles' ('a\\x1bb' for escapes)."""
    return f"'{name(text)}'" if "'" not in text else repr(text)


def number(value: Any, digits: int = DIGITS) -> str:
    """A metric or statistic: 0.8125; integers as they are; "-" when undefined."""
    if not _defined(value):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def signed(value: float | None, digits: int = DIGITS) -> str:
    """A difference: +0.0125 / -0.0300."""
    return f"{value:+.{digits}f}" if _defined(value) else MISSING


def p_value(p: float | None, missing: str = MISSING) -> str:
    """0.0312, 0.0001, 3.2e-07: four decimals, scientific below 1e-4."""
    if not _defined(p):
        return missing
    assert p is not None
    return f"{p:.4f}" if p >= P_FIXED_DOWN_TO else f"{p:.1e}"


def std(value: float | Mapping[str, float]) -> str:
    """σ of a configuration, exactly (reads back as the same float): 0.1, site=σ,site=σ."""
    if isinstance(value, Mapping):
        return ",".join(f"{site}={format_std(sigma)}" for site, sigma in value.items())
    return format_std(float(value))


def ci(low: float | None, high: float | None, is_signed: bool = False) -> str:
    """A confidence interval: 0.7500–0.8750 (signed for a difference: -0.0100–+0.0300)."""
    if not (_defined(low) and _defined(high)):
        return MISSING
    text = signed if is_signed else number
    return f"{text(low)}–{text(high)}"


def wins(row: Mapping[str, Any]) -> str:
    """Seeds on which a configuration beat the baseline: 7/10."""
    if row.get("win_share") is None or not row.get("n"):
        return MISSING
    return f"{round(row['win_share'] * row['n'])}/{row['n']}"


def _p_improve(row: Mapping[str, Any]) -> str:
    """P(better than the baseline) and its CI: 0.83 (0.70–0.93)."""
    if not _defined(row.get("p_improve")):
        return MISSING
    text = number(row["p_improve"], 2)
    if _defined(row.get("p_improve_low")) and _defined(row.get("p_improve_high")):
        text += f" ({number(row['p_improve_low'], 2)}–{number(row['p_improve_high'], 2)})"
    return text


# --- the summary table: one row per configuration ---------------------------------------------


def test_name(test: str | None) -> str:
    """The paired test behind a p-value (search.analysis.paired), as a reader knows it."""
    return {"t": "paired t-test", "sign-flip": "exact sign-flip test"}.get(test or "",
                                                                       "no test")


@dataclass(frozen=True)
class Column:
    header: str  # "{metric}" is replaced by the study's metric
    cell: Callable[[Mapping[str, Any]], str]


def _gap(row: Mapping[str, Any]) -> str:
    if not (_defined(row.get("train_mean")) and _defined(row.get("mean"))):
        return MISSING
    return number(row["train_mean"] - row["mean"])


COLUMNS: dict[str, Column] = {
    "config": Column("configuration", lambda r: r["config"]),
    "placement": Column("placement", lambda r: r["placement"]),
    "std": Column("std", lambda r: std(r["std"])),
    "mean": Column("mean {metric}", lambda r: number(r["mean"])),
    "sd": Column("sd", lambda r: number(r["sd"])),
    "ci": Column("95% CI", lambda r: ci(r["ci_low"], r["ci_high"])),
    "bootstrap_ci": Column("bootstrap CI",
                           lambda r: ci(r["bootstrap_ci_low"], r["bootstrap_ci_high"])),
    "n": Column("n", lambda r: number(r["n"])),
    "diff": Column("Δ baseline", lambda r: signed(r["diff"])),
    "diff_ci": Column("Δ 95% CI", lambda r: ci(r["diff_ci_low"], r["diff_ci_high"], True)),
    "p": Column("p paired", lambda r: p_value(r["p_paired"])),
    "p_holm": Column("p Holm", lambda r: p_value(r["p_holm"])),
    "p_wilcoxon": Column("p Wilcoxon", lambda r: p_value(r["p_wilcoxon"])),
    "p_welch": Column("p Welch", lambda r: p_value(r["p_welch"])),
    "p_improve": Column("P(better)", _p_improve),
    "d": Column("d", lambda r: number(r["cohen_d"], 2)),
    "wins": Column("wins", wins),
    "train": Column("train", lambda r: number(r["train_mean"])),
    "gap": Column("gap", _gap),
    "state": Column("state", lambda r: str(r["state"]).lower()),
    # [robustness]: the robust score (mean over the test-σ grid of the metric under noise)
    "robust": Column("robust", lambda r: number(r.get("robust_mean"))),
    "robust_diff": Column("robust Δ", lambda r: signed(r.get("robust_diff"))),
    "robust_p_holm": Column("robust p Holm", lambda r: p_value(r.get("robust_p_holm"))),
    "ce": Column("CE", lambda r: number(r.get("ce"), 3)),
    "relative_ce": Column("rel. CE", lambda r: number(r.get("relative_ce"), 3)),
    "pareto": Column("pareto", lambda r: MISSING if r.get("pareto") is None
                     else "yes" if r["pareto"] else "no"),
}

# The `results` table (all the statistics) and the report's table (fits a page, with the gap).
RESULTS_COLUMNS = ("placement", "std", "mean", "sd", "ci", "bootstrap_ci", "n", "diff",
                   "diff_ci", "p", "p_holm", "p_wilcoxon", "p_welch", "p_improve", "d", "wins",
                   "train", "state")
REPORT_COLUMNS = ("config", "n", "mean", "sd", "ci", "diff", "p", "p_holm", "p_welch",
                  "p_improve", "d", "train", "gap", "state")
# Added to the tables of a study with [robustness] (and pareto for objective = "both").
ROBUST_COLUMNS = ("robust", "robust_diff", "robust_p_holm", "ce", "relative_ce")
ROBUST_NOTE = ("robust: the metric under test-time input noise, averaged over the study's "
               "test-σ grid (area under the profile / grid width); robust Δ and p Holm: "
               "compared with the baseline's, paired by seed, as the clean mean; CE: its "
               "errors summed over the test σ > 0 / the baseline's (below 1: fewer errors "
               "under noise, clean error included); rel. CE: what the noise adds to its own "
               "clean error, summed over σ > 0 / what it adds to the baseline's (above 1: "
               "degrades faster than the baseline; - where the baseline does not degrade)")


def robust_columns(has_robustness: bool, objective: str) -> tuple[str, ...]:
    if not has_robustness:
        return ()
    return ROBUST_COLUMNS + (("pareto",) if objective == "both" else ())


TABLE_NOTE = ("Δ = mean of the per-seed differences from the baseline, on the seeds both "
              "have (seed r of each configuration shares initial weights, data order and noise "
              "draws); Δ 95% CI and p paired: one test of those differences, the exact "
              "sign-flip permutation test at 4 seeds or fewer (its smallest p is 2/2^n: "
              "0.125 at 4) and the paired t-test above; p Holm: p paired adjusted over all "
              "comparisons with the baseline; p Wilcoxon: signed-rank test (exact with ties up "
              "to 16 seeds); p Welch: unpaired; P(better): share of seeds better than the "
              "baseline, ties half, with its 95% Clopper–Pearson CI; d: Cohen's d; wins: seeds "
              "better than the baseline on the same seed; n: seeds run (a configuration stopped "
              "by racing has fewer, compared on the seeds it has); 95% CI: t interval of the "
              "mean; bootstrap CI: BCa from 30 seeds, the t interval below (BCa is too narrow "
              "there); every interval is cut to the metric's range")


def seeds_needed_note(rows: Sequence[Mapping[str, Any]], most: int = 8) -> str | None:
    """The table's note on comparisons that are not significant: how many seeds a paired
    t-test would need to make each observed Δ significant after Holm's correction with 80%
    power (the rows' ``seeds_needed``), for the first ``most`` rows that have it."""
    listed = [f"{r['config']} {r['seeds_needed']}" for r in rows
              if r.get("seeds_needed") is not None][:most]
    if not listed:
        return None
    return ("seeds needed (not significant after Holm; seeds a paired t-test would need to "
            "show the observed Δ with 80% power, if it is real): " + ", ".join(listed))


def summary_table(rows: Sequence[Mapping[str, Any]], metric: str,
                  columns: Sequence[str]) -> list[list[str]]:
    """Header, then one list of cells per result row (as `analysis` makes them)."""
    chosen = [COLUMNS[c] for c in columns]
    return [[c.header.replace("{metric}", metric) for c in chosen],
            *[[c.cell(row) for c in chosen] for row in rows]]


def aligned(table: Sequence[Sequence[str]]) -> list[str]:
    """A table as lines of left-aligned columns (the CLI's layout)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
