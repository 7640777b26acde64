"""The Growing Neural Cellular Automaton of Mordvintsev et al., Distill 2020.

Pure functions only. A state is ``[..., H, W, C]`` (any number of leading batch axes):
channels 0-2 are RGB premultiplied by alpha, channel 3 is alpha ("alive-ness"), the rest
are hidden. One CA step (the article's ``CAModel.call``):

1. ``pre = alive(x)``: 3x3 max-pool of alpha > 0.1;
2. perception ``[x, Kx * x, Ky * x]`` per channel (identity, Sobel-x, Sobel-y), 3C features;
3. per-cell MLP 3C -> hidden (ReLU) -> C gives the update ``dx``;
4. each cell fires independently with probability ``fire_rate`` (no rescaling):
   ``x + dx * fire``;
5. ``post = alive(x)``; cells alive neither before nor after are zeroed: ``x * (pre & post)``.

Lowering (measured on a 2-core CPU, see ``bench/``): XLA's CPU convolutions are slow for
this shape, so perception is a pad-and-slice stencil (separable Sobel: smooth, then
difference) followed by one matmul, and the 3x3 max-pool is a pad-and-slice max.

Conventions: array axis -2 is x (image columns, W, +x to the right), axis -3 is y (image
rows, H, +y *down* as stored). ``Sobel-x`` is d/dx, ``Sobel-y`` is d/dy in those axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

Array = jax.Array
Params = dict  # {"w1": [3C, hidden], "b1": [hidden], "w2": [hidden, C], "b2": [C]}

# Hook points, in the order a step visits them. A hook is ``fn(value, t) -> value`` with
# ``t`` the (traced) global step index; it may replace the value (zero a channel, patch
# in another rollout's activations, ...). See ``step``.
HOOK_POINTS = ("state", "perception", "hidden", "update", "fire", "alive")
RECORDABLE = ("state", "perception", "hidden", "update", "fire", "alive")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the update rule. Defaults are the article's.

    channels: 16 (RGBA + 12 hidden); hidden: 128 units of the per-cell MLP;
    fire_rate: 0.5, the probability a cell applies its update in a step;
    alive_threshold: 0.1 on the 3x3 max-pooled alpha;
    angle_deg: rotation of the Sobel pair (the article's rotation experiment), counter-
    clockwise as the image is viewed;
    neighbour_gradients: False stops gradients where a cell reads its neighbours
    (the Sobel terms), leaving only a cell's own state history differentiable --
    the "selfish credit" variant. The forward pass is unchanged.
    """

    channels: int = 16
    hidden: int = 128
    fire_rate: float = 0.5
    alive_threshold: float = 0.1
    angle_deg: float = 0.0
    neighbour_gradients: bool = True

    def __post_init__(self):
        if self.channels < 4:
            raise ValueError(f"channels must be >= 4 (RGBA + hidden), got {self.channels}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if not 0.0 < self.fire_rate <= 1.0:
            raise ValueError(f"fire_rate must be in (0, 1], got {self.fire_rate}")

    @property
    def perception_dim(self) -> int:
        return 3 * self.channels

    @property
    def hidden_channels(self) -> int:
        return self.channels - 4

    @property
    def flop_per_cell_update(self) -> int:
        """Useful forward FLOP per cell and step: 3x3 depthwise filters + the MLP.

        17,248 for the article's model (the figure the issue and peers count with).
        """
        c, h = self.channels, self.hidden
        return 2 * (9 * 3 * c + 3 * c * h + h * c)


# --------------------------------------------------------------------------- parameters


def init_params(key: Array, cfg: ModelConfig = ModelConfig()) -> Params:
    """Article initialisation: Keras defaults for layer 1 (Glorot-uniform weights, zero
    bias) and all-zero layer 2, so an untrained CA does nothing ("do-nothing" start)."""
    fan_in, fan_out = cfg.perception_dim, cfg.hidden
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w1 = jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {
        "w1": w1,
        "b1": jnp.zeros((cfg.hidden,), jnp.float32),
        "w2": jnp.zeros((cfg.hidden, cfg.channels), jnp.float32),
        "b2": jnp.zeros((cfg.channels,), jnp.float32),
    }


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    c, h = cfg.channels, cfg.hidden
    return {"w1": (3 * c, h), "b1": (h,), "w2": (h, c), "b2": (c,)}


# --------------------------------------------------------------------------- kernels


IDENTITY_KERNEL = np.outer([0, 1, 0], [0, 1, 0]).astype(np.float32)
# d/dx along W: outer([1,2,1], [-1,0,1]) / 8 (the article's ``dx``), applied as a
# cross-correlation like tf.nn.depthwise_conv2d; d/dy is its transpose.
SOBEL_X = np.outer([1, 2, 1], [-1, 0, 1]).astype(np.float32) / 8.0
SOBEL_Y = SOBEL_X.T.copy()


def perception_kernels(angle_deg: float = 0.0) -> np.ndarray:
    """The three 3x3 filters ``[identity, kx, ky]``, ``[3, 3, 3]`` (filter, row, col).

    Rotation as in the article: ``kx = c*dx - s*dy``, ``ky = s*dx + c*dy``.
    """
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.stack([IDENTITY_KERNEL, c * SOBEL_X - s * SOBEL_Y, s * SOBEL_X + c * SOBEL_Y])


def _pad_hw(x: Array, value: float = 0.0) -> Array:
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    return jnp.pad(x, pad, constant_values=value)


def sobel(x: Array) -> tuple[Array, Array]:
    """Unrotated Sobel derivatives of every channel, zero padding ('SAME').

    x: [..., H, W, C] -> (d/dx, d/dy), each [..., H, W, C]. Separable: smooth [1,2,1] one
    way, difference [-1,0,1] the other -- 4 adds per output instead of 9 MACs.
    """
    p = _pad_hw(x)
    d = p[..., :, 2:, :] - p[..., :, :-2, :]  # difference along x: [..., H+2, W, C]
    sx = (d[..., :-2, :, :] + 2.0 * d[..., 1:-1, :, :] + d[..., 2:, :, :]) * 0.125
    s = p[..., :, :-2, :] + 2.0 * p[..., :, 1:-1, :] + p[..., :, 2:, :]  # smooth along x
    sy = (s[..., 2:, :, :] - s[..., :-2, :, :]) * 0.125
    return sx, sy


def perceive(x: Array, angle_deg: float = 0.0, neighbour_gradients: bool = True) -> Array:
    """Perception vector of every cell. x: [..., H, W, C] -> [..., H, W, 3C].

    Feature order is *band* order: ``[identity (C), kx (C), ky (C)]`` (the published
    models' order; the TF notebook interleaved per channel instead).
    """
    neighbours = x if neighbour_gradients else jax.lax.stop_gradient(x)
    sx, sy = sobel(neighbours)
    if angle_deg:
        a = np.deg2rad(angle_deg)
        c, s = float(np.cos(a)), float(np.sin(a))
        sx, sy = c * sx - s * sy, s * sx + c * sy
    return jnp.concatenate([x, sx, sy], axis=-1)


def max_pool3(a: Array) -> Array:
    """3x3 max-pool, stride 1, 'SAME' (padding never wins). a: [..., H, W, 1]."""
    p = _pad_hw(a, -jnp.inf)
    rows = jnp.maximum(jnp.maximum(p[..., :-2, :, :], p[..., 1:-1, :, :]), p[..., 2:, :, :])
    return jnp.maximum(jnp.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def alive_mask(x: Array, threshold: float = 0.1) -> Array:
    """Cells that are alive or neighbour an alive cell. x: [..., H, W, C] -> bool [..., H, W, 1]."""
    return max_pool3(x[..., 3:4]) > threshold


# --------------------------------------------------------------------------- step


Hooks = Mapping[str, Callable[[Array, Array], Array]]


def _hook(hooks: Hooks | None, name: str, value: Array, t: Array) -> Array:
    if hooks and name in hooks:
        return hooks[name](value, t)
    return value


def fire_mask(key: Array, shape: tuple[int, ...], rate: float) -> Array:
    """Which cells update this step: bool [..., H, W, 1] for a state of ``shape`` [..., H, W, C].

    Each cell fires independently with probability ``rate`` (the article's stochastic
    update, ``uniform <= fire_rate``).
    """
    return jax.random.uniform(key, tuple(shape[:-1]) + (1,)) <= rate


def fire_masks(key: Array, ts: Array, shape: tuple[int, ...], rate: float) -> Array:
    """The fire masks of global steps ``ts`` [T] at once: bool [T, ..., H, W, 1].

    Equal to ``fire_mask(step_key(key, t), shape, rate)`` for each t (one vectorised call
    of the generator instead of T small ones; tested).
    """
    return jax.vmap(lambda t: fire_mask(step_key(key, t), shape, rate))(ts)


def step(
    params: Params,
    x: Array,
    key: Array,
    cfg: ModelConfig = ModelConfig(),
    t: Array | int = 0,
    hooks: Hooks | None = None,
    fire: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
    """One CA step. x: [..., H, W, C]; key: a PRNG key for the fire mask.

    fire: the fire mask bool [..., H, W, 1] if already drawn (``fire_mask(key, x.shape,
    cfg.fire_rate)`` -- ``rollout`` draws many steps' masks at once); else drawn from key.

    Returns ``(x_next, cache)``; cache holds ``perception [..., 3C]``, ``hidden
    [..., hidden]``, ``update [..., C]`` (before the fire mask), ``fire [..., 1]`` (float
    0/1) and ``alive [..., 1]`` (the life mask applied, float 0/1). Under jit the entries
    nobody uses are dead code and cost nothing.

    hooks: optional ``{point: fn(value, t) -> value}`` applied at the points in
    ``HOOK_POINTS`` ("state" is the incoming state, before the alive mask is taken;
    "alive" is the life mask [..., 1] (float 0/1) applied at the end of the step, e.g.
    frozen at a clean run's values to measure a direct effect, ``analysis.repair``).
    """
    t = jnp.asarray(t, jnp.int32)
    x = _hook(hooks, "state", x, t)
    pre = alive_mask(x, cfg.alive_threshold)
    p = _hook(hooks, "perception", perceive(x, cfg.angle_deg, cfg.neighbour_gradients), t)
    h = _hook(hooks, "hidden", jax.nn.relu(p @ params["w1"] + params["b1"]), t)
    dx = _hook(hooks, "update", h @ params["w2"] + params["b2"], t)
    fire = fire_mask(key, x.shape, cfg.fire_rate) if fire is None else fire
    fire = _hook(hooks, "fire", fire.astype(x.dtype), t)
    x = x + dx * fire
    life = _hook(hooks, "alive", (pre & alive_mask(x, cfg.alive_threshold)).astype(x.dtype), t)
    cache = {"perception": p, "hidden": h, "update": dx, "fire": fire, "alive": life}
    return x * life, cache


# What ``rollout(remat=True, fast=True)`` keeps per step for the backward pass: the masks
# and the list of updated cells of ``fast_step`` (~7 bytes per cell), everything else
# recomputed. Keeping the life mask lets the backward pass skip re-running the MLP.
FAST_REMAT_POLICY = jax.checkpoint_policies.save_only_these_names("nca_pre", "nca_fire", "nca_rows", "nca_life")

# Rows of the per-cell MLP evaluated together by ``fast_step``: the hidden activations of a
# chunk ([1024, 128] float32 = 512 KiB) stay in a core's L2 cache. Measured in bench/.
FAST_CHUNK = 1024


def _mlp(w1: Array, b1: Array, w2: Array, b2: Array, q: Array) -> Array:
    """The per-cell update network. q: [N, 3C] -> [N, C]."""
    return jax.nn.relu(q @ w1 + b1) @ w2 + b2


# The rows left after the last full chunk run in chunks this many times smaller, so at most
# chunk/4 rows of padding are computed (a 72x72 organism needs ~550 rows per step).
TAIL_SPLIT = 4


def _chunk_loop(chunk_fn, args, init, count, batched=None):
    """Loop ``chunk_fn(start, size, *args, carry)`` over the first ``count`` listed rows.

    ``args[5]`` is the row list [K, chunk]. Full chunks first, then the rest in chunks
    ``TAIL_SPLIT`` times smaller. batched: None for one problem; else one flag per arg,
    and each iteration runs ``vmap(chunk_fn)`` over the batch, with ``count`` the
    *largest* member's -- the others' extra rows are padding and change nothing. (Plain
    ``vmap`` of a data-dependent loop would select between old and new carry in every
    iteration.)
    """
    if batched is not None:
        chunk_fn = jax.vmap(chunk_fn, in_axes=(None, None, *(0 if b else None for b in batched), 0))
    chunk = args[5].shape[-1]
    sub = chunk // TAIL_SPLIT if chunk % TAIL_SPLIT == 0 else chunk
    full = count // chunk
    carry = jax.lax.fori_loop(0, full, lambda i, c: chunk_fn(i * chunk, chunk, *args, c), init)
    first_sub = full * (chunk // sub)
    return jax.lax.fori_loop(first_sub, (count + sub - 1) // sub, lambda j, c: chunk_fn(j * sub, sub, *args, c), carry)


def _chunk_loop_fn(chunk_fn, init, count):
    """``(*args) -> _chunk_loop(chunk_fn, ...)`` as a ``custom_vmap`` function whose
    batching rule runs one chunk loop for the whole batch (``_chunk_loop(batched=...)``).

    init(*args): the loop's initial carry; count(rows): the real rows listed in ``rows``
    [..., K, chunk] (one count per batch member).
    """

    @jax.custom_batching.custom_vmap
    def loop(*args):
        return _chunk_loop(chunk_fn, args, init(*args), count(args[5]))

    @loop.def_vmap
    def rule(axis_size, in_batched, *args):
        carry = jax.vmap(init, in_axes=tuple(0 if b else None for b in in_batched), axis_size=axis_size)(*args)
        out = _chunk_loop(chunk_fn, args, carry, jnp.max(count(args[5])), batched=tuple(in_batched))
        return out, jax.tree.map(lambda _: True, out)

    return loop


# Row gathers and scatters with batching rules of their own: under vmap, XLA's batched
# gather/scatter (a batch index concatenated to every index) ran ~10x slower on CPU than
# the same rows gathered from the batch flattened into one array, which these rules do.


def _flat_index(idx: Array, rows: int, batch: int) -> Array:
    """Per-member row indices [K, ...] into [K * rows] flattened rows; out-of-range stays out."""
    member = jnp.arange(batch, dtype=idx.dtype).reshape((batch,) + (1,) * (idx.ndim - 1))
    return jnp.where((idx >= 0) & (idx < rows), idx + member * rows, batch * rows)


def _broadcast_unbatched(axis_size, in_batched, *xs):
    return [x if b else jnp.broadcast_to(x, (axis_size, *x.shape)) for x, b in zip(xs, in_batched)]


@jax.custom_batching.custom_vmap
def _take_rows(a: Array, idx: Array) -> Array:
    """a[idx] along the first axis; indices out of range read zeros. a: [M, ...]."""
    return a.at[idx].get(mode="fill", fill_value=0.0)


@_take_rows.def_vmap
def _take_rows_batched(axis_size, in_batched, a, idx):
    if not in_batched[0]:
        return a.at[idx].get(mode="fill", fill_value=0.0), True
    a, idx = _broadcast_unbatched(axis_size, in_batched, a, idx)
    flat = a.reshape(axis_size * a.shape[1], *a.shape[2:])
    return _take_rows(flat, _flat_index(idx, a.shape[1], axis_size)), True


def _add_rows_rule(unique: bool):
    def rule(axis_size, in_batched, a, idx, values):
        a, idx, values = _broadcast_unbatched(axis_size, in_batched, a, idx, values)
        m = a.shape[1]
        flat = a.reshape(axis_size * m, *a.shape[2:])
        add = _add_unique_rows if unique else _add_rows
        return add(flat, _flat_index(idx, m, axis_size), values).reshape(a.shape), True

    return rule


@jax.custom_batching.custom_vmap
def _add_unique_rows(a: Array, idx: Array, values: Array) -> Array:
    """a with values added to rows idx, which are all different; out of range dropped."""
    return a.at[idx].add(values, mode="drop", unique_indices=True)


@jax.custom_batching.custom_vmap
def _add_rows(a: Array, idx: Array, values: Array) -> Array:
    """a with values added to rows idx (repeats accumulate); out of range dropped."""
    return a.at[idx].add(values, mode="drop")


_add_unique_rows.def_vmap(_add_rows_rule(unique=True))
_add_rows.def_vmap(_add_rows_rule(unique=False))


@lru_cache(maxsize=None)
def _sparse_update(shape: tuple[int, ...], angle_deg: float, neighbour_gradients: bool):
    """The per-cell update applied to listed cells only, for states of ``shape`` [..., H, W, C].

    Returns ``update(w1, b1, w2, b2, x, rows) -> x + dx`` [..., H, W, C]: each listed
    cell plus its MLP output, every other cell unchanged. rows: int32 [K, chunk], the
    flat indices of the cells to update first, then padding indices >= N (N = cells in x).

    Each chunk gathers its cells' 3x3 neighbourhoods (indices outside the grid read
    zeros, the 'SAME' padding of ``perceive``), computes their perception there, runs the
    MLP and adds the update to its cells -- no whole-grid perception or update is written.
    The loop's trip count depends on the data, which reverse-mode autodiff cannot
    handle, hence the hand-written VJP: the same loop again, recomputing each chunk's
    hidden layer (cheaper than storing it), accumulating the parameter gradients in its
    carry and adding each cell's perception gradient back onto the neighbourhood it was
    read from (the transpose of the 3x3 filters, for the listed cells only). Under
    ``vmap`` (several models or organisms) one loop serves the whole batch (``custom_vmap``).
    """
    h, w, c = shape[-3:]
    n = math.prod(shape[:-1])
    kernels = perception_kernels(angle_deg).reshape(3, 9)  # [band, tap]; taps row-major over (dy, dx)
    taps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]

    def neighbourhood(idx):  # [size] cell indices -> [size, 9] neighbour indices; n = outside
        row, col = idx % (h * w) // w, idx % w
        hood = [jnp.where((idx < n) & (0 <= row + dy) & (row + dy < h) & (0 <= col + dx) & (col + dx < w),
                          idx + dy * w + dx, n) for dy, dx in taps]
        return jnp.stack(hood, axis=-1)

    def perception(x, hood):  # [size, 9] -> [size, 3C], band order like perceive
        cells = _take_rows(x, hood)  # [size, 9, C]
        bands = [sum(float(k[d]) * cells[:, d] for d in range(9) if k[d]) for k in kernels]
        return jnp.concatenate(bands, axis=-1)

    def forward_chunk(start, size, w1, b1, w2, b2, x, rows, out):
        idx = jax.lax.dynamic_slice_in_dim(rows.reshape(-1), start, size)
        return _add_unique_rows(out, idx, _mlp(w1, b1, w2, b2, perception(x, neighbourhood(idx))))

    def backward_chunk(start, size, w1, b1, w2, b2, x, rows, g, carry):
        # Padding rows gather a zero cotangent and so add nothing to any gradient.
        dx, dw1, db1, dw2, db2 = carry
        idx = jax.lax.dynamic_slice_in_dim(rows.reshape(-1), start, size)
        hood = neighbourhood(idx)
        q = perception(x, hood)
        gq = _take_rows(g, idx)
        pre = q @ w1 + b1
        dpre = (gq @ w2.T) * (pre > 0)
        dq = dpre @ w1.T  # [size, 3C]: gradient of each listed cell's perception
        if neighbour_gradients:  # back through the 3x3 filters onto the neighbourhood
            bands = [dq[:, b * c:(b + 1) * c] for b in range(3)]
            dcells = jnp.stack([sum(float(kernels[b, d]) * bands[b] for b in range(3) if kernels[b, d])
                                for d in range(9)], axis=1)  # [size, 9, C]
            dx = _add_rows(dx, hood, dcells)
        else:  # the Sobel terms read stop_gradient(x): only the identity band reaches x
            dx = _add_unique_rows(dx, idx, dq[:, :c])
        return dx, dw1 + q.T @ dpre, db1 + dpre.sum(0), dw2 + jax.nn.relu(pre).T @ gq, db2 + gq.sum(0)

    def init_out(w1, b1, w2, b2, x, rows):
        return x

    def init_grads(w1, b1, w2, b2, x, rows, g):  # g: the gradient through "x +"
        return (g, *(jnp.zeros_like(a) for a in (w1, b1, w2, b2)))

    def count(rows):  # rows [..., K, chunk] -> real entries per member
        return jnp.sum(rows < n, axis=(-2, -1))

    forward = _chunk_loop_fn(forward_chunk, init_out, count)
    backward = _chunk_loop_fn(backward_chunk, init_grads, count)

    @jax.custom_vjp
    def update(w1, b1, w2, b2, x, rows):
        return forward(w1, b1, w2, b2, x.reshape(n, c), rows).reshape(x.shape)

    def update_fwd(w1, b1, w2, b2, x, rows):
        return update(w1, b1, w2, b2, x, rows), (w1, b1, w2, b2, x, rows)

    def update_bwd(res, g):
        w1, b1, w2, b2, x, rows = res
        dx, dw1, db1, dw2, db2 = backward(w1, b1, w2, b2, x.reshape(n, c), rows, g.reshape(n, c))
        return dw1, db1, dw2, db2, dx.reshape(x.shape), None

    update.defvjp(update_fwd, update_bwd)
    return update


def prefix_count(a: Array) -> Array:
    """Inclusive running count of a bool [N] array: int32 [N] (``cumsum``).

    As matmuls with triangular ones (``_running_sum``), which XLA's CPU backend runs
    several times faster than its ``cumsum`` of a few thousand elements. Exact: every
    partial sum is an integer below 2**24.
    """
    if a.shape[0] >= 2**24:
        raise ValueError(f"prefix_count of {a.shape[0]} >= 2**24 elements would not be exact in float32")
    return _running_sum(a.astype(jnp.float32)).astype(jnp.int32)


def _running_sum(x: Array, block: int = 64) -> Array:
    """Inclusive cumulative sum of x [N]: within blocks of ``block``, then over block totals."""
    n = x.shape[0]
    m = -(-n // block)
    within = jnp.pad(x, (0, m * block - n)).reshape(m, block) @ jnp.triu(jnp.ones((block, block), x.dtype))
    totals = within[:, -1]
    if m <= 1024:  # earlier blocks' total: one more triangular matmul ([m, m] is small)
        before = totals @ jnp.triu(jnp.ones((m, m), x.dtype), k=1)
    else:
        before = _running_sum(totals, block) - totals
    return (within + before[:, None]).reshape(-1)[:n]


def compact(need: Array, chunk: int) -> Array:
    """The indices of the True entries of ``need`` [N], in order, padded with N to whole
    chunks: int32 [ceil(N / chunk), chunk]. (``jnp.nonzero(size=...)`` computes the same
    with more passes over the array.)"""
    n = need.shape[0]
    slots = -(-n // chunk) * chunk
    dest = jnp.where(need, prefix_count(need) - 1, slots)  # slot of each needed cell
    rows = jnp.full((slots,), n, jnp.int32).at[dest].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    return rows.reshape(-1, chunk)


def fast_step(
    params: Params,
    x: Array,
    key: Array,
    cfg: ModelConfig = ModelConfig(),
    chunk: int = FAST_CHUNK,
    fire: Array | None = None,
    active: Array | None = None,
) -> Array:
    """``step`` computed only where it can matter; same result to float rounding.

    x: [..., H, W, C] -> x_next [..., H, W, C] (no cache, no hooks); fire: as in ``step``.
    active: optional bool scalar; False returns x unchanged (``rollout``'s
    ``active_steps`` without a ``lax.cond``, which ``vmap`` would turn into a select of
    both branches over the whole state).

    A cell's update ``dx`` can change the next state only if the cell fires and is alive
    or next to an alive cell before the step: the cell's own value is kept only if it was
    alive, and its new alpha enters its neighbours' post-update life mask. Everywhere else
    the reference multiplies the update by 0, so the MLP is evaluated only for those cells
    -- typically 10-25% of a 72x72 training grid (half the cells do not fire, most of the
    grid is empty). The needed cells' indices are listed in grid order (``compact``) and
    ``_sparse_update`` computes perception and MLP for them only, in chunks of ``chunk``
    cells, for as many chunks as hold them. The fire mask is drawn from ``key`` exactly
    as in ``step``, so the same key gives the same cells firing;
    ``tests/test_speed_paths.py`` checks states and gradients against ``step``. Worth it
    on CPU; on GPU/TPU the dense ``step`` is faster (no data-dependent loop).
    """
    # The masks and the row list are tagged so a rematerialising backward pass can keep
    # them (a few bytes per cell, ``FAST_REMAT_POLICY``) instead of redrawing and re-listing.
    pre = checkpoint_name(alive_mask(x, cfg.alive_threshold), "nca_pre")
    if fire is None:
        fire = checkpoint_name(fire_mask(key, x.shape, cfg.fire_rate), "nca_fire")
    # A cell's update matters if it fires and is alive or next to an alive cell: its own
    # value survives only if it was alive, but its new alpha also decides whether an alive
    # neighbour survives the step (``step``'s post-update life mask sees every update).
    need = (max_pool3(pre.astype(x.dtype)) > 0) & fire
    if active is not None:
        need = need & active
    rows = checkpoint_name(compact(need.reshape(-1), chunk), "nca_rows")  # over all cells of all samples
    update = _sparse_update(x.shape, cfg.angle_deg, cfg.neighbour_gradients)
    x = update(params["w1"], params["b1"], params["w2"], params["b2"], x, rows)
    life = pre & alive_mask(x, cfg.alive_threshold)
    if active is not None:  # an inactive step listed no cells; keep x exactly (x * 1)
        life = life | ~active
    return x * checkpoint_name(life, "nca_life").astype(x.dtype)


def step_key(key: Array, t: Array | int) -> Array:
    """The fire-mask key of global step ``t``: ``fold_in(key, t)``.

    Folding in the step index (rather than splitting a chain) makes rollouts prefix-
    consistent: growing 100 steps then 50 more from ``t0=100`` equals growing 150.
    """
    return jax.random.fold_in(key, t)


class Trajectory(NamedTuple):
    """What a rollout recorded, stacked over time: each field ``[T, ...]`` or None.

    states: the state *after* each step ``[T, ..., H, W, C]``; perception ``[..., 3C]``,
    hidden ``[..., hidden]``, update ``[..., C]``, fire/alive ``[..., 1]`` as in ``step``.
    """

    states: Array | None = None
    perception: Array | None = None
    hidden: Array | None = None
    update: Array | None = None
    fire: Array | None = None
    alive: Array | None = None


# Fire masks for up to this many cell-steps (bool: 4 MiB) are drawn in one vectorised call:
# drawn step by step, the generator's fixed cost per call (~20 us on CPU) dominates small
# grids -- 15% of a 72x72 rollout.
FIRE_BLOCK_CELLS = 1 << 22


def _fire_block(steps: int, every: int, cells: int) -> int:
    """Steps per block of pre-drawn fire masks: the largest multiple of ``every`` that
    divides ``steps`` and fits ``FIRE_BLOCK_CELLS``; 0 if even ``every`` steps do not fit."""
    fits = [d for d in range(every, steps + 1, every) if steps % d == 0 and d * cells <= FIRE_BLOCK_CELLS]
    return max(fits, default=0)


def rollout(
    params: Params,
    x0: Array,
    key: Array,
    steps: int,
    cfg: ModelConfig = ModelConfig(),
    record: tuple[str, ...] = ("state",),
    hooks: Hooks | None = None,
    t0: int | Array = 0,
    every: int = 1,
    remat: bool = False,
    active_steps: Array | None = None,
    fast: bool = False,
) -> tuple[Array, Trajectory]:
    """Run ``steps`` CA steps with ``lax.scan`` -- the functional ``run_with_cache``.

    x0: [..., H, W, C]. record: names from ``RECORDABLE`` to stack over time (every
    ``every``-th step, so ``T = steps // every``); () records nothing. t0: global index
    of the first step (keys and hooks see ``t0 + i``). remat: rematerialise each step in
    the backward pass (memory ~ one state per step instead of all activations).

    Returns ``(x_final, Trajectory)``. Pure; jit it with ``steps``, ``cfg``, ``record``,
    ``hooks``, ``every``, ``remat`` static (``nca.grow`` does).

    fast: use ``fast_step`` (the MLP only where a cell fires and is alive; equal to
    ``step`` to float rounding, several times faster on CPU) when nothing but states is
    recorded and there are no hooks; otherwise the reference ``step`` runs regardless.
    """
    unknown = set(record) - set(RECORDABLE)
    if unknown:
        raise ValueError(f"cannot record {sorted(unknown)}; choose from {RECORDABLE}")
    if steps % every:
        raise ValueError(f"steps={steps} is not a multiple of every={every}")

    if active_steps is not None and record and record != ("state",):
        raise ValueError("active_steps supports recording states only")
    t0 = jnp.asarray(t0, jnp.int32)

    if fast and not hooks and set(record) <= {"state"}:

        def one(x, t, fire):
            active = None if active_steps is None else t - t0 < active_steps
            return fast_step(params, x, step_key(key, t), cfg, fire=fire, active=active), {}

        if remat:
            one = jax.checkpoint(one, policy=FAST_REMAT_POLICY)
    else:

        def one(x, t, fire):
            return step(params, x, step_key(key, t), cfg, t, hooks, fire)

        if remat:
            one = jax.checkpoint(one)

        if active_steps is not None:
            full = one

            def one(x, t, fire):
                return jax.lax.cond(t - t0 < active_steps, lambda x: full(x, t, fire)[0], lambda x: x, x), {}

    def record_of(x, cache):
        out = {}
        for name in record:
            out[name] = x if name == "state" else cache[name]
        return out

    def inner(x, t_fire):
        x, cache = one(x, *t_fire)
        return x, record_of(x, cache)

    def group(x, ts_fires):  # ``every`` steps, recording the last
        x, recs = jax.lax.scan(inner, x, ts_fires)
        return x, jax.tree.map(lambda r: r[-1], recs)

    body = inner if every == 1 else group

    def split(a):  # [n] -> [n // every, every]
        return a if every == 1 else a.reshape(a.shape[0] // every, every, *a.shape[1:])

    ts = t0 + jnp.arange(steps, dtype=jnp.int32)
    block = _fire_block(steps, every, math.prod(x0.shape[:-1]))
    if block == steps:  # every step's mask at once, one scan
        fires = fire_masks(key, ts, x0.shape, cfg.fire_rate)
        x, rec = jax.lax.scan(body, x0, (split(ts), split(fires)))
    elif block:  # a scan over blocks of steps, each drawing its masks first

        def run_block(x, ts_block):
            fires = fire_masks(key, ts_block, x0.shape, cfg.fire_rate)
            return jax.lax.scan(body, x, (split(ts_block), split(fires)))

        x, rec = jax.lax.scan(run_block, x0, ts.reshape(steps // block, block))
        rec = jax.tree.map(lambda r: r.reshape(-1, *r.shape[2:]), rec)
    else:  # too many cells to hold even ``every`` steps' masks: draw them step by step
        x, rec = jax.lax.scan(body, x0, (split(ts), None))
    rec = dict(rec)
    return x, Trajectory(
        states=rec.get("state"),
        perception=rec.get("perception"),
        hidden=rec.get("hidden"),
        update=rec.get("update"),
        fire=rec.get("fire"),
        alive=rec.get("alive"),
    )


# --------------------------------------------------------------------------- seeds


def seed_state(height: int, width: int, cfg: ModelConfig = ModelConfig(), batch: int | None = None) -> Array:
    """The article's seed: one cell at (H//2, W//2) with channels 3.. set to 1.

    Returns [H, W, C], or [batch, H, W, C] when ``batch`` is given.
    """
    x = jnp.zeros((height, width, cfg.channels), jnp.float32).at[height // 2, width // 2, 3:].set(1.0)
    return x if batch is None else jnp.broadcast_to(x, (batch, height, width, cfg.channels))


def to_rgba(x: Array) -> Array:
    """[..., C] -> [..., 4]: premultiplied RGB and alpha, clipped to [0, 1]."""
    return jnp.clip(x[..., :4], 0.0, 1.0)


def to_rgb(x: Array, background: float = 1.0) -> Array:
    """Composite the premultiplied colour over a uniform background (white by default)."""
    rgba = to_rgba(x)
    return rgba[..., :3] + background * (1.0 - rgba[..., 3:4])
