"""Datasets: sklearn generators, CSV files, scikit-learn's digits and arrays of your own
(an .npz file or a Python loader), split as the tutorial does, scaled on train rows.

The first ``n_train`` rows train and the rest test, exactly as the tutorial
slices ``X[:n_train]`` (an .npz file or a loader gives its own split); scaling is fitted on
the training rows only, so the test rows never leak into it. Features keep their shape
((n, 8, 8) digits stay images) for a model builder; the built-in MLP gets them flattened.

The task (binary / multiclass / regression) is decided here, once, by :func:`task_of`;
each generator's defaults and the [data] keys it takes live in :data:`GENERATORS`, which
the study file's validation (search.spec) also reads. scikit-learn is imported inside the
functions that need it (it takes seconds), so that ``import search.spec`` stays light.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import NoiseSearchError

if TYPE_CHECKING:
    from search.spec import DataSpec, StudySpec

Problems = list[tuple[str, str]]  # (key, message tail), as search.spec words them


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
        """Numbers per example (an (n, 8, 8) image has 64)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_outputs(self) -> int:
        if self.task == "multiclass":
            return self.n_classes
        return 1


def _classification_problems(p: Mapping[str, Any]) -> Problems:
    """make_classification's constraints between arguments, which it checks only in its body."""
    if p["n_informative"] > p["n_features"]:
        return [("data.n_informative", f"must be <= data.n_features ({p['n_features']}); "
                                       f"got {p['n_informative']}")]
    if p["n_classes"] * 2 > 2 ** p["n_informative"]:  # two clusters per class
        return [("data.n_classes", "must satisfy n_classes * 2 <= 2 ** n_informative "
                                   f"(n_informative = {p['n_informative']}); "
                                   f"got {p['n_classes']}")]
    return []


def _classification_extra(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"n_redundant": min(2, p["n_features"] - p["n_informative"])}


@dataclass(frozen=True)
class Generator:
    """A scikit-learn ``make_*`` function and how the [data] keys reach it."""

    function: str  # name in sklearn.datasets
    keys: tuple[str, ...]  # [data] keys passed as they are (their defaults are DataSpec's)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # keys whose default is ours
    regression: bool = False
    classes: str | None = None  # the key that counts the classes; None: two classes
    problems: Callable[[Mapping[str, Any]], Problems] = lambda p: []  # across arguments
    extra: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda p: {}  # derived arguments

    @property
    def takes(self) -> frozenset[str]:
        return frozenset(self.keys) | frozenset(self.defaults)

    def arguments(self, d: DataSpec) -> dict[str, Any]:
        """The [data] keys as the generator gets them, defaults filled in."""
        given = {key: getattr(d, key) for key in self.keys}
        for key, default in self.defaults.items():
            value = getattr(d, key)
            given[key] = default if value is None else value
        return given

    def sklearn_function(self) -> Callable[..., Any]:
        from sklearn import datasets

        fn: Callable[..., Any] = getattr(datasets, self.function)
        return fn


_SAMPLED = ("n_samples", "noise", "random_state")
GENERATORS: dict[str, Generator] = {
    "circles": Generator("make_circles", _SAMPLED, {"factor": 0.8}),
    "moons": Generator("make_moons", _SAMPLED),
    "blobs": Generator("make_blobs", ("n_samples", "random_state"),
                       {"n_features": 2, "centers": 2, "cluster_std": 1.0}, classes="centers"),
    "classification": Generator(
        "make_classification", ("n_samples", "random_state"),
        {"n_features": 20, "n_informative": 2, "n_classes": 2}, classes="n_classes",
        problems=_classification_problems, extra=_classification_extra),
    "regression": Generator("make_regression", _SAMPLED, {"n_features": 10, "n_informative": 10},
                            regression=True),
    "friedman1": Generator("make_friedman1", _SAMPLED, {"n_features": 10}, regression=True),
}
CSV_KEYS = frozenset({"path", "target", "task"})
# Datasets that are not generated: their own [data] keys. npz and python give their own split.
FILE_KEYS: dict[str, frozenset[str]] = {
    "csv": CSV_KEYS, "digits": frozenset(), "npz": frozenset({"path", "task"}),
    "python": frozenset({"loader", "task"})}
SPLIT_GIVEN = frozenset({"npz", "python"})
DIGITS_ROWS = 1797  # sklearn.datasets.load_digits(): 8x8 images of 10 digits, bundled
DATASETS: tuple[str, ...] = (*GENERATORS, *FILE_KEYS)


def dataset_keys(dataset: str) -> frozenset[str]:
    """The dataset-specific [data] keys ``dataset`` reads."""
    return FILE_KEYS[dataset] if dataset in FILE_KEYS else GENERATORS[dataset].takes


