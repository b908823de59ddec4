"""The fast engine: all repeats of one configuration as one batched model, one XLA program.

Why it is fast (docs/ARCHITECTURE.md, decision 1): the repeat index is a leading axis on
every weight, so R models train in the same matmuls; the whole epoch loop is
a ``tf.while_loop`` inside one ``tf.function(jit_compile=True)``, so Python
never runs per epoch; and the program is compiled once per model shape and
set of noise sites, with σ, learning rate and seed passed as tensors, so every
σ of a placement reuses it.

Why it is right (decision 2): it computes Keras's training step. Dense is
``x @ W + b``; losses are Keras's (sigmoid / softmax cross-entropy from logits,
which is what Keras uses when the output activation is sigmoid or softmax;
MSE), reduced as the mean over the batch; optimizers follow keras/src/optimizers
line by line; mini-batches are Keras's (a fresh shuffle per epoch, a smaller last
batch). ``tests/test_parity.py`` checks this against real Keras.

Noise (decision 3) comes from counter-based RNG (search/engine/_random.py) keyed by
(seed, stream, repeat) and counted by step, where a stream is a site (and layer); so every
configuration of a study sees the same standard-normal draws, scaled by its own σ, and the
same data order (keyed by (seed, repeat, epoch)), and repeat r is the same run however many
repeats train with it. All repeats draw in one vectorised operation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import tensorflow as tf
from scipy.special import expit, softmax

from search.engine import _random, noisy_eval
from search.engine._common import (
    ADAM_BETA_1,
    ADAM_BETA_2,
    CURVE_NAMES,
    EPSILON,
    RMSPROP_RHO,
    TrainResult,
    initial_weights,
    layer_sizes,
    learning_rate,
    record_epochs,
    xla_cache_dir,
)

# The engine's declarations, read without TensorFlow (every site, the built-in MLP).
from search.engine._fast_limits import ABOUT as ABOUT
from search.engine._fast_limits import MODELS as MODELS
from search.engine._fast_limits import NAME as NAME
from search.engine._fast_limits import SITES as SITES
from search.engine._fast_limits import check as check
from search.metrics import metric_per_repeat
from search.noise import NoiseConfig, Site

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

# One tf.function per program key is intended, not a retracing problem.
tf.get_logger().setLevel("ERROR")



def _keep_compiled_programs() -> None:
    """Compiled XLA programs persist on disk (TensorFlow's persistent compilation cache), so a
    later run of the same model shapes loads them instead of compiling: a few seconds per
    placement. $NOISE_SEARCH_XLA_CACHE names the directory ('' turns it off); default
    ~/.cache/noise-search/xla-tf<version>. TensorFlow checks that a loaded entry is the same
    program. Read when the first program compiles, so it is set here, at import."""
    if "tf_xla_persistent_cache_directory" in os.environ.get("TF_XLA_FLAGS", ""):
        return  # the user chose
    path = xla_cache_dir(f"xla-tf{tf.__version__}")
    if path is None:
        return
    flags = os.environ.get("TF_XLA_FLAGS", "")
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={path}".strip()


_keep_compiled_programs()


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "relu": tf.nn.relu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "elu": tf.nn.elu,
}

# A noise source maps (stream name, shape) to standard-normal draws. The engine's own
# source is stateless RNG keyed by step; parity tests pass given tensors instead.
NoiseSource = Callable[[str, Sequence[int]], tf.Tensor]

_SHUFFLE_STREAM = 3
_STREAM_BASES = {"input": 1, "targets": 2, "hidden_pre": 16, "hidden_post": 48, "weights": 80,
                 "gradients": 112}


def stream_id(stream: str) -> int:
    """'hidden_pre/1' -> a small integer, distinct for every site and layer."""
    site, _, index = stream.partition("/")
    return _STREAM_BASES[site] + (int(index) if index else 0)


@dataclass(frozen=True)
class StepConfig:
    """Everything that shapes the compiled program (σ and rates are tensors, not here)."""

    activation: str
    task: str  # binary | multiclass | regression
    n_outputs: int
    optimizer: str
    sites: frozenset[Site]
    kind: str


def _perturb(h: tf.Tensor, sigma: tf.Tensor, eps: tf.Tensor, kind: str) -> tf.Tensor:
    if kind == "multiplicative":
        return h * (1.0 + sigma * eps)  # h · N(1, σ²), as Keras GaussianDropout
    return h + sigma * eps  # h + N(0, σ²), as Keras GaussianNoise


def forward(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    x: tf.Tensor,
    sigmas: dict[Site, tf.Tensor] | None = None,
    noise: NoiseSource | None = None,
) -> tf.Tensor:
    """Logits (R, B, outputs). With ``noise`` None the pass is clean (evaluation).

    ``params`` is [W0, b0, W1, b1, ...] with kernels (R, in, out); ``x`` is
    (R, B, features) or, for a clean pass, (B, features) shared by all repeats.
    """
    active = cfg.sites if noise is not None else frozenset()
    sig = sigmas or {}
    act = ACTIVATIONS[cfg.activation]
    h = x
    if Site.INPUT in active:
        h = _perturb(h, sig[Site.INPUT], noise("input", h.shape), cfg.kind)  # type: ignore[misc]
    n_layers = len(params) // 2
    for layer in range(n_layers):
        kernel, bias = params[2 * layer], params[2 * layer + 1]
        if Site.WEIGHTS in active:
            noisy = _perturb(kernel, sig[Site.WEIGHTS], noise(f"weights/{layer}", kernel.shape),  # type: ignore[misc]
                             cfg.kind)
            if cfg.kind == "multiplicative":
                # Differentiated through W(1 + σε), so the clean kernel gets dL/dW̃ ⊙ (1 + σε):
                # passing dL/dW̃ on unchanged drops the expected penalty σ² Σ w² E[x²] that
                # makes this noise a ridge for a linear model (Wager, Wang & Liang 2013).
                kernel = noisy
            else:
                # dW̃/dW is the identity here; written this way the additive numbers stay those
                # of engine version 3, bit for bit.
                kernel = kernel + tf.stop_gradient(noisy - kernel)
        z = tf.matmul(h, kernel) + bias[:, None, :]
        if layer == n_layers - 1:
            return z
        if Site.HIDDEN_PRE in active:
            z = _perturb(z, sig[Site.HIDDEN_PRE], noise(f"hidden_pre/{layer}", z.shape), cfg.kind)  # type: ignore[misc]
        h = act(z)
        if Site.HIDDEN_POST in active:
            h = _perturb(h, sig[Site.HIDDEN_POST], noise(f"hidden_post/{layer}", h.shape),  # type: ignore[misc]
                         cfg.kind)
    raise AssertionError("a model has at least one layer")


def targets_as_float(cfg: StepConfig, y: tf.Tensor) -> tf.Tensor:
    """Binary and regression targets are already (…, 1) floats; classes become one-hot."""
    if cfg.task == "multiclass":
        return tf.one_hot(tf.cast(y, tf.int32), cfg.n_outputs, dtype=tf.float32)
    return tf.cast(y, tf.float32)


def per_sample_loss(cfg: StepConfig, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Keras's loss per sample, (R, B); ``y`` as from targets_as_float (maybe soft)."""
    if cfg.task == "binary":
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_mean(losses, axis=-1)
    if cfg.task == "multiclass":
        return tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.reduce_mean(tf.square(logits - y), axis=-1)


def noisy_targets(cfg: StepConfig, y: tf.Tensor, sigma: tf.Tensor, eps: tf.Tensor) -> tf.Tensor:
    noisy = _perturb(y, sigma, eps, cfg.kind)
    if cfg.task == "regression":
        return noisy
    return tf.clip_by_value(noisy, 0.0, 1.0)  # soft targets stay probabilities


def apply_update(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    grads: Sequence[tf.Tensor],
    slots: tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]],
    step: tf.Tensor,
    lr: tf.Tensor,
    momentum: tf.Tensor,
) -> tuple[list[tf.Tensor], tuple[list[tf.Tensor], list[tf.Tensor]]]:
    """One optimizer update, transcribed from keras/src/optimizers (Keras 3)."""
    new_params, new_a, new_b = [], [], []
    for p, g, a, b in zip(params, grads, slots[0], slots[1]):
        if cfg.optimizer == "adam":
            local_step = tf.cast(step + 1, tf.float32)
            alpha = lr * tf.sqrt(1.0 - ADAM_BETA_2**local_step) / (1.0 - ADAM_BETA_1**local_step)
            a = a + (g - a) * (1.0 - ADAM_BETA_1)
            b = b + (tf.square(g) - b) * (1.0 - ADAM_BETA_2)
            p = p - (a * alpha) / (tf.sqrt(b) + EPSILON)
        elif cfg.optimizer == "rmsprop":
            a = RMSPROP_RHO * a + (1.0 - RMSPROP_RHO) * tf.square(g)
            p = p - lr * g / tf.sqrt(a + EPSILON)
        else:  # sgd; with momentum 0 this is exactly p - lr * g
            a = momentum * a - lr * g
            p = p + a
        new_params.append(p)
        new_a.append(a)
        new_b.append(b)
    return new_params, (new_a, new_b)


