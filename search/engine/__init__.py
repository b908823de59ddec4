"""Engines train all repeats of one noise configuration and return clean metrics.

``fast`` is the batched XLA trainer used by default; ``keras_ref`` trains each
repeat with real Keras layers and ``model.fit``, and is the oracle the fast
engine is tested against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.engine._common import TrainResult

if TYPE_CHECKING:
    from search.data import Dataset
    from search.noise import NoiseConfig
    from search.spec import StudySpec

__all__ = ["TrainResult", "train"]


def train(spec: StudySpec, data: Dataset, config: NoiseConfig) -> TrainResult:
    """Train with the engine the study file names (TensorFlow is imported only here)."""
    if spec.study.engine == "keras":
        from search.engine import keras_ref

        return keras_ref.train(spec, data, config)
    from search.engine import fast

    return fast.train(spec, data, config)