def fixed_rows(d: DataSpec) -> int | None:
    """Rows known from the study file alone (None: counted when the data is read)."""
    if d.dataset in GENERATORS:
        return d.n_samples
    return DIGITS_ROWS if d.dataset == "digits" else None


def rows_name(d: DataSpec) -> str:
    return "data.n_samples" if d.dataset in GENERATORS else f"the rows of {d.dataset!r}"


def task_of(d: DataSpec, n_labels: int | None = None) -> str:
    """The task: 'binary', 'multiclass' or 'regression' -- decided here and nowhere else.

    A generator's follows from the file. A csv classification's follows from its labels,
    counted when the file is read (``n_labels``); until then it is 'classification'.
    """
    if d.dataset == "digits":
        return "multiclass"
    if d.dataset in FILE_KEYS:
        regression, classes = d.task == "regression", n_labels
    else:
        gen = GENERATORS[d.dataset]
        regression = gen.regression
        classes = gen.arguments(d)[gen.classes] if gen.classes else 2
    if regression:
        return "regression"
    if classes is None:
        return "classification"
    return "binary" if classes == 2 else "multiclass"


def _allowed_ranges(constraints: list[Any]) -> tuple[list[Any], str]:
    """scikit-learn's constraints of one argument, and the ranges a number can satisfy."""
    from sklearn.utils._param_validation import Interval, make_constraint

    made = [make_constraint(c) for c in constraints]
    # _RandomStates wraps an Interval with "a RandomState instance or None", which a study
    # file cannot give; say only the ranges.
    parts = [inner for c in made for inner in getattr(c, "_constraints", [c])]
    return made, " or ".join(str(c) for c in parts if isinstance(c, Interval))


def generator_problems(d: DataSpec) -> Problems:
    """[data] values the generator refuses, checked against scikit-learn's own published
    constraints (``_skl_parameter_constraints``, what its ``validate_params`` enforces) and
    the generator's constraints between arguments, so no InvalidParameterError traceback
    reaches a user."""
    gen = GENERATORS[d.dataset]
    fn = gen.sklearn_function()
    published = getattr(fn, "_skl_parameter_constraints", {})
    args = gen.arguments(d)
    for key, value in args.items():
        if key not in published:
            continue
        constraints, ranges = _allowed_ranges(published[key])
        if ranges and not any(c.is_satisfied_by(value) for c in constraints):
            return [(f"data.{key}", f"must be {ranges} (scikit-learn's {gen.function}); "
                                    f"got {value!r}")]
    return gen.problems(args)


def _generate(d: DataSpec, src: str) -> tuple[np.ndarray, np.ndarray]:
    gen = GENERATORS[d.dataset]
    args = gen.arguments(d)
    try:
        x, y = gen.sklearn_function()(**args, **gen.extra(args))
    except ValueError as exc:  # InvalidParameterError too: what generator_problems missed
        message = " ".join(str(exc).split())
        raise NoiseSearchError(f"{src}: scikit-learn's {gen.function} refuses the [data] "
                               f"keys: {message}") from None
    return x, y


def _where(raw: bytes, offset: int) -> str:
    line = raw[:offset].count(b"\n") + 1
    return f"offset {offset} (line {line})"


def _read_rows(path: Path, src: str) -> list[list[str]]:
    """The one way a CSV file is read: UTF-8 text or a one-line error naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NoiseSearchError(f"{src} cannot be read ({exc.strerror or exc})") from None
    not_text = f"{src} must be a UTF-8 text CSV file; got"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoiseSearchError(f"{not_text} byte 0x{raw[exc.start]:02x} at "
                               f"{_where(raw, exc.start)}, which is not UTF-8") from None
    if "\x00" in text:
        raise NoiseSearchError(
            f"{not_text} a NUL byte at {_where(raw, raw.index(0))}, as in a binary file")
    return list(csv.reader(io.StringIO(text, newline="")))


def _finite(value: str, what: str, path: Path, line: int) -> float:
    """A CSV cell as a number; NaN and infinities are refused like any other non-number."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise NoiseSearchError(f"{path}: {what} must hold finite numbers; got {value!r} on "
                               f"line {line}")
    return number


def _csv_path(spec: StudySpec) -> Path:
    assert spec.data.path is not None
    path = Path(spec.data.path)
    return path if path.is_absolute() else spec.source.parent / path


