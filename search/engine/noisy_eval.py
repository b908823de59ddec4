"""Test-time noise: every repeat's final model measured under Gaussian noise on the test inputs.

For ``[robustness]``: at each σ of ``input_std`` and for ``draws`` draws, the test inputs
become x + σ·ε (additive) or x·(1 + σ·ε) (multiplicative), ε standard normal, and the
study's metric is measured; a repeat's profile is the mean over the draws at each σ,
(R, S) in all. With ``certify_std``, randomized smoothing's counts (Cohen et al. 2019):
how often each class wins under n0 = 100 selection draws and ``certify_n`` estimation
draws of N(0, certify_std²) per test point, turned into certified accuracy per radius by
search.analysis.robustness.

Common random numbers, as in training (docs/ARCHITECTURE.md, decision 3): ε comes from
the engine's counter-based generator (search/engine/_random.py) keyed by (seed, stream,
repeat) and counted by draw, on streams of its own that training never draws from. So
repeat r of every configuration is measured on the same noisy test sets, and every σ of
the grid scales the same ε (the profile of one model is smooth in σ, not jagged by draws).

The fast engine runs it as one more XLA program on all repeats' final parameters, right
after training (``profiles``, ``certification_counts``); the Keras engine asks each
repeat's own model for predictions on the same noisy inputs (``keras_profile``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from search.analysis import robustness as robust_stats
from search.engine import _random
from search.engine._common import TrainResult
from search.metrics import classes_per_repeat, metric_per_repeat, metric_value, predicted_classes

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

# Streams of the generator (training uses 1-3 and 16-143): test-time noise, and the
# selection and estimation draws of certification.
PROFILE_STREAM, SELECT_STREAM, ESTIMATE_STREAM = 5, 6, 7
SELECTION_DRAWS = robust_stats.SELECTION_DRAWS  # n0 of CERTIFY


def _perturb(x: tf.Tensor, sigma: tf.Tensor, eps: tf.Tensor, kind: str) -> tf.Tensor:
    if kind == "multiplicative":
        return x * (1.0 + sigma * eps)
    return x + sigma * eps


def _forward(activation: str, params: Sequence[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Logits (R, N, outputs) of Dense layers with kernels (R, in, out), x (R, N, features)."""
    act = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid, "elu": tf.nn.elu}[
        activation]
    h = x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        z = tf.matmul(h, params[2 * layer]) + params[2 * layer + 1][:, None, :]
        h = z if layer == n_layers - 1 else act(z)
    return h


@dataclass(frozen=True)
class EvalKey:
    """What shapes the compiled evaluation (σ values, seed and data are tensors)."""

    activation: str
    task: str
    metric: str
    kind: str
    repeats: int
    draws: int
    n_sigmas: int


_PROGRAMS: dict[Any, Callable[..., Any]] = {}


