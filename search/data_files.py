"""Arrays of your own: an .npz file (``dataset = "npz"``) or a Python loader (``"python"``).

Both give x_train, y_train, x_test, y_test, the split included. Features keep their shape
(images stay images); labels are class labels (integers, or floats that are whole numbers)
unless ``data.task = "regression"``. Every array that does not fit is one line naming the
file and the array, before anything is trained or stored.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.errors import NoiseSearchError
from search.usercode import call, load_function, relative_to_study

if TYPE_CHECKING:
    from search.spec import StudySpec

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def read_npz(spec: StudySpec) -> Arrays:
    """The four arrays of ``data.path``, checked (as :func:`_checked`)."""
    d = spec.data
    assert d.path is not None
    path = relative_to_study(spec.source, d.path)
    return _checked(spec, str(path), _read_npz(path, f"{spec.source}: 'data.path' {d.path!r}"))


def read_loader(spec: StudySpec) -> Arrays:
    """The four arrays ``data.loader`` returns, checked (as :func:`_checked`)."""
    d = spec.data
    assert d.loader is not None
    where = f"{spec.source}: 'data.loader' {d.loader!r}"
    loader = load_function(spec.source, "data.loader", d.loader)
    return _checked(spec, where, _named(call(loader, where), where))


def _checked(spec: StudySpec, where: str, raw: Mapping[str, Any]) -> Arrays:
    """The four arrays, checked; classification labels as class indices 0..K-1."""
    x_train, y_train, x_test, y_test = (_array(raw[name], name, where) for name in ARRAYS)
    _check_shapes(where, x_train, y_train, x_test, y_test)
    if spec.data.task != "regression":
        y_train, y_test = _class_indices(where, y_train, y_test)
    return x_train, y_train, x_test, y_test


def _read_npz(path: Path, where: str) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in ARRAYS if name not in npz.files]
            if missing:
                raise NoiseSearchError(f"{path}: must hold the arrays {', '.join(ARRAYS)}; "
                                       f"{missing[0]!r} is missing (it holds: "
                                       f"{', '.join(npz.files) or 'nothing'})")
            return {name: npz[name] for name in ARRAYS}
    except FileNotFoundError:
        raise NoiseSearchError(f"{where}: no such file {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:  # not an .npz, or object arrays
        raise NoiseSearchError(f"{path}: cannot be read as an .npz file of numeric arrays "
                               f"({' '.join(str(exc).split())})") from None


def _named(value: Any, where: str) -> Mapping[str, Any]:
    """A loader's return value: (x_train, y_train, x_test, y_test) or a dict of them."""
    if isinstance(value, Mapping) and all(name in value for name in ARRAYS):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 4:
        return dict(zip(ARRAYS, value))
    raise NoiseSearchError(f"{where} must return the four arrays (x_train, y_train, x_test, "
                           f"y_test), as a tuple or a dict; got {_returned(value)}")


def _returned(value: Any) -> str:
    """What a loader returned instead: how many items and of what shape, or which keys."""
    if isinstance(value, Mapping):
        keys = ", ".join(repr(key) for key in value)
        missing = ", ".join(repr(name) for name in ARRAYS if name not in value)
        return f"a dict with keys {keys}; missing {missing}" if keys else "an empty dict"
    if isinstance(value, (tuple, list)):
        kind = type(value).__name__
        if not value:
            return f"an empty {kind}"
        items = ", ".join(_described(item) for item in value)
        split = ("; split the rows yourself: return x[:n], y[:n], x[n:], y[n:]"
                 if len(value) == 2 else "")
        return f"a {kind} of {len(value)} item{'' if len(value) == 1 else 's'} ({items}){split}"
    return _described(value)


def _described(value: Any) -> str:
    """An array as its shape, anything else as its type: "array (100, 30)", "int"."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return f"array {tuple(int(d) for d in shape)}"
    return type(value).__name__


def _array(value: Any, name: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise NoiseSearchError(f"{where}: {name!r} is not an array ({exc})") from None
    kind = "features" if name.startswith("x") else "labels or targets"
    if array.dtype.kind not in "biuf":
        raise NoiseSearchError(f"{where}: {name!r} must hold numbers ({kind}: integers or "
                               f"floats); got dtype {array.dtype}")
    if array.ndim == 0:
        raise NoiseSearchError(f"{where}: {name!r} must have one row per example; got a "
                               "single number")
    bad = ~np.isfinite(array.astype(np.float64))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise NoiseSearchError(f"{where}: {name!r} holds NaN or infinite values (first in "
                               f"row {row})")
    return array


def _check_shapes(where: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray) -> None:
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) == 0:
            raise NoiseSearchError(f"{where}: 'x_{part}' is empty; the {part} set needs rows")
        if len(y) != len(x):
            raise NoiseSearchError(f"{where}: 'y_{part}' has {len(y)} rows but 'x_{part}' has "
                                   f"{len(x)}")
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise NoiseSearchError(f"{where}: 'y_{part}' must hold one label or target per "
                                   f"row (shape (n,) or (n, 1)); got shape {y.shape}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NoiseSearchError(f"{where}: 'x_test' rows have shape {x_test.shape[1:]} but "
                               f"'x_train' rows {x_train.shape[1:]}")


def _class_indices(where: str, y_train: np.ndarray, y_test: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(y_train, y_test) with labels mapped to 0..K-1 in sorted label order."""
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        y = y.reshape(-1)
        fractional = np.flatnonzero(y != np.round(y))
        if fractional.size:
            raise NoiseSearchError(
                f"{where}: {name!r} must hold class labels (whole numbers) for a "
                f"classification task; got {_plain(y[fractional[0]])} in row {fractional[0]} "
                "(set data.task = \"regression\" for real-valued targets)")
    labels = np.unique(y_train)
    if len(labels) < 2:
        raise NoiseSearchError(f"{where}: 'y_train' must hold at least 2 classes; got "
                               f"only the label {_plain(labels[0])}")
    unseen = np.setdiff1d(np.unique(y_test), labels)
    if unseen.size:
        raise NoiseSearchError(f"{where}: 'y_test' holds label {_plain(unseen[0])}, which "
                               "'y_train' never has")
    index = {float(label): i for i, label in enumerate(labels)}
    mapped = [np.array([index[float(v)] for v in y.reshape(-1)]) for y in (y_train, y_test)]
    return mapped[0], mapped[1]


def _plain(value: Any) -> str:
    """A label as a person writes it: 2, 2.5 (not np.int64(2), np.float64(2.0))."""
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)
