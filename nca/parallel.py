"""Data parallelism over devices with ``jax.sharding`` -- the same code on CPU, GPU and TPU.

One 1-D mesh (axis ``"data"``) over whatever devices exist. Two kinds of parallelism:

- the batch of one model: ``sharded_train_step`` splits the sampled batch [B, H, W, C]
  and the sample pool [P, H, W, C] along their first axis; parameters and optimiser
  state are replicated; XLA inserts the gradient all-reduce (GSPMD).
- a population of models (seeds, variants): ``population_train_step`` trains K models
  stacked along a leading axis (``stack_states``), K/devices per device, each device
  running ``vmap(train_step)`` on its own models (``shard_map``, no communication).

Results equal single-device training to float rounding (``tests/test_parallel.py`` runs
both on 2 forced host devices). The fast CA step (``nca.model.fast_step``) is off by
default in ``sharded_train_step``: its cell compaction runs over the whole batch, which
would make devices exchange the batch every CA step. Many processes or hosts: populations
and sweeps use ``nca.distributed`` (each process trains its share of the models over its
``jax.local_devices()``; tested with two processes, docs/distributed.md). A
``sharded_train_step`` mesh over every process's devices (``jax.devices()`` after
``jax.distributed.initialize()``) is possible too, but untested here: on CPU it would need
the gloo collectives (``jax_cpu_collectives_implementation``).

On a CPU, ``use_cpu_cores`` exposes the cores as devices before JAX starts, so that the
devices' shares of a population -- ``nca.multiseed``'s seeds -- run at the same time.
"""

from __future__ import annotations

import os
from functools import lru_cache, partial

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import Config
from .errors import NCAError
from .train import TrainState, step_config, train_step

AXIS = "data"


def use_cpu_cores(n: int | None = None) -> bool:
    """Make JAX's CPU backend expose ``n`` devices (default: one per core).

    One XLA program on a CPU uses the cores poorly when its operations are small (a
    training step of a 48x48 NCA ran 1.25x faster on two cores than on one); the devices'
    shares of a ``population_train_step`` run side by side (``nca.multiseed``). Only
    possible before JAX has started its backends, and never overrides a count the user
    chose ($JAX_NUM_CPU_DEVICES, or ``--xla_force_host_platform_device_count`` in
    $XLA_FLAGS). Returns whether the setting took effect; otherwise nothing changes.
    """
    n = (os.cpu_count() or 1) if n is None else n
    if n < 1:
        raise NCAError(f"need at least one CPU device, got {n}")
    if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return False
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backends are running already
        return False
    _patient_cpu_collectives()
    return True


# XLA:CPU aborts the whole process (a fatal check, no exception) when one device's thread
# reaches a collective more than 40 s after the other: seen here in `--seeds 5` training on a
# 2-core machine at load average 15, 561 steps in. The devices run on threads of one
# process, so a late one is only starved, never lost: wait as long as it takes.
_COLLECTIVE_FLAGS = ("--xla_cpu_collective_call_terminate_timeout_seconds=86400",
                     "--xla_cpu_collective_call_warn_stuck_timeout_seconds=600")


def _xla_knows(flag: str) -> bool:
    """Whether the installed jaxlib defines ``flag``: an unknown flag in $XLA_FLAGS is fatal,
    and these were added in late 2025, after the oldest jax this package accepts."""
    import mmap
    from pathlib import Path

    import jaxlib

    name = flag.lstrip("-").split("=")[0].encode()
    for lib in Path(jaxlib.__file__).parent.glob("*.so"):
        try:
            with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(name) >= 0:
                    return True
        except (OSError, ValueError):  # unreadable or empty: look at the next one
            continue
    return False


def _patient_cpu_collectives() -> None:
    """Add ``_COLLECTIVE_FLAGS`` that this jaxlib knows to $XLA_FLAGS (read when the CPU
    backend starts)."""
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in _COLLECTIVE_FLAGS if f.split("=")[0] not in flags and _xla_knows(f)]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: all of ``jax.devices()``)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise NCAError("no devices to build a mesh over")
    return Mesh(np.asarray(devices), (AXIS,))


