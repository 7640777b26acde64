"""Intervention hooks: ablations act only along their directions and inside their window;
patching indexes recordings by step correctly inside jit; self-repair curves agree at h=1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nca
from analysis.causal import interventions as I
from analysis.causal.repair import RepairSettings, repair_curves


def rng_values(shape=(2, 6, 6, 16), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def orthonormal(k, f, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(f, k)))
    return q.T.astype(np.float32)


def test_zero_mean_resample_set_the_component_and_leave_the_rest():
    v = rng_values()
    d = orthonormal(2, 16)
    other = np.eye(16) - d.T @ d  # projector onto the complement
    src = rng_values((5, 2, 6, 6, 16), seed=3)
    cases = [("zero", dict(), np.zeros(2)), ("mean", dict(value=[0.5, -2.0]), np.array([0.5, -2.0]))]
    for mode, kw, want in cases:
        out = np.asarray(I.ablate(d, mode, **kw)(v, jnp.int32(4)))
        np.testing.assert_allclose(out @ d.T, np.broadcast_to(want, out.shape[:-1] + (2,)), atol=1e-5)
        np.testing.assert_allclose(out @ other, np.asarray(v) @ other, atol=1e-5)
    out = np.asarray(I.ablate(d, "resample", source=src, source_t0=2)(v, jnp.int32(4)))
    np.testing.assert_allclose(out @ d.T, np.asarray(src[2]) @ d.T, atol=1e-5)  # step 4 = index 2
    with pytest.raises(ValueError):
        I.ablate(d, "mean")
    with pytest.raises(ValueError):
        I.ablate(d, "median")


def test_window_in_time_and_space():
    v = rng_values()
    mask = np.zeros((6, 6), np.float32)
    mask[:3] = 1.0
    h = I.ablate(I.channel_directions([5], 16), t_start=3, t_stop=5, mask=mask)
    for t, on in ((2, False), (3, True), (4, True), (5, False)):
        out = np.asarray(h(v, jnp.int32(t)))
        inside = out[:, :3, :, 5]
        assert (np.all(inside == 0) if on else np.array_equal(inside, np.asarray(v)[:, :3, :, 5]))
        np.testing.assert_array_equal(out[:, 3:], np.asarray(v)[:, 3:])  # outside the mask
        np.testing.assert_array_equal(np.delete(out, 5, -1), np.delete(np.asarray(v), 5, -1))


@pytest.fixture(scope="module")
def lizard():
    return nca.load_model("distill:lizard/regenerating")


def test_patching_a_damaged_run_into_an_intact_one_reproduces_it(lizard):
    key = jax.random.key(0)
    x30, _ = nca.grow(lizard, 30, key, size=40)
    dam = x30.at[:, :20].set(0.0)
    # the damaged run, from step 30: record the states it receives
    xa, ta = nca.grow(lizard, 20, key, x0=dam, t0=30)
    src = I.incoming_states(dam, ta.states)
    # intact run from step 30, whole state patched from the damaged run in steps 35-39,
    # then left alone: it must continue exactly as the damaged run
    xb, _ = nca.grow(lizard, 20, key, x0=x30, t0=30,
                     hooks={"state": I.patch(src, source_t0=30, t_start=35, t_stop=40)})
    np.testing.assert_allclose(np.asarray(xb), np.asarray(xa), atol=1e-5)
    # an off-by-one in the recording's index would not reproduce it
    xc, _ = nca.grow(lizard, 20, key, x0=x30, t0=30,
                     hooks={"state": I.patch(src, source_t0=29, t_start=35, t_stop=40)})
    assert np.abs(np.asarray(xc) - np.asarray(xa)).max() > 1e-3
    # region patching: only the damaged left half -> differs from both runs
    left = np.zeros((40, 40), np.float32)
    left[:, :20] = 1.0
    xd, _ = nca.grow(lizard, 20, key, x0=x30, t0=30,
                     hooks={"state": I.patch(src, source_t0=30, t_start=35, t_stop=40, mask=left)})
    assert np.abs(np.asarray(xd) - np.asarray(xa)).max() > 1e-3


def test_update_ablation_window_leaves_earlier_steps_alone(lizard):
    key = jax.random.key(2)
    _, clean = nca.grow(lizard, 20, key, size=32)
    hook = I.ablate(I.channel_directions([3], 16), t_start=10, t_stop=12)  # alpha update off
    _, abl = nca.grow(lizard, 20, key, size=32, hooks={"update": hook})
    np.testing.assert_array_equal(np.asarray(abl.states[:10]), np.asarray(clean.states[:10]))
    assert np.abs(np.asarray(abl.states[10]) - np.asarray(clean.states[10])).max() > 1e-4


def test_pca_direction_ablation_removes_it_from_the_hidden_state(lizard):
    d = I.embed_directions(orthonormal(1, 12, seed=5), 4, 16)
    h = I.ablate(d)
    x, traj = nca.grow(lizard, 10, jax.random.key(1), size=32, hooks={"state": h}, record=("perception",))
    # the update reads the incoming state: its identity band has no component along d
    ident = np.asarray(traj.perception)[..., :16]
    assert np.abs(ident @ d.T).max() < 1e-5


def test_repair_runs_agree_at_one_step_and_are_zero_for_an_unread_channel(lizard):
    w1 = np.array(lizard.params["w1"])
    w1[[8, 24, 40]] = 0.0
    params = {**lizard.params, "w1": jnp.asarray(w1)}
    x, _ = nca.grow(lizard, 60, jax.random.key(0), size=40, batch=2)
    r = repair_curves(params, lizard.model_config, x, jax.random.key(0), 60, [5, 8],
                      RepairSettings(horizons=(1, 6), attribute=False, chunk=6))
    five, eight = r["per_channel"]
    t, p = (np.array(five["curves"][k]["mean"]) for k in ("total", "pulse"))
    assert t[0] == p[0] > 1e-4 and t[-1] != p[-1]  # the same run for one step, then not
    for k in ("total", "pulse", "direct"):
        assert np.all(np.array(eight["curves"][k]["mean"]) == 0)  # never read: no effect at all
    assert eight["at"][1]["repair_fraction"]["mean"] is None and "below" in eight["at"][1]["repair_fraction"]["reason"]
    assert five["at"][1]["repair_fraction"]["n"] == 2


def test_the_same_kind_of_ablation_twice_compiles_once(lizard):
    # hooks are pytrees (function static, arrays traced): ablating channel 5 after channel 4
    # reuses the program compiled for channel 4 instead of compiling a new one (seconds).
    # An unusual grid size, so that the first call must compile (the counter counts).
    from nca.model import jit_rollout  # nca.grow's jitted rollout

    key = jax.random.key(0)
    before = jit_rollout._cache_size()
    x4, _ = nca.grow(lizard, 3, key, size=13, record=(), hooks={"state": I.ablate(I.channel_directions([4], 16))})
    first = jit_rollout._cache_size()
    x5, _ = nca.grow(lizard, 3, key, size=13, record=(), hooks={"state": I.ablate(I.channel_directions([5], 16))})
    assert first == before + 1 and jit_rollout._cache_size() == first
    assert not np.array_equal(np.asarray(x4), np.asarray(x5))  # the second run used its own channel
