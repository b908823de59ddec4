"""Seconds per model of a builder study at 30 seeds: the jax engine against the keras engine
(``model.fit`` per seed) in the same run, and whether their 30-seed means agree.

Run from the repository root:

    .venv/bin/python benchmarks/jax_engine.py [--study studies/digits_cnn.toml] [--seeds 30]
        [--keras-seeds 30] [--json results.json]

For each configuration of the study's grid, in the grid's order, alternating so that a change
in the machine's load hits both engines alike:

* jax: ``search.engine.jax_builder.train``, every seed in one call, exactly as a trial trains.
  Its first call starts the engine's process (JAX, Keras); the first configuration of each
  placement compiles its program (every σ of the placement reuses it), with an empty cache
  of compiled programs unless $NOISE_SEARCH_XLA_CACHE names one. All of it is counted.
* keras: ``search.engine.keras_builder.train``, ``model.fit`` per seed, on the first
  ``--keras-seeds`` seeds, as the keras engine trains a trial.

Per configuration: seconds per model of each engine, the ratio, the mean test metric and its
standard deviation over the seeds, and Welch's unpaired t-test of the two engines' means (the
engines draw different random numbers, so seeds do not pair across them). Then the totals,
the devices, the load average before and after, and where the jax engine's time goes: a
second pass over the grid in a process of its own on Keras's JAX backend, timing start-up,
building, compiling, training and measuring separately (``--breakdown`` runs only that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Compile afresh, as a study's first run does (set it to a directory to measure a warm cache).
WARM_CACHE = os.environ.get("NOISE_SEARCH_XLA_CACHE")
os.environ.setdefault("NOISE_SEARCH_XLA_CACHE", tempfile.mkdtemp(prefix="jax-engine-xla-"))

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import spec as spec_module  # noqa: E402
from search.data import load_dataset  # noqa: E402


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def compare(spec: spec_module.StudySpec, keras_seeds: int) -> list[dict]:
    """Both engines on every configuration; one row each."""
    from scipy import stats

    from search.engine import jax_builder, keras_builder

    data = load_dataset(spec)
    few = spec_module.load(spec.source, [f"study.repeats={keras_seeds}",
                                         "study.engine='keras'"])
    rows = []
    print("| configuration | jax s/model | keras s/model | ratio | jax mean ± sd | "
          "keras mean ± sd | Welch p |\n|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for config in spec.configurations():
        started = time.perf_counter()
        ours = jax_builder.train(spec, data, config)
        jax_seconds = (time.perf_counter() - started) / spec.study.repeats
        started = time.perf_counter()
        theirs = keras_builder.train(few, data, config)
        keras_seconds = (time.perf_counter() - started) / keras_seeds
        p = float(stats.ttest_ind(ours.test_metric, theirs.test_metric, equal_var=False).pvalue)
        row = {"config": config.key, "jax_s": jax_seconds, "keras_s": keras_seconds,
               "jax": ours.test_metric.tolist(), "keras": theirs.test_metric.tolist(), "p": p}
        rows.append(row)
        print(f"| {config.key} | {jax_seconds:.3f} | {keras_seconds:.2f} | "
              f"{keras_seconds / jax_seconds:.1f} | {ours.test_metric.mean():.4f} ± "
              f"{ours.test_metric.std(ddof=1):.4f} | {theirs.test_metric.mean():.4f} ± "
              f"{theirs.test_metric.std(ddof=1):.4f} | {p:.3f} |", flush=True)
    return rows


def summary(rows: list[dict], spec: spec_module.StudySpec, keras_seeds: int) -> None:
    jax_total = sum(r["jax_s"] for r in rows) * spec.study.repeats
    keras_total = sum(r["keras_s"] for r in rows) * keras_seeds
    jax_per = jax_total / (len(rows) * spec.study.repeats)
    keras_per = keras_total / (len(rows) * keras_seeds)
    significant = sum(r["p"] < 0.05 for r in rows)
    print(f"\nwhole grid: jax {jax_total:.1f} s for {len(rows) * spec.study.repeats} models "
          f"({jax_per:.3f} s/model), keras {keras_total:.1f} s for {len(rows) * keras_seeds} "
          f"models ({keras_per:.2f} s/model): {keras_per / jax_per:.1f}x")
    print(f"Welch p < 0.05 in {significant} of {len(rows)} configurations "
          f"(chance alone: {0.05 * len(rows):.2f} expected)")


def breakdown(spec: spec_module.StudySpec) -> None:
    """In a process on Keras's JAX backend: the jax engine's time on the grid, by phase."""
    import jax

    from search.engine import _replicas as replicas

    data = load_dataset(spec)
    spent = {"build": 0.0, "initial values": 0.0, "compile": 0.0, "train": 0.0,
             "measure": 0.0}

    def timed(phase: str, work):  # noqa: ANN001, ANN202
        started = time.perf_counter()
        value = jax.block_until_ready(work())
        spent[phase] += time.perf_counter() - started
        return value

    threads = replicas.threads()
    for config in spec.configurations():
        program = timed("build", lambda: replicas.program_for(spec, data, config))
        timed("initial values", lambda: [replicas.initial_values(spec, r)
                                         for r in range(spec.study.repeats)])
        timed("compile", lambda: replicas.replicas_at_once(spec, program, spec.study.repeats,
                                                           threads))
        groups = replicas.Groups(program, config, range(spec.study.repeats), threads)
        done = 0
        for point in replicas.record_epochs(spec.model.epochs, spec.study.record_every):
            timed("train", lambda: (groups.train(done, point), groups.states)[1])  # noqa: B023
            done = point
            timed("measure", lambda: replicas._measure(groups, data, spec.metric))
        groups.close()
    total = sum(spent.values())
    print(f"jax engine's process, {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{threads} groups of repeats side by side; {len(spec.configurations())} "
          f"configurations x {spec.study.repeats} seeds:")
    for phase, seconds in spent.items():
        print(f"  {phase:15s} {seconds:7.1f} s  {100 * seconds / total:4.0f}%")


def breakdown_in_jax_process(args: argparse.Namespace) -> None:
    env = dict(os.environ, KERAS_BACKEND="jax")
    if WARM_CACHE is None:  # afresh again: the comparison above filled its cache
        env["NOISE_SEARCH_XLA_CACHE"] = tempfile.mkdtemp(prefix="jax-engine-xla-")
    started = time.perf_counter()
    code = ("import time; t = time.perf_counter(); from search.usercode import load_tensorflow; "
            "load_tensorflow(); import keras, jax; "
            "print(f'  start-up       {time.perf_counter() - t:7.1f} s  (TensorFlow, Keras, "
            "JAX imported; once per process)', flush=True)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    subprocess.run([sys.executable, __file__, "--breakdown", "--study", args.study,
                    "--seeds", str(args.seeds)], env=env, check=True)
    print(f"  (the pass took {time.perf_counter() - started:.1f} s in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "digits_cnn.toml"))
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--keras-seeds", type=int, default=30)
    parser.add_argument("--json", help="write the per-seed results here")
    parser.add_argument("--breakdown", action="store_true",
                        help="only the jax engine's time by phase (run with KERAS_BACKEND=jax)")
    args = parser.parse_args()
    spec = spec_module.load(args.study, [f"study.repeats={args.seeds}"])
    if args.breakdown:
        breakdown(spec)
        return
    import jax
    import tensorflow as tf

    print(f"{spec.study.name}: {spec.model.epochs} epochs, batch {spec.model.batch_size}, "
          f"{len(spec.configurations())} configurations, jax {args.seeds} seeds and keras "
          f"{args.keras_seeds} per configuration; load average {load_average()}; jax engine "
          f"on {jax.devices()[0].device_kind} (JAX {jax.__version__}), keras engine on "
          f"{'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'} (TensorFlow "
          f"{tf.__version__}), {os.cpu_count()} CPUs\n", flush=True)
    started = time.perf_counter()
    rows = compare(spec, args.keras_seeds)
    summary(rows, spec, args.keras_seeds)
    print(f"load average after: {load_average()} ({time.perf_counter() - started:.0f} s)\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    breakdown_in_jax_process(args)


if __name__ == "__main__":
    main()
