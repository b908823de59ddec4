"""Counter-based random numbers for the fast engine: Threefry-2x32-20 bits, Box–Muller normals.

Every draw is a pure function of (seed, stream, repeat, step, element): nothing is carried
from one step to the next, so any step of any repeat can be drawn on its own, in any order,
and repeat r draws the same numbers however many repeats train with it (docs/ARCHITECTURE.md,
decision 3). The repeat is part of the key, so all repeats are drawn in one vectorised operation
over a (repeat, …) array of keys; no per-repeat loop is unrolled into the program.

Bits: Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy
as 1, 2, 3"), the generator TensorFlow and JAX use, written out in TensorFlow ops so that
its key can be an array. tests/test_science.py checks it against the paper's known-answer
vectors. Its key is (seed mod 2^32, stream + 256 · repeat), its counter (pair index, step).

Normals: Box–Muller, exact in distribution: from two independent uniform words, a radius
r = sqrt(-2 ln u) and a uniformly random direction give two independent N(0, 1) numbers
(r cos θ, r sin θ). The direction costs no sine or cosine of a full angle: three bits pick
one of the 8 octants, the other 29 an angle α in (0, π/4), and (cos α, sin α) is taken to
that octant by swapping and negating coordinates (the 8 signed permutations of (x, y)
map the arc (0, π/4) onto the 8 arcs of the circle). Short polynomials give cos and sin
on (0, π/4) to float32 precision. u = (w + 1/2) / 2^32 for a 32-bit word w, so the radius
reaches sqrt(2 · 33 · ln 2) ≈ 6.8σ: the tails are the normal's well past 5σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

# Rotation constants and key-schedule parity of Threefry-2x32 (Salmon et al. 2011, table 4).
_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = 0x1BD11BDA
ROUNDS = 20
MAX_STREAMS = 256  # stream ids are < 256; the repeat fills the key word above them

# cos and sin on [-π/4, π/4] to float32 precision (the Cephes cosf / sinf polynomials).
_COS = (2.443315711809948e-05, -1.388731625493765e-03, 4.166664568298827e-02)
_SIN = (-1.9515295891e-04, 8.3321608736e-03, -1.6666654611e-01)


def _u32(value: int) -> tf.Tensor:
    return tf.constant(value, tf.uint32)


def _rotl(x: tf.Tensor, r: int) -> tf.Tensor:
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, _u32(r)),
                                 tf.bitwise.right_shift(x, _u32(32 - r)))


def threefry2x32(key: tuple[tf.Tensor, tf.Tensor], counter: tuple[tf.Tensor, tf.Tensor],
                 rounds: int = ROUNDS) -> tuple[tf.Tensor, tf.Tensor]:
    """Threefry-2x32-``rounds`` of uint32 words; key and counter words broadcast together."""
    k0, k1 = key
    ks = (k0, k1, tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(k0, k1), _u32(_PARITY)))
    x0, x1 = counter[0] + k0, counter[1] + k1
    for r in range(rounds):
        x0 = x0 + x1
        x1 = tf.bitwise.bitwise_xor(_rotl(x1, _ROTATIONS[r % 8]), x0)
        if r % 4 == 3:  # key injection every 4 rounds
            i = r // 4 + 1
            x0 = x0 + ks[i % 3]
            x1 = x1 + ks[(i + 1) % 3] + _u32(i)
    return x0, x1


def bits(seed: tf.Tensor, stream: int, repeats: int, step: tf.Tensor, pairs: int,
         first: tf.Tensor | int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """Two (repeats, pairs) arrays of uint32 words: stream ``stream`` of repeats first,
    first + 1, … at ``step`` (a step or an epoch), ``pairs`` counters each."""
    if not 0 <= stream < MAX_STREAMS:
        raise ValueError(f"stream must be in [0, {MAX_STREAMS}); got {stream}")
    seed32 = tf.cast(tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), 0xFFFFFFFF), tf.uint32)
    repeat = tf.cast(tf.range(repeats) + tf.cast(first, tf.int32), tf.uint32)[:, None]
    key = (seed32, repeat * _u32(MAX_STREAMS) + _u32(stream))
    counter = (tf.cast(tf.range(pairs), tf.uint32)[None, :], tf.cast(step, tf.uint32))
    return threefry2x32(key, counter)


def _poly(x2: tf.Tensor, coefficients: Sequence[float]) -> tf.Tensor:
    p = tf.constant(coefficients[0], tf.float32)
    for c in coefficients[1:]:
        p = p * x2 + c
    return p


def box_muller(w0: tf.Tensor, w1: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Two independent N(0, 1) arrays from two arrays of independent uniform uint32 words."""
    u = (tf.cast(w0, tf.float32) + 0.5) * 2.0**-32  # in (0, 1]; 1 only by rounding (r = 0)
    radius = tf.sqrt(-2.0 * tf.math.log(u))
    octant = tf.bitwise.right_shift(w1, _u32(29))
    fraction = tf.bitwise.bitwise_and(w1, _u32(0x1FFFFFFF))
    alpha = (tf.cast(fraction, tf.float32) + 0.5) * (math.pi / 4 * 2.0**-29)  # in (0, π/4]
    a2 = alpha * alpha
    cos = 1.0 - 0.5 * a2 + a2 * a2 * _poly(a2, _COS)
    sin = alpha + alpha * a2 * _poly(a2, _SIN)

    def bit(k: int) -> tf.Tensor:
        return tf.bitwise.bitwise_and(octant, _u32(k)) != 0

    swap = bit(1)
    x, y = tf.where(swap, sin, cos), tf.where(swap, cos, sin)
    x = tf.where(bit(2), -x, x)
    y = tf.where(bit(4), -y, y)
    return radius * x, radius * y


