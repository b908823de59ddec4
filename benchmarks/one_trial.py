"""One configuration of the tutorial in a fresh process: import, compile, train (30 x 4,000).

    PYTHONPATH=. .venv/bin/python benchmarks/one_trial.py hidden_pre:0.1 [SECTION.KEY=VALUE ...]

Timed from outside as a whole process (e.g. /usr/bin/time -v), against another checkout of
the engine by pointing PYTHONPATH there. $NOISE_SEARCH_XLA_CACHE= (empty) compiles afresh.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from search import spec as spec_module  # noqa: E402
from search.data import load_dataset  # noqa: E402
from search.engine import fast  # noqa: E402
from search.noise import parse_config_key  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "studies" / "circles.toml"

if __name__ == "__main__":
    spec = spec_module.load(STUDY, sys.argv[2:])
    result = fast.train(spec, load_dataset(spec), parse_config_key(sys.argv[1]))
    print(f"{sys.argv[1]}: mean test {spec.metric} {result.test_metric.mean():.4f}")
