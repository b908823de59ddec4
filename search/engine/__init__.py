"""Engines train all repeats of one noise configuration and return clean metrics.

``fast`` is the batched XLA trainer used by default; ``keras_ref`` trains each
repeat with real Keras layers and ``model.fit``, and is the oracle the fast
engine is tested against.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from search.engine._common import TrainResult

if TYPE_CHECKING:
    from search.data import Dataset
    from search.noise import NoiseConfig
    from search.spec import StudySpec

__all__ = ["TrainResult", "load", "train"]


def load(engine: str) -> ModuleType:
    """Import the engine a study names (and with it TensorFlow, which takes seconds).

    A worker calls this before it takes a trial, so that no trial is held while TensorFlow
    loads, and a stop signal never lands inside TensorFlow's import.
    """
    if engine == "keras":
        from search.engine import keras_ref

        return keras_ref
    from search.engine import fast

    return fast


def train(spec: StudySpec, data: Dataset, config: NoiseConfig) -> TrainResult:
    """Train with the engine the study file names."""
    result: TrainResult = load(spec.study.engine).train(spec, data, config)
    return result
