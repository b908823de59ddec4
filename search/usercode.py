"""Code of your own that a study file names: a model builder or a data loader.

A study file names a function as ``"file.py:function"``, the file relative to the study
file. Loading and calling it are the only places noise-search runs a user's code; every way
that can fail (no file, no function, the code raises) is one :class:`UserCodeError` line
naming the study file, the key and the function, raised ``from`` the user's exception, so
``noise-search --debug`` prints the user's traceback too. TensorFlow is imported (quietly,
:func:`load_tensorflow`) before a user's file runs: the file may import it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.errors import NoiseSearchError
from search.startup import load_tensorflow


class UserCodeError(NoiseSearchError):
    """A builder or loader of the user's that cannot be loaded, raised, or returned nonsense."""


def relative_to_study(source: Path, file: str) -> Path:
    """A path a study file gives, relative to the study file's folder unless absolute."""
    path = Path(file).expanduser()
    return path if path.is_absolute() else source.parent / path


def resolve(source: Path, ref: str) -> tuple[Path, str]:
    """"models/cnn.py:build" -> (its file, relative to the study file's folder; "build")."""
    file, _, name = ref.rpartition(":")
    return relative_to_study(source, file), name


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def load_function(source: Path, key: str, ref: str) -> Callable[..., Any]:
    """The function ``ref`` names; UserCodeError if the file or the function is missing or the
    file raises when it runs. A fresh module each time: an edited file is read again."""
    path, name = resolve(source, ref)
    where = f"{source}: '{key}' {ref!r}"
    if not path.is_file():
        raise UserCodeError(f"{where}: no such file {path}")
    module_name = f"noise_search_user_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"{where}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    load_tensorflow()  # the file may import keras or tensorflow: quietly, if it does
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 -- the user's file: any error is theirs, one line
        raise UserCodeError(f"{where}: importing {path.name} raised {_one_line(exc)}"
                            ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise UserCodeError(f"{where}: {path.name} has no function {name!r}")
    return function  # type: ignore[no-any-return]


def call(function: Callable[..., Any], where: str, *args: Any) -> Any:
    """``function(*args)``; an exception it raises becomes one UserCodeError line."""
    try:
        return function(*args)
    except NoiseSearchError:
        raise  # ours, raised through the user's code (a site asked for twice): already clear
    except Exception as exc:  # noqa: BLE001 -- the user's code: any error is theirs, one line
        raise UserCodeError(f"{where} raised {_one_line(exc)}") from exc