def _read_csv(spec: StudySpec) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """Features (checked finite) and the raw target cells of a CSV file."""
    d, path = spec.data, _csv_path(spec)
    rows = _read_rows(path, f"{spec.source}: 'data.path' {d.path!r}")
    if not rows:
        raise NoiseSearchError(
            f"{spec.source}: 'data.path' {d.path!r} is empty; expected a header row and data rows")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    if d.target not in header:
        raise NoiseSearchError(
            f"{spec.source}: 'data.target' must name a column of {path.name} "
            f"({', '.join(header)}); got {d.target!r}"
        )
    t = header.index(d.target)
    features = tuple(h for i, h in enumerate(header) if i != t)
    x = np.empty((len(body), len(features)))
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise NoiseSearchError(
                f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        values = [c.strip() for i, c in enumerate(row) if i != t]
        for j, value in enumerate(values):
            x[line - 2, j] = _finite(value, f"feature column {features[j]!r}", path, line)
    return x, [row[t].strip() for row in body], features


def _csv_targets(spec: StudySpec, cells: list[str]) -> tuple[np.ndarray, str]:
    """Targets as numbers (regression) or class indices of the sorted labels, and the task."""
    d, path = spec.data, _csv_path(spec)
    if task_of(d) == "regression":
        column = f"regression target column {d.target!r}"
        y = np.array([_finite(v, column, path, line) for line, v in enumerate(cells, start=2)])
        return y, "regression"
    labels = sorted(set(cells))
    if len(labels) < 2:
        raise NoiseSearchError(
            f"{path}: target column {d.target!r} must hold at least 2 classes; got {labels}")
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[v] for v in cells]), task_of(d, len(labels))


def _load_arrays(spec: StudySpec) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
    d = spec.data
    if d.dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target, "multiclass", tuple(f"pixel{i}" for i in range(64))
    if d.dataset != "csv":
        x, y = _generate(d, str(spec.source))
        return x, y, task_of(d), tuple(f"x{i}" for i in range(x.shape[1]))
    x, cells, names = _read_csv(spec)
    y, task = _csv_targets(spec, cells)
    if d.n_train >= len(x):
        raise NoiseSearchError(
            f"{spec.source}: 'data.n_train' must be < the number of rows in {d.path} "
            f"({len(x)}) so that rows remain to test on; got {d.n_train}")
    return x, y, task, names


def _scaler(kind: str) -> Any:
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return StandardScaler() if kind == "standard" else MinMaxScaler()


def _split(spec: StudySpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[str, ...]]:
    """(x_train, x_test, y of both in order, task, feature names)."""
    d = spec.data
    if d.dataset in SPLIT_GIVEN:
        from search.data_files import read_given_split

        x_train, y_train, x_test, y_test = read_given_split(spec)
        classes = None if d.task == "regression" else len(np.unique(y_train))
        names = tuple(f"x{i}" for i in range(int(np.prod(x_train.shape[1:]))))
        return x_train, x_test, np.concatenate([y_train, y_test]), task_of(d, classes), names
    x, y, task, names = _load_arrays(spec)
    return x[: d.n_train], x[d.n_train :], np.asarray(y), task, names


def _scaled(kind: str, x_train: np.ndarray, x_test: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Every feature (every pixel of an image) scaled on the training rows; shapes kept."""
    if kind == "none":
        return x_train, x_test
    flat = [x.reshape(len(x), -1) for x in (x_train, x_test)]
    scaler = _scaler(kind).fit(flat[0])
    return (scaler.transform(flat[0]).reshape(x_train.shape),
            scaler.transform(flat[1]).reshape(x_test.shape))


def load_dataset(spec: StudySpec) -> Dataset:
    """Make or read the data, split it (first n_train rows train), scale on the train rows."""
    d = spec.data
    x_train, x_test, y, task, names = _split(spec)
    n_train = len(x_train)
    x_train, x_test = _scaled(d.scale, np.asarray(x_train, np.float64),
                              np.asarray(x_test, np.float64))
    if spec.model.builder is None:  # the built-in MLP takes vectors
        x_train, x_test = x_train.reshape(n_train, -1), x_test.reshape(len(x_test), -1)
    if task == "multiclass":
        n_classes = int(np.max(y)) + 1
        y_all: np.ndarray = np.asarray(y, dtype=np.int32)
    else:
        n_classes = 2 if task == "binary" else 0
        y_col = np.asarray(y, dtype=np.float64).reshape(-1, 1)
        if task == "regression" and d.scale_target not in (None, "none"):
            # Fitted on the training rows only, like the features.
            y_col = _scaler(d.scale_target).fit(y_col[:n_train]).transform(y_col)
        y_all = y_col.astype(np.float32)
    return Dataset(
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_all[:n_train],
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_all[n_train:],
        task=task,
        n_classes=n_classes,
        feature_names=names,
    )
