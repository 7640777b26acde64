"""Training steps of the selfish variants (pure; the loops live in scripts/selfish.py).

- **selfish credit** needs no new step: ``nca.train.train_step`` with
  ``ModelConfig(neighbour_gradients=False)`` *is* per-cell fitness training. Its loss is
  ``-mean(cell_fitness)/4`` (``fitness_loss``); with the Sobel inputs stopped, the gradient
  of that sum is the sum over cells of each cell's own-path gradient (tested against an
  explicit one-cell recomputation in tests/test_selfish_fitness.py). ``selfish_config``
  makes the switch.
- **competing lineages**: ``lineage_train_step``. Lineage k's loss is the squared RGBA
  error summed over the cells it *owns* at the end of the rollout: those whose last update
  its rule made (its alive cells and the empty cells next to them that its rule is
  growing), normalised like the MSE. (Charging a cell to the controller of the final
  state instead leaked credit across lineages -- issue 16: 10.7% cross terms on a 12x12
  grid; ``tests/test_selfish_lineages.py`` has the adversarial test.) Rule k
  is trained on loss k only, and credit stays inside the lineage: the rollout runs with
  lineage-isolated gradients (``lineage_rollout(isolate=True)``: stop-gradients where a
  cell reads a neighbour of another lineage, and on a cell's own history where its
  controller changed), so the other lineages are environment, like the neighbours of a
  selfish cell. Then d loss_j / d rule_k = 0 for j != k (tested: the off-diagonal blocks
  of the Jacobian are exactly zero), and one backward pass of the summed losses gives
  every rule exactly its own gradient. Within a lineage credit is cooperative (full
  gradients between its cells). With K = 1 this is exactly the cooperative gradient
  (tested).
- **adversary invader**: ``adversary_train_step`` trains a mutant rule against a frozen
  host to maximise the fitness summed over the cells it controls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..config import Config
from ..model import init_params, step_key
from ..train import make_optimizer, sample_batch
from .fitness import cell_error, cell_fitness
from .lineages import (controller, lineage_counts, lineage_rollout, lineage_rollout_owned, lineage_seed,
                       num_lineages, owned_ids, stack_params)

Array = jax.Array


def selfish_config(cfg: Config) -> Config:
    """The same training config with neighbour gradients stopped (selfish credit)."""
    return replace(cfg, model=replace(cfg.model, neighbour_gradients=False))


# --------------------------------------------------------------------------- lineages


class LineageTrainState(NamedTuple):
    """params: leaves [K, ...]; opt_state: per-lineage optax state (leaves [K, ...]);
    pool: [P, H, W, C]; pool_ids: [P, H, W] int32; key: base key; step: int32."""

    params: dict
    opt_state: optax.OptState
    pool: Array
    pool_ids: Array
    key: Array
    step: Array


def training_seed(cfg: Config, k: int, radius: int = 2, seed_cells: int | None = None,
                  batch: int | None = None) -> tuple[Array, Array]:
    """The training seed of K lineages: ``seed_cells`` (default K) seed cells on the circle
    of ``lineage_seed``, cell i of lineage i mod K -- with K = 1 and 2 seed cells, the one-rule
    baseline seeded exactly like two lineages. Returns (x, ids), with a leading ``batch``."""
    g = cfg.grid_size
    x, ids = lineage_seed(g, g, cfg.model, seed_cells or k, radius, batch=batch)
    return x, jnp.where(ids >= 0, ids % k, -1).astype(jnp.int32)


def init_lineage_state(cfg: Config, k: int, radius: int = 2, seed_cells: int | None = None) -> LineageTrainState:
    """K independently initialised rules (keys split from ``cfg.seed``), a pool of
    K-lineage seeds (``training_seed``)."""
    key = jax.random.key(cfg.seed)
    k_init, k_train = jax.random.split(key)
    params = stack_params([init_params(kk, cfg.model) for kk in jax.random.split(k_init, k)])
    opt_state = jax.vmap(make_optimizer(cfg).init)(params)
    x, ids = training_seed(cfg, k, radius, seed_cells, batch=cfg.pool_size if cfg.uses_pool else 1)
    return LineageTrainState(params, opt_state, x + 0.0, ids + 0, k_train, jnp.zeros((), jnp.int32))


def fair_lineage_state(cfg: Config, k: int, radius: int = 2) -> LineageTrainState:
    """K rules with the parameter budget and initialisation of ONE rule (issue 16's fair
    comparison): the rule ``init_params(k_init, cfg.model)`` that ``init_lineage_state`` with
    K = 1 would start from is cut into K slices of ``hidden // K`` units (rule i gets
    hidden units i*h/K .. (i+1)*h/K - 1 of the first layer, the matching rows of the second,
    and the output bias), so K rules hold the same weights as the one-rule baseline (the
    output bias is copied K times: K * C extra numbers). Train it with the step of
    ``fair_lineage_config``-shaped rules (hidden // K units each)."""
    from ..errors import NCAError

    h = cfg.model.hidden
    if h % k:
        raise NCAError(f"hidden={h} does not split into {k} equal rules")
    key = jax.random.key(cfg.seed)
    k_init, k_train = jax.random.split(key)
    one = init_params(jax.random.split(k_init, 1)[0], cfg.model)  # = init_lineage_state(cfg, 1)'s rule
    w = h // k
    rules = [{"w1": one["w1"][:, i * w:(i + 1) * w], "b1": one["b1"][i * w:(i + 1) * w],
              "w2": one["w2"][i * w:(i + 1) * w], "b2": one["b2"]} for i in range(k)]
    params = stack_params(rules)
    opt_state = jax.vmap(make_optimizer(cfg).init)(params)
    x, ids = training_seed(cfg, k, radius, batch=cfg.pool_size if cfg.uses_pool else 1)
    return LineageTrainState(params, opt_state, x + 0.0, ids + 0, k_train, jnp.zeros((), jnp.int32))


def lineage_losses(params: dict, x0: Array, ids0: Array, key: Array, target: Array, cfg: Config,
                   n_steps: Array, isolate: bool = True) -> tuple[Array, tuple[Array, Array]]:
    """Per-lineage losses [K] after an ``n_steps`` rollout (of at most rollout_max - 1).

    Loss k = batch mean of the squared RGBA error summed over the cells lineage k owns at
    the end (``lineage_rollout_owned``: its rule made their last update), / (H * W * 4): the K
    losses sum to the MSE minus the (constant) error of the cells nobody owns.
    Returns (losses [K], (x_final, ids_final)).
    """
    # Each cell is charged to its owner, the lineage whose rule made its last update (not
    # the controller of the final state: issue 16's leak).
    x, ids, ctrl, _ = lineage_rollout_owned(params, x0, ids0, key, cfg.rollout_max - 1, cfg.model, record=False,
                                            remat=cfg.remat, active_steps=n_steps, isolate=isolate)
    err = cell_error(x, target)
    norm = x.shape[-3] * x.shape[-2] * 4
    losses = jnp.stack([jnp.mean(jnp.sum(jnp.where(ctrl == i, err, 0.0), axis=(-2, -1)))
                        for i in range(num_lineages(params))]) / norm
    return losses, (x, ids)


def own_gradients(loss_fn, params: dict, *args):
    """Gradient of loss k w.r.t. rule k only, for every k: the diagonal of the Jacobian,
    by brute force (one forward pass, K backward passes) -- the reference the isolated
    single-pass gradient of ``lineage_train_step`` is tested against.

    loss_fn(params, *args) -> (losses [K], aux). Returns (grads with leaves [K, ...],
    losses [K], aux).
    """
    def f(p):
        losses, aux = loss_fn(p, *args)
        return losses, (losses, aux)

    jac, (losses, aux) = jax.jacrev(f, has_aux=True)(params)
    k = losses.shape[0]
    diag = jnp.arange(k)
    return jax.tree.map(lambda j: j[diag, diag], jac), losses, aux


def lineage_train_step(cfg: Config, radius: int, state: LineageTrainState, target: Array,
                       seed_cells: int | None = None) -> tuple[LineageTrainState, dict]:
    """One step of competing-lineage training (pure). target: [H, W, 4].

    Same pool protocol as ``nca.train.train_step`` (sample, reseed the worst with the
    K-lineage seed, damage the best); ids ride along in ``pool_ids``. Returns (new state,
    metrics {"loss": MSE, "lineage_loss": [K], "counts": [K] alive cells per lineage}).
    """
    k = num_lineages(state.params)
    key = step_key(state.key, state.step)
    k_batch, k_len, k_roll = jax.random.split(key, 3)
    seed_x, seed_ids = training_seed(cfg, k, radius, seed_cells)
    if cfg.uses_pool:
        idx, x0 = sample_batch(cfg, state.pool, target, k_batch)
        ids0 = owned_ids(x0, state.pool_ids[idx], cfg.model.alive_threshold)
        x0, ids0 = x0.at[0].set(seed_x), ids0.at[0].set(seed_ids)  # sample_batch's reseed, K lineages
    else:
        idx = jnp.zeros((cfg.batch_size,), jnp.int32)
        x0 = jnp.broadcast_to(seed_x, (cfg.batch_size,) + seed_x.shape)
        ids0 = jnp.broadcast_to(seed_ids, (cfg.batch_size,) + seed_ids.shape)
    n_steps = jax.random.randint(k_len, (), cfg.rollout_min, cfg.rollout_max)
    def total(params):
        losses, aux = lineage_losses(params, x0, ids0, k_roll, target, cfg, n_steps)
        return jnp.sum(losses), (losses, aux)

    # Isolated credit: the gradient of the sum is each rule's own-loss gradient.
    (_, (losses, (x, ids))), grads = jax.value_and_grad(total, has_aux=True)(state.params)
    updates, opt_state = jax.vmap(make_optimizer(cfg).update)(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    pool, pool_ids = state.pool, state.pool_ids
    if cfg.uses_pool:
        pool, pool_ids = pool.at[idx].set(x), pool_ids.at[idx].set(ids)
    mse = jnp.mean(cell_error(x, target)) / 4.0
    metrics = {"loss": mse, "lineage_loss": losses, "counts": jnp.sum(lineage_counts(ids, k), axis=0)}
    return LineageTrainState(params, opt_state, pool, pool_ids, state.key, state.step + 1), metrics


def compiled_lineage_train_step(cfg: Config, radius: int = 2, seed_cells: int | None = None):
    return jax.jit(partial(lineage_train_step, cfg, radius, seed_cells=seed_cells), donate_argnums=(0,))


# --------------------------------------------------------------------------- adversary


@dataclass(frozen=True)
class AdversaryConfig:
    """Training of a mutant rule against a frozen host.

    steps: optimisation steps; batch: host states per step; rollout: CA steps after the
    mutant patch is planted; patch_radius: px; objective: a ``cell_fitness`` kind summed
    over the cells the mutant controls ("territory": be alive; "gain": match the target);
    lr: Adam learning rate (gradient-normalised like the core); init_noise: relative
    perturbation of the host's weights the mutant starts from; seed.
    """

    steps: int = 100
    batch: int = 2
    rollout: int = 48
    patch_radius: int = 4
    objective: str = "territory"
    lr: float = 1e-3
    init_noise: float = 0.1
    seed: int = 0

    def optimizer_config(self) -> Config:
        return Config(lr=self.lr, lr_decay_step=10**9)


class AdversaryState(NamedTuple):
    params: dict
    opt_state: optax.OptState
    key: Array
    step: Array


def adversary_loss(mutant: dict, host: dict, x0: Array, ids0: Array, key: Array, target: Array,
                   acfg: AdversaryConfig, model_cfg) -> Array:
    """Minus the mutant's summed fitness (per grid cell), host frozen. x0: [B, H, W, C]."""
    params = stack_params([jax.lax.stop_gradient(host), mutant])
    x, ids, _ = lineage_rollout(params, x0, ids0, key, acfg.rollout, model_cfg, record=False, remat=True)
    ctrl = controller(x, ids, model_cfg.alive_threshold)
    fit = cell_fitness(x, target, acfg.objective)
    return -jnp.mean(jnp.sum(jnp.where(ctrl == 1, fit, 0.0), axis=(-2, -1))) / (x.shape[-3] * x.shape[-2])


def adversary_train_step(acfg: AdversaryConfig, model_cfg, host: dict, host_states: Array, target: Array,
                         state: AdversaryState) -> tuple[AdversaryState, Array]:
    """One step: plant the mutant as a disc around a random alive cell of ``batch`` random
    host states (host_states: [N, H, W, C]), roll out, follow the mutant's own gradient."""
    from .invasion import plant_mutant, random_alive_cell

    key = step_key(state.key, state.step)
    k_pick, k_cell, k_roll = jax.random.split(key, 3)
    x0 = host_states[jax.random.randint(k_pick, (acfg.batch,), 0, host_states.shape[0])]
    centres = jax.vmap(random_alive_cell, (0, 0, None))(x0, jax.random.split(k_cell, acfg.batch),
                                                         model_cfg.alive_threshold)
    ids0 = jax.vmap(plant_mutant, (0, 0, None, None))(x0, centres, acfg.patch_radius, model_cfg.alive_threshold)
    loss, grads = jax.value_and_grad(adversary_loss)(state.params, host, x0, ids0, k_roll, target, acfg, model_cfg)
    opt = make_optimizer(acfg.optimizer_config())
    updates, opt_state = opt.update(grads, state.opt_state, state.params)
    return AdversaryState(optax.apply_updates(state.params, updates), opt_state, state.key, state.step + 1), loss


def init_adversary_state(acfg: AdversaryConfig, host: dict) -> AdversaryState:
    from .invasion import perturb_params

    key = jax.random.key(acfg.seed)
    k_init, k_train = jax.random.split(key)
    params = perturb_params(host, k_init, acfg.init_noise)
    opt_state = make_optimizer(acfg.optimizer_config()).init(params)
    return AdversaryState(params, opt_state, k_train, jnp.zeros((), jnp.int32))
