"""Sharded training equals single-device training (2 forced host devices, in a subprocess
so the device count does not leak into the other tests)."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import jax, jax.numpy as jnp, numpy as np
from nca.config import preset
from nca.train import init_train_state, compiled_train_step
from nca import parallel

assert len(jax.devices()) == 2, jax.devices()
cfg = preset("tiny")
g = cfg.grid_size
target = jnp.zeros((g, g, 4)).at[4:12, 5:14].set(1.0)

def run(step_fn, state, n=3, target=target):
    losses = []
    for _ in range(n):
        state, loss = step_fn(state, target)
        losses.append(float(loss))
    return state, losses

single, l1 = run(compiled_train_step(cfg, fast=False), init_train_state(cfg))
mesh = parallel.make_mesh()
sharded = parallel.shard_train_state(cfg, init_train_state(cfg), mesh)
assert len(sharded.pool.sharding.device_set) == 2
sharded, l2 = run(parallel.sharded_train_step(cfg, mesh), sharded)
assert len(sharded.pool.sharding.device_set) == 2, "pool stayed split"
assert sharded.pool.addressable_shards[0].data.shape[0] == cfg.pool_size // 2
np.testing.assert_allclose(l1, l2, rtol=1e-5)
for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(sharded.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
np.testing.assert_allclose(np.asarray(single.pool), np.asarray(sharded.pool), rtol=1e-4, atol=1e-5)

# Population: 4 seeds, 2 per device (fast path, the default on CPU) == each trained alone.
cfgs = [preset("tiny", seed=s) for s in range(4)]
alone = [run(compiled_train_step(cfg), init_train_state(c), 2) for c in cfgs]
pop = parallel.shard_population(parallel.stack_states([init_train_state(c) for c in cfgs]), mesh)
step = parallel.population_train_step(cfg, mesh)
pop_losses = []
for _ in range(2):
    pop, losses = step(pop, target)
    pop_losses.append(np.asarray(losses))
assert losses.shape == (4,)
assert len(pop.params["w1"].sharding.device_set) == 2
assert pop.params["w1"].addressable_shards[0].data.shape[0] == 2
for k in range(4):
    np.testing.assert_allclose(alone[k][1], [l[k] for l in pop_losses], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(alone[k][0].params), jax.tree.leaves(pop.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b[k]), rtol=1e-4, atol=1e-6)

# The growing experiment starts every rollout from the same seed state, the same on every
# device: JAX 0.10's varying-axis check of shard_map refused the fast path's loops on it
# (`train.py --experiment growing --seeds 0,1` crashed at step 0).
big = [preset("tiny", seed=s, experiment="growing") for s in range(2)]
tb = target
alone = [compiled_train_step(c)(init_train_state(c), tb) for c in big]
pop, losses = parallel.population_train_step(big[0], mesh)(
    parallel.shard_population(parallel.stack_states([init_train_state(c) for c in big]), mesh), tb)
np.testing.assert_allclose([float(l) for _, l in alone], np.asarray(losses), rtol=1e-5)

# The fast step with the batch split over the devices (each device its rows' own fast-path
# loops, and its rows of the whole batch's fire masks) == the fast step on one device, in
# every experiment (pool, reseeding, damage).
from functools import partial
from jax.sharding import PartitionSpec as P
from nca.train import cores_mesh, train, train_step
for exp in ("growing", "persistent", "regenerating"):
    c = preset("tiny", experiment=exp, batch_size=4)
    one, l1 = run(compiled_train_step(c, fast=True), init_train_state(c))
    two, l2 = run(parallel.sharded_train_step(c, mesh, fast=True), parallel.shard_train_state(c, init_train_state(c), mesh))
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(two.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(one.pool), np.asarray(two.pool), rtol=1e-4, atol=1e-5)

# The control that could fool the test above: devices drawing masks for their own rows alone
# (a shard-shaped draw) roll out differently, and the comparison sees it.
def own_masks(loss_fn, params, x0, fires, shared=()):
    def local(params, x0, shared):
        (l, x), g = jax.value_and_grad(loss_fn, has_aux=True)(params, x0, None, *shared)
        return (jax.lax.pmean(l, "data"), x), jax.lax.pmean(g, "data")
    return jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P()), out_specs=((P(), P("data")), P()),
                         check_vma=False)(params, x0, tuple(shared))
c = preset("tiny", batch_size=4)
sh = parallel.state_shardings(c, mesh)
wrong = jax.jit(partial(train_step, c, fast=True, split=own_masks), in_shardings=(sh, None), out_shardings=(sh, None))
one, l1 = run(compiled_train_step(c, fast=True), init_train_state(c))  # (step 1 cannot differ: w1 starts at 0)
bad, l3 = run(wrong, parallel.shard_train_state(c, init_train_state(c), mesh))
assert not np.allclose(l1, l3, rtol=1e-5, atol=0), (l1, l3)
assert np.abs(np.asarray(one.pool) - np.asarray(bad.pool)).max() > 1e-2

# train() splits each batch over the cores exposed as devices by itself, equal to the loop of
# one device's steps, and hands back a state on one device.
assert cores_mesh(c).devices.size == 2
# one program per step-relevant config and mesh: a resumed or extended run reuses it
same = parallel.sharded_train_step(preset("tiny", batch_size=4, seed=7, train_steps=9), cores_mesh(c), fast=True)
assert same is parallel.sharded_train_step(c, cores_mesh(c), fast=True)
assert same is not parallel.sharded_train_step(preset("tiny", batch_size=4, lr=1e-4), cores_mesh(c), fast=True)
assert cores_mesh(preset("tiny", batch_size=3)) is None and cores_mesh(preset("tiny", batch_size=4, pool_size=15)) is None
# a grid whose fire masks, drawn at once for the split, would not fit: one device, blocked draws
from nca.train import SPLIT_FIRE_CELLS
big = preset("tiny", batch_size=4, target_padding=1020)
assert (big.rollout_max - 1) * 2 * big.grid_size ** 2 > SPLIT_FIRE_CELLS and cores_mesh(big) is None
assert cores_mesh(preset("tiny", batch_size=4, target_padding=120)).devices.size == 2
import tempfile
with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as e:
    c = preset("tiny", batch_size=4, train_steps=3, checkpoint_every=2)
    done = train(c, d, progress=False, log=lambda *a: None)
    # stopped after step 2 and resumed, on the same devices: bit for bit the same run
    train(c, e, progress=False, log=lambda *a: None, stop_at=2)
    resumed = train(None, e, resume=True, progress=False, log=lambda *a: None)
for a, b in zip(jax.tree.leaves(done), jax.tree.leaves(resumed)):  # params, optimiser, pool, key, step
    a, b = (jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v for v in (a, b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
from nca.targets import load_target
emoji = jnp.asarray(load_target(c.target, c.target_size, c.target_padding, c.target_background))
one, _ = run(compiled_train_step(c), init_train_state(c), 3, emoji)
assert len(done.pool.sharding.device_set) == 1 and len(done.params["w1"].sharding.device_set) == 1
for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(done.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)

# A batch the devices cannot split evenly is a clear error, before anything runs.
from nca.errors import NCAError
try:
    parallel.sharded_train_step(preset("tiny", batch_size=3), mesh)
except NCAError as e:
    assert "not divisible" in str(e), e
else:
    raise AssertionError("batch 3 on 2 devices was accepted")
print("OK")
"""


