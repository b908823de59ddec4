"""Engines train all repeats of one noise configuration and return clean metrics.

``fast`` is the batched XLA trainer used by default; ``keras`` (``keras_ref``) trains each
repeat with real Keras layers and ``model.fit``, and is the oracle the fast engine is
tested against; ``jax`` (``jax_builder``) trains every repeat of a model of the user's own
(``model.builder``) in one compiled JAX program, the default with a builder, with the
keras engine as its oracle.

Every engine is a module satisfying :class:`Engine`. Its declarations (``NAME``, ``SITES``,
``MODELS``, ``check``) also live in a light module, ``_<name>_limits``, that imports neither
TensorFlow nor Keras: validating a study file asks the engine it names (:func:`limits`) in a
fraction of a second, and a bad file never waits for TensorFlow to load. The engine module
re-exports its declarations, so ``load(name)`` and ``limits(name)`` answer alike.

This module imports nothing heavy at the top, so that ``search.spec`` can import it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from search.startup import startup_messages, stderr_captured

if TYPE_CHECKING:
    import numpy as np

    from search.data import Dataset
    from search.engine._common import TrainResult
    from search.noise import NoiseConfig
    from search.spec import StudySpec

__all__ = ["NAMES", "Engine", "Limits", "TrainResult", "described", "limits", "load",
           "startup_messages", "train"]

# Every engine a study file may name (``study.engine``), with its module and its light
# declarations module. Adding an engine means adding a line here and the two modules.
NAMES = ("fast", "keras", "jax")
_MODULES = {"fast": "search.engine.fast", "keras": "search.engine.keras_ref",
            "jax": "search.engine.jax_builder"}
_LIMITS = {"fast": "search.engine._fast_limits", "keras": "search.engine._keras_limits",
           "jax": "search.engine._jax_limits"}
# An engine that trains both kinds of model keeps a module for each: the keras engine trains
# the built-in MLP in keras_ref and a builder's model in keras_builder, neither calling the
# other (`for_study` picks).
_BUILDER_MODULES = {"keras": "search.engine.keras_builder"}


class Limits(Protocol):
    """What an engine declares about the studies it can train (readable without TensorFlow)."""

    NAME: str  # the ``study.engine`` value: "fast" | "keras" | "jax"
    ABOUT: str  # what it trains and how, in a few words (`noise-search run --help`)
    SITES: tuple[str, ...]  # the noise sites it supports (values of search.noise.Site)
    MODELS: tuple[str, ...]  # what it trains: "mlp" (the built-in), "builder" (the user's)

    def check(self, spec: StudySpec) -> list[tuple[str, str]]:
        """Problems this engine has with ``spec`` beyond its sites, as (key, message tail):
        search.spec turns each into one line "FILE: 'key' <tail>", e.g. ("noise.std",
        "must hold σ <= 1 with ...; got [0.1, 2.0]")."""
        ...


class Engine(Limits, Protocol):
    """An engine module: its declarations, training, and clean predictions."""

    def train(self, spec: StudySpec, data: Dataset, config: NoiseConfig, *,
              repeats: range | None = None) -> TrainResult:
        """Repeats ``repeats`` of ``config`` (default all ``spec.study.repeats``), repeat r
        giving the same numbers however it is blocked (racing trains blocks of repeats);
        ``TrainResult.weights`` holds the first trained repeat's final parameters
        [W0, b0, W1, b1, ...] (float32, kernels (in, out))."""
        ...

    def predict(self, spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
                x: np.ndarray) -> np.ndarray:
        """Clean forward pass of ONE model with the given final ``weights`` on rows ``x``:
        binary -> P(class 1) (N,), multiclass -> class probabilities (N, K),
        regression -> predictions (N,)."""
        ...


def __getattr__(name: str) -> Any:
    # ``engine.TrainResult`` without importing _common (and with it NumPy) up front:
    # search.spec imports this package to validate a study file.
    if name == "TrainResult":
        from search.engine._common import TrainResult

        return TrainResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _known(name: str) -> None:
    if name not in _MODULES:
        raise ValueError(f"unknown engine {name!r}; engines: {', '.join(NAMES)}")


def limits(name: str) -> Limits:
    """The declarations of engine ``name``, without importing TensorFlow."""
    _known(name)
    return cast(Limits, importlib.import_module(_LIMITS[name]))


def described() -> str:
    """Every engine a study file may name, one line each (`noise-search run --help`)."""
    return "\n".join(f"{name}: {limits(name).ABOUT}" for name in NAMES)


def load(name: str, builder: bool = False) -> Engine:
    """Import the engine a study names (and with it TensorFlow, which takes seconds).

    A worker calls this before it takes a trial, so that no trial is held while TensorFlow
    loads, and a stop signal never lands inside TensorFlow's import. TensorFlow's start-up
    messages are kept out of the terminal (search.startup; --debug shows them).
    """
    _known(name)
    module = _BUILDER_MODULES.get(name, _MODULES[name]) if builder else _MODULES[name]
    if module in sys.modules:
        return cast(Engine, sys.modules[module])
    with stderr_captured():
        return cast(Engine, importlib.import_module(module))


def for_study(spec: StudySpec) -> Engine:
    """The engine module that trains ``spec``'s model: the engine it names, for its kind of
    model (``load(spec.study.engine, builder=...)``)."""
    return load(spec.study.engine, builder=spec.model.builder is not None)


def train(spec: StudySpec, data: Dataset, config: NoiseConfig) -> TrainResult:
    """Train with the engine the study file names."""
    return for_study(spec).train(spec, data, config)


if TYPE_CHECKING:
    # mypy checks here that every engine module and declarations module fits the protocols.
    from search.engine import (
        _fast_limits,
        _jax_limits,
        _keras_limits,
        fast,
        jax_builder,
        keras_builder,
        keras_ref,
    )

    _ENGINES: tuple[Engine, ...] = (fast, keras_ref, keras_builder, jax_builder)
    _DECLARATIONS: tuple[Limits, ...] = (_fast_limits, _keras_limits, _jax_limits)