def pairs_for(shape: Sequence[int]) -> int:
    """Counters (pairs of normals) one repeat needs for a draw of ``shape`` (repeats, …)."""
    return (math.prod(int(d) for d in shape[1:]) + 1) // 2


def packed_normals(seed: tf.Tensor, stream: int, step: tf.Tensor, shape: Sequence[int],
                   first: tf.Tensor | int = 0) -> tf.Tensor:
    """The normals of ``shape`` (repeats, …) two to a uint64, (repeats, pairs): see normals.

    Why packed: XLA on CPU fuses a computation into each consumer element by element and has
    no multi-output fusion here, so the two normals of a pair, used by two elements, would
    each cost a whole Threefry and Box–Muller. One uint64 per pair is one output per pair;
    kept in a loop's state, it is computed once and unpacked cheaply where it is used.
    """
    z0, z1 = box_muller(*bits(seed, stream, int(shape[0]), step, pairs_for(shape), first))
    low = tf.cast(tf.bitcast(z0, tf.uint32), tf.uint64)
    high = tf.cast(tf.bitcast(z1, tf.uint32), tf.uint64)
    return tf.bitwise.bitwise_or(low, tf.bitwise.left_shift(high, tf.constant(32, tf.uint64)))


def unpack(packed: tf.Tensor, shape: Sequence[int]) -> tf.Tensor:
    """float32 normals of ``shape`` from ``packed_normals``: pair p gives elements 2p, 2p + 1."""
    repeats, per_repeat = int(shape[0]), math.prod(int(d) for d in shape[1:])
    # Each half by shift and truncation, then interleaved: XLA fuses this into the consumer
    # (two integer ops an element). One bitcast of the uint64 to two float32 is the same
    # numbers but is not fused: 0.27 ns more per normal, 12% of the noise's cost (measured).
    low = tf.bitcast(tf.cast(packed, tf.uint32), tf.float32)  # the cast keeps the low word
    high = tf.bitcast(tf.cast(tf.bitwise.right_shift(packed, tf.constant(32, tf.uint64)),
                              tf.uint32), tf.float32)
    z = tf.reshape(tf.stack([low, high], axis=-1), [repeats, -1])  # z0, z1 of each pair
    if z.shape[1] != per_repeat:
        z = z[:, :per_repeat]
    return tf.reshape(z, [repeats, *shape[1:]])


def normals(seed: tf.Tensor, stream: int, step: tf.Tensor, shape: Sequence[int],
            first: tf.Tensor | int = 0) -> tf.Tensor:
    """Standard normals of ``shape`` (repeats, …) for repeats first, first + 1, …: element e
    of repeat r depends only on (seed, stream, r, step, e)."""
    return unpack(packed_normals(seed, stream, step, shape, first), shape)


def permutations(seed: tf.Tensor, stream: int, epoch: tf.Tensor, repeats: int, n: int,
                 first: tf.Tensor | int = 0) -> tf.Tensor:
    """(repeats, n) int32: a uniformly random order of 0..n-1 per repeat, keyed like normals."""
    w0, _ = bits(seed, stream, repeats, epoch, n, first)
    # 31 random bits per row as a sort key (argsort takes signed integers); a tie, at odds
    # of about n² / 2^32 per epoch, keeps the rows' own order.
    keys = tf.cast(tf.bitwise.right_shift(w0, _u32(1)), tf.int32)
    return tf.argsort(keys, axis=1, stable=True)
