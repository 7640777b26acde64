"""Hooks as pytrees (nca.hooks): the interventions compute exactly what the closures they
replaced computed, a Hook flattens, unflattens, stacks and vmaps like any pytree, only its
arrays are traced (its function and settings pick the compiled program), and plain
callables still work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nca
from analysis.causal import interventions as I
from nca.model import jit_rollout  # nca.grow's jitted rollout
from nca.errors import NCAError
from nca.hooks import Hook, as_hook


def rng_values(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def orthonormal(k, f, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(f, k)))
    return q.T.astype(np.float32)


def closure_ablate(d, repl, t_start, t_stop, mask):
    """The ablation as a plain closure (what ``I.ablate`` returned before hooks were
    pytrees): repl(coef, t) -> the replacement components."""
    d = jnp.asarray(d)

    def hook(v, t):
        coef = v @ d.T
        w = I.in_window(t, t_start, t_stop) * jnp.asarray(mask, v.dtype)[..., None]
        return v + w * (v + (repl(coef, t) - coef) @ d - v)

    return hook


def closure_patch(src, source_t0, channels, t_start, t_stop, mask):
    src = jnp.asarray(src)

    def hook(v, t):
        new = I.recorded_at(src, t, source_t0).astype(v.dtype)
        sel = jnp.zeros(v.shape[-1], v.dtype).at[jnp.asarray(channels)].set(1.0)
        new = v + sel * (new - v)
        w = I.in_window(t, t_start, t_stop) * jnp.asarray(mask, v.dtype)[..., None]
        return v + w * (new - v)

    return hook


@pytest.fixture(scope="module")
def lizard():
    return nca.load_model("distill:lizard/regenerating")


@pytest.fixture(scope="module")
def cases():
    """(name, Hook, the equivalent closure) on [2, 8, 8, 16] values."""
    d = orthonormal(2, 16)
    src = rng_values((6, 2, 8, 8, 16), seed=3)
    mask = np.zeros((8, 8), np.float32)
    mask[:4] = 1.0
    mask[2] = 0.5  # fractional: blends
    means = np.array([0.5, -2.0], np.float32)
    return [
        ("zero", I.ablate(d, t_start=3, t_stop=6, mask=mask),
         closure_ablate(d, lambda c, t: jnp.zeros_like(c), 3, 6, mask)),
        ("mean", I.ablate(d, "mean", value=means, t_start=2, mask=mask),
         closure_ablate(d, lambda c, t: jnp.broadcast_to(means, c.shape), 2, None, mask)),
        ("resample", I.ablate(d, "resample", source=src, source_t0=1, t_stop=5, mask=mask),
         closure_ablate(d, lambda c, t: I.recorded_at(src, t, 1) @ d.T, 0, 5, mask)),
        ("patch", I.patch(src, source_t0=2, channels=[4, 9], t_start=3, mask=mask),
         closure_patch(src, 2, [4, 9], 3, None, mask)),
    ]


def test_interventions_compute_exactly_what_the_closures_did(cases):
    v = rng_values((2, 8, 8, 16))
    jitted = jax.jit(lambda h, v, t: h(v, t))  # the Hook as a traced argument
    for name, hook, ref in cases:
        assert isinstance(hook, Hook), name
        for t in range(8):  # before, inside and after each window
            want = np.asarray(ref(v, jnp.int32(t)))
            np.testing.assert_array_equal(np.asarray(hook(v, jnp.int32(t))), want, err_msg=name)
            np.testing.assert_array_equal(np.asarray(jitted(hook, v, jnp.int32(t))),
                                          np.asarray(jax.jit(ref)(v, jnp.int32(t))), err_msg=name)
        assert not np.array_equal(np.asarray(hook(v, jnp.int32(4))), np.asarray(v))  # it does something


def test_a_grown_intervention_equals_the_grown_closure(lizard):
    key = jax.random.key(4)
    mask = np.zeros((24, 24), np.float32)
    mask[:, :12] = 1.0
    d = I.channel_directions([6], 16)
    _, a = nca.grow(lizard, 12, key, size=24, hooks={"state": I.ablate(d, t_start=4, mask=mask)})
    _, b = nca.grow(lizard, 12, key, size=24,
                    hooks={"state": closure_ablate(d, lambda c, t: jnp.zeros_like(c), 4, None, mask)})
    np.testing.assert_array_equal(np.asarray(a.states), np.asarray(b.states))


def test_a_hook_is_a_pytree_of_its_arrays(cases):
    src = rng_values((6, 2, 8, 8, 16), seed=3)
    h = I.compose(I.ablate(I.channel_directions([4], 16), t_start=2), I.patch(src, channels=[1]))
    leaves, tree = jax.tree_util.tree_flatten(h)
    assert len(leaves) == 3  # direction, recording, channels: the window ints are static
    back = jax.tree_util.tree_unflatten(tree, leaves)
    v = rng_values((2, 8, 8, 16))
    np.testing.assert_array_equal(np.asarray(back(v, jnp.int32(3))), np.asarray(h(v, jnp.int32(3))))
    # another ablation of the same kind has the same structure, another window does not
    same = I.compose(I.ablate(I.channel_directions([7], 16), t_start=2), I.patch(src * 2, channels=[5]))
    other = I.compose(I.ablate(I.channel_directions([4], 16), t_start=3), I.patch(src, channels=[1]))
    assert jax.tree_util.tree_structure(same) == tree != jax.tree_util.tree_structure(other)


def test_vmapping_over_a_stack_of_hooks_equals_growing_each(lizard):
    key = jax.random.key(5)
    x0 = nca.seed_state(16, 16, lizard.model_config)
    dirs = np.stack([orthonormal(1, 12, seed=s) for s in range(3)])  # [3, 1, 12]
    hooks = [I.ablate(I.embed_directions(d, 4, 16), t_start=2) for d in dirs]
    stack = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *hooks)  # one Hook, d [3, 1, 16]

    @jax.jit
    def finals(hook_batch):
        return jax.vmap(lambda h: nca.rollout(lizard.params, x0, key, 6, lizard.model_config, record=(),
                                              hooks={"state": h})[0])(hook_batch)

    # ... and building the hooks inside the vmapped function from a traced stack of directions
    @jax.jit
    def built_inside(d):
        return jax.vmap(lambda di: nca.rollout(lizard.params, x0, key, 6, lizard.model_config, record=(),
                                               hooks={"state": I.ablate(di, t_start=2)})[0])(d)

    got = np.asarray(finals(stack))
    inside = np.asarray(built_inside(stack.arrays["d"]))
    for i in range(3):
        want, _ = nca.grow(lizard, 6, key, x0=x0, record=(), hooks={"state": hooks[i]})
        np.testing.assert_allclose(got[i], np.asarray(want), atol=1e-6)
        np.testing.assert_allclose(inside[i], np.asarray(want), atol=1e-6)
    assert np.abs(got[0] - got[1]).max() > 1e-4  # each hook of the stack did its own ablation


def test_only_the_kind_of_hook_picks_the_compiled_program(lizard):
    key = jax.random.key(6)
    src = rng_values((5, 11, 11, 16), seed=2)

    def grow(hook):
        return np.asarray(nca.grow(lizard, 5, key, size=11, record=(), hooks={"state": hook})[0])

    before = jit_rollout._cache_size()
    a = grow(I.patch(src, channels=[4, 5], t_start=1))
    b = grow(I.patch(src[::-1], channels=[6, 7], t_start=1))  # new arrays: the same program
    assert jit_rollout._cache_size() == before + 1 and not np.array_equal(a, b)
    c = grow(I.patch(src, channels=[4, 5], t_start=2))  # another window: a new program
    assert jit_rollout._cache_size() == before + 2 and not np.array_equal(a, c)


def test_plain_callables_still_work_and_compare_by_identity(lizard):
    key = jax.random.key(7)

    class Zero:  # a callable with __eq__ and so no __hash__
        def __eq__(self, other):
            return isinstance(other, Zero)

        def __call__(self, v, t):
            return v.at[..., 5].set(0.0)

    by_lambda, _ = nca.grow(lizard, 4, key, size=12, record=(), hooks=(("state", lambda v, t: v.at[..., 5].set(0.0)),))
    by_object, _ = nca.grow(lizard, 4, key, size=12, record=(), hooks={"state": Zero()})
    by_hook, _ = nca.grow(lizard, 4, key, size=12, record=(), hooks={"state": I.ablate(I.channel_directions([5], 16))})
    np.testing.assert_array_equal(np.asarray(by_lambda), np.asarray(by_object))
    np.testing.assert_allclose(np.asarray(by_lambda), np.asarray(by_hook), atol=1e-6)
    f = lambda v, t: v  # noqa: E731
    assert as_hook(as_hook(f)) is not None and jax.tree_util.tree_leaves(as_hook(f)) == []
    assert jax.tree_util.tree_structure(as_hook(f)) == jax.tree_util.tree_structure(as_hook(f))
    with pytest.raises(NCAError, match="callable"):
        nca.grow(lizard, 1, key, size=8, hooks={"state": 3})
    with pytest.raises(NCAError, match="hashable"):
        Hook(lambda v, t, w: v, w=np.ones(3))  # an array as a static setting
    with pytest.raises(NCAError, match="unknown hook point"):
        nca.grow(lizard, 1, key, size=8, hooks={"hiden": I.ablate(I.channel_directions([5], 16))})
