"""The verdict's error rates under a known truth (search/analysis/simulation.py), on fewer
simulations than benchmarks/verdict_simulation.py: a p-value is tested under the null, an
interval by its coverage, racing by how often it stops the true best."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search.analysis import simulation as sim
from search.analysis import stats
from search.analysis.paired import paired_test, probability_of_improvement
from search.analysis.racing import RaceSettings


def _at_most(rate: float, nominal: float, runs: int) -> bool:
    """``rate`` is no more than ``nominal`` up to three binomial standard errors."""
    return rate <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / runs)


@pytest.mark.parametrize("seeds", [2, 3, 5, 10])
def test_under_the_null_noise_is_recommended_at_most_alpha(seeds):
    studies = 200
    noise, anything = sim.null_recommendations(np.random.default_rng(seeds), seeds, 16,
                                               studies)
    assert _at_most(anything, stats.SIGNIFICANCE, studies)
    assert noise <= anything
    if seeds <= 3:  # no exact test on 3 seeds reaches 0.05, let alone after Holm
        assert anything == 0.0


def test_a_real_gain_is_found_with_enough_seeds():
    """The other side of the null test: the tests are not just silent."""
    rng = np.random.default_rng(4)
    found = sum(sim.recommends_noise(sim.World().accuracies(rng, [0.0, 0.3, 0.0], 30))[0]
                for _ in range(50))
    assert found >= 45


@pytest.mark.parametrize("first, k, shifts", [
    (5, 16, [0.0, 0.1] + list(np.linspace(0.08, -1.0, 14))),
    (5, 5, [0.0, 0.3, 0.25, -0.5, -1.0]),
    (10, 30, [0.0, 0.1] + [0.0] * 28),
])
def test_racing_stops_the_true_best_at_most_alpha_and_saves_seeds(first, k, shifts):
    races = 60
    settings = RaceSettings(first, 5, 0.05, "t", 30, k)
    stopped, trained = sim.best_stopped(np.random.default_rng(first + k), shifts, settings,
                                        races)
    assert _at_most(stopped, settings.alpha, races)
    if len(set(shifts)) > 3:  # clearly worse configurations exist: the race stops them
        assert trained < 0.8


def test_racing_is_all_or_nothing_about_the_leader_it_picked():
    """The leader is picked after seeing the data; the level of each test accounts for the
    K − 1 configurations that could have been picked."""
    settings = RaceSettings(5, 5, 0.05, "t", 30, 30)
    assert settings.level == pytest.approx(0.05 / (5 * 29))


@pytest.mark.parametrize("n", [3, 5, 10])
def test_intervals_cover_at_small_n(n):
    trials = 300
    world = sim.World()
    big = world.accuracies(np.random.default_rng(0), [0.0, 0.1], 100_000)
    truth_mean = float(big[0].mean())
    truth_diff = float((big[1] - big[0]).mean())
    truth_better = float(np.mean(np.where(big[1] == big[0], 0.5, big[1] > big[0])))
    acc = stats.bounds_of("accuracy")
    rng = np.random.default_rng(n)

    def one(r: np.random.Generator, m: int) -> np.ndarray:
        return world.accuracies(r, [0.0], m)[0]

    def pair(r: np.random.Generator, m: int) -> np.ndarray:
        return world.accuracies(r, [0.0, 0.1], m)

    def t_interval(x: np.ndarray) -> tuple[float | None, float | None]:
        s = stats.summarize(x, bounds=acc)
        return s.ci_low, s.ci_high

    covered = {
        "mean": sim.coverage(rng, one, truth_mean, t_interval, n, trials),
        "bootstrap": sim.coverage(rng, one, truth_mean,
                                  lambda x: stats.bootstrap_ci(x, n_resamples=499, bounds=acc),
                                  n, trials),
        "diff": sim.coverage(rng, pair, truth_diff, lambda x: paired_test(x[1] - x[0])[:2],
                             n, trials),
        "better": sim.coverage(rng, pair, truth_better,
                               lambda x: probability_of_improvement(x[1], x[0], True)[1:],
                               n, trials),
    }
    floor = 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)
    assert all(c >= floor for c in covered.values()), covered
