"""The verdict's error rates, simulated with a known truth (search/analysis/simulation.py):

1. false "noise" recommendations when every configuration equals the baseline, by seeds;
2. how often racing stops the true best, over scenarios (must be <= alpha);
3. coverage of every interval the results print, by seeds (nominal 95%).

    python benchmarks/verdict_simulation.py [--quick]

Accuracies are on 70 test points (the tutorial's test set): discrete, with ties. The tables
are in benchmarks/RESULTS.md; tests/test_verdict_simulation.py asserts them on fewer runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from search.analysis import simulation as sim
from search.analysis import stats
from search.analysis.paired import compare_paired, probability_of_improvement
from search.analysis.racing import MIN_FIRST, RaceSettings

SEEDS = (2, 3, 5, 10, 30)


def null_table(studies: int) -> None:
    print(f"1. Every configuration equal to the baseline (16 configurations, {studies} studies "
          "each): share of studies that recommend noise / call any configuration better")
    print(f"{'jitter':>8} " + " ".join(f"{'n=' + str(n):>14}" for n in SEEDS))
    rng = np.random.default_rng(2026)
    for jitter in (0.1, 0.3, 1.0):
        world = sim.World(jitter=jitter)
        cells = []
        for n in SEEDS:
            noise, anything = sim.null_recommendations(rng, n, 16, studies, world)
            cells.append(f"{noise:6.3f} {anything:6.3f}")
        print(f"{jitter:>8} " + " ".join(f"{c:>14}" for c in cells), flush=True)


def scenarios(k: int) -> dict[str, list[float]]:
    """Shifts of configuration 0 (the baseline) .. k − 1; the true best is the largest."""
    rest = max(0, k - 2)
    return {
        "all equal": [0.0] * k,
        "best +0.1, rest equal": [0.0, 0.1] + [0.0] * rest,
        "best +0.1, rest spread below": [0.0, 0.1] + list(np.linspace(0.08, -1.0, rest)),
        "best +0.3, a rival at +0.25": ([0.0, 0.3, 0.25] + list(np.linspace(0.0, -1.0, k - 3))
                                        if k >= 3 else [0.0, 0.3]),
        "baseline best, rest below": [0.1] + list(np.linspace(0.05, -1.0, k - 1)),
    }


def race_table(races: int) -> None:
    print(f"\n2. Racing (each 5, 30 seeds at most, alpha 0.05, paired t; {races} races each): "
          "share of races that stop the true best | share of seeds trained")
    for first in (2, 3):
        print(f"first = {first}: refused (racing.first must be >= {MIN_FIRST})")
    rng = np.random.default_rng(7)
    print(f"{'first':>5} {'K':>3}  scenario                         stopped best  trained")
    for first in (5, 10):
        for k in (2, 5, 16, 30):
            settings = RaceSettings(first, 5, 0.05, "t", 30, k)
            for label, shifts in scenarios(k).items():
                if k == 2 and label.startswith("best +0.3"):
                    continue
                stopped, trained = sim.best_stopped(rng, shifts[:k], settings, races)
                print(f"{first:>5} {k:>3}  {label:<32} {stopped:>12.3f} {trained:>8.2f}",
                      flush=True)


def coverage_table(trials: int) -> None:
    print(f"\n3. Coverage of the 95% intervals ({trials} samples each; accuracy on 70 points, "
          "and the same with 10% of seeds stuck at 0.5)")
    world = sim.World()
    big = np.random.default_rng(0)
    clean = world.accuracies(big, [0.0, 0.1], 200_000)
    truth_mean = float(clean[0].mean())
    truth_diff = float((clean[1] - clean[0]).mean())
    share = np.where(np.abs(clean[1] - clean[0]) <= stats.TIE_TOLERANCE, 0.5,
                     (clean[1] > clean[0]).astype(float))
    truth_better = float(share.mean())

    def one(rng: np.random.Generator, n: int) -> np.ndarray:
        return world.accuracies(rng, [0.0], n)[0]

    def stuck(rng: np.random.Generator, n: int) -> np.ndarray:
        x = one(rng, n)
        return np.where(rng.random(n) < 0.1, 0.5, x)

    def pair(rng: np.random.Generator, n: int) -> np.ndarray:
        return world.accuracies(rng, [0.0, 0.1], n)

    acc = stats.bounds_of("accuracy")
    intervals = {
        "mean, t (95% CI)": (one, truth_mean,
                             lambda x: (stats.summarize(x, bounds=acc).ci_low,
                                        stats.summarize(x, bounds=acc).ci_high)),
        "mean, bootstrap CI": (one, truth_mean,
                               lambda x: stats.bootstrap_ci(x, n_resamples=999, bounds=acc)),
        "mean, BCa itself": (one, truth_mean,
                             lambda x: _bca(x)),
        "mean, t, 10% stuck": (stuck, 0.9 * truth_mean + 0.05,
                               lambda x: (stats.summarize(x).ci_low,
                                          stats.summarize(x).ci_high)),
        "mean, BCa itself, 10% stuck": (stuck, 0.9 * truth_mean + 0.05, lambda x: _bca(x)),
        "Δ paired (its test's CI)": (pair, truth_diff,
                                     lambda x: _clipped_diff(compare_paired(x[1], x[0]))),
        "P(better), Clopper-Pearson": (pair, truth_better,
                                       lambda x: probability_of_improvement(x[1], x[0],
                                                                            True)[1:]),
    }
    print(f"{'interval':<30} " + " ".join(f"{'n=' + str(n):>7}" for n in (3, 5, 10, 20, 30)))
    rng = np.random.default_rng(11)
    for name, (sample, truth, interval) in intervals.items():
        cells = [sim.coverage(rng, sample, truth, interval, n, trials)
                 for n in (3, 5, 10, 20, 30)]
        print(f"{name:<30} " + " ".join(f"{c:>7.3f}" for c in cells), flush=True)


def _bca(x: np.ndarray) -> tuple[float | None, float | None]:
    old = stats.BCA_MIN_N
    stats.BCA_MIN_N = 2  # BCa at every n, to show why it is not used below 30
    try:
        return stats.bootstrap_ci(x, n_resamples=999)
    finally:
        stats.BCA_MIN_N = old


def _clipped_diff(c: object) -> tuple[float | None, float | None]:
    low, high = getattr(c, "diff_ci_low"), getattr(c, "diff_ci_high")
    return stats.clip((low, high), stats.bounds_of("accuracy", difference=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the simulations")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    start = time.perf_counter()
    null_table(1000 // scale)
    race_table(200 // scale)
    coverage_table(1000 // scale)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
