"""The fast path of the CA step (private): ``fast_step`` and its custom VJP and vmap rules.

``nca.model.fast_step`` (re-exported there; import it from ``nca.model``) is the reference
``nca.model.step`` computed only where a cell's update can matter: the MLP runs for the
cells that fire and are alive or next to an alive cell, listed in grid order and processed
in chunks by a data-dependent loop. Reverse-mode autodiff cannot differentiate such a loop,
so ``_sparse_update`` has a hand-written VJP; XLA's batched gathers and scatters were ~10x
slower on CPU than unbatched ones, so the row gathers/scatters and the chunk loop carry
their own ``custom_vmap`` rules. ``tests/test_speed_paths.py`` checks states and gradients
against the reference step (plain, vmapped, rotated, selfish). docs/performance.md: why
and how much.

Kept apart from ``nca/model.py`` so that the reference CA reads at a glance; nothing here
changes what a step computes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from .model import Array, ModelConfig, Params, alive_mask, fire_mask, max_pool3, perception_kernels


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


@jax.custom_batching.custom_vmap
def _add_unique_rows(a: Array, idx: Array, values: Array) -> Array:
    """a with values added to rows idx, which are all different; out of range dropped."""
    return a.at[idx].add(values, mode="drop", unique_indices=True)


@_add_unique_rows.def_vmap
def _add_unique_rows_batched(axis_size, in_batched, a, idx, values):
    a, idx, values = _broadcast_unbatched(axis_size, in_batched, a, idx, values)
    m = a.shape[1]
    flat = a.reshape(axis_size * m, *a.shape[2:])
    return _add_unique_rows(flat, _flat_index(idx, m, axis_size), values).reshape(a.shape), True


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
            for d in range(9):  # one scatter per tap: its rows are all different (4-5% faster
                # than one scatter of [size, 9, C] with repeats, docs/performance.md)
                dx = _add_unique_rows(dx, hood[:, d], sum(float(kernels[b, d]) * bands[b]
                                                          for b in range(3) if kernels[b, d]))
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
