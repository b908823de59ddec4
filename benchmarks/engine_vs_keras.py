"""Seconds per trained 4000-epoch model: Keras `model.fit` as the tutorial runs it vs the engine.

Run from the repository root:

    .venv/bin/python benchmarks/engine_vs_keras.py

For each tutorial placement (none, input σ=0.01, hidden_pre σ=0.1, hidden_post σ=0.1)
on the tutorial's problem (studies/circles.toml: 30 training rows of make_circles,
Dense(500, relu) + Dense(1, sigmoid), Adam, batch 32):

* Keras: the tutorial's model and ``model.fit(trainX, trainy, validation_data=(testX,
  testy), verbose=0)``, i.e. with the validation pass every epoch. It runs
  ``--keras-epochs`` epochs (not 4000) and is scaled to 4000: the first ``fit`` call's
  one-time cost (tracing) is measured separately and added once, the per-epoch time of
  the rest is multiplied by the remaining epochs.
* Fast engine: ``search.engine.fast.train`` exactly as a study runs a trial: 30 repeats
  batched, 4000 epochs, clean curves every ``record_every`` epochs. The first run of a
  placement compiles its XLA program (once per placement; every σ of the grid reuses it),
  so it is timed separately; seconds per model are the second run's time / repeats.

Both run in this process, one after the other, on the same machine.
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

# The tutorial's placements and the σ it uses for each.
PLACEMENTS = {"none": "none", "input": "input:0.01", "hidden_pre": "hidden_pre:0.1",
              "hidden_post": "hidden_post:0.1"}


def keras_seconds_per_model(spec: spec_module.StudySpec, data, key: str, epochs: int,
                            target_epochs: int) -> tuple[float, float, float]:
    """(seconds per model scaled to target_epochs, first-call seconds, seconds per epoch)."""
    import keras

    from search.engine import keras_ref

    keras.backend.clear_session()
    model = keras_ref.build_model(spec, data, parse_config_key(key))
    fit = dict(validation_data=(data.x_test, data.y_test), verbose=0,
               batch_size=spec.model.batch_size)
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=1, **fit)  # traces train and test functions
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, **fit)
    per_epoch = (time.perf_counter() - started) / epochs
    return first + per_epoch * (target_epochs - 1), first, per_epoch


def fast_seconds_per_model(spec: spec_module.StudySpec, data, key: str) -> tuple[float, float]:
    """(seconds per model, seconds of the first run, which compiles) for one trial of
    ``spec.study.repeats`` repeats."""
    from search.engine import fast

    config = parse_config_key(key)
    started = time.perf_counter()
    fast.train(spec, data, config)
    first = time.perf_counter() - started
    started = time.perf_counter()
    result = fast.train(spec, data, config)
    run = time.perf_counter() - started
    assert not result.diverged
    return run / spec.study.repeats, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "circles.toml"))
    parser.add_argument("--keras-epochs", type=int, default=150,
                        help="epochs Keras actually runs (scaled to --epochs); default 150")
    parser.add_argument("--epochs", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--placements", nargs="+", default=list(PLACEMENTS),
                        choices=list(PLACEMENTS))
    args = parser.parse_args(argv)

    spec = spec_module.load(args.study, [f"model.epochs={args.epochs}",
                                         f"study.repeats={args.repeats}"])
    data = load_dataset(spec)
    import tensorflow as tf

    print(f"study {args.study}: {len(data.x_train)} train rows, hidden {list(spec.model.hidden)},"
          f" {spec.model.optimizer}, batch {spec.model.batch_size}, {args.epochs} epochs; "
          f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"Keras: model.fit with validation_data every epoch, {args.keras_epochs} epochs run "
          f"and scaled to {args.epochs}. Fast engine: {args.repeats} repeats in one trial, "
          f"{args.epochs} epochs run, curves every {spec.study.record_every} epochs.")
    rows = []
    for name in args.placements:
        key = PLACEMENTS[name]
        k_model, k_first, k_epoch = keras_seconds_per_model(spec, data, key, args.keras_epochs,
                                                            args.epochs)
        f_model, f_first = fast_seconds_per_model(spec, data, key)
        rows.append((key, k_epoch * 1000, k_first, k_model, f_model, f_first,
                     k_model / f_model))
        print(f"  done {key}", flush=True)
    header = (f"{'placement':<16} {'keras ms/epoch':>14} {'keras 1st fit s':>15} "
              f"{'keras s/model*':>14} {'fast s/model':>12} {'fast 1st run s':>14} "
              f"{'ratio':>7}")
    print()
    print(header)
    print("-" * len(header))
    for key, k_epoch, k_first, k_model, f_model, f_first, ratio in rows:
        print(f"{key:<16} {k_epoch:>14.1f} {k_first:>15.2f} {k_model:>14.1f} {f_model:>12.3f} "
              f"{f_first:>14.1f} {ratio:>7.0f}")
    print(f"* Keras seconds per {args.epochs}-epoch model = 1st fit + ms/epoch × "
          f"{args.epochs - 1}, from {args.keras_epochs} measured epochs (scaled, not run).")
    print(f"  fast s/model = a {args.repeats}-repeat trial's seconds / {args.repeats}, from its "
          "second run; the 1st run (whole trial) includes XLA compilation, done once per "
          "placement and shared by every σ.")
    print(f"  ratio = keras s/model ÷ fast s/model; minimum {min(r[-1] for r in rows):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
