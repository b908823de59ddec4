"""The jax engine's program: every repeat of a builder's Keras model trained in one compiled
JAX program, on Keras 3's JAX backend.

Imported only in the jax engine's own process (search.engine.jax_builder), where Keras was
imported with ``KERAS_BACKEND=jax``; the rest of noise-search runs Keras on TensorFlow.

How (docs/ARCHITECTURE.md, decision 9). The builder's model is built once per placement and
trained statelessly: ``model.stateless_call`` and ``optimizer.stateless_apply`` on arrays,
so R repeats are R sets of arrays with a leading repeat axis, and one ``jax.jit`` program
runs epochs a..b of all of them: ``lax.map`` over the repeats, a loop over the epochs, a
scan over an epoch's batches (Keras's: a fresh shuffle per epoch, a smaller last batch).
On a CPU the map takes one repeat at a time: faster than ``vmap``, whose convolutions with
filters per repeat become grouped convolutions, and the same numbers to the bit however
many repeats run (``vmap`` rounds differently with the block's size); and the repeats are
split into equal groups, one per core, run side by side by threads (:class:`Groups`).
Elsewhere (a GPU) the map vectorises the repeats it holds at once (there repeat r may
differ in the last bits with its block's size). The noise layers
(:class:`ReplicaNoise`) take σ as a variable, so every σ of a placement reuses the compiled
program; compiled programs are kept on disk between runs (``$NOISE_SEARCH_XLA_CACHE``).
Memory: as many repeats at once as XLA's account of the program says fit
(``replicas_at_once``), at most ``study.max_replicas``.

Keras's semantics, as the keras engine's ``model.fit``: the study's optimizer, the task's
loss averaged over the batch plus the model's own losses (regularizers), noise in training
only, metrics measured clean (keras_builder's scorer on the model's predictions), a repeat
diverged at the first epoch whose mean training loss is not finite (its curves are NaN from
there; the other repeats are not disturbed).

Common random numbers (decision 3): repeat r's initial values come from the builder run
under Keras's seed for (seed, r) (keras_ref.repeat_seed), as the keras engine builds it,
every site off -- built once per process and repeat, and the same in every configuration;
its data order is keyed by (seed, r, epoch) and its noise at a site by (seed, r, site),
counted by step: the same draws at a site whatever other sites are on.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import keras
import numpy as np

from search import builder
from search.engine._common import CURVE_NAMES, TrainResult, record_epochs, xla_cache_dir
from search.engine.keras_builder import LOSSES, scores
from search.engine.keras_ref import make_optimizer, repeat_seed
from search.noise import NoiseConfig, site_name
from search.usercode import UserCodeError

if TYPE_CHECKING:
    from search.data import Dataset
    from search.spec import StudySpec

if keras.backend.backend() != "jax":  # jax_builder starts this process with KERAS_BACKEND=jax
    raise ImportError(f"search.engine._replicas needs Keras on JAX (KERAS_BACKEND=jax); "
                      f"Keras runs on {keras.backend.backend()!r} in this process")



def _keep_compiled_programs() -> None:
    """Compiled programs persist on disk (JAX's persistent compilation cache), so that a later
    run, or another worker, of the same model loads them instead of compiling (seconds per
    placement). $NOISE_SEARCH_XLA_CACHE names the directory ('' turns it off); default
    ~/.cache/noise-search/xla-jax<version>, beside the fast engine's."""
    path = xla_cache_dir(f"xla-jax{jax.__version__}")
    if path is None:
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # not eager ops


_keep_compiled_programs()

EVAL_ROWS = 2048  # rows per forward pass when measuring: bounds its activations' memory
MEMORY_SHARE = 0.5  # of the device's free memory one program may plan to use


class ReplicaNoise(keras.layers.Layer):
    """``noise(site)`` in the jax engine: Gaussian noise of σ = the ``sigma`` variable, in
    training only, at every site of the builder, on (``active``) or off (the identity, no
    draw). Additive x + σε (as ``GaussianNoise``), multiplicative x(1 + σε) (as
    ``GaussianDropout``, whose N(1, σ²) this is); ε from the layer's own seed state."""

    def __init__(self, kind: str, active: bool, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind, self.active = kind, active
        self.sigma = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     name="sigma")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not (training and self.active):
            return inputs
        eps = keras.random.normal(keras.ops.shape(inputs), dtype=inputs.dtype,
                                  seed=self.seed_generator)
        scaled = keras.ops.cast(self.sigma, inputs.dtype) * eps
        return inputs * (1.0 + scaled) if self.kind == "multiplicative" else inputs + scaled

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def site_seed(study_seed: int, repeat: int, site: str) -> int:
    """The noise seed of ``site`` in repeat ``repeat``: from (seed, r, site) only."""
    words = [study_seed, repeat, zlib.crc32(site.encode()), 0x6E73]
    return int(np.random.SeedSequence(words).generate_state(1)[0] % 2**31)


def _build(spec: StudySpec, active: Sequence[str], repeat: int) -> tuple[Any, dict[str, Any]]:
    """The builder's model under repeat ``repeat``'s Keras seed, a ReplicaNoise at every site
    (on at ``active``); and those layers by site."""
    seed = repeat_seed(spec.study.seed, repeat)
    keras.utils.set_random_seed(seed)
    layers: dict[str, Any] = {}

    def layer(site: str, sigma: float | None) -> Any:
        made = ReplicaNoise(spec.noise.kind, site in active,
                            site_seed(spec.study.seed, repeat, site), name=f"noise_{site}")
        layers[site] = made
        return made

    noise = builder.NoiseSites({}, spec.noise.kind, seed, repeat, spec.study.seed, layer=layer)
    return builder.build(spec, noise), layers


_INITIAL: dict[tuple[Any, ...], list[np.ndarray]] = {}


def _builder_key(spec: StudySpec) -> tuple[Any, ...]:
    from search.usercode import resolve

    assert spec.model.builder is not None
    path, _ = resolve(spec.source, spec.model.builder)
    stamp = path.stat().st_mtime_ns if path.is_file() else 0
    return str(path.resolve()), spec.model.builder, stamp, spec.noise.kind


def initial_values(spec: StudySpec, repeat: int) -> list[np.ndarray]:
    """Repeat ``repeat``'s initial ``model.variables``, every site off: the builder's own
    initializers under the repeat's seed, and its noise layers' seeds. Kept per process."""
    key = (*_builder_key(spec), spec.study.seed, repeat)
    if key not in _INITIAL:
        model, _ = _build(spec, (), repeat)
        _INITIAL[key] = [np.asarray(v.value) for v in model.variables]
    return _INITIAL[key]


def _memory_budget() -> int:
    """Bytes one program may plan to use: a share of the device's free memory."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:  # an accelerator
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(free * MEMORY_SHARE)


class Program:
    """One placement's model and its compiled programs (epochs a..b of R repeats; clean
    predictions of R repeats; predictions of one), for one study's training settings."""

    def __init__(self, spec: StudySpec, data: Dataset, active: tuple[str, ...],
                 inference: Program | None = None) -> None:
        self.spec, self.data = spec, data  # the data keeps its id while this is cached
        # Measuring is noise-free: every placement's replicas go through one program's
        # compiled forward pass (their variables are alike: a ReplicaNoise at every site).
        self.inference = inference or self
        self.model, self.layers = _build(spec, active, 0)
        variables = self.model.variables
        at = {id(v): i for i, v in enumerate(variables)}
        self.trainable = [at[id(v)] for v in self.model.trainable_variables]
        self.non_trainable = [at[id(v)] for v in self.model.non_trainable_variables]
        noise_state = {id(v) for layer in self.layers.values() for v in layer.variables}
        # TrainResult.weights: model.get_weights()'s order, less the noise layers' (a model
        # built with Keras's noise layers, keras_builder.predict, has exactly these).
        self.weights = [at[id(v)] for v in self.model.weights if id(v) not in noise_state]
        self.sigma_at = {site: at[id(layer.sigma)] for site, layer in self.layers.items()}
        own = [np.asarray(v.value) for v in variables]
        self.shapes = [a.shape for a in own]
        self.optimizer = make_optimizer(spec)
        self.optimizer.build(self.model.trainable_variables)
        self.optimizer_start = [np.asarray(v.value) for v in self.optimizer.variables]
        # The replicas' structure (one replica): what the compiled programs are lowered for.
        self.start_like = (([own[i][None] for i in self.trainable],
                            [own[i][None] for i in self.non_trainable],
                            [v[None] for v in self.optimizer_start]),
                           np.zeros(1, np.uint32), np.zeros(1, np.int32))
        self.loss = keras.losses.get(LOSSES[data.task])
        self.vectorise = jax.default_backend() != "cpu"  # see the module's doc
        self.x = jnp.asarray(data.x_train, jnp.float32)
        self.y = jnp.asarray(data.y_train)
        self._segment = jax.jit(self._segment_all)
        self._forward = jax.jit(self._forward_all)
        self._forward_one = jax.jit(self._forward_replica)
        self._compiled: dict[tuple[Any, ...], Any] = {}
        self._compiling = threading.Lock()

    # -- one repeat, traced -----------------------------------------------------------------

    def _step(self, carry: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One optimizer step of one repeat on batch (x, y), as model.fit's train_step."""
        tv, ntv, ov = carry

        def loss_of(tv: Any) -> tuple[Any, Any]:
            pred, new_ntv, own = self.model.stateless_call(tv, ntv, x, training=True,
                                                           return_losses=True)
            loss = jnp.mean(self.loss(y, pred))
            return (loss + sum(own) if own else loss), new_ntv

        (loss, ntv), grads = jax.value_and_grad(loss_of, has_aux=True)(tv)
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        return (tv, ntv, ov), loss

    def _epoch(self, carry: Any, key: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """One epoch of one repeat: a shuffle, full batches, then the smaller last one.
        Returns its mean training loss (batch losses weighted by size, as Keras logs it)."""
        n, size = x.shape[0], self.spec.model.batch_size
        full, rest = divmod(n, size)
        order = jax.random.permutation(key, n)

        def batch(carry: Any, i: Any) -> tuple[Any, Any]:
            rows = jax.lax.dynamic_slice(order, (i * size,), (size,))
            return self._step(carry, x[rows], y[rows])

        carry, losses = jax.lax.scan(batch, carry, jnp.arange(full))
        total = jnp.sum(losses) * size
        if rest:
            rows = order[full * size:]
            carry, loss = self._step(carry, x[rows], y[rows])
            total = total + loss * rest
        return carry, total / n

    def _segment_one(self, replica: Any, first: Any, stop: Any, x: Any, y: Any) -> Any:
        """Epochs first..stop-1 of one repeat; its divergence epoch (1-based, 0 = never)."""
        carry, seed, diverged = replica
        key = jax.random.key(seed)

        def epoch(e: Any, state: Any) -> Any:
            carry, diverged = state
            carry, loss = self._epoch(carry, jax.random.fold_in(key, e), x, y)
            bad = (diverged == 0) & ~jnp.isfinite(loss)
            return carry, jnp.where(bad, e + 1, diverged)

        carry, diverged = jax.lax.fori_loop(first, stop, epoch, (carry, diverged))
        return carry, seed, diverged

    def _width(self, replicas: Any) -> int | None:
        """Repeats per step of the map: one at a time (None) on a CPU, all on a GPU."""
        return jax.tree.leaves(replicas)[0].shape[0] if self.vectorise else None

    def _segment_all(self, replicas: Any, first: Any, stop: Any, x: Any, y: Any) -> Any:
        return jax.lax.map(lambda one: self._segment_one(one, first, stop, x, y), replicas,
                           batch_size=self._width(replicas))

    def _forward_replica(self, tv: Any, ntv: Any, x: Any) -> Any:
        return self.model.stateless_call(tv, ntv, x, training=False)[0]

    def _forward_all(self, tv: Any, ntv: Any, x: Any) -> Any:
        return jax.lax.map(lambda p: self._forward_replica(p[0], p[1], x), (tv, ntv),
                           batch_size=self._width(tv))

    # -- compiled, with their memory checked -------------------------------------------------

    def compiled(self, name: str, args: tuple[Any, ...]) -> Any:
        """Program ``name`` compiled for the shapes of ``args``, once (groups of repeats ask
        for it from several threads at once)."""
        key = (name, *(tuple(a.shape) for a in jax.tree.leaves(args)))
        with self._compiling:
            if key not in self._compiled:
                jitted = {"segment": self._segment, "forward": self._forward}[name]
                self._compiled[key] = jitted.lower(*args).compile()
            return self._compiled[key]

    def _segment_args(self, replicas: Any, first: Any, stop: Any) -> tuple[Any, ...]:
        return replicas, first, stop, self.x, self.y

    def bytes_needed(self, count: int) -> int:
        """Memory the training program of ``count`` replicas needs (XLA's own account)."""
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        replicas = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct((count, *a.shape[1:]), a.dtype), self.start_like)
        analysis = self.compiled(
            "segment", self._segment_args(replicas, scalar, scalar)).memory_analysis()
        if analysis is None:
            return 0
        return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                   + analysis.temp_size_in_bytes)

    # -- the replicas' state -----------------------------------------------------------------

    def start(self, config: NoiseConfig, repeats: Sequence[int]) -> Any:
        """The replicas of ``repeats`` at epoch 0: (state, data-order seed, diverged)."""
        values = [initial_values(self.spec, r) for r in repeats]
        for r, own in zip(repeats, values):
            if [a.shape for a in own] != self.shapes:
                raise UserCodeError(
                    f"{self.spec.source}: 'model.builder' {self.spec.model.builder!r} builds "
                    f"another model for repeat {r} than for repeat 0 (its variables' shapes "
                    "differ); the jax engine trains one model: use engine 'keras'")
        stacked = [np.stack([own[i] for own in values]) for i in range(len(self.shapes))]
        for site, sigma in config.sigmas:
            stacked[self.sigma_at[site_name(site)]][:] = sigma
        R = len(repeats)
        state = ([jnp.asarray(stacked[i]) for i in self.trainable],
                 [jnp.asarray(stacked[i]) for i in self.non_trainable],
                 [jnp.asarray(np.broadcast_to(v, (R, *v.shape))) for v in self.optimizer_start])
        seeds = jnp.asarray([repeat_seed(self.spec.study.seed, r) for r in repeats], jnp.uint32)
        return state, seeds, jnp.zeros(R, jnp.int32)

    def train(self, replicas: Any, first: int, stop: int) -> Any:
        """The replicas after epochs first..stop-1 (0-based)."""
        args = self._segment_args(replicas, jnp.int32(first), jnp.int32(stop))
        return self.compiled("segment", args)(*args)

    def predict(self, replicas: Any, x: np.ndarray) -> np.ndarray:
        """Clean predictions (R, rows, ...) of every replica, EVAL_ROWS rows at a time (the
        last chunk padded, so that one compiled program serves every chunk)."""
        (tv, ntv, _), _, _ = replicas
        size = min(EVAL_ROWS, len(x))
        parts = []
        for at in range(0, len(x), size):
            chunk = _padded(x[at:at + size], size)
            out = self.inference.compiled("forward", (tv, ntv, chunk))(tv, ntv, chunk)
            parts.append(np.asarray(out, np.float64)[:, : len(x) - at])
        return np.concatenate(parts, axis=1)

    def predictor(self, replicas: Any, index: int) -> Callable[[np.ndarray], np.ndarray]:
        """Clean predictions of replica ``index`` alone (for [robustness])."""
        (tv, ntv, _), _, _ = replicas
        mine = ([a[index] for a in tv], [a[index] for a in ntv])

        forward = self.inference._forward_one

        def predict(x: np.ndarray) -> np.ndarray:
            size = min(EVAL_ROWS, len(x))
            parts = [np.asarray(forward(*mine, _padded(x[at:at + size], size)))[: len(x) - at]
                     for at in range(0, len(x), size)]
            return np.concatenate(parts)

        return predict

    def final_weights(self, replicas: Any, index: int) -> tuple[np.ndarray, ...]:
        """Replica ``index``'s parameters in model.get_weights() order (less noise layers)."""
        (tv, ntv, _), _, _ = replicas
        where = {i: a for i, a in zip(self.trainable, tv)}
        where.update(zip(self.non_trainable, ntv))
        return tuple(np.asarray(where[i][index], np.float32) for i in self.weights)