def _check_divisible(what: str, n: int, mesh: Mesh) -> None:
    d = mesh.devices.size
    if n % d:
        raise NCAError(f"{what} {n} is not divisible by the {d} devices of the mesh; "
                       f"choose a multiple of {d} (or fewer devices)")


def state_shardings(cfg: Config, mesh: Mesh) -> TrainState:
    """Shardings of a TrainState: pool split along its first axis, the rest replicated."""
    replicated = NamedSharding(mesh, P())
    pool = NamedSharding(mesh, P(AXIS)) if cfg.uses_pool else replicated
    return TrainState(params=replicated, opt_state=replicated, pool=pool, key=replicated, step=replicated)


def shard_train_state(cfg: Config, state: TrainState, mesh: Mesh) -> TrainState:
    """Place a TrainState on the mesh (see ``state_shardings``)."""
    _check_divisible("batch_size", cfg.batch_size, mesh)
    if cfg.uses_pool:
        _check_divisible("pool_size", cfg.pool_size, mesh)
    sh = state_shardings(cfg, mesh)
    return TrainState(*(jax.device_put(v, s) for v, s in zip(state, sh)))


def sharded_train_step(cfg: Config, mesh: Mesh, fast: bool = False):
    """``train_step`` data-parallel over the batch: ``(state, target) -> (state, loss)``.

    state: as returned by ``shard_train_state``; donated like ``compiled_train_step``.
    fast: each device rolls out its rows of the batch with the fast step
    (``split_value_and_grad``); else the dense step, the batch split by GSPMD. One program
    per step-relevant config and mesh, as ``compiled_train_step``: ``nca.train.train``
    resumed or extended in the same process reuses it.
    """
    _check_divisible("batch_size", cfg.batch_size, mesh)
    return _sharded_train_step(step_config(cfg), mesh, fast)


@lru_cache(maxsize=8)
def _sharded_train_step(cfg: Config, mesh: Mesh, fast: bool):
    sh = state_shardings(cfg, mesh)
    replicated = NamedSharding(mesh, P())
    fn = partial(train_step, cfg, fast=fast, batch_sharding=NamedSharding(mesh, P(AXIS)),
                 split=split_value_and_grad(mesh) if fast else None)
    return jax.jit(fn, in_shardings=(sh, replicated), out_shardings=(sh, replicated), donate_argnums=(0,))


def split_value_and_grad(mesh: Mesh):
    """``train_step``'s ``split``: the rollout loss's value and gradient with the batch split
    over the mesh, each device rolling out its rows with its own fast-path loops.

    Returns ``split(loss_fn, params, x0, fires, shared) -> ((loss, x), grads)`` for
    ``loss_fn(params, x0 [B, H, W, C], fires [T, B, H, W, 1], *shared) -> (mean loss, x)``:
    every device takes ``value_and_grad`` of its B/devices rows and the means are averaged
    (``pmean``), which is the whole batch's mean loss and gradient. Unlike leaving the split to
    GSPMD (``sharded_train_step``'s ``batch_sharding``), nothing ties the devices together
    within a rollout: the fast step's loops over listed cells are each device's own, which
    is what makes the split pay on a CPU whose cores are devices (``use_cpu_cores``).
    """
    def local(loss_fn, params, x0, fires, shared):
        (loss, x), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x0, fires, *shared)
        return (jax.lax.pmean(loss, AXIS), x), jax.lax.pmean(grads, AXIS)

    def split(loss_fn, params, x0, fires, shared=()):
        _check_divisible("batch_size", x0.shape[0], mesh)
        # check_vma=False: as in population_train_step, the fast path's loops start from
        # unsharded zeros and end device-varying; the pmeans make the outputs replicated.
        fn = jax.shard_map(partial(local, loss_fn), mesh=mesh, in_specs=(P(), P(AXIS), P(None, AXIS), P()),
                           out_specs=((P(), P(AXIS)), P()), check_vma=False)
        return fn(params, x0, fires, tuple(shared))

    return split


