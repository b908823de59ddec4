"""Seconds per model and per epoch of a model builder's study on the keras engine.

Run from the repository root:

    .venv/bin/python benchmarks/builder_models.py [--study studies/digits_cnn.toml]

Trains repeat 0 of the study's baseline (no noise) and of its first placement with
``--short`` and ``--long`` epochs (search.engine.keras_builder.train, exactly as a trial
trains one repeat: build, compile, fit, clean evaluation every ``record_every`` epochs), with
``jit_compile`` on and off. Per epoch = (long - short) / (long - short epochs); per model =
the time of one ``study.model.epochs``-epoch model, from the same two points (what does
not grow with the epochs -- building, tracing, compiling -- is the intercept).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import spec as spec_module  # noqa: E402
from search.data import load_dataset  # noqa: E402
from search.engine import keras_builder  # noqa: E402


def seconds(spec: spec_module.StudySpec, data, config, epochs: int) -> float:  # noqa: ANN001
    one = dataclasses.replace(
        spec, study=dataclasses.replace(spec.study, repeats=1),
        model=dataclasses.replace(spec.model, epochs=epochs))
    started = time.perf_counter()
    keras_builder.train(one, data, config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "digits_cnn.toml"))
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=40)
    args = parser.parse_args()
    spec = spec_module.load(args.study)
    data = load_dataset(spec)
    configs = spec.configurations()[:2]
    seconds(spec, data, configs[0], 1)  # warm-up: TensorFlow's first-call costs, not the model's
    print(f"{spec.study.name}: {len(data.x_train)} training rows {data.x_train.shape[1:]}, "
          f"batch {spec.model.batch_size}, record_every {spec.study.record_every}, "
          f"{spec.model.epochs}-epoch models; load {open('/proc/loadavg').read().split()[0]}")
    print("| jit_compile | configuration | s per model | s per epoch | s fixed (build+compile) |")
    print("|---|---|---:|---:|---:|")
    for jit in (True, False):
        keras_builder.JIT_COMPILE = jit
        for config in configs:
            short = seconds(spec, data, config, args.short)
            long = seconds(spec, data, config, args.long)
            per_epoch = (long - short) / (args.long - args.short)
            fixed = short - per_epoch * args.short
            per_model = fixed + per_epoch * spec.model.epochs
            print(f"| {jit} | {config.key} | {per_model:.2f} | {per_epoch:.3f} | {fixed:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
