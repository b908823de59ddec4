"""Simulated studies with a known truth: the test of the verdict's error rates.

A p-value is tested by simulating under the null, an interval by its coverage, racing by how
often it stops the configuration that is truly best. The studies simulated here are like the
tutorial's: accuracy on a small test set (70 points: values on a lattice of 1/70, ties and
identical differences are common), seeds shared by every configuration (common random
numbers: seed r's model gets the same easy and hard test points in every configuration),
and each configuration's own noise moving a few points per seed.

Accuracy of configuration k on seed r is the share of the test points i with
``skill_r + ease_ri + jitter·ε_kri + shift_k > threshold``; ``skill``, ``ease`` and ``ε`` are
standard normals times their scales, ``shift_k`` is k's true effect (0 for all under the
null, where configurations are exchangeable seed by seed, as the paired tests assume).

`benchmarks/verdict_simulation.py` prints the tables; `tests/test_verdict_simulation.py`
asserts them on fewer simulations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from search.analysis import stats
from search.analysis.paired import paired_p
from search.analysis.racing import RaceSettings, decide
from search.analysis.recommend import decide as verdict


@dataclass(frozen=True)
class World:
    """How simulated accuracies arise (see the module's docstring)."""

    points: int = 70
    skill: float = 0.3  # sd of a seed's effect shared by every configuration
    jitter: float = 0.3  # sd of a configuration's own per-seed, per-point noise
    threshold: float = -0.85  # about 0.78 accuracy at shift 0

    def accuracies(self, rng: np.random.Generator, shifts: Sequence[float],
                   seeds: int) -> np.ndarray:
        """(configurations, seeds) accuracies, rounded to 6 decimals as the study stores."""
        k = len(shifts)
        skill = rng.normal(0.0, self.skill, (1, seeds, 1))
        ease = rng.normal(0.0, 1.0, (1, seeds, self.points))
        own = rng.normal(0.0, self.jitter, (k, seeds, self.points))
        shift = np.asarray(shifts, dtype=np.float64).reshape(k, 1, 1)
        correct = skill + ease + own + shift > self.threshold
        return np.asarray(np.round(correct.mean(axis=2), 6))

    def effect(self, shift: float) -> float:
        """Mean accuracy gained by ``shift``, for labelling scenarios."""
        rng = np.random.default_rng(0)
        a = self.accuracies(rng, [0.0, shift], 2000)
        return float(a[1].mean() - a[0].mean())


def recommends_noise(values: np.ndarray, maximize: bool = True) -> tuple[bool, bool]:
    """(the decision is "noise", some configuration is called significantly better) for a
    study whose row 0 is the baseline: the rule of search.analysis.recommend, paired p-values
    Holm-adjusted over every comparison with the baseline."""
    diffs = values[1:] - values[0]  # the p-value alone: compare_paired also plans seeds
    adjusted = stats.holm([paired_p(d) for d in diffs])
    means = [float(d.mean()) for d in diffs]
    verdicts = [verdict(m, p, maximize) for m, p in zip(means, adjusted)]
    better = [i for i, v in enumerate(verdicts) if v.better]
    if not better:
        return False, False
    sign = 1.0 if maximize else -1.0
    best = max(better, key=lambda i: sign * means[i])
    return verdicts[best].significant, any(verdicts[i].significant for i in better)


def null_recommendations(rng: np.random.Generator, seeds: int, configurations: int = 16,
                         studies: int = 1000, world: World = World()) -> tuple[float, float]:
    """Share of simulated null studies (every configuration equal to the baseline) that
    recommend noise, and that call any configuration significantly better."""
    noise = anything = 0
    for _ in range(studies):
        a, b = recommends_noise(world.accuracies(rng, [0.0] * (configurations + 1), seeds))
        noise += a
        anything += b
    return noise / studies, anything / studies


def race(rng: np.random.Generator, shifts: Sequence[float], settings: RaceSettings,
         world: World = World()) -> np.ndarray:
    """One simulated race (configuration 0 the baseline): the seeds each configuration got."""
    values = world.accuracies(rng, shifts, settings.maximum)
    keys = [str(i) for i in range(len(shifts))]
    racing = set(keys)
    used = np.full(len(shifts), settings.maximum)
    for n in settings.checkpoints()[:-1]:
        stops = decide({k: values[int(k)][:n] for k in keys if k in racing}, "0", True,
                       settings)
        for k in stops:
            used[int(k)] = n
        racing -= set(stops)
    return used


def best_stopped(rng: np.random.Generator, shifts: Sequence[float], settings: RaceSettings,
                 races: int, world: World = World()) -> tuple[float, float]:
    """Share of races that stop the true best (the largest shift; the first of equals) and
    the share of all seeds the races trained."""
    best = int(np.argmax(shifts))
    stopped = 0
    trained = 0
    for _ in range(races):
        used = race(rng, shifts, settings, world)
        stopped += used[best] < settings.maximum
        trained += int(used.sum())
    return stopped / races, trained / (races * settings.maximum * len(shifts))


def coverage(rng: np.random.Generator, sample: Callable[[np.random.Generator, int], np.ndarray],
             truth: float, interval: Callable[[np.ndarray], tuple[float | None, float | None]],
             n: int, trials: int) -> float:
    """Share of ``trials`` samples of size ``n`` whose ``interval`` holds ``truth`` (an
    undefined end counts as unbounded)."""
    hits = 0
    for _ in range(trials):
        low, high = interval(sample(rng, n))
        hits += (low is None or low <= truth) and (high is None or truth <= high)
    return hits / trials
