"""Datasets: sklearn generators, CSV files, scikit-learn's digits and arrays of your own
(an .npz file or a Python loader), split as the tutorial does, scaled on train rows.

The first ``n_train`` rows train and the rest test, exactly as the tutorial
slices ``X[:n_train]`` (an .npz file or a loader gives its own split); scaling is fitted on
the training rows only, so the test rows never leak into it. Features keep their shape
((n, 8, 8) digits stay images) for a model builder; the built-in MLP gets them flattened.

Every value of ``data.dataset`` is one :class:`DatasetKind` in :data:`DATASET_KINDS`: its
[data] keys, whether it gives its own split, its rows, its task, its values refused and how
it is loaded. The study file's validation (search.spec) reads the same entries, and nothing
else branches on a dataset's name. The task (binary / multiclass / regression) is decided by
:func:`task_of`, once. scikit-learn is imported inside the functions that need it (it takes
seconds), so that ``import search.spec`` stays light.
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
    from search.data_files import Arrays
    from search.spec import DataSpec, StudySpec

Problems = list[tuple[str, str]]  # (key, message tail), as search.spec words them
# (x_train, x_test, y of both in order, task, feature names)
Split = tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[str, ...]]
Rows = tuple[int, str]  # a count of rows known from the study file, and how a message names it


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


def _task(regression: bool, classes: int | None) -> str:
    if regression:
        return "regression"
    if classes is None:
        return "classification"
    return "binary" if classes == 2 else "multiclass"


def _task_from_labels(d: DataSpec, n_labels: int | None) -> str:
    """A file's or a loader's task: regression if data.task says so, else its labels count
    the classes ('classification' until they are read)."""
    return _task(d.task == "regression", n_labels)


@dataclass(frozen=True)
class Range:
    """The numbers a generator's argument takes, worded as scikit-learn words an Interval."""

    integer: bool
    low: float
    high: float = math.inf
    high_open: bool = False  # [low, high) rather than [low, high]

    def __contains__(self, value: float) -> bool:
        return self.low <= value and (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        shown: Callable[[float], float] = int if self.integer else float
        kind = "an int" if self.integer else "a float"
        close = ")" if self.high_open or math.isinf(self.high) else "]"
        high = "inf" if math.isinf(self.high) else shown(self.high)
        return f"{kind} in the range [{shown(self.low)}, {high}{close}"


# What scikit-learn's make_* functions publish for the [data] keys, declared here too: used
# where the installed scikit-learn publishes none (tests/test_data.py checks that it does, and
# that these say the same).
_RANGES = {"n_samples": Range(True, 1), "noise": Range(False, 0),
           "random_state": Range(True, 0, 2**32 - 1), "n_features": Range(True, 1),
           "n_informative": Range(True, 1), "n_classes": Range(True, 1),
           "centers": Range(True, 1), "cluster_std": Range(False, 0)}


def _published(fn: Callable[..., Any]) -> Mapping[str, list[Any]]:
    """scikit-learn's constraints of ``fn``'s arguments (what its validate_params enforces), or
    none where a scikit-learn without this private API is installed."""
    try:
        import sklearn.utils._param_validation  # noqa: F401  (what reads them)
    except ImportError:
        return {}
    published: Mapping[str, list[Any]] = getattr(fn, "_skl_parameter_constraints", {})
    return published


def _allowed_ranges(constraints: list[Any]) -> tuple[list[Any], str]:
    """scikit-learn's constraints of one argument, and the ranges a number can satisfy."""
    from sklearn.utils._param_validation import Interval, make_constraint

    made = [make_constraint(c) for c in constraints]
    # _RandomStates wraps an Interval with "a RandomState instance or None", which a study
    # file cannot give; say only the ranges.
    parts = [inner for c in made for inner in getattr(c, "_constraints", [c])]
    return made, " or ".join(str(c) for c in parts if isinstance(c, Interval))


@dataclass(frozen=True)
class Generator:
    """A scikit-learn ``make_*`` function and how the [data] keys reach it."""

    function: str  # name in sklearn.datasets
    keys: tuple[str, ...]  # [data] keys passed as they are (their defaults are DataSpec's)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # keys whose default is ours
    regression: bool = False
    classes: str | None = None  # the key that counts the classes; None: two classes
    ranges: Mapping[str, Range] = field(default_factory=dict)  # where it differs from _RANGES
    problems: Callable[[Mapping[str, Any]], Problems] = lambda p: []  # across arguments
    extra: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda p: {}  # derived arguments

    @property
    def takes(self) -> frozenset[str]:
        return frozenset(self.keys) | frozenset(self.defaults)

    def range_of(self, key: str) -> Range:
        """Our own declaration of what scikit-learn allows for the argument ``key``."""
        return self.ranges[key] if key in self.ranges else _RANGES[key]

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

    def task(self, d: DataSpec, n_labels: int | None = None) -> str:
        return _task(self.regression, self.arguments(d)[self.classes] if self.classes else 2)

    def refused(self, d: DataSpec) -> Problems:
        """[data] values the generator refuses, so that no InvalidParameterError traceback
        reaches a user: each argument against scikit-learn's published constraints, or our
        declaration of them for an argument it publishes none for; then the constraints
        between arguments."""
        args = self.arguments(d)
        published = _published(self.sklearn_function())
        for key, value in args.items():
            if key in published:
                constraints, ranges = _allowed_ranges(published[key])
                fits = not ranges or any(c.is_satisfied_by(value) for c in constraints)
            else:
                ranges, fits = str(self.range_of(key)), value in self.range_of(key)
            if not fits:
                return [(f"data.{key}", f"must be {ranges} (scikit-learn's {self.function}); "
                                        f"got {value!r}")]
        return self.problems(args)

    def load(self, spec: StudySpec) -> Split:
        d = spec.data
        args = self.arguments(d)
        try:
            x, y = self.sklearn_function()(**args, **self.extra(args))
        except ValueError as exc:  # InvalidParameterError too: what refused() missed
            message = " ".join(str(exc).split())
            raise NoiseSearchError(f"{spec.source}: scikit-learn's {self.function} refuses "
                                   f"the [data] keys: {message}") from None
        return _first_rows_train(d, x, y, self.task(d), tuple(f"x{i}" for i in range(x.shape[1])))


@dataclass(frozen=True)
class DatasetKind:
    """One value of ``data.dataset``: everything the rest of the code asks about it."""

    name: str
    keys: frozenset[str]  # its own [data] keys (all read dataset, n_train, scale, scale_target)
    load: Callable[[StudySpec], Split]  # the arrays split, and the task
    task: Callable[[DataSpec, int | None], str]  # from the file, and the labels once counted
    required: tuple[str, ...] = ()  # of its keys, those without which it cannot be read
    split_given: bool = False  # its source splits train and test: data.n_train is not read
    rows: Callable[[DataSpec], Rows | None] = lambda d: None  # None: counted when it is read
    refused: Callable[[DataSpec], Problems] = lambda d: []  # [data] values it cannot take
    generator: Generator | None = None


def _generated(name: str, gen: Generator) -> DatasetKind:
    return DatasetKind(name, gen.takes, gen.load, gen.task,
                       rows=lambda d: (d.n_samples, "data.n_samples"), refused=gen.refused,
                       generator=gen)


def _first_rows_train(d: DataSpec, x: np.ndarray, y: Any, task: str,
                      names: tuple[str, ...]) -> Split:
    return x[: d.n_train], x[d.n_train :], np.asarray(y), task, names


_DIGITS_ROWS = 1797  # sklearn.datasets.load_digits(): 8x8 images of 10 digits, bundled


def _digits(spec: StudySpec) -> Split:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _first_rows_train(spec.data, digits.images, digits.target, task_of(spec.data),
                             tuple(f"pixel{i}" for i in range(64)))


def _npz(spec: StudySpec) -> Split:
    from search.data_files import read_npz

    return _given_split(spec, read_npz(spec))


def _python(spec: StudySpec) -> Split:
    from search.data_files import read_loader

    return _given_split(spec, read_loader(spec))


def _given_split(spec: StudySpec, arrays: Arrays) -> Split:
    x_train, y_train, x_test, y_test = arrays
    classes = None if spec.data.task == "regression" else len(np.unique(y_train))
    names = tuple(f"x{i}" for i in range(int(np.prod(x_train.shape[1:]))))
    return (x_train, x_test, np.concatenate([y_train, y_test]),
            _task_from_labels(spec.data, classes), names)


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
    if d.task == "regression":
        column = f"regression target column {d.target!r}"
        y = np.array([_finite(v, column, path, line) for line, v in enumerate(cells, start=2)])
        return y, "regression"
    labels = sorted(set(cells))
    if len(labels) < 2:
        raise NoiseSearchError(
            f"{path}: target column {d.target!r} must hold at least 2 classes; got {labels}")
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[v] for v in cells]), _task_from_labels(d, len(labels))


