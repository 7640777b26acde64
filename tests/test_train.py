"""Training: pool mechanics, damage, loss goes down, resume is bit-exact, NaN is caught."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.config import Config, preset
from nca.errors import NCAError
from nca.model import seed_state
from nca.train import (
    compiled_train_step, init_train_state, per_sample_loss,
    normalise_gradients, sample_batch, train,
)


def test_sample_batch_reseeds_worst_and_damages_best():
    cfg = preset("tiny", pool_size=16, batch_size=4, damage_n=2, experiment="regenerating")
    g = cfg.grid_size
    target = jnp.zeros((g, g, 4))
    # Pool: sample i has alpha level i/16 everywhere -> loss grows with i.
    pool = jnp.stack([jnp.zeros((g, g, 16)).at[..., 3:].set(i / 16 + 0.2) for i in range(16)])
    idx, batch = sample_batch(cfg, pool, target, jax.random.key(1))
    losses = per_sample_loss(pool[idx], target)
    assert bool(jnp.all(losses[:-1] >= losses[1:]))  # sorted worst first
    np.testing.assert_array_equal(batch[0], seed_state(g, g, cfg.model))
    np.testing.assert_array_equal(batch[1], pool[idx[1]])  # untouched middle sample
    for b in (2, 3):
        erased = np.asarray(batch[b, ..., 3] == 0)
        assert 0 < erased.mean() < 0.5  # a disc was cut out of the best samples
    assert len(set(np.asarray(idx).tolist())) == 4  # sampled without replacement


def test_growing_experiment_starts_every_sample_from_the_seed():
    cfg = preset("tiny", experiment="growing")
    state = init_train_state(cfg)
    assert state.pool.shape[0] == 1
    _, batch = sample_batch(cfg, state.pool, jnp.zeros((cfg.grid_size,) * 2 + (4,)), jax.random.key(0))
    np.testing.assert_array_equal(batch, jnp.broadcast_to(batch[0], batch.shape))


def test_gradient_normalisation_gives_unit_norm_per_variable():
    g = {"a": jnp.full((3,), 100.0), "b": jnp.full((2, 2), 1e-3)}
    normalise = normalise_gradients(1e-8)
    out, _ = normalise.update(g, normalise.init(g), g)
    for v in out.values():
        assert abs(float(jnp.linalg.norm(v)) - 1.0) < 1e-4


def test_pool_is_written_back_and_loss_falls(tmp_path):
    cfg = preset("tiny", train_steps=100, lr_decay_step=1000, experiment="persistent",
                 keep_checkpoints="log+every:40")
    state = train(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    from nca import checkpoint as ckpt

    kept = ckpt.list_kept(tmp_path / "run")  # dense every 50 steps as well as log-spaced
    assert [s for s, _ in kept] == [0, 1, 2, 3, 6, 10, 18, 32, 40, 56, 80, 100]
    np.testing.assert_array_equal(ckpt.load_kept(kept[-1][1], state.params)["w1"], state.params["w1"])
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 101))
    first, last = np.mean([float(r["loss"]) for r in rows[:5]]), np.mean([float(r["loss"]) for r in rows[-5:]])
    assert last < 0.5 * first, (first, last)  # measured: 0.032 -> 0.012
    # the pool now holds grown samples, not only seeds
    seed = seed_state(cfg.grid_size, cfg.grid_size, cfg.model)
    changed = np.asarray(jnp.any(state.pool != seed, axis=(1, 2, 3)))
    assert changed.sum() >= 10
    assert (tmp_path / "run" / "preview.png").stat().st_size > 0


def test_interrupted_then_resumed_run_is_bit_identical(tmp_path):
    cfg = preset("tiny", train_steps=30, checkpoint_every=10)
    quiet = dict(progress=False, log=lambda *_: None)
    straight = train(cfg, tmp_path / "a", **quiet)
    train(cfg, tmp_path / "b", stop_at=17, **quiet)  # "Ctrl-C" after step 17
    stopped = _saved_elapsed(tmp_path / "b", cfg)
    resumed = train(None, tmp_path / "b", resume=True, **quiet)
    for name in straight.params:
        np.testing.assert_array_equal(straight.params[name], resumed.params[name])
    np.testing.assert_array_equal(straight.pool, resumed.pool)
    a = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    b = list(csv.DictReader(open(tmp_path / "b" / "metrics.csv")))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    # the training time goes on from the saved elapsed (the checkpoint's is its last row's)
    times = [float(r["elapsed_s"]) for r in b]
    assert times[16] == pytest.approx(stopped, abs=0.006) and times == sorted(times)
    assert times[-1] == pytest.approx(_saved_elapsed(tmp_path / "b", cfg), abs=0.006) and times[-1] >= stopped


def _saved_elapsed(run, cfg) -> float:
    from functools import partial

    from nca import checkpoint as ckpt

    template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
    return float(ckpt.load_checkpoint(run / ckpt.CHECKPOINT, template)["elapsed"])


def test_existing_run_is_never_overwritten(tmp_path):
    cfg = preset("tiny", train_steps=2)
    train(cfg, tmp_path / "r", progress=False, log=lambda *_: None)
    before = (tmp_path / "r" / "checkpoint.msgpack").read_bytes()
    with pytest.raises(NCAError, match="already holds a run"):
        train(cfg, tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "checkpoint.msgpack").read_bytes() == before


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    cfg = preset("tiny", train_steps=40, checkpoint_every=5, lr=1e38, lr_decay_step=1000)
    with pytest.raises(NCAError, match="(loss became nan|non-finite)"):
        train(cfg, tmp_path / "r", progress=False, log=lambda *_: None)
    # what was saved before the blow-up is still there and loadable
    from nca.api import load_run

    m = load_run(tmp_path / "r")
    assert all(np.isfinite(np.asarray(v)).all() for v in m.params.values())
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert all(np.isfinite(float(r["loss"])) for r in rows)


def test_config_rejects_bad_values():
    with pytest.raises(NCAError, match="unknown experiment"):
        Config(experiment="sideways")
    with pytest.raises(NCAError, match="unknown preset"):
        preset("enormous")
    with pytest.raises(NCAError, match="rollout_min"):
        preset("tiny", rollout_min=20, rollout_max=10)
    assert Config().grid_size == 72 and hash(preset("quick")) == hash(preset("quick"))


def test_train_step_is_deterministic_for_a_seed():
    cfg = preset("tiny")
    target = jnp.zeros((cfg.grid_size, cfg.grid_size, 4)).at[5:10, 5:10, 3].set(1.0)
    step = compiled_train_step(cfg)
    a, la = step(init_train_state(cfg), target)
    b, lb = step(init_train_state(cfg), target)
    assert float(la) == float(lb)
    np.testing.assert_array_equal(a.params["w1"], b.params["w1"])


def test_the_preview_at_every_checkpoint_reuses_one_compiled_rollout(tmp_path):
    """A run writes preview.png at every checkpoint; each new jit of a partial there compiled
    the 96-step rollout again (14 times in the sweep tests). The second preview of a config,
    with other weights, compiles nothing, and its image is the new weights' own."""
    import jax.monitoring

    from nca.model import init_params, rollout, to_rgba
    from nca.train import save_preview

    cfg = preset("tiny")
    target = np.zeros((cfg.grid_size, cfg.grid_size, 4), np.float32)
    compiles = []

    def listen(event, duration, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    a = init_params(jax.random.key(0), cfg.model)
    b = {**a, "b2": a["b2"].at[3].add(-5.0)}  # alpha falls at every firing: the seed dies
    mse_a = save_preview(tmp_path / "a.png", cfg, a, target)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        mse_b = save_preview(tmp_path / "b.png", cfg, b, target)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []
    g = cfg.grid_size
    x, _ = rollout(b, seed_state(g, g, cfg.model), jax.random.key(cfg.seed), cfg.rollout_max, cfg.model, record=())
    assert mse_b == pytest.approx(float(np.mean((np.asarray(to_rgba(x)) - target) ** 2)), rel=1e-5)
    assert mse_b != pytest.approx(mse_a, rel=1e-3)  # the second preview is b's, not a's again
