"""Noise on the weights trains on the gradient of the noisy loss with respect to the clean weights.

(a) One step of the fast engine (``fast.train_step``, given noise) equals plain SGD on
    TensorFlow's autodiff of the written-out formula W̃ = W(1 + σε) (multiplicative) or
    W̃ = W + σε (additive); for multiplicative noise that is dL/dW̃ ⊙ (1 + σε), not dL/dW̃.
(b) Wager, Wang & Liang (2013): for a linear model on MSE, multiplicative weight noise is a
    ridge in expectation, with each weight's penalty scaled by its feature's Σ x²; training
    under it approaches that minimiser, where dL/dW̃ alone leads to least squares.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from search.engine import fast
from search.noise import NoiseConfig, Site
from tests.test_science import D, N, assert_mean_is, linear_problem

SIGMA = 0.5

# --- (a) one step against autodiff ------------------------------------------------------------

R, B, SIZES = 2, 7, (3, 5, 4, 2)  # two hidden layers: the chain rule goes through each kernel
LR = 0.1
# Both sides compute in float32, maybe with sums in another order: a few ulps of steps of size
# ~0.1 (measured: equal here). The bug this guards against changes a kernel's gradient by
# σε ⊙ dL/dW̃, about half of it (measured: steps 0.03 apart); the test asserts > 100x TOL.
TOL = 1e-5


def given_normals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {f"weights/{i}": rng.standard_normal((R, a, b)).astype(np.float32)
            for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:]))}


def starting_point() -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(3)
    params = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        params += [rng.normal(0.0, 1.0 / math.sqrt(a), (R, a, b)), rng.normal(0.0, 0.1, (R, b))]
    x = rng.standard_normal((R, B, SIZES[0]))
    y = rng.standard_normal((R, B, SIZES[-1]))
    return ([tf.constant(p, tf.float32) for p in params], tf.constant(x, tf.float32),
            tf.constant(y, tf.float32))


def engine_step(kind: str, params: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor,
                eps: dict[str, np.ndarray]) -> list[np.ndarray]:
    cfg = fast.StepConfig(activation="tanh", task="regression", n_outputs=SIZES[-1],
                          optimizer="sgd", sites=frozenset({Site.WEIGHTS}), kind=kind)
    slots = ([tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])
    sigmas = {site: tf.constant(SIGMA if site == Site.WEIGHTS else 0.0) for site in Site}

    def noise(stream: str, shape: tuple[int, ...]) -> tf.Tensor:
        assert tuple(shape) == eps[stream].shape, stream
        return tf.constant(eps[stream])

    new, _, _ = fast.train_step(cfg, params, slots, tf.constant(0), x, y, None, sigmas, noise,
                                tf.constant(LR), tf.constant(0.0), tf.constant(0.55))
    return [p.numpy() for p in new]


def written_out_gradients(kind: str, params: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor,
                          eps: dict[str, np.ndarray]) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """(dL/dθ, dL/dθ̃): the gradient with respect to the clean parameters, and the one with
    respect to the noisy kernels (the biases carry no noise), by autodiff of the formula."""
    kernels = params[0::2]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(params)
        noisy = []
        for i, w in enumerate(kernels):
            e = tf.constant(eps[f"weights/{i}"])
            noisy.append(w * (1.0 + SIGMA * e) if kind == "multiplicative" else w + SIGMA * e)
            tape.watch(noisy[-1])
        h = x
        for i, (w, b) in enumerate(zip(noisy, params[1::2])):
            z = tf.matmul(h, w) + b[:, None, :]
            h = z if i == len(noisy) - 1 else tf.math.tanh(z)
        # Keras's MSE: mean over outputs and rows; the repeats are summed (independent models).
        loss = tf.reduce_sum(tf.reduce_mean(tf.square(h - y), axis=[1, 2]))
    clean = tape.gradient(loss, params)
    of_noisy = [tape.gradient(loss, noisy[i // 2]) if i % 2 == 0 else g
                for i, g in enumerate(clean)]
    return clean, of_noisy


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_one_step_is_sgd_on_autodiff_of_the_noisy_weights_formula(kind):
    params, x, y = starting_point()
    eps = given_normals()
    got = engine_step(kind, params, x, y, eps)
    clean, of_noisy = written_out_gradients(kind, params, x, y, eps)
    want = [p.numpy() - LR * g.numpy() for p, g in zip(params, clean)]
    for layer, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL, err_msg=f"parameter {layer}")
    # Not vacuous: the noise moved the step, and for multiplicative noise dL/dW̃ passed on to
    # W unchanged (the engine before version 4) gives another step, far outside TOL.
    noiseless = engine_step(kind, params, x, y, {k: 0 * v for k, v in eps.items()})
    assert max(np.max(np.abs(a - b)) for a, b in zip(got, noiseless)) > 100 * TOL
    if kind == "multiplicative":
        old = [p.numpy() - LR * g.numpy() for p, g in zip(params, of_noisy)]
        assert max(np.max(np.abs(a - b)) for a, b in zip(got, old)) > 100 * TOL


# --- (b) linear regression: a ridge in expectation ---------------------------------------------


@pytest.mark.slow
def test_wager_2013_multiplicative_weight_noise_is_a_scaled_ridge(tmp_path):
    """E_ε |y − X(w ⊙ (1 + σε)) − b|² = |y − Xw − b|² + σ² Σ_j w_j² Σ_i x_ij², ε ~ N(0, I) one
    draw per weight per step (the bias carries no noise and no penalty). So the minimiser is
    θ = (AᵀA + P)⁻¹ Aᵀy with A = [X 1] and P = σ² diag(Σ_i x_ij², …, 0).

    Each step's gradient with respect to (w, b) is an unbiased estimate of the expected loss's
    gradient, which is affine in (w, b): the mean of the iterates follows exact gradient descent
    on the expected loss (test_science.linear_problem), and the repeats' mean must be within 5
    standard errors of θ (assert_mean_is). dL/dW̃ alone is, in expectation, the gradient of the
    clean loss (it is affine in W̃ and E W̃ = W): it would lead to least squares, which is far
    from θ here (> 20 standard errors), so the test tells the two gradients apart. Measured
    (40 repeats, 3000 epochs): the mean is 2.4 se from θ and 32 se from least squares; with
    dL/dW̃ alone it was 26 se from θ and 1.7 se from least squares.
    """
    spec, data = linear_problem(tmp_path, epochs=3000)
    config = NoiseConfig(((Site.WEIGHTS, SIGMA),), "multiplicative")
    result, final = fast.train_with_weights(spec, data, config)
    assert not result.diverged
    (kernel, bias), = final
    w = np.concatenate([kernel[:, :, 0], bias], axis=1).astype(np.float64)
    x, y = data.x_train.astype(np.float64), data.y_train[:, 0].astype(np.float64)
    a = np.c_[x, np.ones(N)]
    penalty = np.diag(np.r_[SIGMA**2 * np.sum(x**2, axis=0), 0.0])
    theta = np.linalg.solve(a.T @ a + penalty, a.T @ y)
    se = assert_mean_is(w, theta)
    least_squares = np.linalg.lstsq(a, y, rcond=None)[0]
    assert np.max(np.abs(theta[:D] - least_squares[:D]) / se[:D]) > 20
