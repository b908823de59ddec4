"""Checks that guard the science of the fast engine's noise.

(a) Its normals are standard normal: moments within their standard errors, a
    Kolmogorov–Smirnov test on 2·10^7 draws, tails as the normal's beyond 5σ; and its
    Threefry bits are the published generator's.
(b) Bishop (1995): for a linear model trained on MSE, input noise of variance σ² is ridge
    regression in expectation.
(c) An (1996): target noise under MSE leaves the expected optimum where it is.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from search import spec as spec_module
from search.data import Dataset
from search.engine import _random, fast
from search.noise import parse_config_key
from search.spec import StudySpec

# --- (a) the normals ---------------------------------------------------------------------------

N_DRAWS = 20_000_000


@pytest.fixture(scope="module")
def engine_normals() -> np.ndarray:
    """2·10^7 normals as the engine draws them: 40 repeats × 50,000 elements × 10 steps."""
    draw = tf.function(lambda step: _random.normals(tf.constant(1, tf.int64), 16, step,
                                                    (40, 50_000)), jit_compile=True)
    z = np.concatenate([draw(tf.constant(t)).numpy().ravel() for t in range(10)])
    assert z.size == N_DRAWS
    return z.astype(np.float64)


def test_threefry_matches_the_published_known_answers():
    """Random123's known-answer vectors for Threefry-2x32 with 20 rounds (kat_vectors)."""
    fn = tf.function(lambda k0, k1, c0, c1: _random.threefry2x32((k0, k1), (c0, c1)),
                     jit_compile=True)
    cases = [((0, 0, 0, 0), (0x6B200159, 0x99BA4EFE)),
             ((0xFFFFFFFF,) * 4, (0x1CB996FC, 0xBB002BE7)),
             ((0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0))]
    for (k0, k1, c0, c1), want in cases:
        got = fn(*(tf.constant([v], tf.uint32) for v in (k0, k1, c0, c1)))
        assert tuple(int(g.numpy()[0]) for g in got) == want


def test_normals_are_the_box_muller_pairs_in_order_compiled_or_not():
    """Element 2p and 2p + 1 of a repeat's draw are the two normals of its counter p, for an
    odd count too (the last pair's second normal is dropped), in XLA and eagerly alike: the
    packing into uint64 and its unpacking change how fast, never which numbers."""
    seed, step, shape = tf.constant(9, tf.int64), tf.constant(4), (3, 5, 7)  # 35 per repeat
    w0, w1 = _random.bits(seed, 12, 3, step, _random.pairs_for(shape), first=2)
    z0, z1 = (z.numpy() for z in _random.box_muller(w0, w1))
    want = np.stack([z0, z1], axis=-1).reshape(3, -1)[:, :35].reshape(shape)
    eager = _random.normals(seed, 12, step, shape, first=2).numpy()
    compiled = tf.function(lambda s, t: _random.normals(s, 12, t, shape, first=2),
                           jit_compile=True)(seed, step).numpy()
    assert np.array_equal(eager, want) and np.allclose(compiled, want, rtol=0, atol=2e-6)


@pytest.mark.slow
def test_normals_have_the_moments_of_a_standard_normal(engine_normals):
    z = engine_normals
    n = z.size
    mean, sd = z.mean(), z.std()
    skew = np.mean(((z - mean) / sd) ** 3)
    excess_kurtosis = np.mean(((z - mean) / sd) ** 4) - 3.0
    # Standard errors of the sample moments of n independent N(0, 1) draws; each estimate is
    # then ~N(truth, se²), and 5 se bounds a false alarm at ~6e-7 per moment.
    for name, value, truth, se in (("mean", mean, 0.0, 1 / math.sqrt(n)),
                                   ("variance", sd**2, 1.0, math.sqrt(2 / n)),
                                   ("skewness", skew, 0.0, math.sqrt(6 / n)),
                                   ("excess kurtosis", excess_kurtosis, 0.0, math.sqrt(24 / n))):
        assert abs(value - truth) < 5 * se, f"{name}: {value} (se {se})"


@pytest.mark.slow
def test_normals_pass_kolmogorov_smirnov_on_2e7_draws(engine_normals):
    # With 2·10^7 draws the test sees a CDF error of ~1.36 / sqrt(n) = 3e-4 at the 5% level;
    # a float32 inverse-CDF or Box–Muller error (1e-7) is far below that, a wrong σ or a
    # truncated tail is far above it.
    result = stats.kstest(engine_normals, "norm")
    assert result.pvalue > 1e-3, result


@pytest.mark.slow
def test_normal_tails_reach_past_5_sigma_as_often_as_a_normals(engine_normals):
    a = np.abs(engine_normals)
    n = a.size
    for k in (3.0, 4.0, 4.5, 5.0):
        expected = n * 2 * stats.norm.sf(k)
        count = np.count_nonzero(a > k)
        # A count of rare events is ~Poisson(expected): within 5 sd, and never 0 beyond 5σ
        # (expected 11.5 draws here; P(none) = 1e-5).
        assert abs(count - expected) < 5 * math.sqrt(expected) + 1, (k, count, expected)
        assert count > 0, k
    # The generator's own bound: u >= 2^-33, so r <= sqrt(2 · 33 · ln 2).
    assert a.max() <= math.sqrt(2 * 33 * math.log(2))


