"""The study's metric, in one place: which metrics there are, what each means, and how it is
computed from a model's outputs.

- the registry (``METRICS``): each metric's name, the kind of task it fits (classification:
  binary and multiclass; regression), whether lower is better (the study's direction), the
  range its values lie in (intervals are cut to it, search.analysis.stats) and its form as an
  error, error = offset + sign · value (the corruption errors of search.analysis.robustness
  and of the SQL view, search/views.py);
- the NumPy form, ``metric_value``: one model's metric from its outputs (probabilities, as
  Keras gives them, or logits) on one set;
- the TensorFlow form, ``metric_per_repeat``: every repeat's metric (R,) from logits
  (R, N, outputs), inside the fast engine's compiled programs (training curves and test-time
  noise); TensorFlow is imported there, when it is called, so that this module stays a leaf
  the study file's validation imports without TensorFlow.

A class is the same in both forms (``predicted_classes``, ``classes_per_repeat``): for a
binary task, class 1 when P(class 1) > 0.5, i.e. when its logit > 0 (P = 0.5 exactly, logit
0, is class 0; a logit so near 0 that its probability rounds to 0.5 is the one case the two
can part); for a multiclass task, the likeliest class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

CLASSIFICATION, REGRESSION = "classification", "regression"
Outputs = Literal["probabilities", "logits"]
# Class 1 of a binary task above this output: P(class 1) > 0.5, its logit > 0.
THRESHOLD: dict[str, float] = {"probabilities": 0.5, "logits": 0.0}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # CLASSIFICATION | REGRESSION: the tasks it fits
    lower_is_better: bool
    low: float  # the range its values lie in
    high: float
    error_offset: float  # as an error (lower is better): error_offset + error_sign · value
    error_sign: float

    @property
    def direction(self) -> str:
        """The study's direction in Optuna's words."""
        return "minimize" if self.lower_is_better else "maximize"

    @property
    def error_form(self) -> tuple[float, float]:
        return self.error_offset, self.error_sign


# In the order a study file's error message lists them.
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", CLASSIFICATION, False, 0.0, 1.0, 1.0, -1.0),
    Metric("rmse", REGRESSION, True, 0.0, math.inf, 0.0, 1.0),
    Metric("mse", REGRESSION, True, 0.0, math.inf, 0.0, 1.0),
    Metric("r2", REGRESSION, False, -math.inf, 1.0, 1.0, -1.0),
)}
NAMES = tuple(METRICS)
DEFAULT = {CLASSIFICATION: "accuracy", REGRESSION: "rmse"}


def kind_of(task: str) -> str:
    """'regression' for a regression task; 'classification' for binary, multiclass and a
    file's 'classification' whose labels are not counted yet (search.data.task_of)."""
    return REGRESSION if task == "regression" else CLASSIFICATION


def names_for(task: str) -> tuple[str, ...]:
    """The metrics a study of ``task`` may name, in registry order."""
    return tuple(m.name for m in METRICS.values() if m.kind == kind_of(task))


def default_for(task: str) -> str:
    """The metric of a study of ``task`` whose file names none."""
    return DEFAULT[kind_of(task)]


def bounds(metric: str | None) -> tuple[float, float]:
    """The range of ``metric``'s values; an unknown metric (or None): the whole line."""
    m = METRICS.get(metric or "")
    return (m.low, m.high) if m is not None else (-math.inf, math.inf)


# --- NumPy: one model's outputs --------------------------------------------------------------

def predicted_classes(task: str, outputs: np.ndarray,
                      outputs_are: Outputs = "probabilities") -> np.ndarray:
    """The class of each row, outputs along the last axis: a binary task's one output above
    THRESHOLD[outputs_are] is class 1; a multiclass task's likeliest class."""
    out = np.asarray(outputs)
    if task == "binary":
        return (out[..., 0] > THRESHOLD[outputs_are]).astype(np.int64)
    return np.argmax(out, axis=-1)


def metric_value(task: str, metric: str, outputs: np.ndarray, y: np.ndarray,
                 outputs_are: Outputs = "probabilities") -> float:
    """``metric`` of one model's ``outputs`` on one set against its targets ``y`` (a Dataset's:
    (n, 1) 0/1 or values, or (n,) class indices). ``outputs`` (n, outputs) or (n,):
    probabilities as Keras's models give them, or logits; a regression's values either way.
    r2 is averaged over the outputs."""
    y = np.asarray(y)
    out = np.asarray(outputs).reshape(len(y), -1)
    if task == "binary":
        hit = predicted_classes(task, out, outputs_are) == (y.reshape(len(y), -1)[:, 0] > 0.5)
        return float(np.mean(hit))
    if task == "multiclass":
        return float(np.mean(predicted_classes(task, out, outputs_are) == y.reshape(-1)))
    y = y.reshape(len(y), -1)
    err = np.square(out - y)
    if metric in ("mse", "rmse"):
        mse = float(np.mean(err))
        return mse if metric == "mse" else math.sqrt(mse)
    ss_tot = np.sum(np.square(y - y.mean(axis=0)), axis=0)
    return float(np.mean(1.0 - err.sum(axis=0) / ss_tot))


# --- TensorFlow: every repeat's logits at once ------------------------------------------------

def classes_per_repeat(task: str, logits: tf.Tensor) -> tf.Tensor:
    """(R, N) int32: the class of each row of logits (R, N, outputs), as predicted_classes."""
    import tensorflow as tf

    if task == "binary":
        return tf.cast(logits[..., 0] > THRESHOLD["logits"], tf.int32)
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def metric_per_repeat(task: str, metric: str, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """(R,) float32: ``metric`` of every repeat's logits (R, N, outputs) against the clean
    targets ``y`` of the set (a Dataset's, as metric_value takes them)."""
    import tensorflow as tf

    if task in ("binary", "multiclass"):
        labels = (tf.cast(tf.cast(y, tf.float32)[:, 0] > 0.5, tf.int32) if task == "binary"
                  else tf.reshape(tf.cast(y, tf.int32), [-1]))
        hit = classes_per_repeat(task, logits) == labels[None]
        return tf.reduce_mean(tf.cast(hit, tf.float32), axis=1)
    yf = tf.cast(y, tf.float32)
    err = tf.square(logits - yf[None])
    if metric in ("mse", "rmse"):
        mse = tf.reduce_mean(err, axis=[1, 2])
        return mse if metric == "mse" else tf.sqrt(mse)
    ss_tot = tf.reduce_sum(tf.square(yf - tf.reduce_mean(yf, axis=0)), axis=0)  # (outputs,)
    return tf.reduce_mean(1.0 - tf.reduce_sum(err, axis=1) / ss_tot, axis=-1)
