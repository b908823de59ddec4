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


def count(n: int) -> str:
    """A count of work: 693000, and 3.5e+09 from a million on (two digits are all it means)."""
    return str(n) if n < 1_000_000 else f"{n:.2g}"


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


def racing_seeds(trained: int, most: int) -> str:
    """What racing saved: racing trained 330 of 990 seeds (33%)."""
    share = f" ({trained / most:.0%})" if most else ""
    return f"racing trained {trained} of {most} seeds{share}"


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
    # Its entry in the table's legend (`legend`), None when the header says it all: a legend
    # is made from the columns shown, so it never explains a column that is not there.
    about: str | None = None


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
    "ci": Column("95% CI", lambda r: ci(r["ci_low"], r["ci_high"]),
                 "95% CI: t interval of the mean"),
    "bootstrap_ci": Column("bootstrap CI",
                           lambda r: ci(r["bootstrap_ci_low"], r["bootstrap_ci_high"]),
                           "bootstrap CI: BCa from 30 seeds, the t interval below (BCa is too "
                           "narrow there)"),
    "n": Column("n", lambda r: number(r["n"]),
                "n: seeds run (a configuration stopped by racing has fewer, compared on the "
                "seeds it has)"),
    "diff": Column("Δ baseline", lambda r: signed(r["diff"]),
                   "Δ baseline: mean of the per-seed differences from the baseline, on the "
                   "seeds both have (seed r of each configuration shares initial weights, data "
                   "order and noise draws)"),
    "diff_ci": Column("Δ 95% CI", lambda r: ci(r["diff_ci_low"], r["diff_ci_high"], True),
                      "Δ 95% CI: the interval of the test behind p paired"),
    "p": Column("p paired", lambda r: p_value(r["p_paired"]),
                "p paired: one test of the per-seed differences, the exact sign-flip "
                "permutation test at 4 seeds or fewer (its smallest p is 2/2^n: 0.125 at 4) "
                "and the paired t-test above"),
    "p_holm": Column("p Holm", lambda r: p_value(r["p_holm"]),
                     "p Holm: p paired adjusted over all comparisons with the baseline"),
    "p_wilcoxon": Column("p Wilcoxon", lambda r: p_value(r["p_wilcoxon"]),
                         "p Wilcoxon: signed-rank test (exact with ties up to 16 seeds)"),
    "p_welch": Column("p Welch", lambda r: p_value(r["p_welch"]),
                      "p Welch: unpaired test of the two means"),
    "p_improve": Column("P(better)", _p_improve,
                        "P(better): share of seeds better than the baseline, ties half, with "
                        "its 95% Clopper–Pearson CI"),
    "d": Column("d", lambda r: number(r["cohen_d"], 2), "d: Cohen's d"),
    "wins": Column("wins", wins, "wins: seeds better than the baseline on the same seed"),
    "train": Column("train", lambda r: number(r["train_mean"]),
                    "train: mean of the final train metric"),
    "gap": Column("gap", _gap, "gap: train − test mean (the generalization gap)"),
    "state": Column("state", lambda r: str(r["state"]).lower(),
                    "state: complete (every seed ran) or pruned (racing stopped it early)"),
    # [robustness]: the robust score (mean over the test-σ grid of the metric under noise)
    "robust": Column("robust", lambda r: number(r.get("robust_mean")),
                     "robust: the metric under test-time input noise, averaged over the "
                     "study's test-σ grid (area under the profile / grid width)"),
    "robust_diff": Column("robust Δ", lambda r: signed(r.get("robust_diff")),
                          "robust Δ: the robust score's paired difference from the "
                          "baseline's, as Δ baseline"),
    "robust_p_holm": Column("robust p Holm", lambda r: p_value(r.get("robust_p_holm")),
                            "robust p Holm: as p Holm, for the robust score"),
    "ce": Column("CE", lambda r: number(r.get("ce"), 3),
                 "CE: its errors summed over the test σ > 0 / the baseline's (below 1: fewer "
                 "errors under noise, clean error included)"),
    "relative_ce": Column("rel. CE", lambda r: number(r.get("relative_ce"), 3),
                          "rel. CE: what the noise adds to its own clean error, summed over "
                          "σ > 0 / what it adds to the baseline's (above 1: degrades faster "
                          "than the baseline; - where the baseline does not degrade)"),
    "pareto": Column("pareto", lambda r: MISSING if r.get("pareto") is None
                     else "yes" if r["pareto"] else "no",
                     "pareto: no other configuration is at least as good on both the clean "
                     "mean and the robust score and better on one"),
}
# Columns that show an interval: a legend that has one says how intervals are bounded.
_INTERVALS = ("ci", "bootstrap_ci", "diff_ci", "p_improve")