def test_sharded_training_equals_single_device_training():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"  # + conftest's
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_pad_population_repeats_the_last_model():
    import jax.numpy as jnp

    from nca.parallel import pad_population

    states = {"w": jnp.arange(3.0)[:, None] * jnp.ones((3, 2)), "step": jnp.arange(3)}
    padded = pad_population(states, 2)
    assert padded["w"].shape == (4, 2) and padded["step"].tolist() == [0, 1, 2, 2]
    assert pad_population(states, 3) is states and pad_population(states, 1) is states
    assert pad_population(states, 5)["step"].tolist() == [0, 1, 2, 2, 2]


def test_cpu_cores_wait_patiently_for_a_starved_device_and_jax_still_starts():
    # XLA:CPU kills the process when one device thread reaches a collective 40 s late (seen
    # under heavy load); use_cpu_cores raises that limit, with flags the installed jaxlib
    # knows (an unknown XLA flag would abort at start-up, so JAX starting is the check).
    code = ("import os\nfrom nca.parallel import use_cpu_cores, _xla_knows\nassert use_cpu_cores(2)\n"
            "import jax\nassert len(jax.devices()) == 2\n"
            "assert _xla_knows('--xla_backend_optimization_level') and not _xla_knows('--xla_no_such_flag')\n"
            "print(os.environ['XLA_FLAGS'])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_NUM_CPU_DEVICES",)}
    env["XLA_FLAGS"] = ""
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "xla_cpu_collective_call_terminate_timeout_seconds=86400" in r.stdout
