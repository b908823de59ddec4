"""The fast engine's random numbers are independent where the design says they are.

search/engine/_random.py keys every draw by (seed, stream, repeat) and counts it by step (a
step, an epoch, or a robustness draw), two normals to a counter. tests/test_science.py checks
that one stream's normals are standard normal; this checks what a wrong key would break:
(a) normals of different streams, repeats, steps and seeds, the two normals of a pair and
    neighbouring pairs are uncorrelated, in value and in square (a shared radius or sign
    shows in the squares or the signs), and mixtures of them are standard normal (KS);
(b) each epoch's data order is a uniformly random permutation (χ² of the positions, and of
    all orders of a short one), independent of the previous epoch's and the next repeat's.

Every draw is fixed (fixed seeds, counter-based generator), so each test gives the same
answer on every run; the thresholds make it very unlikely that a correct generator fails at
these seeds: |r| < 5/√N and p > 1e-6 (see each). Measured: 3-4 s of tests (after TensorFlow's
import) on a busy 2-core machine.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from search.engine import _random, fast, noisy_eval

SEED = tf.constant(20_240_611, tf.int64)
N = 2**19  # normals per sample
# Under independence a sample correlation of N pairs is ≈ N(0, 1/N), for the normals and for
# their squares alike (any finite fourth moment): |r| >= 5/√N has probability 6e-7, so the ~30
# correlations below fail a correct generator with probability ~2e-5. At N = 2^19 the bound is
# 0.007 (0.01 between the halves of pairs): a reused key (r = 1) fails by 100x or more, a
# dependence of r = 0.02 by 2x.
SDS = 5.0
# A p-value is uniform for a correct generator: P(p < 1e-6) = 1e-6 per test.
MIN_P = 1e-6


def normals(stream: int = 16, step: int = 0, repeats: int = 1, first: int = 0,
            seed: tf.Tensor = SEED) -> np.ndarray:
    """(repeats, N) float64, as the engine draws them (one vectorised draw over repeats)."""
    z = _random.normals(seed, stream, tf.constant(step), (repeats, N), first)
    return z.numpy().astype(np.float64)


def assert_uncorrelated(a: np.ndarray, b: np.ndarray, what: str) -> None:
    bound = SDS / math.sqrt(a.size)
    for name, u, v in (("values", a, b), ("squares", a * a, b * b)):
        r = np.corrcoef(u.ravel(), v.ravel())[0, 1]
        assert abs(r) < bound, f"{what}: correlation of the {name} {r:.4g}, bound {bound:.4g}"


def assert_standard_normal(z: np.ndarray, what: str) -> None:
    # At N = 2^19, p > 1e-6 allows a largest CDF error of about 2.6/√N = 0.004; a σ wrong by
    # 2%, or a dependence that makes a mixture's σ or shape wrong by that much, is above it.
    p = stats.kstest(z.ravel(), "norm").pvalue
    assert p > MIN_P, f"{what}: Kolmogorov–Smirnov p = {p:.3g}"


# --- (a) normals -------------------------------------------------------------------------------

# Streams of the engine's sites (fast.stream_id), of test-time noise (noisy_eval) and the
# shuffle's: neighbours, and far apart.
STREAM_PAIRS = [(fast.stream_id("hidden_pre/0"), fast.stream_id("hidden_pre/1")),
                (fast.stream_id("input"), fast.stream_id("targets")),
                (fast.stream_id("weights/0"), fast.stream_id("gradients/0")),
                (fast.stream_id("hidden_post/0"), noisy_eval.PROFILE_STREAM),
                (noisy_eval.SELECT_STREAM, noisy_eval.ESTIMATE_STREAM)]


@pytest.mark.parametrize(("s", "t"), STREAM_PAIRS)
def test_streams_are_independent(s, t):
    a, b = normals(stream=s)[0], normals(stream=t)[0]
    assert_uncorrelated(a, b, f"streams {s}, {t}")
    assert_standard_normal((a + b) / math.sqrt(2), f"(stream {s} + stream {t}) / √2")


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    """Repeats 0, 1, 2 of stream 16 at step 0."""
    return normals(repeats=3)


def test_repeats_are_independent_within_a_draw_and_across_blocks(base):
    z = base
    assert_uncorrelated(z[0], z[1], "repeats 0, 1")
    assert_uncorrelated(z[1], z[2], "repeats 1, 2")
    # Repeat 29 of a block starting there (racing) against repeat 0: the repeat shares its key
    # word with the stream (repeat · 256 + stream), so far repeats are checked too.
    far = normals(first=29)[0]
    assert_uncorrelated(z[0], far, "repeats 0, 29")
    assert_standard_normal((z[0] - z[1]) / math.sqrt(2), "(repeat 0 - repeat 1) / √2")


@pytest.mark.parametrize("later", [1, 2, 1000])
def test_steps_are_independent(later, base):
    a, b = base[0], normals(step=later)[0]
    assert_uncorrelated(a, b, f"steps 0, {later}")
    assert_standard_normal((a + b) / math.sqrt(2), f"(step 0 + step {later}) / √2")


def test_seeds_are_independent(base):
    assert_uncorrelated(base[0], normals(seed=SEED + 1)[0], "seeds s, s + 1")


def test_the_two_normals_of_a_pair_and_neighbouring_pairs_are_independent(base):
    z = base[0]
    z0, z1 = z[0::2], z[1::2]  # pair p gives elements 2p, 2p + 1 (_random.unpack)
    assert_uncorrelated(z0, z1, "the two normals of a pair")
    assert_uncorrelated(z1[:-1], z0[1:], "the second of pair p and the first of pair p + 1")
    assert_uncorrelated(z[:-2], z[2:], "pairs p and p + 1, element for element")
    # Independent jointly normal ⇔ every rotation of the pair is N(0, 1); Box–Muller with a
    # wrong direction keeps each marginal normal but not these.
    for angle in (math.pi / 4, math.pi / 8):
        mixed = math.cos(angle) * z0 + math.sin(angle) * z1
        assert_standard_normal(mixed, f"cos·z0 + sin·z1 at {angle:.3f}")
    # The signs of the pair are independent fair coins: the four quadrants equally often.
    counts = np.bincount(2 * (z0 > 0) + (z1 > 0), minlength=4)
    assert stats.chisquare(counts).pvalue > MIN_P, counts


# --- (b) epoch permutations --------------------------------------------------------------------

REPEATS, EPOCHS = 100, 100


def orders(n: int, first: int = 0) -> np.ndarray:
    """(EPOCHS, REPEATS, n): the engine's data order of each repeat in each epoch."""
    order = tf.function(lambda epoch: fast.epoch_order(SEED, epoch, REPEATS, n, first))
    return np.stack([order(tf.constant(e)).numpy() for e in range(EPOCHS)])