def legend(columns: Sequence[str]) -> str | None:
    """The legend of a table with ``columns``: the entry of each shown column that needs one,
    in the table's order; None when none does."""
    entries = [about for c in columns if (about := COLUMNS[c].about)]
    if not entries:
        return None
    if any(c in _INTERVALS for c in columns):
        entries.append("every interval is cut to the metric's range")
    return "; ".join(entries)


# The `results` table (all the statistics) and the report's table (fits a page, with the gap).
RESULTS_COLUMNS = ("placement", "std", "mean", "sd", "ci", "bootstrap_ci", "n", "diff",
                   "diff_ci", "p", "p_holm", "p_wilcoxon", "p_welch", "p_improve", "d", "wins",
                   "train", "state")
REPORT_COLUMNS = ("config", "n", "mean", "sd", "ci", "diff", "p", "p_holm", "p_welch",
                  "p_improve", "d", "train", "gap", "state")
# The columns that name a row of the `results` table: every block of a table cut to the
# terminal's width repeats them.
RESULTS_KEYS = 2  # placement, std
# Added to the tables of a study with [robustness] (and pareto for objective = "both").
ROBUST_COLUMNS = ("robust", "robust_diff", "robust_p_holm", "ce", "relative_ce")


def robust_columns(has_robustness: bool, objective: str) -> tuple[str, ...]:
    if not has_robustness:
        return ()
    return ROBUST_COLUMNS + (("pareto",) if objective == "both" else ())


# The legends of the `results` table (the clean columns, then the robust ones).
TABLE_NOTE = legend(RESULTS_COLUMNS) or ""
ROBUST_NOTE = legend(ROBUST_COLUMNS) or ""


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
    widths = _widths(table)
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]


def _widths(table: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(row[i]) for row in table) for i in range(len(table[0]))]


@dataclass(frozen=True)
class Blocks:
    """A table cut to a terminal's width: ``tables`` to print one under the other, each
    starting with the key columns; ``dropped``, the headers of columns too wide to fit."""

    tables: list[list[list[str]]]
    dropped: list[str]

    def note(self, width: int) -> str | None:
        if not self.dropped:
            return None
        return (f"not shown, too wide for {width} columns: {', '.join(self.dropped)}; "
                "--wide shows every column")


def blocks(table: Sequence[Sequence[str]], width: int, keys: int) -> Blocks:
    """Cut ``table``'s columns into blocks at most ``width`` characters wide, as `aligned`
    lays them out, in order; each block repeats the first ``keys`` columns (what names a
    row). A column that does not fit beside the keys on its own is dropped; if none fits, the
    table stays whole."""
    widths = _widths(table)
    keys_width = sum(widths[:keys]) + 2 * (keys - 1)
    chosen: list[list[int]] = [[]]
    dropped: list[int] = []
    for i in range(keys, len(widths)):
        if keys_width + 2 + widths[i] > width:
            dropped.append(i)
            continue
        used = keys_width + sum(widths[j] + 2 for j in chosen[-1])
        if chosen[-1] and used + 2 + widths[i] > width:
            chosen.append([])
        chosen[-1].append(i)
    if not chosen[-1]:  # not even one column beside the keys: nothing gained by cutting
        return Blocks([[list(row) for row in table]], [])
    return Blocks([[[row[j] for j in (*range(keys), *block)] for row in table]
                   for block in chosen], [table[0][i] for i in dropped])