# --- (b), (c) linear regression ----------------------------------------------------------------

N, D, REPEATS = 50, 3, 40
W_TRUE, B_TRUE = np.array([1.5, -2.0, 0.7]), 0.5


def linear_problem(tmp_path, epochs: int) -> tuple[StudySpec, Dataset]:
    """A linear model (no hidden layer) on y = x·w + b + 0.1 ε, plain SGD, full batches.

    Plain SGD with momentum 0, because its iterates are unbiased here: the MSE of a linear
    model is quadratic, and input or target noise makes each gradient an unbiased estimate of
    the gradient of the expected loss, so the mean of the iterates follows exact gradient
    descent on the expected loss and converges to its minimum; what remains is a zero-mean
    fluctuation, independent across repeats (independent noise streams).
    """
    path = tmp_path / "linear.toml"
    path.write_text((spec_module.Path(__file__).parents[1] / "studies" / "friedman1.toml")
                    .read_text())
    spec = spec_module.load(path, [f"study.repeats={REPEATS}", f"model.epochs={epochs}",
                                   "model.optimizer='sgd'", "model.learning_rate=0.02",
                                   f"model.batch_size={N}", "study.record_every=100",
                                   "model.activation='relu'"])
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, hidden=()))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2 * N, D))
    y = x @ W_TRUE + B_TRUE + 0.1 * rng.standard_normal(2 * N)
    data = Dataset(x_train=x[:N].astype(np.float32), y_train=y[:N, None].astype(np.float32),
                   x_test=x[N:].astype(np.float32), y_test=y[N:, None].astype(np.float32),
                   task="regression", n_classes=0, feature_names=("a", "b", "c"))
    return spec, data


def final_linear_weights(spec: StudySpec, data: Dataset, key: str) -> np.ndarray:
    """(repeats, D + 1): each repeat's final kernel and bias."""
    result, final = fast.train_with_weights(spec, data, parse_config_key(key))
    assert not result.diverged
    (kernel, bias), = final  # one layer: no hidden layer
    return np.concatenate([kernel[:, :, 0], bias], axis=1).astype(np.float64)


def assert_mean_is(weights: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The repeats' mean equals ``want`` within 5 standard errors per coefficient (the repeats
    are independent draws around it, see linear_problem); returns the standard errors."""
    se = weights.std(axis=0, ddof=1) / math.sqrt(len(weights))
    # 1e-5: float32 rounding of the weights themselves, when the repeats barely differ.
    assert np.all(np.abs(weights.mean(axis=0) - want) < 5 * se + 1e-5), (weights.mean(0), want,
                                                                        se)
    return se


def test_a_linear_model_without_hidden_layer_trains_to_least_squares(tmp_path):
    from sklearn.linear_model import LinearRegression

    spec, data = linear_problem(tmp_path, epochs=3000)
    w = final_linear_weights(spec, data, "none")
    ols = LinearRegression().fit(data.x_train, data.y_train[:, 0])
    np.testing.assert_allclose(w, np.tile(np.r_[ols.coef_, ols.intercept_], (REPEATS, 1)),
                               atol=1e-4)


@pytest.mark.slow
def test_bishop_1995_input_noise_is_ridge_regression(tmp_path):
    """E_ε (y − (x + ε)·w − b)² = (y − x·w − b)² + σ² |w|² for ε ~ N(0, σ² I): the expected
    mean loss over n rows is (1/n) Σ (y − x·w − b)² + σ² |w|², and n times it is scikit-learn's
    Ridge objective |y − Xw − b|² + α |w|² with α = n σ² (intercept not penalised in either).
    """
    from sklearn.linear_model import LinearRegression, Ridge

    spec, data = linear_problem(tmp_path, epochs=3000)
    sigma = 0.5
    w = final_linear_weights(spec, data, f"input:{sigma}")
    ridge = Ridge(alpha=N * sigma**2).fit(data.x_train, data.y_train[:, 0])
    se = assert_mean_is(w, np.r_[ridge.coef_, ridge.intercept_])
    # Not vacuous: ridge is far from least squares here, many standard errors away.
    ols = LinearRegression().fit(data.x_train, data.y_train[:, 0])
    assert np.max(np.abs(ridge.coef_ - ols.coef_) / se[:D]) > 20


@pytest.mark.slow
def test_an_1996_target_noise_leaves_the_least_squares_optimum(tmp_path):
    """E_ε (y + ε − x·w − b)² = (y − x·w − b)² + σ²: the same minimiser as without noise."""
    from sklearn.linear_model import LinearRegression

    spec, data = linear_problem(tmp_path, epochs=3000)
    w = final_linear_weights(spec, data, "targets:0.5")
    ols = LinearRegression().fit(data.x_train, data.y_train[:, 0])
    se = assert_mean_is(w, np.r_[ols.coef_, ols.intercept_])
    # Not vacuous: the noise moved every repeat (without it they agree to float32 rounding).
    assert np.all(se > 1e-3)