def position_chi2_p(perms: np.ndarray) -> float:
    """p-value of 'row i lands at each position equally often', over M permutations (M, n).

    The counts C[i, j] = #{m: perm_m[j] = i} are a sum of M uniform permutation matrices, each
    with covariance Q ⊗ Q / (n − 1), Q = I − J/n (of rank n − 1). So Pearson's
    X² = Σ (C − M/n)² / (M/n) has mean n (n − 1), not (n − 1)², and (n − 1)/n · X² is
    χ² with (n − 1)² degrees of freedom as M grows (here M/n = 1,000 per cell).
    """
    m, n = perms.shape
    counts = np.zeros((n, n))
    np.add.at(counts, (perms, np.broadcast_to(np.arange(n), perms.shape)), 1)
    expected = m / n
    x2 = float(np.sum((counts - expected) ** 2) / expected)
    return float(stats.chi2.sf((n - 1) / n * x2, (n - 1) ** 2))


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b ∘ a⁻¹ row by row: uniform and independent of a when a and b are independent uniform
    permutations, and the identity when b repeats a."""
    return np.take_along_axis(b, np.argsort(a, axis=-1), axis=-1)


@pytest.fixture(scope="module")
def ten_rows() -> np.ndarray:
    return orders(10)


def test_each_row_is_equally_likely_at_each_position(ten_rows):
    p = position_chi2_p(ten_rows.reshape(-1, 10))
    assert p > MIN_P, p


def test_every_order_of_four_rows_is_equally_likely():
    perms = orders(4).reshape(-1, 4)
    index = {order: i for i, order in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(p)] for p in perms], minlength=24)  # ~417 each
    assert stats.chisquare(counts).pvalue > MIN_P, counts


def test_orders_are_independent_across_epochs_and_repeats(ten_rows):
    # Consecutive epochs of a repeat, and neighbouring repeats in an epoch: if the orders are
    # independent uniform permutations, so are the relative ones (increments of a random walk
    # on the permutations are independent even where consecutive pairs overlap).
    across_epochs = relative(ten_rows[:-1], ten_rows[1:]).reshape(-1, 10)
    across_repeats = relative(ten_rows[:, :-1], ten_rows[:, 1:]).reshape(-1, 10)
    for what, perms in (("epochs", across_epochs), ("repeats", across_repeats)):
        p = position_chi2_p(perms)
        assert p > MIN_P, (what, p)
    # A block that starts at repeat 50 (racing) orders repeat 50 as the full run does, and
    # its repeats are not the first block's.
    block = orders(10, first=50)
    assert np.array_equal(block[:, :50], ten_rows[:, 50:])
    assert position_chi2_p(relative(ten_rows, block).reshape(-1, 10)) > MIN_P
