"""Decision boundaries of repeat 0 of the baseline and the best configuration: the report's
one step that may train, and so its own (`with_boundaries`, after `collect` has read the
study; the CLI runs it outside the storage's retries, so an outage never repeats training).

Drawn through the engine interface: ``engine.load(<the study's engine>).predict(spec, data,
weights, x)`` on a grid over the data, with repeat 0's final weights as `collect` read
them. Where the study did not store those weights, repeat 0 is trained again from the
stored spec with the study's OWN engine (same initial weights, data order and noise as the
study's repeat 0: common random numbers, docs/ARCHITECTURE.md), and the score of the model
drawn is checked against the score the study stored. An engine that cannot predict or
return weights gives a note "decision boundary not available: ...", never a boundary from
another engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from search.errors import NoiseSearchError
from search.metrics import metric_value
from search.report.collect import Boundary, ConfigData, Points, Progress, ReportData, rounded

BOUNDARY_GRID = 60  # points per axis of a decision-boundary grid: smooth enough, small to store
NOT_AVAILABLE = "decision boundary not available"
Weights = Sequence[np.ndarray]


def with_boundaries(data: ReportData, progress: Progress | None = None) -> ReportData:
    """``data`` with the decision boundaries of the baseline and the best, their data points,
    and notes on any that is missing or doubtful. Reads no storage; may train repeat 0 of a
    configuration whose weights the study did not store."""
    found, points, notes = decision_boundaries(data, progress)
    return replace(data, boundaries=found, points=points, notes=(*data.notes, *notes))


def decision_boundaries(data: ReportData, progress: Progress | None,
                        ) -> tuple[tuple[Boundary, ...], Points | None, tuple[str, ...]]:
    """(boundaries, data points, notes). Notes say why a boundary is missing or doubtful."""
    from search import spec as spec_module
    from search.data import load_dataset

    if data.spec.builder is not None:
        return (), None, ("decision boundaries are drawn for the built-in MLP on 2-D data only; "
                          "this study trains a model builder's model",)
    try:
        spec = spec_module.from_dict(data.spec.raw, "stored spec", data.name)
        dataset = load_dataset(spec)
    except NoiseSearchError as exc:
        return (), None, (f"decision boundaries skipped: the data cannot be rebuilt ({exc})",)
    if dataset.n_features != 2:
        return (), None, (f"decision boundaries are drawn for 2-D data only; this dataset has "
                          f"{dataset.n_features} features",)
    if dataset.task == "regression":
        return (), None, ("decision boundaries are drawn for classification only",)
    chosen = list({c.config: c for c in (data.baseline, data.best) if c is not None}.values())
    from search import engine

    own = engine.for_study(spec)
    if not callable(getattr(own, "predict", None)):
        return (), None, (f"{NOT_AVAILABLE}: the {spec.study.engine} engine cannot predict "
                          "from weights",)
    xs, ys, grid = _grid(np.concatenate([dataset.x_train, dataset.x_test]))
    found: list[Boundary] = []
    notes: list[str] = []
    for config in chosen:
        weights, retrained, why = _weights(own, spec, dataset, config, data, progress)
        if weights is None:
            notes.append(f"{NOT_AVAILABLE} for {config.config}: {why}")
            continue
        found.append(_boundary(own, spec, dataset, config, weights, (xs, ys, grid)))
        notes += _doubt(found[-1], retrained, spec.study.engine)
    return tuple(found), _points(dataset) if found else None, tuple(notes)


def _grid(x_all: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axes padded by 10% around the data, and the grid's points row by row."""
    lo, hi = x_all.min(axis=0), x_all.max(axis=0)
    pad = 0.1 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], BOUNDARY_GRID)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], BOUNDARY_GRID)
    gx, gy = np.meshgrid(xs, ys)  # z[i][j] belongs to (xs[j], ys[i]), as Plotly expects
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def _weights(own: Any, spec: Any, dataset: Any, config: ConfigData, data: ReportData,
             progress: Progress | None) -> tuple[Weights | None, bool, str]:
    """(weights of repeat 0, whether they were retrained, why there are none)."""
    weights = data.weights.get(config.config)  # None: an older study, or too many numbers
    if weights is not None:
        return weights, False, ""
    from search.noise import parse_config_key

    if progress is not None:
        progress(f"retraining {config.config}", 0)
    # All repeats, exactly as the study trained them: a batch of one rounds differently.
    result = own.train(spec, dataset, parse_config_key(config.config, spec.noise.kind))
    if progress is not None:
        progress(f"retrained {config.config}", 1)
    weights = getattr(result, "weights", None)
    if weights is None:
        return None, True, (f"the study stored no weights and the {spec.study.engine} engine "
                            "does not return them")
    return weights, True, ""


def _boundary(own: Any, spec: Any, dataset: Any, config: ConfigData, weights: Weights,
              grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Boundary:
    xs, ys, points = grid
    out = np.asarray(own.predict(spec, dataset, weights, points))
    if dataset.task == "binary":
        z, kind = out.reshape(len(points)), "probability"
    else:
        z, kind = np.argmax(out, axis=1).astype(np.float64), "class"
    return Boundary(
        config=config.config, xs=rounded(xs, 4), ys=rounded(ys, 4),
        z=tuple(rounded(row, 3) for row in z.reshape(len(ys), len(xs))), kind=kind,
        test_metric=metric_value(dataset.task, spec.metric,
                                 own.predict(spec, dataset, weights, dataset.x_test),
                                 dataset.y_test),
        stored_test_metric=float(config.test_values[0]) if config.test_values else math.nan)


def _doubt(b: Boundary, retrained: bool, engine_name: str) -> list[str]:
    """A note when the model drawn does not score what the study stored for repeat 0."""
    if abs(b.test_metric - b.stored_test_metric) <= 1e-6:  # stored to 6 digits
        return []
    if retrained:
        return [f"{b.config}: repeat 0 retrained with the {engine_name} engine scores "
                f"{b.test_metric:.6f}, the study stored {b.stored_test_metric:.6f}; the engine "
                "has changed since the study ran"]
    return [f"{b.config}: the stored weights of repeat 0 score {b.test_metric:.6f} through the "
            f"{engine_name} engine's predict, the study stored {b.stored_test_metric:.6f}"]


def _points(dataset: Any) -> Points:
    def labels(y: np.ndarray) -> tuple[int, ...]:
        return tuple(int(v) for v in np.asarray(y).reshape(len(y), -1)[:, 0])

    def pairs(x: np.ndarray) -> tuple[tuple[float, float], ...]:
        return tuple((round(float(a), 4), round(float(b), 4)) for a, b in x)

    names = dataset.feature_names if len(dataset.feature_names) == 2 else ("x0", "x1")
    return Points(x_train=pairs(dataset.x_train), y_train=labels(dataset.y_train),
                  x_test=pairs(dataset.x_test), y_test=labels(dataset.y_test),
                  feature_names=(str(names[0]), str(names[1])))
