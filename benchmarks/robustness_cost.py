"""The cost of [robustness] on the tutorial: a trial's time with and without test-time noise
evaluation (5 test σ × 20 draws by default), measured in one process.

    python benchmarks/robustness_cost.py [--set key=value ...]

For each configuration the same trial is trained without and with [robustness] (same seeds,
so the same training work); the evaluation's own time is TrainResult.robustness_seconds. The
first evaluation of a process compiles its XLA program (reported separately, once).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from search import spec as spec_module
from search.data import load_dataset
from search.engine import fast

STUDY = Path(__file__).resolve().parents[1] / "studies" / "circles.toml"
ROBUST = ["robustness.input_std=[0.0, 0.05, 0.1, 0.2, 0.3]", "robustness.draws=20"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--configs", default="none,hidden_pre:0.3")
    args = parser.parse_args()
    plain = spec_module.load(STUDY, [*args.set, "noise.placements=['hidden_pre']",
                                     "noise.std=[0.3]"])
    robust = spec_module.load(STUDY, [*args.set, "noise.placements=['hidden_pre']",
                                      "noise.std=[0.3]", *ROBUST])
    data = load_dataset(plain)
    configs = {c.key: c for c in plain.configurations()}
    first = True
    for key in args.configs.split(","):
        config = configs[key]
        started = time.perf_counter()
        without = fast.train(plain, data, config)
        t_without = time.perf_counter() - started
        started = time.perf_counter()
        with_ = fast.train(robust, data, config)
        t_with = time.perf_counter() - started
        assert np.array_equal(without.test_metric, with_.test_metric)
        if first:  # the evaluation program compiled here; measure it warm once more
            compile_s = with_.robustness_seconds
            warm = fast.train(robust, data, config)
            print(f"first evaluation (compiles): {compile_s:.2f} s, warm: "
                  f"{warm.robustness_seconds:.2f} s")
            with_, first = warm, False
        share = 100 * with_.robustness_seconds / without.seconds
        print(f"{key}: trial without {t_without:.1f} s, with {t_with:.1f} s; evaluation "
              f"{with_.robustness_seconds:.2f} s = {share:.1f}% of the trial without; "
              f"profile {np.round(with_.robustness.mean(axis=0), 3)}")


if __name__ == "__main__":
    main()