def _padded(x: np.ndarray, size: int) -> Any:
    x = np.asarray(x, np.float32)
    if len(x) < size:
        x = np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), np.float32)])
    return jnp.asarray(x)


# --- training: the engine's train() ----------------------------------------------------------

_PROGRAMS: dict[tuple[Any, ...], Program] = {}


def program_for(spec: StudySpec, data: Dataset, config: NoiseConfig) -> Program:
    """The compiled program of ``config``'s placement (every σ of it reuses it)."""
    return _program(spec, data, tuple(sorted(site_name(site) for site in config.sites)))


def _program(spec: StudySpec, data: Dataset, active: tuple[str, ...]) -> Program:
    key = (_builder_key(spec), spec.model, id(data), active)
    if key not in _PROGRAMS:
        inference = _program(spec, data, ()) if active else None
        _PROGRAMS[key] = Program(spec, data, active, inference)
    return _PROGRAMS[key]


def threads() -> int:
    """Groups of repeats trained side by side, one per thread: one per core this process may
    use (a worker of --workers is given its share as TF_NUM_INTRAOP_THREADS); one on an
    accelerator, where the map over the repeats vectorises instead. On a CPU the program
    keeps about one core busy (small operations, one repeat at a time), so two groups on
    two cores train in half the time (benchmarks/jax_engine.py)."""
    if jax.default_backend() != "cpu":
        return 1
    given = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else len(os.sched_getaffinity(0))


