"""The study's metric has one owner, search/metrics.py: its NumPy form (one model's outputs)
and its TensorFlow form (every repeat's logits in the fast engine's programs) give the same
numbers, a class is the same from logits and from probabilities, and every metric a study
file may name has a range, a direction and an error form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit, softmax

from search import metrics, spec, views
from search.analysis import robustness, stats
from search.errors import SpecError

CASES = [("binary", "accuracy"), ("multiclass", "accuracy"), ("regression", "rmse"),
         ("regression", "mse"), ("regression", "r2")]
R, N, K = 4, 57, 3
COMPILED = tf.function(metrics.metric_per_repeat, jit_compile=True, autograph=False)


def _set(task: str, seed: int, outputs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Logits (R, N, outputs) and targets as a Dataset holds them, in float32."""
    rng = np.random.default_rng(seed)
    if task == "multiclass":
        return (rng.normal(size=(R, N, K)).astype(np.float32),
                rng.integers(0, K, size=N).astype(np.int32))
    y = (rng.integers(0, 2, size=(N, 1)) if task == "binary"
         else rng.normal(2.0, 3.0, size=(N, outputs))).astype(np.float32)
    return (y[None] + rng.normal(0.0, 2.0, size=(R, N, outputs))).astype(np.float32), y


def _probabilities(task: str, logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    return expit(z) if task == "binary" else softmax(z, axis=-1) if task == "multiclass" else z


@pytest.mark.parametrize(("task", "metric"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_and_tensorflow_forms_agree_on_every_repeat(task, metric, seed):
    logits, y = _set(task, seed)
    eager = metrics.metric_per_repeat(task, metric, tf.constant(logits), tf.constant(y)).numpy()
    compiled = COMPILED(task, metric, tf.constant(logits), tf.constant(y)).numpy()
    assert eager.shape == compiled.shape == (R,) and eager.dtype == np.float32
    from_logits = [metrics.metric_value(task, metric, logits[r], y, outputs_are="logits")
                   for r in range(R)]
    from_probabilities = [metrics.metric_value(task, metric, _probabilities(task, logits[r]), y)
                          for r in range(R)]
    if task == "regression":  # float32 sums in TensorFlow, float64 in NumPy
        np.testing.assert_allclose(eager, from_logits, rtol=1e-5)
        np.testing.assert_allclose(compiled, from_logits, rtol=1e-5)
        assert from_probabilities == pytest.approx(from_logits, rel=1e-6)  # values either way
    else:  # a count: exactly the same fraction of the rows
        np.testing.assert_array_equal(np.round(eager * N), np.round(np.array(from_logits) * N))
        np.testing.assert_array_equal(compiled, eager)
        assert from_probabilities == from_logits
        assert all(0.0 < v < 1.0 for v in from_logits)  # a test that can tell them apart


def test_binary_class_one_is_a_positive_logit_and_a_probability_above_a_half():
    logits = np.array([-3.0, -1e-6, 0.0, 1e-6, 0.2, 4.0, -0.0])
    want = np.array([0, 0, 0, 1, 1, 1, 0])
    as_column = logits[:, None]
    np.testing.assert_array_equal(metrics.predicted_classes("binary", as_column, "logits"), want)
    np.testing.assert_array_equal(metrics.predicted_classes("binary", expit(as_column)), want)
    assert expit(0.0) == 0.5  # P = 0.5 exactly is class 0, as logit 0 is
    per_repeat = metrics.classes_per_repeat("binary", tf.constant(as_column[None], tf.float32))
    np.testing.assert_array_equal(per_repeat.numpy()[0], want)
    y = want[:, None].astype(np.float32)
    assert metrics.metric_value("binary", "accuracy", expit(logits), y) == 1.0  # (n,) outputs
    assert metrics.metric_value("binary", "accuracy", as_column, 1.0 - y, "logits") == 0.0


def test_multiclass_class_is_the_likeliest_from_logits_or_probabilities():
    logits, _ = _set("multiclass", 5)
    np.testing.assert_array_equal(
        metrics.predicted_classes("multiclass", logits, "logits"),
        metrics.predicted_classes("multiclass", _probabilities("multiclass", logits)))
    np.testing.assert_array_equal(
        metrics.classes_per_repeat("multiclass", tf.constant(logits)).numpy(),
        np.argmax(logits, axis=-1))


def test_r2_is_averaged_over_the_outputs_and_rmse_is_the_root_of_mse():
    y = np.random.default_rng(3).normal(size=(40, 2)).astype(np.float32)
    out = np.stack([y[:, 0], np.full(40, y[:, 1].mean())], axis=1)  # r2 1 and 0
    assert metrics.metric_value("regression", "r2", out, y) == pytest.approx(0.5)
    per_repeat = metrics.metric_per_repeat("regression", "r2", tf.constant(out[None]),
                                           tf.constant(y)).numpy()
    assert per_repeat == pytest.approx([0.5], abs=1e-6)
    logits, y1 = _set("regression", 4)
    mse = metrics.metric_value("regression", "mse", logits[0], y1)
    assert metrics.metric_value("regression", "rmse", logits[0], y1) == math.sqrt(mse)
    # (n,) predictions are one output, as an engine's predict gives them
    assert metrics.metric_value("regression", "mse", logits[0][:, 0], y1) == mse


def test_every_metric_a_study_file_may_name_is_in_the_registry():
    check = spec.StudySection.__dataclass_fields__["metric"].metadata["check"]
    for name in metrics.NAMES:
        assert check(name) == name
    assert set(metrics.names_for("binary")) == set(metrics.names_for("multiclass")) == {
        "accuracy"} == set(metrics.names_for("classification"))
    assert metrics.names_for("regression") == ("rmse", "mse", "r2")
    assert set(metrics.names_for("binary")) | set(metrics.names_for("regression")) == set(
        metrics.METRICS)
    for task in ("binary", "multiclass", "classification", "regression"):
        assert metrics.default_for(task) in metrics.names_for(task)


@pytest.mark.parametrize("name", metrics.NAMES)
def test_every_metric_has_a_range_a_direction_and_an_error_form(name):
    m = metrics.METRICS[name]
    assert m.low < m.high and stats.bounds_of(name) == (m.low, m.high)
    best = m.low if m.lower_is_better else m.high
    assert math.isfinite(best)
    # As an error, lower is better and the best value is no error.
    assert m.error_sign == (1.0 if m.lower_is_better else -1.0)
    assert robustness.errors(name, [best])[0] == 0.0
    assert f"WHEN '{name}' THEN {m.error_offset!r} + {m.error_sign!r} * p.mean" in (
        views.view_sql("sqlite"))
    assert m.direction == ("minimize" if m.lower_is_better else "maximize")
    assert metrics.bounds(None) == metrics.bounds("f1") == (-math.inf, math.inf)


def test_a_study_takes_its_direction_from_the_registry(write_study):
    loaded = spec.load(write_study(), ["study.metric='accuracy'"])
    assert (loaded.metric, loaded.direction) == ("accuracy", "maximize")
    with pytest.raises(SpecError, match="study.metric"):
        spec.load(write_study(), ["study.metric='rmse'"])  # circles: a binary task
    with pytest.raises(SpecError, match="study.metric"):
        spec.load(write_study(), ["study.metric='f1'"])
