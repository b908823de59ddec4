"""The Keras engine for a model of your own (``model.builder``, search/builder.py).

Each repeat r: Keras's global seed set from (study.seed, r) (``keras_ref.repeat_seed``),
then ``build(noise)`` -- so the builder's initializers give repeat r the same initial
weights in every configuration -- compiled with the study's optimizer and learning rate and
the task's loss and metric, and trained with ``model.fit`` (``epochs``, ``batch_size``, a
shuffle seeded by the same global seed: the same data order in every configuration).
Metrics are measured clean at the record points only (``record_every``): one forward pass
of each set in inference mode, called directly (no ``evaluate`` / ``predict`` function to
trace and compile for every new model); the loss is Keras's, computed from those
predictions. Training compiles with ``jit_compile="auto"``: XLA where a GPU is present and
every layer of the model allows it (Keras's rule). On a CPU, XLA's compilation (14-25 s per
model, and every repeat is a new model) costs more than it saves
(benchmarks/builder_models.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from search import builder
from search.engine._common import TrainResult
from search.engine._keras_limits import ABOUT, MODELS, NAME, SITES, check
from search.engine.keras_ref import fit_repeats, make_optimizer, repeat_seed
from search.metrics import metric_value
from search.noise import NoiseConfig, baseline

# The keras engine's declarations (a builder's model is one it trains), re-exported so that
# this module is an Engine as keras_ref is (engine.for_study loads it for builder studies).
__all__ = ["ABOUT", "MODELS", "NAME", "SITES", "check", "predict", "train"]

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

JIT_COMPILE: bool | str = "auto"  # see above; benchmarks/builder_models.py sets True / False
LOSSES = {"binary": "binary_crossentropy", "multiclass": "sparse_categorical_crossentropy",
          "regression": "mean_squared_error"}


EPSILON = 1e-7  # keras.backend.epsilon(): Keras clips probabilities by it in its losses


def clean_loss(pred: np.ndarray, y: np.ndarray, task: str) -> float:
    """The task's Keras loss of predictions ``pred`` (probabilities, or values)."""
    if task == "regression":
        return float(np.mean((pred.reshape(len(pred), -1) - y.reshape(len(y), -1)) ** 2))
    if task == "binary":
        p = np.clip(pred.reshape(-1), EPSILON, 1 - EPSILON)
        t = y.reshape(-1)
        return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    p = np.clip(pred / pred.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return float(np.mean(-np.log(p[np.arange(len(p)), y.reshape(-1).astype(np.int64)])))


def scores(pred: Any, y: np.ndarray, task: str, metric: str) -> tuple[float, float]:
    """(loss, metric) of a model's clean predictions ``pred`` of one set (both builder
    engines score so: this one per model, the jax engine per replica)."""
    pred = np.asarray(pred, dtype=np.float64)
    if task != "multiclass":
        pred = pred.reshape(len(pred), -1)
    return clean_loss(pred, y, task), metric_value(task, metric, pred, y)


def _scores(model: Any, x: np.ndarray, y: np.ndarray, task: str,
            metric: str) -> tuple[float, float]:
    """(loss, metric) of one clean forward pass (``training=False``: noise layers off)."""
    return scores(model(x, training=False), y, task, metric)


def compile_model(model: Any, spec: StudySpec, task: str) -> Any:
    """Compile with the study's optimizer and the task's loss, as the built-in engine does.
    The builder's last layer gives probabilities (sigmoid / softmax) or values (regression)."""
    metrics = [] if task == "regression" else ["accuracy"]
    with warnings.catch_warnings():  # "doesn't support jit_compile": Keras falls back itself
        warnings.filterwarnings("ignore", message=".*jit_compile.*")
        model.compile(loss=LOSSES[task], optimizer=make_optimizer(spec), metrics=metrics,
                      jit_compile=JIT_COMPILE)
    return model


def build_repeat(spec: StudySpec, config: NoiseConfig, repeat: int) -> Any:
    """Repeat ``repeat``'s model for ``config``, built under its seed (uncompiled)."""
    import keras

    seed = repeat_seed(spec.study.seed, repeat)
    keras.utils.set_random_seed(seed)
    noise = builder.for_config(config, seed=seed, repeat=repeat, study_seed=spec.study.seed)
    return builder.build(spec, noise)


def train(spec: StudySpec, data: Dataset, config: NoiseConfig,
          repeats: range | None = None) -> TrainResult:
    """Train each repeat of ``config`` (``repeats``, default all: a racing block is a range)
    with ``model.fit`` (keras_ref.fit_repeats); every metric is measured clean."""
    chosen = range(spec.study.repeats) if repeats is None else repeats
    return fit_repeats(
        spec, data, chosen,
        lambda r, repeat: compile_model(build_repeat(spec, config, repeat), spec, data.task),
        lambda model: tuple(np.asarray(w, np.float32) for w in model.get_weights()),
        scores=_scores)


def predict(spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """Clean forward pass of the builder's model with ``weights`` (``model.get_weights()``
    order) on ``x``: binary -> P(class 1) (N,), multiclass -> (N, K), regression -> (N,)."""
    model = build_repeat(spec, baseline(spec.noise.kind), 0)
    model.set_weights([np.asarray(w) for w in weights])
    out = np.asarray(model.predict_on_batch(np.asarray(x, np.float32)), dtype=np.float64)
    return out if data.task == "multiclass" else out.reshape(len(out), -1)[:, 0]