def train_step(
    cfg: StepConfig,
    params: Sequence[tf.Tensor],
    slots: tuple[Sequence[tf.Tensor], Sequence[tf.Tensor]],
    step: tf.Tensor,
    x: tf.Tensor,
    y: tf.Tensor,
    mask: tf.Tensor | None,
    sigmas: dict[Site, tf.Tensor],
    noise: NoiseSource,
    lr: tf.Tensor,
    momentum: tf.Tensor,
    gamma: tf.Tensor,
) -> tuple[list[tf.Tensor], tuple[list[tf.Tensor], list[tf.Tensor]], tf.Tensor]:
    """One noisy training step of all repeats; returns params, slots and loss per repeat (R,).

    ``x`` (R, B, features), ``y`` (R, B, …) as from targets_as_float; ``mask`` (B,)
    marks the real rows of a padded last batch (None: all real).
    """
    if Site.TARGETS in cfg.sites:
        y = noisy_targets(cfg, y, sigmas[Site.TARGETS], noise("targets", y.shape))
    params = list(params)
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses = per_sample_loss(cfg, forward(cfg, params, x, sigmas, noise), y)
        if mask is None:
            loss = tf.reduce_mean(losses, axis=1)
        else:
            loss = tf.reduce_sum(losses * mask, axis=1) / tf.reduce_sum(mask)
        total = tf.reduce_sum(loss)  # repeats are independent: d total / d θ_r = d loss_r / d θ_r
    grads = tape.gradient(total, params)
    if Site.GRADIENTS in cfg.sites:
        # Annealed (Neelakantan et al. 2015): σ_t² = σ² / (1 + t)^γ.
        sigma_t = sigmas[Site.GRADIENTS] / tf.pow(1.0 + tf.cast(step, tf.float32), gamma / 2.0)
        grads = [_perturb(g, sigma_t, noise(f"gradients/{i}", g.shape), cfg.kind)
                 for i, g in enumerate(grads)]
    new_params, new_slots = apply_update(cfg, params, grads, slots, step, lr, momentum)
    return new_params, new_slots, loss