def stack_states(states: list[TrainState]) -> TrainState:
    """K TrainStates (same config, e.g. different seeds) -> one with a leading K axis."""
    if not states:
        raise NCAError("need at least one TrainState to stack")
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *states)


def pad_population(states: TrainState, multiple: int) -> TrainState:
    """Repeat the last model of a stacked TrainState until K is a multiple of ``multiple``.

    The copies train exactly like the model they copy; drop them with ``x[:K]``. This lets
    K models split over devices that do not divide K at no cost in time: each device then
    trains ``ceil(K / devices)`` models, as many as the fullest device would anyway.
    """
    k = jax.tree.leaves(states)[0].shape[0]
    extra = -k % multiple
    if not extra:
        return states
    return jax.tree.map(lambda x: jax.numpy.concatenate([x, jax.numpy.repeat(x[-1:], extra, axis=0)]), states)


def shard_population(states: TrainState, mesh: Mesh) -> TrainState:
    """Split a stacked TrainState (leading K axis) over the mesh, K/devices models each."""
    k = jax.tree.leaves(states)[0].shape[0]
    _check_divisible("number of models", k, mesh)
    return jax.device_put(states, NamedSharding(mesh, P(AXIS)))


def population_train_step(cfg: Config, mesh: Mesh, fast: bool | None = None, per_model_target: bool = False,
                          per_model_hyper: bool = False):
    """K models trained at once, one compiled program: ``(states [K, ...], target [H, W, 4])
    -> (states, losses [K])``; the target is shared, the states donated. per_model_target:
    the target is ``[K, H, W, 4]``, one per model, split like the states (a sweep over targets).
    per_model_hyper: a third argument, ``nca.train.Hyper`` of [K] values, gives each model
    its own lr, decay factor and fire rate (``cfg``'s are then ignored), split like the states:
    a sweep over them is one program.

    Each device trains its K/devices models with ``vmap(train_step)`` (``shard_map``):
    the models are independent, so the devices never communicate and each runs its own
    data-dependent fast-path loops (``fast``: None = ``default_fast()``). On a CPU with the
    cores exposed as devices (``use_cpu_cores``) this is how many seeds use every core:
    8 quick-preset seeds cost ~5.5-6.5x one seed, against ~8x for ``vmap`` on one device
    (``bench/run.py``: ``seeds8_cores``, ``seeds8``). The same split left to GSPMD (``jit``
    of the ``vmap`` with sharded inputs) was slower than one device (1.9 s vs 1.5 s),
    probably because the fast path's loop bounds are maxima over all K models, which ties
    the devices together at every CA step.
    """
    split = NamedSharding(mesh, P(AXIS))
    replicated = NamedSharding(mesh, P())
    t_axis = 0 if per_model_target else None
    t_spec, t_sharding = (P(AXIS), split) if per_model_target else (P(), replicated)
    if per_model_hyper:
        per_device = jax.vmap(lambda st, tg, h: train_step(cfg, st, tg, fast=fast, hyper=h), in_axes=(0, t_axis, 0))
        in_specs, in_shardings = (P(AXIS), t_spec, P(AXIS)), (split, t_sharding, split)
    else:
        per_device = jax.vmap(partial(train_step, cfg, fast=fast), in_axes=(0, t_axis))
        in_specs, in_shardings = (P(AXIS), t_spec), (split, t_sharding)
    # check_vma=False: the fast path's fori_loops start from unsharded zeros and end device-varying;
    # the models never communicate, so there is nothing for the check to protect (JAX 0.10
    # refused the growing experiment's step: "carry input and carry output must have equal types").
    fn = jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=(P(AXIS), P(AXIS)), check_vma=False)
    return jax.jit(fn, in_shardings=in_shardings, out_shardings=(split, split), donate_argnums=(0,))