class Groups:
    """A block of repeats as equal groups, each trained by one thread. The last group is
    filled up with copies of the block's first repeat (what they train is dropped), so that
    every group has one shape and one compiled program serves them all."""

    def __init__(self, program: Program, config: NoiseConfig, block: Sequence[int],
                 count: int) -> None:
        count = max(1, min(count, len(block)))
        size = -(-len(block) // count)
        padded = [*block, *[block[0]] * (size * count - len(block))]
        self.program, self.size, self.n = program, size, len(block)
        self.states = [program.start(config, padded[g * size:(g + 1) * size])
                       for g in range(count)]
        self._pool = ThreadPoolExecutor(count) if count > 1 else None

    def _each(self, work: Callable[[Any], Any]) -> list[Any]:
        if self._pool is None:
            return [work(state) for state in self.states]
        return list(self._pool.map(work, self.states))

    def train(self, first: int, stop: int) -> None:
        self.states = self._each(lambda state: self.program.train(state, first, stop))

    def diverged(self) -> np.ndarray:
        return np.concatenate([np.asarray(state[2]) for state in self.states])[: self.n]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(repeats of the block, rows, ...) clean predictions."""
        parts = self._each(lambda state: self.program.predict(state, x))
        return np.concatenate(parts)[: self.n]

    def at(self, index: int) -> tuple[Any, int]:
        """The group state holding the block's repeat ``index``, and its place there."""
        return self.states[index // self.size], index % self.size

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def replicas_at_once(spec: StudySpec, program: Program, wanted: int, groups: int) -> int:
    """How many repeats train together: all, or ``study.max_replicas``, or fewer if XLA's
    account of the program's memory, times the groups, is over a share of the device's free
    memory (MEMORY_SHARE)."""
    count = min(wanted, spec.study.max_replicas or wanted)
    budget = _memory_budget()
    while count > 1:
        share = max(1, min(groups, count))
        need = program.bytes_needed(-(-count // share)) * share
        if need <= budget:
            break
        count = max(1, min(count - 1, count * budget // need))
    return count


def _measure(groups: Groups, data: Dataset, metric: str) -> np.ndarray:
    """(repeats, 4): clean test metric, train metric, test loss, train loss (CURVE_NAMES)."""
    pred = groups.predict(np.concatenate([np.asarray(data.x_test), np.asarray(data.x_train)]))
    n_test = len(data.x_test)
    rows = []
    for one in pred:
        test_loss, test_metric = scores(one[:n_test], data.y_test, data.task, metric)
        train_loss, train_metric = scores(one[n_test:], data.y_train, data.task, metric)
        rows.append((test_metric, train_metric, test_loss, train_loss))
    return np.asarray(rows, np.float64)


class _Outcome:
    """What the repeats give, filled block by block, then the TrainResult."""

    def __init__(self, spec: StudySpec, repeats: int) -> None:
        self.spec = spec
        self.points = record_epochs(spec.model.epochs, spec.study.record_every)
        self.curves = np.full((len(CURVE_NAMES), repeats, len(self.points)), np.nan)
        self.diverged_at = np.zeros(repeats, np.int64)
        rob = spec.robustness
        self.profiles = None if rob is None else np.full((repeats, len(rob.input_std)), np.nan)
        self.certified = (None if rob is None or rob.certify_std is None
                          else np.full((repeats, len(rob.certify_radii)), np.nan))
        self.robustness_seconds = 0.0
        self.weights: tuple[np.ndarray, ...] | None = None

    def under_noise(self, data: Dataset, groups: Groups, block: Sequence[int], at: int) -> None:
        """[robustness] of each repeat: the keras engine's measurement, on its predictions."""
        from search.engine import noisy_eval  # TensorFlow: its generator keys the noisy inputs

        started = time.perf_counter()
        for i, repeat in enumerate(block):
            predict = groups.program.predictor(*groups.at(i))
            if self.profiles is not None:
                self.profiles[at + i] = noisy_eval.predicted_profile(predict, self.spec, data,
                                                                     repeat)
            if self.certified is not None:
                self.certified[at + i] = noisy_eval.predicted_certified(predict, self.spec,
                                                                        data, repeat)
        self.robustness_seconds += time.perf_counter() - started

    def result(self, seconds: float) -> TrainResult:
        arrays = dict(zip(CURVE_NAMES, self.curves))
        result = TrainResult(
            train_metric=arrays["train_metric"][:, -1], test_metric=arrays["test_metric"][:, -1],
            train_loss=arrays["train_loss"][:, -1], test_loss=arrays["test_loss"][:, -1],
            curve_epochs=self.points, curves=arrays, diverged_at=self.diverged_at,
            seconds=seconds, weights=self.weights)
        if self.profiles is None:
            return result
        return replace(result, robustness=self.profiles, certified=self.certified,
                       robustness_seconds=self.robustness_seconds)


def _train_block(program: Program, config: NoiseConfig, data: Dataset, block: Sequence[int],
                 out: _Outcome, at: int) -> None:
    """Repeats ``block`` (rows at.. of ``out``): trained record point by record point, each
    measured clean there; a repeat's points from its divergence on stay NaN."""
    groups = Groups(program, config, block, threads())
    try:
        done = 0
        for p, point in enumerate(out.points):
            groups.train(done, point)
            done = point
            rows = _measure(groups, data, out.spec.metric)
            diverged = groups.diverged()
            alive = (diverged == 0) | (diverged > point)
            out.curves[:, at:at + len(block), p] = np.where(alive[:, None], rows, np.nan).T
        out.diverged_at[at:at + len(block)] = groups.diverged()
        if at == 0:
            out.weights = program.final_weights(*groups.at(0))
        if out.profiles is not None:
            out.under_noise(data, groups, block, at)
    finally:
        groups.close()


def train(spec: StudySpec, data: Dataset, config: NoiseConfig,
          repeats: range | None = None) -> TrainResult:
    """Repeats ``repeats`` (default all) of ``config``, as many at once as fit; every metric
    clean. Repeat r gives the same numbers however it is blocked (racing, max_replicas)."""
    started = time.perf_counter()
    chosen = range(spec.study.repeats) if repeats is None else repeats
    program = program_for(spec, data, config)
    out = _Outcome(spec, len(chosen))
    size = replicas_at_once(spec, program, len(chosen), threads())
    for at in range(0, len(chosen), size):
        _train_block(program, config, data, chosen[at:at + size], out, at)
    return out.result(time.perf_counter() - started)