def evaluate(cfg: StepConfig, params: Sequence[tf.Tensor], x: tf.Tensor, y: tf.Tensor,
             metric: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Clean loss and metric per repeat on a whole set: ((R,), (R,))."""
    logits = forward(cfg, params, x)
    y_true = tf.broadcast_to(targets_as_float(cfg, y)[None], tf.shape(logits))
    loss = tf.reduce_mean(per_sample_loss(cfg, logits, y_true), axis=1)
    return loss, metric_per_repeat(cfg.task, metric, logits, y)


def _rng_noise(seed: tf.Tensor, step: tf.Tensor, first: tf.Tensor | int = 0) -> NoiseSource:
    """The engine's noise at ``step`` for repeats first, first + 1, …, drawn where it is asked
    for (the compiled program draws the same numbers one step ahead, see _Program)."""
    def draw(stream: str, shape: Sequence[int]) -> tf.Tensor:
        return _random.normals(seed, stream_id(stream), step, shape, first)

    return draw


def epoch_order(seed: tf.Tensor, epoch: tf.Tensor, repeats: int, n: int,
                first: tf.Tensor | int = 0) -> tf.Tensor:
    """The order in which each repeat visits the n training rows in ``epoch`` (0-based), (R, n).

    A fresh shuffle per repeat and epoch, as Keras shuffles before every epoch; the
    first batch is the first B rows of the order, the last batch may be smaller. Keyed by
    repeat like the noise: repeat r's order does not depend on how many repeats train.
    """
    return _random.permutations(seed, _SHUFFLE_STREAM, epoch, repeats, n, first)


def noise_streams(cfg: StepConfig, sizes: Sequence[int], repeats: int, batch: int,
                  target_width: int) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every (stream, shape) one training step draws, in a fixed order (see train_step)."""
    R, sites = repeats, cfg.sites
    streams: list[tuple[str, tuple[int, ...]]] = []
    if Site.TARGETS in sites:
        streams.append(("targets", (R, batch, target_width)))
    if Site.INPUT in sites:
        streams.append(("input", (R, batch, sizes[0])))
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if Site.WEIGHTS in sites:
            streams.append((f"weights/{layer}", (R, fan_in, fan_out)))
        hidden = layer < len(sizes) - 2
        for site in (Site.HIDDEN_PRE, Site.HIDDEN_POST):
            if hidden and site in sites:
                streams.append((f"{site.value}/{layer}", (R, batch, fan_out)))
    if Site.GRADIENTS in sites:
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            streams.append((f"gradients/{2 * layer}", (R, fan_in, fan_out)))
            streams.append((f"gradients/{2 * layer + 1}", (R, fan_out)))
    return tuple(streams)


@dataclass(frozen=True)
class ProgramKey:
    step: StepConfig
    sizes: tuple[int, ...]
    repeats: int
    n_train: int
    n_test: int
    epochs: int
    batch_size: int
    record_every: int
    metric: str


class _Inputs(NamedTuple):
    """What one run is given: data, σ per site, rates, seed (tensors: σ and rates are not
    part of the compiled program, so every σ of a placement reuses it)."""

    x_train: tf.Tensor
    y_train: tf.Tensor  # as from targets_as_float
    y_raw: tf.Tensor  # as given (class indices for multiclass), for evaluate
    x_test: tf.Tensor
    y_test: tf.Tensor
    sigmas: dict[Site, tf.Tensor]
    lr: tf.Tensor
    momentum: tf.Tensor
    gamma: tf.Tensor
    seed: tf.Tensor
    first: tf.Tensor  # the study's index of this block's repeat 0


class _State(NamedTuple):
    epoch: tf.Tensor
    step: tf.Tensor
    params: list[tf.Tensor]
    slots: tuple[list[tf.Tensor], list[tf.Tensor]]
    bad: tf.Tensor  # (R,) epoch whose loss was first not finite, 0 = never
    noise: tuple[tf.Tensor, ...]  # the next step's normals, packed, one per noise stream


class _Program:
    """One compiled training run for a model shape and set of noise sites.

    The noise of step t + 1 is drawn during step t and carried in the loop's state: a loop
    state is always materialised, so each pair of normals is computed once (see
    _random.packed_normals) and unpacked where step t + 1 uses it.
    """

    def __init__(self, key: ProgramKey) -> None:
        self.key = key
        self.points = record_epochs(key.epochs, key.record_every)
        self.batch = min(key.batch_size, key.n_train)
        self.steps_per_epoch = math.ceil(key.n_train / self.batch)
        # Targets are (…, n_outputs) floats for every task (classes one-hot).
        self.streams = noise_streams(key.step, key.sizes, key.repeats, self.batch,
                                     key.step.n_outputs)
        # No autograph: the program uses tf.while_loop itself, and converting every function it
        # calls took most of the compile time.
        self.run = tf.function(self._run, jit_compile=True, autograph=False)

    def _draw_next(self, c: _Inputs, step: tf.Tensor) -> tuple[tf.Tensor, ...]:
        return tuple(_random.packed_normals(c.seed, stream_id(stream), step, shape, c.first)
                     for stream, shape in self.streams)

    def _step(self, c: _Inputs, s: _State, xb: tf.Tensor, yb: tf.Tensor,
              mask: tf.Tensor | None) -> _State:
        planned = {name: (shape, packed) for (name, shape), packed in zip(self.streams, s.noise)}

        def carried(stream: str, shape: Sequence[int]) -> tf.Tensor:
            want, packed = planned[stream]
            assert tuple(shape) == want, (stream, shape, want)
            return _random.unpack(packed, want)

        params, slots, loss = train_step(self.key.step, s.params, s.slots, s.step, xb, yb, mask,
                                         c.sigmas, carried, c.lr, c.momentum, c.gamma)
        bad = tf.where((s.bad == 0) & ~tf.math.is_finite(loss), s.epoch + 1, s.bad)
        return _State(s.epoch, s.step + 1, params, slots, bad, self._draw_next(c, s.step + 1))

    def _epoch(self, c: _Inputs, s: _State) -> _State:
        R, n, B, S = self.key.repeats, self.key.n_train, self.batch, self.steps_per_epoch
        if S == 1:
            # One batch holds the whole training set: the order within it cannot change the
            # mean gradient, so the shuffle is skipped.
            xb = tf.broadcast_to(c.x_train, [R, n, c.x_train.shape[-1]])
            yb = tf.broadcast_to(c.y_train, [R, *c.y_train.shape])
            s = self._step(c, s, xb, yb, None)
        else:
            order = epoch_order(c.seed, s.epoch, R, n, c.first)
            # Batches by reshape and gather, not by slicing with tensor bounds: a batch keeps
            # its static shape (R, B, …), as the noise draws need; the padding is masked.
            batches = tf.reshape(tf.pad(order, [[0, 0], [0, S * B - n]]), [R, S, B])
            masks = tf.reshape(tf.pad(tf.ones([n]), [[0, S * B - n]]), [S, B])

            def body(k: tf.Tensor, s: _State) -> tuple[tf.Tensor, _State]:
                idx = tf.gather(batches, k, axis=1)
                return k + 1, self._step(c, s, tf.gather(c.x_train, idx),
                                         tf.gather(c.y_train, idx), tf.gather(masks, k))

            s = tf.while_loop(lambda k, _: k < S, body, (tf.constant(0), s))[1]
        return s._replace(epoch=s.epoch + 1)

    def _segment(self, c: _Inputs, end: tf.Tensor, s: _State) -> tuple[_State, tuple[Any, ...]]:
        """Train until epoch ``end``; then the clean curve values at that point."""
        s = tf.while_loop(lambda s: s.epoch < end, lambda s: (self._epoch(c, s),), (s,))[0]
        metric = self.key.metric
        test_loss, test_metric = evaluate(self.key.step, s.params, c.x_test, c.y_test, metric)
        train_loss, train_metric = evaluate(self.key.step, s.params, c.x_train, c.y_raw, metric)
        return s, (test_metric, train_metric, test_loss, train_loss)

    def _run(self, params: list[tf.Tensor], x_train: tf.Tensor, y_train: tf.Tensor,
             x_test: tf.Tensor, y_test: tf.Tensor, sigma_values: tf.Tensor, lr: tf.Tensor,
             momentum: tf.Tensor, gamma: tf.Tensor, seed: tf.Tensor, first: tf.Tensor) -> Any:
        c = _Inputs(x_train, targets_as_float(self.key.step, y_train), y_train, x_test, y_test,
                    {site: sigma_values[i] for i, site in enumerate(Site)}, lr, momentum, gamma,
                    seed, first)
        slots = ([tf.zeros_like(p) for p in params], [tf.zeros_like(p) for p in params])
        state = _State(tf.constant(0), tf.constant(0), list(params), slots,
                       tf.zeros([self.key.repeats], tf.int32),
                       self._draw_next(c, tf.constant(0)))
        # Training runs in segments that end at the record points; after each, one clean
        # evaluation is written to the curves.
        points = tf.constant(self.points, tf.int32)
        buffers = tuple(tf.TensorArray(tf.float32, size=len(self.points)) for _ in CURVE_NAMES)

        def segment(i: tf.Tensor, s: _State, buffers: Any) -> Any:
            s, values = self._segment(c, points[i], s)
            return i + 1, s, tuple(buf.write(i, v) for buf, v in zip(buffers, values))

        _, state, buffers = tf.while_loop(lambda i, *_: i < len(self.points), segment,
                                          (tf.constant(0), state, buffers))
        return tuple(tf.transpose(buf.stack()) for buf in buffers), state.bad, state.params


_PROGRAMS: dict[ProgramKey, _Program] = {}
# Repeats train in blocks of at most this many, one block per core at a time, all blocks of a
# configuration with one compiled program. Measured on the tutorial (2-core Xeon, 4,000
# epochs): blocks of 5 took 0.64x the CPU time of one block of 30 without noise and 0.89x
# with hidden-layer noise (a block's activations stay in the core's cache).
BLOCK_REPEATS = 5


def program_for(key: ProgramKey) -> _Program:
    program = _PROGRAMS.get(key)
    if program is None:
        program = _PROGRAMS[key] = _Program(key)
    return program


def step_config(spec: StudySpec, data: Dataset, config: NoiseConfig) -> StepConfig:
    return StepConfig(activation=spec.model.activation, task=data.task, n_outputs=data.n_outputs,
                      optimizer=spec.model.optimizer,
                      sites=frozenset(Site(s) for s in config.sites), kind=config.kind)


def train(spec: StudySpec, data: Dataset, config: NoiseConfig,
          weights: list[tuple[np.ndarray, np.ndarray]] | None = None,
          repeats: range | None = None) -> TrainResult:
    """Train repeats ``repeats`` (default all ``spec.study.repeats``) of ``config``; every
    metric is measured clean, and with [robustness] also under test-time noise (noisy_eval,
    on the final weights). Repeat r gives the same numbers in any block (racing)."""
    result, final = train_with_weights(spec, data, config, weights, repeats)
    return noisy_eval.with_robustness(spec, data, result, final,
                                      0 if repeats is None else repeats.start)


def _span(spec: StudySpec, repeats: range | None) -> tuple[int, int]:
    """(first repeat, how many) to train. Racing trains a block of repeats start..stop-1: its
    initial weights are rows start.. of the study's, and each block of the program gets its
    study index (`first`), so repeat r gives the numbers it gives in a full run."""
    if repeats is None:
        return 0, spec.study.repeats
    return repeats.start, len(repeats)


def train_with_weights(
    spec: StudySpec, data: Dataset, config: NoiseConfig,
    weights: list[tuple[np.ndarray, np.ndarray]] | None = None,
    repeats: range | None = None,
) -> tuple[TrainResult, list[tuple[np.ndarray, np.ndarray]]]:
    """``train``, and the final weights per layer (kernel (R, in, out), bias (R, out)).

    ``weights`` (default ``initial_weights``) are the starting weights, in that layout.
    """
    started = time.perf_counter()
    sizes = layer_sizes(data, spec.model)
    start, R = _span(spec, repeats)
    size = min(BLOCK_REPEATS, R)
    blocks = math.ceil(R / size)
    if weights is None:
        weights = [(k[start:], b[start:])
                   for k, b in initial_weights(sizes, start + blocks * size, spec.study.seed)]
    # The last block is filled up with copies of repeat 0; what they train is dropped.
    flat = [np.concatenate([a, np.repeat(a[:1], blocks * size - len(a), axis=0)])
            for pair in weights for a in pair]
    key = ProgramKey(
        step=step_config(spec, data, config), sizes=tuple(sizes), repeats=size,
        n_train=len(data.x_train), n_test=len(data.x_test), epochs=spec.model.epochs,
        batch_size=spec.model.batch_size, record_every=spec.study.record_every,
        metric=spec.metric,
    )
    program = program_for(key)
    given = [tf.constant(a) for a in (data.x_train, data.y_train, data.x_test, data.y_test)]
    rest = [tf.constant([config.sigma(site) for site in Site], tf.float32),
            tf.constant(learning_rate(spec.model), tf.float32),
            tf.constant(spec.model.momentum, tf.float32),
            tf.constant(spec.noise.gradient_gamma, tf.float32),
            tf.constant(spec.study.seed, tf.int64)]

    def run_block(b: int) -> Any:
        params = [tf.constant(a[b * size:(b + 1) * size]) for a in flat]
        out = program.run(params, *given, *rest, tf.constant(start + b * size, tf.int32))
        return tf.nest.map_structure(lambda t: t.numpy(), out)

    with ThreadPoolExecutor(max_workers=min(_threads(), blocks)) as pool:
        outs = list(pool.map(run_block, range(blocks)))
    curves, bad, final = tf.nest.map_structure(
        lambda *parts: np.concatenate(parts)[:R], *outs)
    arrays = {name: c.astype(np.float64) for name, c in zip(CURVE_NAMES, curves)}
    if data.task != "regression":
        # Accuracy is a count over a known number of rows: undo float32 rounding (36/70 exactly).
        for name, n in (("test_metric", len(data.x_test)), ("train_metric", len(data.x_train))):
            arrays[name] = np.round(arrays[name] * n) / n
    result = TrainResult(
        train_metric=arrays["train_metric"][:, -1],
        test_metric=arrays["test_metric"][:, -1],
        train_loss=arrays["train_loss"][:, -1],
        test_loss=arrays["test_loss"][:, -1],
        curve_epochs=program.points,
        curves=arrays,
        diverged_at=bad.astype(np.int64),
        seconds=time.perf_counter() - started,
        weights=tuple(np.array(p[0]) for p in final),
    )
    return result, [(final[i], final[i + 1]) for i in range(0, len(final), 2)]


def _threads() -> int:
    """Blocks trained at once: one per core this process may use (worker processes that share
    the machine say how many in TF_NUM_INTRAOP_THREADS)."""
    given = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def predict(spec: StudySpec, data: Dataset, weights: Sequence[np.ndarray],
            x: np.ndarray) -> np.ndarray:
    """Clean forward pass of one model with parameters ``weights`` ([W0, b0, ...], kernels
    (in, out), as ``TrainResult.weights``) on rows ``x`` (N, features).

    Binary: P(class 1), (N,); multiclass: class probabilities, (N, K); regression: the
    predictions, (N,) (or (N, outputs) for several targets).
    """
    cfg = StepConfig(activation=spec.model.activation, task=data.task, n_outputs=data.n_outputs,
                     optimizer=spec.model.optimizer, sites=frozenset(), kind=spec.noise.kind)
    params = [tf.constant(np.asarray(w, np.float32)[None]) for w in weights]  # one repeat
    logits = forward(cfg, params, tf.constant(np.asarray(x, np.float32))).numpy()[0]
    logits = logits.astype(np.float64)
    if data.task == "binary":
        return expit(logits[:, 0])  # the logistic without overflow for confident models
    if data.task == "multiclass":
        return softmax(logits, axis=1)
    return logits[:, 0] if logits.shape[1] == 1 else logits
