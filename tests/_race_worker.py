"""A `noise-search` process whose engine is a fake trainer that logs every block it trains
(tests/test_race_workers.py): `python -m tests._race_worker LOG run STUDY_FILE ...`.

Each block appends "start" before and "end" after training (O_APPEND lines, so processes
do not interleave within a line) and takes BLOCK_SECONDS, so a worker can be killed mid-block.
"""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace

import numpy as np

BLOCK_SECONDS = 1.0


def main() -> int:
    log, argv = sys.argv[1], sys.argv[2:]
    from search import engine
    from tests.conftest import FakeTrainer

    fake = FakeTrainer()

    def score(config, repeat: int) -> float:  # known means with a spread per seed
        close = {"none": 0.8, "input:0.1": 0.81, "hidden_pre:0.1": 0.805}
        # The others far below: σ 0.2 at 0.6, σ 0.3 at 0.5.
        base = close[config.key] if config.key in close else 0.8 - config.sigmas[0][1]
        own = np.random.default_rng([repeat, sum(map(ord, config.key))]).normal(0.0, 0.005)
        return round(base + 0.02 * np.sin(3.0 * repeat) + own, 6)

    fake.score = score  # type: ignore[method-assign]

    def train(spec, data, config, repeats=None):
        line = f"{config.key} {repeats.start} {repeats.stop} {os.getpid()}"
        write(f"start {line}\n")
        time.sleep(BLOCK_SECONDS)
        result = fake(spec, data, config, repeats=repeats)
        write(f"end {line}\n")
        return result

    def write(text: str) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    engine.load = lambda name, builder=False: SimpleNamespace(NAME=name, train=train)  # type: ignore
    from search.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
