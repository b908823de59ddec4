"""Racing: give a configuration more seeds only while they can still change the answer.

Every configuration gets ``first`` seeds, then ``each`` more per round, up to the study's
``repeats``. After each round, `decide` compares every configuration still racing, seed by
seed, with the current leader (the best mean so far) and with the baseline:

- a configuration significantly worse than the leader cannot be the answer;
- a configuration significantly worse than the baseline cannot be recommended (the
  recommendation is the baseline or a configuration significantly better than it);

either stops it (an Optuna PRUNED trial with the reason). The leader and the baseline
never stop; the others go on to ``repeats``.

Error control, so that the true best configuration is stopped with probability at most
``alpha``: within a round the comparisons are one family, Holm-adjusted; across rounds
each look spends alpha / (number of looks) (Bonferroni over the looks: a configuration
can only be wrongly stopped at one of them). Conservative, and it needs no assumption
about how the rounds depend on each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from search.analysis.paired import paired_t_p, wilcoxon_p
from search.analysis.stats import holm

TESTS = ("t", "wilcoxon")


@dataclass(frozen=True)
class RaceSettings:
    first: int  # seeds every configuration gets
    each: int  # seeds added per round
    alpha: float  # probability of stopping the true best, at most
    test: str  # "t" (paired t) | "wilcoxon" (signed-rank)
    maximum: int  # study.repeats

    def checkpoints(self) -> tuple[int, ...]:
        """Seed counts after each round: first, first + each, ..., maximum."""
        points = list(range(min(self.first, self.maximum), self.maximum, self.each))
        return (*points, self.maximum)

    @property
    def looks(self) -> int:
        """Rounds after which a configuration can be stopped (not after the last)."""
        return max(1, len(self.checkpoints()) - 1)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.looks


def _p_value(d: np.ndarray, test: str) -> float | None:
    if test == "wilcoxon":
        return wilcoxon_p(d)
    return paired_t_p(d)


def _worse(diff: float, maximize: bool) -> bool:
    return diff < 0 if maximize else diff > 0


def decide(values: Mapping[str, Sequence[float]], baseline: str, maximize: bool,
           settings: RaceSettings) -> dict[str, str]:
    """Which configurations still racing stop after this round, each with its reason.

    ``values`` holds the per-seed values of every configuration still racing and of the
    baseline, all for the same seeds 0..n-1 (a round is complete before it is decided).
    """
    arrays = {key: np.asarray(v, dtype=np.float64) for key, v in values.items()}
    sizes = {a.size for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"every configuration needs the same seeds; got sizes {sorted(sizes)}")
    n = sizes.pop()
    sign = 1.0 if maximize else -1.0
    leader = max(arrays, key=lambda k: (sign * float(arrays[k].mean()), k == baseline))
    family: list[tuple[str, str, float | None]] = []  # (config, rival, p)
    for key, a in arrays.items():
        if key in (leader, baseline):
            continue
        for rival in dict.fromkeys((leader, baseline)):
            if rival not in arrays:
                continue
            d = a - arrays[rival]
            if _worse(float(d.mean()), maximize):
                family.append((key, rival, _p_value(d, settings.test)))
    adjusted = holm([p for _, _, p in family])
    stops: dict[str, str] = {}
    for (key, rival, _), p in zip(family, adjusted):
        if key in stops or p is None or p >= settings.alpha_per_look:
            continue
        who = "the baseline" if rival == baseline else f"the leader {rival}"
        stops[key] = (f"worse than {who} after {n} seeds (paired {settings.test}, "
                      f"Holm-adjusted p = {p:.2g} < {settings.alpha_per_look:.2g} = alpha / "
                      f"{settings.looks} looks)")
    return stops
