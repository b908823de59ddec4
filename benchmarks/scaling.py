"""How the fast engine's time grows with repeats, epochs and hidden width.

Run from the repository root:

    .venv/bin/python benchmarks/scaling.py

The engine directly (``search.engine.fast.train``, as a trial calls it; not the CLI), on
the tutorial's problem (studies/circles.toml), one factor at a time around repeats 30,
1,000 epochs, width 500: repeats 10, 30, 100; epochs 1,000, 4,000; width 100, 500, 2,000;
without noise and with hidden_pre σ = 0.1. Each point: wall seconds of the second run
(the first compiles), and seconds per (repeat · epoch · 1,000 hidden units) as the cost
unit, which stays flat when the cost grows linearly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import spec as spec_module  # noqa: E402
from search.data import load_dataset  # noqa: E402
from search.noise import parse_config_key  # noqa: E402

BASE = {"repeats": 30, "epochs": 1000, "width": 500}
POINTS = [("repeats", 10), ("repeats", 30), ("repeats", 100), ("epochs", 4000),
          ("width", 100), ("width", 2000)]


def seconds(repeats: int, epochs: int, width: int, key: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one trial after a first, compiling one."""
    from search.engine import fast

    spec = spec_module.load(ROOT / "studies" / "circles.toml",
                            [f"study.repeats={repeats}", f"model.epochs={epochs}",
                             f"model.hidden=[{width}]"])
    data = load_dataset(spec)
    config = parse_config_key(key)
    fast.train(spec, data, config)
    wall, cpu = time.perf_counter(), time.process_time()
    fast.train(spec, data, config)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["none", "hidden_pre:0.1"])
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    header = (f"{'config':<16}{'repeats':>8}{'epochs':>8}{'width':>7}{'wall s':>9}{'CPU s':>8}"
              f"{'µs per repeat·epoch·1000 units':>32}")
    print(header)
    print("-" * len(header))
    for key in args.configs:
        for factor, value in POINTS:
            point = {**BASE, factor: value}
            wall, cpu = seconds(point["repeats"], point["epochs"], point["width"], key)
            unit = wall / (point["repeats"] * point["epochs"] * point["width"] / 1000) * 1e6
            print(f"{key:<16}{point['repeats']:>8}{point['epochs']:>8}{point['width']:>7}"
                  f"{wall:>9.2f}{cpu:>8.2f}{unit:>32.1f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
