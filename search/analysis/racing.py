"""Racing: give a configuration more seeds only while they can still change the answer.

Every configuration gets ``first`` seeds, then ``each`` more per round, up to the study's
``repeats``. After each round, `decide` compares every configuration still racing, seed by
seed, with the current leader (the best mean so far) and with the baseline:

- a configuration significantly worse than the leader cannot be the answer;
- a configuration significantly worse than the baseline cannot be recommended (the
  recommendation is the baseline or a configuration significantly better than it);

either stops it (an Optuna PRUNED trial with the reason). The leader and the baseline
never stop; the others go on to ``repeats``.

Error control: the true best configuration b is stopped with probability at most ``alpha``.
b can only stop if, at one of the looks (rounds after which a configuration can stop), its
paired test against some other configuration j (the leader, or the baseline) finds it worse.
The leader is picked after seeing the data, so any of the K − 1 others may be the rival; each
such test is therefore run at alpha / (looks · (K − 1)), K the study's configurations, and the
union bound gives P(b stopped) <= Σ over looks and rivals <= alpha, with no assumption about
how rounds, rivals or the leader's choice depend on each other. Each test is one on the first
n seeds alone, so the bound holds although which configurations reach a look is random.

The test is `paired.paired_p` (the sign-flip test up to paired.EXACT_MAX_N seeds, the t-test
above) or the exact Wilcoxon signed-rank test. ``first`` must be more than EXACT_MAX_N: at
two to four seeds an exact test cannot go below 2/2ⁿ >= 0.125, and the t-test there is the
one that stopped the true best in up to 17% of simulated races (benchmarks/
verdict_simulation.py measures the guarantee over scenarios).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from search.analysis.paired import EXACT_MAX_N, paired_p, test_used, wilcoxon_p

# The fewest seeds a race may start with: the paired test's parametric range.
MIN_FIRST = EXACT_MAX_N + 1


@dataclass(frozen=True)
class RaceSettings:
    first: int  # seeds every configuration gets
    each: int  # seeds added per round
    alpha: float  # probability of stopping the true best, at most
    test: str  # "t" (paired t) | "wilcoxon" (signed-rank)
    maximum: int  # study.repeats
    configurations: int = 2  # K: the study's configurations, baseline included

    def checkpoints(self) -> tuple[int, ...]:
        """Seed counts after each round: first, first + each, ..., maximum."""
        points = list(range(min(self.first, self.maximum), self.maximum, self.each))
        return (*points, self.maximum)

    @property
    def looks(self) -> int:
        """Rounds after which a configuration can be stopped (not after the last)."""
        return max(1, len(self.checkpoints()) - 1)

    @property
    def rivals(self) -> int:
        """Configurations another one can be compared with (the leader may be any of them)."""
        return max(1, self.configurations - 1)

    @property
    def level(self) -> float:
        """The level of each test: alpha / (looks · rivals)."""
        return self.alpha / (self.looks * self.rivals)


def _p_value(d: np.ndarray, test: str) -> tuple[float | None, str]:
    """The p-value of "d's mean is 0" and the name of the test that gave it."""
    if test == "wilcoxon":
        return wilcoxon_p(d), "Wilcoxon signed-rank test"
    return paired_p(d), ("paired t-test" if test_used(d) == "t" else "sign-flip test")


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
    stops: dict[str, str] = {}
    for key, a in arrays.items():
        if key in (leader, baseline):
            continue
        for rival in dict.fromkeys((leader, baseline)):
            if rival not in arrays or key in stops:
                continue
            d = a - arrays[rival]
            if not _worse(float(d.mean()), maximize):
                continue
            p, name = _p_value(d, settings.test)
            if p is None or p >= settings.level:
                continue
            who = "the baseline" if rival == baseline else f"the leader {rival}"
            stops[key] = (f"worse than {who} after {n} seeds ({name} p = {p:.2g}, below "
                          f"{settings.level:.2g}: alpha {settings.alpha:g} shared by "
                          f"{settings.looks} rounds × {settings.rivals} possible rivals, so "
                          f"the true best is stopped with probability <= {settings.alpha:g})")
    return stops
