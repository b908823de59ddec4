"""Test-time noise ([robustness]): the draws are standard normal, keyed like training noise,
the compiled evaluation computes what a NumPy computation on the same draws computes, and
both engines measure the same profile of the same model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from search import spec as spec_module
from search.data import Dataset, load_dataset
from search.engine import _random, fast, noisy_eval
from search.engine._common import initial_weights, layer_sizes
from tests.conftest import TINY_STUDY

ROBUST = TINY_STUDY + """
[robustness]
input_std = [0.0, 0.1, 0.3]
draws = 7
"""


def _eps(seed: int, draws: int, shape: tuple[int, ...], first: int = 0) -> np.ndarray:
    """(draws, R, ...) the evaluation's ε, drawn the way the compiled program draws them."""
    return np.stack([_random.normals(tf.constant(seed, tf.int64), noisy_eval.PROFILE_STREAM,
                                     tf.constant(d), shape, first).numpy()
                     for d in range(draws)])


def test_evaluation_noise_is_standard_normal_and_keyed_by_repeat():
    eps = _eps(seed=11, draws=40, shape=(6, 500, 3)).astype(np.float64)
    n = eps.size  # 360,000 numbers
    assert abs(eps.mean()) < 5 / np.sqrt(n)
    assert abs(eps.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    # Draws, repeats and elements are not correlated with each other.
    flat = eps.reshape(40 * 6, -1)
    rho = np.corrcoef(flat[:-1].ravel(), flat[1:].ravel())[0, 1]
    assert abs(rho) < 5 / np.sqrt(flat[1:].size)
    # Repeat r's draws do not depend on how many repeats are evaluated with it (first = r;
    # equal up to the last bit of float32, which vectorised math may round differently).
    alone = _eps(seed=11, draws=3, shape=(1, 500, 3), first=4)
    np.testing.assert_allclose(alone[:, 0], eps[:3, 4], rtol=3e-7, atol=3e-7)
    # Its own stream: not the training noise of the input site at the same step.
    train = _random.normals(tf.constant(11, tf.int64), fast.stream_id("input"), tf.constant(0),
                            (6, 500, 3)).numpy()
    assert not np.allclose(train, eps[0])


def _identity_model(n_features: int, repeats: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """relu(x) - relu(-x) = x: the model's output is its (noisy) input's first feature."""
    w0 = np.zeros((repeats, n_features, 2), np.float32)
    w0[:, 0, 0], w0[:, 0, 1] = 1.0, -1.0
    w1 = np.array([[1.0], [-1.0]], np.float32)[None].repeat(repeats, 0)
    return [(w0, np.zeros((repeats, 2), np.float32)), (w1, np.zeros((repeats, 1), np.float32))]


def _regression(x: np.ndarray) -> Dataset:
    return Dataset(x_train=x, y_train=x[:, :1], x_test=x, y_test=x[:, :1].copy(),
                   task="regression", n_classes=0, feature_names=("a", "b"))


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_profile_is_the_metric_of_the_drawn_perturbations(kind, write_study):
    """Through the identity model with y = x, the mse at σ is the mean square of the drawn
    perturbations, computed here in NumPy from the same ε."""
    s = spec_module.load(write_study(ROBUST), [
        "data.dataset='friedman1'", "study.metric='mse'", "model.hidden=[2]",
        f"robustness.kind='{kind}'"])
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    repeats = 3
    got = noisy_eval.profiles(s, _regression(x), _identity_model(2, repeats))
    eps = _eps(s.study.seed, 7, (repeats, 50, 2)).astype(np.float64)[..., 0]  # (D, R, N)
    scale = 1.0 if kind == "additive" else x[:, 0].astype(np.float64)
    expected = np.stack([np.mean(np.square(sigma * eps * scale), axis=(0, 2))
                         for sigma in (0.0, 0.1, 0.3)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-9)
    assert got.shape == (repeats, 3) and np.all(got[:, 0] == 0.0)


def test_fast_engine_measures_profiles_and_sigma_zero_is_the_clean_metric(write_study):
    s = spec_module.load(write_study(ROBUST), ["robustness.certify_std=0.25"])
    data = load_dataset(s)
    base = fast.train(s, data, s.configurations()[0])
    assert base.robustness is not None and base.robustness.shape == (3, 3)
    np.testing.assert_array_equal(base.robustness[:, 0], base.test_metric)
    assert base.certified is not None and base.certified.shape == (3, 4)
    assert np.all(base.certified[:, 0] <= base.test_metric + 1e-12)  # certified ⊂ correct
    assert np.all(np.diff(base.certified, axis=1) <= 0)  # fewer points at larger radii
    assert 0 < base.robustness_seconds < base.seconds
    plain = spec_module.load(write_study())
    assert fast.train(plain, data, plain.configurations()[0]).robustness is None


@pytest.mark.slow  # Keras predictions of 1,100 certification draws: about a minute
def test_keras_predictions_on_the_same_noisy_inputs_give_the_same_profile(write_study):
    """Same final weights: the Keras model's predictions and the compiled evaluation agree
    (at most one point of one draw flips on float rounding)."""
    from search.engine import keras_ref
    from search.noise import baseline

    s = spec_module.load(write_study(ROBUST), ["robustness.certify_std=0.25"])
    data = load_dataset(s)
    final = initial_weights(layer_sizes(data, s.model), 2, s.study.seed)
    compiled = noisy_eval.profiles(s, data, final)
    cert = noisy_eval.certified(s, data, final)
    for r in range(2):
        model = keras_ref.build_model(s, data, baseline("additive"),
                                      [(k[r], b[r]) for k, b in final])

        def predict(x: np.ndarray, model=model) -> np.ndarray:
            return np.asarray(model.predict(x, verbose=0))

        flip = 1.0 / (len(data.x_test) * 7)
        np.testing.assert_allclose(noisy_eval.predicted_profile(predict, s, data, r),
                                   compiled[r], atol=flip + 1e-9)
        np.testing.assert_allclose(noisy_eval.predicted_certified(predict, s, data, r),
                                   cert[r], atol=1.0 / len(data.x_test) + 1e-9)