def _csv(spec: StudySpec) -> Split:
    d = spec.data
    x, cells, names = _read_csv(spec)
    y, task = _csv_targets(spec, cells)
    if d.n_train >= len(x):
        raise NoiseSearchError(
            f"{spec.source}: 'data.n_train' must be < the number of rows in {d.path} "
            f"({len(x)}) so that rows remain to test on; got {d.n_train}")
    return _first_rows_train(d, x, y, task, names)


_SAMPLED = ("n_samples", "noise", "random_state")
DATASET_KINDS: dict[str, DatasetKind] = {kind.name: kind for kind in (
    _generated("circles", Generator("make_circles", _SAMPLED, {"factor": 0.8}, ranges={
        "n_samples": Range(True, 0), "factor": Range(False, 0, 1, high_open=True)})),
    _generated("moons", Generator("make_moons", _SAMPLED)),
    _generated("blobs", Generator("make_blobs", ("n_samples", "random_state"),
                                  {"n_features": 2, "centers": 2, "cluster_std": 1.0},
                                  classes="centers")),
    _generated("classification", Generator(
        "make_classification", ("n_samples", "random_state"),
        {"n_features": 20, "n_informative": 2, "n_classes": 2}, classes="n_classes",
        problems=_classification_problems, extra=_classification_extra)),
    _generated("regression", Generator(
        "make_regression", _SAMPLED, {"n_features": 10, "n_informative": 10}, regression=True,
        ranges={"n_informative": Range(True, 0)})),
    _generated("friedman1", Generator("make_friedman1", _SAMPLED, {"n_features": 10},
                                      regression=True, ranges={"n_features": Range(True, 5)})),
    DatasetKind("csv", frozenset({"path", "target", "task"}), _csv,
                _task_from_labels, required=("path", "target")),
    DatasetKind("digits", frozenset(), _digits, lambda d, n_labels: "multiclass",
                rows=lambda d: (_DIGITS_ROWS, "the rows of 'digits'")),
    DatasetKind("npz", frozenset({"path", "task"}), _npz, _task_from_labels,
                required=("path",), split_given=True),
    DatasetKind("python", frozenset({"loader", "task"}), _python, _task_from_labels,
                required=("loader",), split_given=True),
)}
DATASETS: tuple[str, ...] = tuple(DATASET_KINDS)


def dataset_keys(dataset: str) -> frozenset[str]:
    """The dataset-specific [data] keys ``dataset`` reads."""
    return DATASET_KINDS[dataset].keys


def task_of(d: DataSpec, n_labels: int | None = None) -> str:
    """The task: 'binary', 'multiclass' or 'regression' -- decided here and nowhere else.

    A generator's follows from the file. A file's or a loader's classification follows from
    its labels, counted when it is read (``n_labels``); until then it is 'classification'.
    """
    return DATASET_KINDS[d.dataset].task(d, n_labels)


def _scaler(kind: str) -> Any:
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    return StandardScaler() if kind == "standard" else MinMaxScaler()


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
    x_train, x_test, y, task, names = DATASET_KINDS[d.dataset].load(spec)
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
