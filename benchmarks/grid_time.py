"""The tutorial grid end to end through the CLI, and Keras `model.fit` per model beside it.

Run from the repository root:

    .venv/bin/python benchmarks/grid_time.py

1. ``noise-search run studies/circles.toml`` on a fresh SQLite file in a temporary directory
   (33 configurations × 30 repeats × 4,000 epochs, then the end-of-run summary and the
   optuna-dashboard figures), as a user runs it. Printed: wall time, CPU time and CPU
   utilisation (CPU seconds / wall seconds / cores), and the split into phases, read from
   the time each line of the run's output appears:
   * start-up: launch until the first configuration starts (Python, TensorFlow, storage);
   * compile: per placement, its first trial's time minus the median of its other trials
     (the first trial of a placement compiles its XLA program; an estimate);
   * training: the trials' time less compile;
   * figures: the last configuration's line until the process exits (summary, figures).
2. Keras: the tutorial's model and ``model.fit(..., validation_data=...)`` with the
   validation pass every epoch, 150 epochs run and scaled to 4,000 (as
   benchmarks/engine_vs_keras.py), for the placements given.
3. The ratio: Keras seconds per model ÷ (grid wall seconds / models trained), with the
   fastest Keras placement measured (the ratio least favourable to the engine).

The XLA compilation cache is whatever the engine uses by default; ``--cold`` points it at
an empty directory, so that the run compiles every program.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

STUDY = ROOT / "studies" / "circles.toml"
LINE = re.compile(r"^\s+(?P<config>\S+)\s+test .*\[(?P<seconds>[0-9.]+) s\]\s*$")


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("noise-search")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "search.cli"]


def run_grid(workdir: Path, cold: bool) -> dict[str, float]:
    """Run the tutorial through the CLI; wall, CPU and phase seconds."""
    env = dict(os.environ)
    if cold:
        env["NOISE_SEARCH_XLA_CACHE"] = str(workdir / "xla-cache")
    url = f"sqlite:///{workdir / 'tutorial.db'}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen([*_cli(), "run", str(STUDY), "--storage", url], cwd=workdir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    trials: list[tuple[str, float, float]] = []  # (config, trial seconds, time of its line)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = LINE.match(line)
        if match:
            trials.append((match["config"], float(match["seconds"]),
                           time.perf_counter() - started))
    if proc.wait() != 0:
        raise SystemExit(f"noise-search run failed with exit code {proc.returncode}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    first_config, first_seconds, first_line = min(trials, key=lambda t: t[2])
    by_placement: dict[str, list[float]] = {}
    for config, seconds, _ in sorted(trials, key=lambda t: t[2]):
        by_placement.setdefault(config.split(":")[0], []).append(seconds)
    compile_s = sum(max(0.0, s[0] - statistics.median(s[1:])) for s in by_placement.values()
                    if len(s) > 1)
    trial_s = sum(t[1] for t in trials)
    return {"wall": wall, "cpu": cpu, "trials": len(trials),
            "startup": first_line - first_seconds, "compile": compile_s,
            "training": trial_s - compile_s, "trial_sum": trial_s,
            "figures": wall - max(t[2] for t in trials)}


def keras_per_model(placements: list[str], keras_epochs: int, epochs: int) -> dict[str, float]:
    from engine_vs_keras import PLACEMENTS, keras_seconds_per_model

    from search import spec as spec_module
    from search.data import load_dataset

    spec = spec_module.load(STUDY, [f"model.epochs={epochs}"])
    data = load_dataset(spec)
    return {PLACEMENTS[p]: keras_seconds_per_model(spec, data, PLACEMENTS[p], keras_epochs,
                                                   epochs)[0] for p in placements}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-placements", nargs="*", default=["none", "hidden_pre"],
                        choices=["none", "input", "hidden_pre", "hidden_post"])
    parser.add_argument("--keras-epochs", type=int, default=150)
    parser.add_argument("--cold", action="store_true",
                        help="compile every XLA program (empty compilation cache)")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"load average before: {os.getloadavg()[0]:.2f}, {cores} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="grid-time-") as tmp:
        g = run_grid(Path(tmp), args.cold)
    models = g["trials"] * 30
    print(f"grid: {g['trials']:.0f} configurations x 30 repeats x 4000 epochs through the CLI on "
          f"a fresh SQLite file{' (cold compilation cache)' if args.cold else ''}")
    busy = g["cpu"] / g["wall"]
    print(f"  wall {g['wall']:.1f} s, CPU {g['cpu']:.1f} s, utilisation {busy:.2f} of {cores} "
          f"cores ({100 * busy / (cores or 1):.0f}%)")
    print(f"  phases: start-up {g['startup']:.1f} s, compile ~{g['compile']:.1f} s, training "
          f"{g['training']:.1f} s, figures and summary {g['figures']:.1f} s")
    print(f"  load average after the grid: {os.getloadavg()[0]:.2f}", flush=True)
    if not args.keras_placements:
        return 0
    keras = keras_per_model(args.keras_placements, args.keras_epochs, 4000)
    per_model = g["wall"] / models
    print(f"Keras model.fit, validation every epoch, {args.keras_epochs} epochs scaled to 4000:")
    for key, seconds in keras.items():
        print(f"  {key:<16} {seconds:7.1f} s per model   ratio {seconds / per_model:7.0f}")
    best = min(keras.values())
    print(f"grid: {per_model:.3f} s per model trained ({models:.0f} models); ratio to the "
          f"fastest Keras model above: {best / per_model:.0f}x (goal >= 2400x)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
