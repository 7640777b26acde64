"""Every fast path equals the reference path to float rounding (same key -> same result)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.config import preset
from nca.model import ModelConfig, fast_step, init_params, rollout, seed_state, step
from nca.train import init_train_state, train_step


def random_params(key, cfg, scale=0.3):
    k1, k2, k3 = jax.random.split(key, 3)
    p = init_params(k1, cfg)
    p["w2"] = jax.random.normal(k2, p["w2"].shape) * scale
    p["b1"] = jax.random.normal(k3, p["b1"].shape) * 0.1
    p["b2"] = jax.random.normal(k3, p["b2"].shape) * 0.05
    return p


def blob_state(key, shape, radius):
    """Random channels inside a disc of ``radius`` cells, dead outside. -> [*shape, 16]."""
    h, w = shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < radius**2).astype(np.float32)[..., None]
    return jax.random.uniform(key, (*shape, 16)) * disc


@pytest.mark.parametrize("cfg, shape, radius, chunk", [
    (ModelConfig(), (20, 20), 5, 16),
    (ModelConfig(angle_deg=30.0, fire_rate=0.7), (3, 16, 24), 6, 100),
    (ModelConfig(neighbour_gradients=False, hidden=32), (16, 16), 0, 64),
    (ModelConfig(), (2, 12, 12), 99, 50),
])
def test_fast_step_equals_step(cfg, shape, radius, chunk):
    # Radii: partly alive, empty (every chunk skipped), whole grid alive (worst case);
    # chunk sizes that do not divide the cell count exercise the padded last chunk.
    params = random_params(jax.random.key(1), cfg)
    x = blob_state(jax.random.key(2), shape, radius)
    key = jax.random.key(3)
    ref, _ = jax.jit(partial(step, cfg=cfg))(params, x, key)
    out = jax.jit(partial(fast_step, cfg=cfg, chunk=chunk))(params, x, key)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-6)
    if radius:
        assert float(jnp.abs(ref - x).max()) > 1e-3, "the step changed nothing: the test would be vacuous"


def test_fast_step_keeps_updates_that_decide_a_neighbours_life():
    # A dead cell next to an alive one: its own update is discarded, but its new alpha
    # enters the alive neighbour's post-update life mask. Sparse speckles of faint cells
    # and strong random weights make that happen; an earlier fast path (MLP only where
    # the cell itself was alive) differed from ``step`` on 1 of the first 7 keys here.
    cfg = ModelConfig()

    def one(k):
        k1, k2, k3, k4, k5 = jax.random.split(k, 5)
        p = init_params(k1, cfg)
        p["w1"] = jax.random.normal(k1, p["w1"].shape) * 0.5
        p["w2"] = jax.random.normal(k2, p["w2"].shape) * 0.1
        p["b2"] = jax.random.normal(k3, p["b2"].shape) * 0.1
        x = jax.random.uniform(k4, (12, 12, 16)) * (jax.random.uniform(k5, (12, 12, 1)) < 0.15)
        ref, _ = step(p, x, k5, cfg)
        return ref, fast_step(p, x, k5, cfg, chunk=32)

    ref, out = jax.jit(jax.vmap(lambda i: one(jax.random.key(i))))(jnp.arange(16))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 5184, 70_001])  # 70,001: > 1024 blocks, recursion
def test_prefix_count_and_compact_match_numpy(n):
    from nca.model import compact, prefix_count

    need = jax.random.uniform(jax.random.key(n), (n,)) < 0.3
    np.testing.assert_array_equal(np.asarray(prefix_count(need)), np.cumsum(np.asarray(need)))
    rows = np.asarray(compact(need, 64))
    listed = np.flatnonzero(np.asarray(need))
    assert rows.shape == (-(-n // 64), 64)
    np.testing.assert_array_equal(rows.reshape(-1)[: len(listed)], listed)
    assert (rows.reshape(-1)[len(listed):] == n).all()


@pytest.mark.parametrize("cfg", [ModelConfig(), ModelConfig(angle_deg=30.0),
                                 ModelConfig(neighbour_gradients=False)], ids=["plain", "rotated", "selfish"])
def test_fast_rollout_and_its_gradient_equal_the_reference(cfg):
    # The fast path's VJP is hand-written (perception of gathered neighbourhoods, then
    # perceive's transpose): rotated kernels and stopped neighbour gradients must carry over.
    params = random_params(jax.random.key(4), cfg, scale=0.1)
    x0 = blob_state(jax.random.key(5), (2, 24, 24), 5)
    target = blob_state(jax.random.key(6), (24, 24), 7)[..., :4]
    key = jax.random.key(7)

    def loss(params, fast, remat):
        x, _ = rollout(params, x0, key, 20, cfg, record=(), remat=remat, active_steps=jnp.int32(17), fast=fast)
        return jnp.mean(jnp.square(x[..., :4] - target)), x

    (l_ref, x_ref), g_ref = jax.jit(jax.value_and_grad(partial(loss, fast=False, remat=True), has_aux=True))(params)
    for remat in (True, False):
        (l, x), g = jax.jit(jax.value_and_grad(partial(loss, fast=True, remat=remat), has_aux=True))(params)
        np.testing.assert_allclose(np.asarray(x), np.asarray(x_ref), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(float(l), float(l_ref), rtol=1e-5)
        for name in g_ref:
            scale = float(jnp.abs(g_ref[name]).max())
            assert scale > 0, f"no gradient reaches {name}"
            np.testing.assert_allclose(np.asarray(g[name]), np.asarray(g_ref[name]), atol=1e-4 * scale)


@pytest.mark.parametrize("batch_params, batch_states", [(True, False), (False, True), (True, True)])
def test_vmapped_fast_gradients_equal_one_by_one(batch_params, batch_states):
    # Under vmap, fast_step's chunk loops run once for the whole batch (custom_vmap),
    # as many chunks as the largest member needs; members needing fewer must not change.
    cfg = ModelConfig()
    k = 3
    params = [random_params(jax.random.key(20 + i), cfg, scale=0.1) for i in range(k if batch_params else 1)]
    radii = (2, 6, 9)  # very different numbers of live cells -> different chunk counts
    states = [blob_state(jax.random.key(30 + i), (16, 16), radii[i]) for i in range(k if batch_states else 1)]

    def loss(p, x0):  # chunks of 16 cells: the members need ~1, ~8 and ~16 chunks per step
        def one(x, t):
            return fast_step(p, x, jax.random.fold_in(jax.random.key(40), t), cfg, chunk=16), None
        x, _ = jax.lax.scan(jax.checkpoint(one), x0, jnp.arange(6))
        return jnp.mean(jnp.square(x[..., :4] - 0.5))

    grad = jax.jit(jax.value_and_grad(loss))
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
    in_axes = (0 if batch_params else None, 0 if batch_states else None)
    args = (stack(params) if batch_params else params[0], stack(states) if batch_states else states[0])
    losses, grads = jax.jit(jax.vmap(jax.value_and_grad(loss), in_axes=in_axes))(*args)
    for i in range(k):
        l_i, g_i = grad(params[i if batch_params else 0], states[i if batch_states else 0])
        np.testing.assert_allclose(float(losses[i]), float(l_i), rtol=1e-5)
        for name in g_i:
            np.testing.assert_allclose(np.asarray(grads[name][i]), np.asarray(g_i[name]), rtol=1e-4,
                                       atol=1e-5 * float(jnp.abs(g_i[name]).max()))


def test_fast_rollout_falls_back_to_the_reference_when_recording_or_hooked():
    cfg = ModelConfig()
    params = random_params(jax.random.key(8), cfg)
    x0 = seed_state(16, 16, cfg)
    key = jax.random.key(9)
    _, ref = rollout(params, x0, key, 6, cfg, record=("state", "hidden"))
    _, fast = rollout(params, x0, key, 6, cfg, record=("state", "hidden"), fast=True)
    np.testing.assert_array_equal(fast.hidden, ref.hidden)
    np.testing.assert_array_equal(fast.states, ref.states)
    zero_rgb = {"update": lambda u, t: u.at[..., :3].set(0.0)}
    _, hooked = rollout(params, x0, key, 6, cfg, hooks=zero_rgb, fast=True)
    _, hooked_ref = rollout(params, x0, key, 6, cfg, hooks=zero_rgb)
    np.testing.assert_array_equal(hooked.states, hooked_ref.states)


def test_fast_train_step_equals_the_reference_train_step():
    cfg = preset("tiny", pool_size=8)
    state = init_train_state(cfg)
    state = state._replace(params=random_params(jax.random.key(10), cfg.model, scale=0.1))
    g = cfg.grid_size
    target = blob_state(jax.random.key(11), (g, g), 5)[..., :4]
    runs = {}
    for fast in (False, True):
        s, step = state, jax.jit(partial(train_step, cfg, fast=fast))  # (jitted once: a new partial recompiles)
        for _ in range(2):
            s, loss = step(s, target)
        runs[fast] = (s, float(loss))
    (ref, l_ref), (out, l) = runs[False], runs[True]
    np.testing.assert_allclose(l, l_ref, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(out.params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.pool), np.asarray(ref.pool), rtol=1e-3, atol=1e-4)


def test_bench_rejects_an_unknown_measurement_cleanly():
    import subprocess
    import sys
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "bench" / "run.py"
    proc = subprocess.run([sys.executable, str(run), "--only", "trian", "--no-peers"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: unknown measurement(s) ['trian']" in proc.stderr and "Traceback" not in proc.stderr
