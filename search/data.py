"""Datasets: sklearn generators and CSV files, split as the tutorial does, scaled on train rows.

The first ``n_train`` rows train and the rest test, exactly as the tutorial
slices ``X[:n_train]``; scaling is fitted on the training rows only, so the
test rows never leak into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import datasets as skd
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from search.errors import NoiseSearchError
from search.spec import DataSpec, StudySpec


@dataclass(frozen=True)
class Dataset:
    """Arrays ready for an engine. ``y`` is (n, 1) float for binary and regression,
    (n,) int class indices for multi-class."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # binary | multiclass | regression
    n_classes: int  # 0 for regression
    feature_names: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        if self.task == "multiclass":
            return self.n_classes
        return 1


def _generate(d: DataSpec) -> tuple[np.ndarray, np.ndarray, str]:
    n, rs = d.n_samples, d.random_state
    if d.dataset == "circles":
        x, y = skd.make_circles(n_samples=n, noise=d.noise, random_state=rs,
                                factor=d.factor if d.factor is not None else 0.8)
        return x, y, "binary"
    if d.dataset == "moons":
        x, y = skd.make_moons(n_samples=n, noise=d.noise, random_state=rs)
        return x, y, "binary"
    if d.dataset == "blobs":
        centers = d.centers or 2
        x, y = skd.make_blobs(n_samples=n, n_features=d.n_features or 2, centers=centers,
                              cluster_std=d.cluster_std or 1.0, random_state=rs)
        return x, y, "binary" if centers == 2 else "multiclass"
    if d.dataset == "classification":
        classes = d.n_classes or 2
        features = d.n_features or 20
        informative = d.n_informative or 2
        x, y = skd.make_classification(
            n_samples=n, n_features=features, n_informative=informative,
            n_redundant=min(2, features - informative), n_classes=classes, random_state=rs,
        )
        return x, y, "binary" if classes == 2 else "multiclass"
    if d.dataset == "regression":
        x, y = skd.make_regression(n_samples=n, n_features=d.n_features or 10,
                                   n_informative=d.n_informative or 10, noise=d.noise,
                                   random_state=rs)
        return x, y, "regression"
    if d.dataset == "friedman1":
        x, y = skd.make_friedman1(n_samples=n, n_features=d.n_features or 10, noise=d.noise,
                                  random_state=rs)
        return x, y, "regression"
    raise AssertionError(f"no generator for {d.dataset!r}")  # spec validation keeps this out


def _read_csv(spec: StudySpec) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
    import csv

    d = spec.data
    assert d.path is not None and d.target is not None
    path = Path(d.path)
    if not path.is_absolute():
        path = spec.source.parent / path
    src = f"{spec.source}: 'data.path' {d.path!r}"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise NoiseSearchError(f"{src} cannot be read ({exc.strerror or exc})") from None
    if not rows:
        raise NoiseSearchError(f"{src} is empty; expected a header row and data rows")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if d.target not in header:
        raise NoiseSearchError(
            f"{spec.source}: 'data.target' must name a column of {path.name} "
            f"({', '.join(header)}); got {d.target!r}"
        )
    t = header.index(d.target)
    features = tuple(h for i, h in enumerate(header) if i != t)
    x = np.empty((len(body), len(features)))
    targets = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise NoiseSearchError(
                f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
            )
        values = [c.strip() for i, c in enumerate(row) if i != t]
        for j, value in enumerate(values):
            try:
                x[line - 2, j] = float(value)
            except ValueError:
                raise NoiseSearchError(
                    f"{path}: feature column {features[j]!r} must be numeric; got {value!r} "
                    f"on line {line}"
                ) from None
        targets.append(row[t].strip())
    task = spec.task
    if task == "regression":
        try:
            y = np.array([float(v) for v in targets])
        except ValueError:
            bad = next(v for v in targets if not _is_float(v))
            raise NoiseSearchError(
                f"{path}: regression target column {d.target!r} must be numeric; got {bad!r}"
            ) from None
        return x, y, "regression", features
    labels = sorted(set(targets))
    if len(labels) < 2:
        raise NoiseSearchError(
            f"{path}: target column {d.target!r} must hold at least 2 classes; got {labels}"
        )
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[v] for v in targets])
    return x, y, "binary" if len(labels) == 2 else "multiclass", features


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_dataset(spec: StudySpec) -> Dataset:
    """Make or read the data, split it (first n_train rows train), scale on the train rows."""
    d = spec.data
    if d.dataset == "csv":
        x, y, task, names = _read_csv(spec)
        if d.n_train >= len(x):
            raise NoiseSearchError(
                f"{spec.source}: 'data.n_train' must be < the number of rows in {d.path} "
                f"({len(x)}) so that rows remain to test on; got {d.n_train}"
            )
    else:
        x, y, task = _generate(d)
        names = tuple(f"x{i}" for i in range(x.shape[1]))
    x = np.asarray(x, dtype=np.float64)
    x_train, x_test = x[: d.n_train], x[d.n_train :]
    if d.scale != "none":
        scaler = StandardScaler() if d.scale == "standard" else MinMaxScaler()
        scaler.fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    if task == "multiclass":
        n_classes = int(np.max(y)) + 1
        y_all: np.ndarray = np.asarray(y, dtype=np.int32)
    else:
        n_classes = 2 if task == "binary" else 0
        y_col = np.asarray(y, dtype=np.float64).reshape(-1, 1)
        if task == "regression" and d.scale_target not in (None, "none"):
            # Fitted on the training rows only, like the features.
            target_scaler = StandardScaler() if d.scale_target == "standard" else MinMaxScaler()
            target_scaler.fit(y_col[: d.n_train])
            y_col = target_scaler.transform(y_col)
        y_all = y_col.astype(np.float32)
    return Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_all[: d.n_train],
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_all[d.n_train :],
        task=task,
        n_classes=n_classes,
        feature_names=names,
    )