def _profile_program(key: EvalKey) -> Callable[..., Any]:
    """(params, x, y, sigmas (S,), seed, first) -> (R, S) metric, mean over the draws."""
    if key in _PROGRAMS:
        return _PROGRAMS[key]

    @tf.function(jit_compile=True, autograph=False)
    def run(params: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor, sigmas: tf.Tensor,
            seed: tf.Tensor, first: tf.Tensor) -> tf.Tensor:
        shape = (key.repeats, *x.shape)

        def body(draw: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            eps = _random.normals(seed, PROFILE_STREAM, draw, shape, first)
            logits = [_forward(key.activation, params, _perturb(x[None], sigmas[s], eps, key.kind))
                      for s in range(key.n_sigmas)]
            per_sigma = [metric_per_repeat(key.task, key.metric, z, y) for z in logits]
            return draw + 1, total + tf.stack(per_sigma, axis=1)

        zero = tf.zeros((key.repeats, key.n_sigmas), tf.float32)
        _, total = tf.while_loop(lambda d, _: d < key.draws, body, (tf.constant(0), zero))
        return total / float(key.draws)

    _PROGRAMS[key] = run
    return run


def profiles(spec: StudySpec, data: Dataset, final: Sequence[tuple[np.ndarray, np.ndarray]],
             first: int = 0) -> np.ndarray:
    """(R, S) float64: each repeat's metric at each test σ of ``[robustness] input_std``.

    ``final`` holds per layer (kernel (R, in, out), bias (R, out)); ``first`` is the study
    index of its first repeat (the noise is keyed by it).
    """
    assert spec.robustness is not None
    r = spec.robustness
    repeats = int(final[0][0].shape[0])
    key = EvalKey(spec.model.activation, data.task, spec.metric, spec.robustness_kind,
                  repeats, r.draws, len(r.input_std))
    params = [tf.constant(np.asarray(a, np.float32)) for pair in final for a in pair]
    out = _profile_program(key)(
        params, tf.constant(np.asarray(data.x_test, np.float32)), tf.constant(data.y_test),
        tf.constant(r.input_std, tf.float32), tf.constant(spec.study.seed, tf.int64),
        tf.constant(first, tf.int32))
    values = out.numpy().astype(np.float64)
    if data.task != "regression":
        # Accuracy is a count over draws × rows: undo float32 rounding.
        count = r.draws * len(data.x_test)
        values = np.round(values * count) / count
    return values


def _count_program(activation: str, task: str, n_classes: int, repeats: int,
                   draws: int, stream: int) -> Callable[..., Any]:
    """(params, x, sigma, seed, first) -> (R, N, K) int32: class wins under ``draws`` draws."""
    key = ("count", activation, task, n_classes, repeats, draws, stream)
    if key in _PROGRAMS:
        return _PROGRAMS[key]

    @tf.function(jit_compile=True, autograph=False)
    def run(params: list[tf.Tensor], x: tf.Tensor, sigma: tf.Tensor, seed: tf.Tensor,
            first: tf.Tensor) -> tf.Tensor:
        shape = (repeats, *x.shape)

        def body(draw: tf.Tensor, counts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            eps = _random.normals(seed, stream, draw, shape, first)
            logits = _forward(activation, params, x[None] + sigma * eps)
            won = classes_per_repeat(task, logits)
            return draw + 1, counts + tf.one_hot(won, n_classes, dtype=tf.int32)

        zero = tf.zeros((repeats, x.shape[0], n_classes), tf.int32)
        _, counts = tf.while_loop(lambda d, _: d < draws, body, (tf.constant(0), zero))
        return counts

    _PROGRAMS[key] = run
    return run


def certified(spec: StudySpec, data: Dataset, final: Sequence[tuple[np.ndarray, np.ndarray]],
              first: int = 0) -> np.ndarray:
    """(R, len(certify_radii)): each repeat's certified accuracy at each radius (CERTIFY with
    n0 = 100 selection draws and ``certify_n`` estimation draws of N(0, certify_std²))."""
    r = spec.robustness
    assert r is not None and r.certify_std is not None
    repeats = int(final[0][0].shape[0])
    n_classes = max(data.n_classes, 2)
    params = [tf.constant(np.asarray(a, np.float32)) for pair in final for a in pair]
    given = (tf.constant(np.asarray(data.x_test, np.float32)),
             tf.constant(r.certify_std, tf.float32), tf.constant(spec.study.seed, tf.int64),
             tf.constant(first, tf.int32))
    select, estimate = (
        _count_program(spec.model.activation, data.task, n_classes, repeats, draws,
                       stream)(params, *given).numpy()
        for draws, stream in ((SELECTION_DRAWS, SELECT_STREAM), (r.certify_n, ESTIMATE_STREAM)))
    labels = np.asarray(data.y_test).reshape(len(data.x_test), -1)[:, 0].astype(np.int64)
    rows = []
    for rep in range(repeats):
        guess, radius = robust_stats.certify(select[rep], estimate[rep],
                                             r.certify_std, r.certify_alpha)
        rows.append(robust_stats.certified_accuracy(guess, radius, labels, r.certify_radii))
    return np.asarray(rows, np.float64)


def with_robustness(spec: StudySpec, data: Dataset, result: TrainResult,
                    final: Sequence[tuple[np.ndarray, np.ndarray]], first: int = 0
                    ) -> TrainResult:
    """``result`` with its repeats' profiles (and certification) when the study asks for them;
    the time they took is in ``robustness_seconds`` and added to ``seconds``."""
    if spec.robustness is None:
        return result
    started = time.perf_counter()
    profile = profiles(spec, data, final, first)
    cert = (certified(spec, data, final, first)
            if spec.robustness.certify_std is not None else None)
    spent = time.perf_counter() - started
    return replace(result, robustness=profile, certified=cert, robustness_seconds=spent,
                   seconds=result.seconds + spent)


# --- the Keras engine: the same noisy inputs, the model's own predictions ----------------------

Predict = Callable[[np.ndarray], np.ndarray]  # rows (n, features) -> model outputs (n, outputs)


def _eps(spec: StudySpec, stream: int, draw: int, x: np.ndarray, repeat: int) -> np.ndarray:
    """The ε the fast engine draws for ``repeat`` (one repeat of the same keyed stream)."""
    return _random.normals(tf.constant(spec.study.seed, tf.int64), stream, tf.constant(draw),
                           (1, *x.shape), repeat).numpy()[0]


def predicted_profile(predict: Predict, spec: StudySpec, data: Dataset, repeat: int
                      ) -> np.ndarray:
    """(S,): one repeat's metric at each test σ, mean over the draws, from its predictions."""
    r = spec.robustness
    assert r is not None
    x, y = np.asarray(data.x_test, np.float32), np.asarray(data.y_test)
    eps = [_eps(spec, PROFILE_STREAM, d, x, repeat) for d in range(r.draws)]
    noisy = [x * (1 + s * e) if spec.robustness_kind == "multiplicative" else x + s * e
             for s in r.input_std for e in eps]
    out = np.asarray(predict(np.concatenate(noisy).astype(np.float32)), np.float64)
    parts = out.reshape(len(r.input_std), r.draws, len(x), -1)
    return np.array([[metric_value(data.task, spec.metric, part, y) for part in row]
                     for row in parts]).mean(axis=1)


def predicted_certified(predict: Predict, spec: StudySpec, data: Dataset, repeat: int
                        ) -> np.ndarray:
    """(radii,): one repeat's certified accuracy, CERTIFY on its predictions."""
    r = spec.robustness
    assert r is not None and r.certify_std is not None
    x = np.asarray(data.x_test, np.float32)
    n_classes = max(data.n_classes, 2)
    counts = []
    for draws, stream in ((SELECTION_DRAWS, SELECT_STREAM), (r.certify_n, ESTIMATE_STREAM)):
        noisy = np.concatenate([x + r.certify_std * _eps(spec, stream, d, x, repeat)
                                for d in range(draws)])
        out = np.asarray(predict(noisy), np.float64).reshape(draws, len(x), -1)
        won = predicted_classes(data.task, out)
        counts.append(np.stack([np.bincount(won[:, i], minlength=n_classes)
                                for i in range(len(x))]))
    labels = np.asarray(data.y_test).reshape(len(x), -1)[:, 0].astype(np.int64)
    guess, radius = robust_stats.certify(counts[0], counts[1], r.certify_std, r.certify_alpha)
    return np.asarray(robust_stats.certified_accuracy(guess, radius, labels, r.certify_radii))
