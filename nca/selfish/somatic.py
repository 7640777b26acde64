"""Somatic evolution inside one organism: heritable per-cell genomes, mutation, clone ids.

Every cell shares the organism's rule (the Growing NCA of Mordvintsev et al., Distill 2020)
and carries, through its *clone id*, a small **genome**: ``G`` genes that modulate the
shared rule in that cell only -- gene ``g`` is added to the cell's update of channel ``g``
(``G <= C``; the default ``G = 4`` is a heritable bias of the cell's colour and alpha
updates). Neighbours perceive the cell's state, never its genes, so genes are private.

The rules (``somatic_step``), built on the lineage rules of ``nca.selfish.lineages``:

- **who runs which genome** (the *controller*, ``controller``): an alive cell its own
  clone's; a not-alive cell next to alive cells (which the life mask lets grow) its
  *parent's* -- the alive neighbour with the largest alpha; else none (genome 0);
- **inheritance**: a cell that comes alive takes its parent's clone id, so it carries its
  parent's genome; an alive cell keeps its id; a cell that dies loses it (``-1``). Clones
  spread only by their cells surviving and bringing new cells to life (territory);
- **mutation at birth**: each newborn cell, with probability ``mutation_rate``, founds a
  new clone instead: a fresh id (``n_clones``, then counting up in grid order) whose genome
  is its parent's plus ``mutation_size * N(0, 1)`` per gene. The clone table holds at most
  ``max_clones`` clones (and a step founds at most ``max_mutations_per_step``); mutations
  beyond are dropped (counted in ``dropped``).
  ``parent`` and ``born`` record each clone's parent clone and birth step (Muller plots).

The fire mask of step ``t`` is the core's (``step_key(key, t)``), the mutation draws use
the named stream ``MUTATION_STREAM``: with all genomes 0 the rollout *is* the core rollout
(tested), with mutation rate 0 one clone stays one clone (tested).

The gradient version (``somatic_train_step``) treats each clone's genome as a player:
clone k's genome follows the gradient of its own clone's fitness (territory) with the
other clones as environment -- lineage-isolated credit as in ``nca.selfish.training``
(stop-gradients where a cell reads a neighbour of another clone and along a cell's history
where its controller changed; cells are owned by the controller of their last update), so
d fitness_j / d genome_k = 0 for j != k -- while the shared rule follows the gradient of the
organism's shape loss (cooperative). That is a game in which defection can pay: a genome
that grows its clone's territory beyond the body gains even though the shape loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..errors import NCAError
from ..model import ModelConfig, Params, perceive, prefix_count, step, step_key, wrap_step
from .fitness import visible_mse
from .lineages import alive_cells, controller, owned_ids

Array = jax.Array

# Named PRNG streams folded into the rollout key (the fire masks use ``step_key(key, t)``).
MUTATION_STREAM = 0x6D7574  # "mut": which newborns mutate and the Gaussian gene changes


@dataclass(frozen=True)
class SomaticConfig:
    """Heritable genomes and their mutation.

    genome_size: G genes per clone (1 <= G <= channels); gene g adds to update channel g.
    mutation_rate: probability in [0, 1] that a newborn cell founds a new clone.
    mutation_size: standard deviation (>= 0) of the Gaussian change of each gene at a mutation.
    max_clones: capacity of the clone table (>= 1); mutations beyond it are dropped.
    evolve: False turns the genomes off (G may then be 0): the plain organism.
    max_mutations_per_step: new clones founded in one step at most (the rest dropped and
    counted in ``Clones.dropped``; a 72x72 lizard has < 64 births a step).
    """

    genome_size: int = 4
    mutation_rate: float = 0.0
    mutation_size: float = 0.02
    max_clones: int = 256
    evolve: bool = True
    max_mutations_per_step: int = 64

    def __post_init__(self):
        if not 0.0 <= self.mutation_rate <= 1.0:
            raise NCAError(f"mutation rate must be in [0, 1], got {self.mutation_rate}")
        if self.mutation_size < 0:
            raise NCAError(f"mutation size must be >= 0, got {self.mutation_size}")
        if self.evolve and self.genome_size < 1:
            raise NCAError(f"genome size must be >= 1 with evolution on, got {self.genome_size}")
        if self.genome_size < 0:
            raise NCAError(f"genome size must be >= 0, got {self.genome_size}")
        if self.max_clones < 1:
            raise NCAError(f"max_clones must be >= 1, got {self.max_clones}")
        if self.max_mutations_per_step < 1:
            raise NCAError(f"max_mutations_per_step must be >= 1, got {self.max_mutations_per_step}")

    def check(self, model_cfg: ModelConfig) -> None:
        if self.genome_size > model_cfg.channels:
            raise NCAError(f"genome size {self.genome_size} exceeds the model's {model_cfg.channels} channels")


class Clones(NamedTuple):
    """The clone table of one organism. genomes: [M, G]; parent: [M] int32 (-1 for a
    founder); born: [M] int32 (step of the founding birth, -1 for a founder); n: int32
    clones in use; dropped: int32 mutations lost to a full table."""

    genomes: Array
    parent: Array
    born: Array
    n: Array
    dropped: Array


def founders(genomes: Array, max_clones: int) -> Clones:
    """A table whose first K clones are founders with ``genomes`` [K, G]."""
    k, g = genomes.shape
    if k > max_clones:
        raise NCAError(f"{k} founder clones exceed max_clones={max_clones}")
    table = jnp.zeros((max_clones, g), jnp.float32).at[:k].set(genomes)
    return Clones(table, jnp.full((max_clones,), -1, jnp.int32), jnp.full((max_clones,), -1, jnp.int32),
                  jnp.asarray(k, jnp.int32), jnp.zeros((), jnp.int32))


def cell_genomes(genomes: Array, ctrl: Array, channels: int) -> Array:
    """Each cell's genome as an update bias. genomes: [M, G]; ctrl: [H, W] -> [H, W, C]
    (zero where ctrl is -1; genes beyond G are zero channels)."""
    g = genomes[jnp.clip(ctrl, 0, genomes.shape[0] - 1)] * (ctrl >= 0)[..., None]
    return jnp.pad(g, [(0, 0)] * (g.ndim - 1) + [(0, channels - genomes.shape[-1])])


def _isolated_perception(x: Array, ctrl: Array, cfg: ModelConfig) -> Array:
    """Perception where a cell reads a neighbour of another clone through stop_gradient.

    Each cell's 3x3 neighbourhood is read with the neighbours of *its own* clone live and
    the others stopped. Done per clone present would cost a perception per clone; instead,
    live = perceive(x) - perceive(stop(x)) is split by the Sobel taps: the neighbour terms of
    a cell come only from the 8 shifted copies, so the live part of tap (dy, dx) is kept
    where the neighbour's controller equals the cell's. Exact (tested by the Jacobian).
    """
    from .lineages import NEIGHBOUR_OFFSETS, _shift

    from ..model import perception_kernels

    stopped = jax.lax.stop_gradient(x)
    live = x - stopped  # zero values, carries the gradient
    kern = perception_kernels(cfg.angle_deg)  # [3, 3, 3]: identity, kx, ky
    c = x.shape[-1]
    p = perceive(stopped, cfg.angle_deg)
    bands = [jnp.zeros_like(x) for _ in range(3)]
    bands[0] = live  # the identity band: a cell's own state is always live
    for dy, dx in NEIGHBOUR_OFFSETS:
        same = (_shift(ctrl, dy, dx, -2) == ctrl)[..., None]
        nb = jnp.where(same, _shift_state(live, dy, dx), 0.0)
        for b in (1, 2):
            w = float(kern[b, 1 + dy, 1 + dx])
            if w:
                bands[b] = bands[b] + w * nb
    return p + jnp.concatenate(bands, axis=-1)[..., : 3 * c]


def _shift_state(a: Array, dy: int, dx: int) -> Array:
    """out[y, x] = a[y + dy, x + dx] (0 outside the grid). a: [H, W, C]."""
    p = jnp.pad(a, [(1, 1), (1, 1), (0, 0)])
    h, w = a.shape[-3:-1]
    return p[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]


def somatic_step(params: Params, x: Array, ids: Array, clones: Clones, key: Array, cfg: ModelConfig,
                 scfg: SomaticConfig, t: Array | int = 0, prev_ctrl: Array | None = None,
                 isolate: bool = False) -> tuple[Array, Array, Clones, Array]:
    """One CA step of an organism with heritable genomes (see the module docstring).

    params: the shared rule; x: [H, W, C]; ids: [H, W] int32 clone ids (-1 none); key: the
    rollout key (fire mask ``step_key(key, t)``, mutations from ``MUTATION_STREAM``).
    isolate: clone-isolated gradients (with ``prev_ctrl`` the previous step's controller).
    Returns (x_next, ids_next, clones_next, ctrl) with ctrl the controller of this step.
    """
    t = jnp.asarray(t, jnp.int32)
    thr = cfg.alive_threshold
    ctrl = controller(x, ids, thr)
    if isolate and prev_ctrl is not None:
        # A cell whose controller changed starts a new history (nothing of its past is
        # credited to its new clone).
        x = jnp.where((ctrl != prev_ctrl)[..., None], jax.lax.stop_gradient(x), x)
    bias = cell_genomes(clones.genomes, ctrl, x.shape[-1]) if scfg.evolve else None
    hooks = {}
    if bias is not None:
        hooks["update"] = lambda dx, _: dx + bias
    if isolate:
        p = _isolated_perception(x, ctrl, cfg)
        hooks["perception"] = lambda _, __: p
    x_next, _ = step(params, x, step_key(key, t), cfg, t, hooks or None)
    born = ~alive_cells(x, thr) & alive_cells(x_next, thr)
    ids_next = jnp.where(alive_cells(x_next, thr), ctrl, -1).astype(jnp.int32)
    if not scfg.evolve or scfg.mutation_rate == 0.0:
        return x_next, ids_next, clones, ctrl
    # mutation at birth: at most ``max_mutations_per_step`` new clones a step (the rest are
    # dropped and counted), so the Gaussian draws and the table writes are [cap, G], not
    # one per cell -- this keeps a rollout with genomes near the cost of the core rollout.
    k_mut = step_key(jax.random.fold_in(key, MUTATION_STREAM), t)
    k_which, k_gene = jax.random.split(k_mut)
    m, cap = clones.genomes.shape[0], scfg.max_mutations_per_step
    mutate = born & (jax.random.uniform(k_which, born.shape) < scfg.mutation_rate)
    rank = prefix_count(mutate.reshape(-1)).reshape(mutate.shape) - 1  # grid order
    new_id = clones.n + rank
    take = mutate & (rank < cap) & (new_id < m)  # ranks 0 .. n_take - 1
    par = jnp.full((cap,), -1, jnp.int32).at[jnp.where(take, rank, cap).reshape(-1)].set(
        ctrl.reshape(-1), mode="drop")  # the parent clone of each new clone, by rank
    n_mut, n_take = jnp.sum(mutate), jnp.sum(take).astype(jnp.int32)
    dest = jnp.where(jnp.arange(cap) < n_take, clones.n + jnp.arange(cap), m)  # m: dropped by the scatters
    noise = scfg.mutation_size * jax.random.normal(k_gene, (cap, clones.genomes.shape[1]))
    genomes = clones.genomes.at[dest].set(clones.genomes[jnp.clip(par, 0, m - 1)] + noise, mode="drop")
    parent = clones.parent.at[dest].set(par, mode="drop")
    born_at = clones.born.at[dest].set(jnp.broadcast_to(t, (cap,)), mode="drop")
    clones = Clones(genomes, parent, born_at, clones.n + n_take, clones.dropped + (n_mut - n_take).astype(jnp.int32))
    return x_next, jnp.where(take, new_id, ids_next).astype(jnp.int32), clones, ctrl


def clone_counts(ids: Array, max_clones: int) -> Array:
    """Alive cells per clone. ids: [..., H, W] -> [..., M] int32."""
    flat = ids.reshape(ids.shape[:-2] + (-1,))
    onehot = flat[..., None] == jnp.arange(max_clones, dtype=ids.dtype)
    return jnp.sum(onehot, axis=-2).astype(jnp.int32)


class SomaticTrajectory(NamedTuple):
    """What a somatic rollout recorded, every ``every``-th step: ids [T, H, W]; counts
    [T, M] alive cells per clone; loss [T] visible MSE against the target (or None);
    states [T, H, W, C] (or None)."""

    ids: Array
    counts: Array
    loss: Array | None
    states: Array | None


def somatic_rollout(params: Params, x0: Array, ids0: Array, clones: Clones, key: Array, steps: int,
                    cfg: ModelConfig, scfg: SomaticConfig, t0: int | Array = 0, every: int = 1,
                    target: Array | None = None, record_states: bool = False, isolate: bool = False,
                    remat: bool = False, active_steps: Array | None = None):
    """``steps`` somatic steps with ``lax.scan``. x0: [H, W, C]; ids0: [H, W]; clones: the
    table. Records every ``every``-th step (``SomaticTrajectory``); target [H, W, 4] adds
    the shape loss over time. active_steps: run only the first n steps (training).

    Returns (x, ids, clones, owner, SomaticTrajectory); owner [H, W]: the controller of the
    last step run (whose genome made each cell's last update).
    """
    if steps % every:
        raise NCAError(f"steps={steps} is not a multiple of every={every}")
    scfg.check(cfg)
    t0 = jnp.asarray(t0, jnp.int32)
    m = clones.genomes.shape[0]

    def one(carry, t):
        x, ids, cl, prev = carry
        return somatic_step(params, x, ids, cl, key, cfg, scfg, t, prev, isolate)

    one = wrap_step(one, t0, remat, active_steps)

    def group(carry, ts):
        carry, _ = jax.lax.scan(lambda c, t: (one(c, t), None), carry, ts)
        x, ids = carry[0], carry[1]
        rec = (ids, clone_counts(ids, m), None if target is None else visible_mse(x, target),
               x if record_states else None)
        return carry, rec

    ids0 = owned_ids(x0, ids0, cfg.alive_threshold)
    carry0 = (x0, ids0, clones, controller(x0, ids0, cfg.alive_threshold))
    ts = t0 + jnp.arange(steps, dtype=jnp.int32).reshape(steps // every, every)
    (x, ids, clones, owner), rec = jax.lax.scan(group, carry0, ts)
    return x, ids, clones, owner, SomaticTrajectory(*rec)


def seed_clones(height: int, width: int, cfg: ModelConfig, k: int, radius: int = 2) -> tuple[Array, Array]:
    """The article's seed cell once per founder clone, on a circle (``lineage_seed``):
    (x [H, W, C], ids [H, W])."""
    from .lineages import lineage_seed

    return lineage_seed(height, width, cfg, k, radius)


def grows(x: Array, cfg: ModelConfig) -> bool:
    """Whether a host state has a body: at least 9 alive cells (a host that does not grow
    cannot host clones)."""
    return bool(jnp.sum(alive_cells(x, cfg.alive_threshold)) >= 9) and bool(jnp.all(jnp.isfinite(x)))


# --------------------------------------------------------------------------- gradient version


@dataclass(frozen=True)
class SomaticTrainConfig:
    """The game of ``somatic_train_step``. clones: K founder clones, one seed cell each
    (``seed_clones``, ``radius`` px from the centre); selfish: train each clone's genome on
    its own territory (False: genomes stay 0 -- the control organism, same seeding, same
    rule updates); genome_lr: Adam learning rate of the genomes; genome_size: G."""

    clones: int = 4
    radius: int = 2
    selfish: bool = True
    genome_lr: float = 3e-3
    genome_size: int = 4

    def __post_init__(self):
        if self.clones < 1:
            raise NCAError(f"clones must be >= 1, got {self.clones}")
        if self.genome_size < 1:
            raise NCAError(f"genome size must be >= 1 with evolution on, got {self.genome_size}")


class SomaticTrainState(NamedTuple):
    """params: the shared rule; genomes: [K, G]; opt_state / genome_opt: optax states;
    pool: [P, H, W, C]; pool_ids: [P, H, W]; key; step."""

    params: dict
    genomes: Array
    opt_state: object
    genome_opt: object
    pool: Array
    pool_ids: Array
    key: Array
    step: Array


def _genome_optimizer(tcfg: SomaticTrainConfig):
    import optax

    return optax.adam(tcfg.genome_lr)


def init_somatic_state(cfg, tcfg: SomaticTrainConfig) -> SomaticTrainState:
    """The rule initialised from ``cfg.seed`` exactly as ``nca.train`` does; genomes 0; a
    pool of K-clone seeds."""
    from ..model import init_params
    from ..train import make_optimizer

    key = jax.random.key(cfg.seed)
    k_init, k_train = jax.random.split(key)
    params = init_params(k_init, cfg.model)
    genomes = jnp.zeros((tcfg.clones, tcfg.genome_size), jnp.float32)
    g = cfg.grid_size
    x, ids = seed_clones(g, g, cfg.model, tcfg.clones, tcfg.radius)
    n = cfg.pool_size if cfg.uses_pool else 1
    return SomaticTrainState(params, genomes, make_optimizer(cfg).init(params), _genome_optimizer(tcfg).init(genomes),
                             jnp.broadcast_to(x, (n,) + x.shape) + 0.0, jnp.broadcast_to(ids, (n,) + ids.shape) + 0,
                             k_train, jnp.zeros((), jnp.int32))


def _batch_rollout(params, genomes, x0, ids0, key, cfg, n_steps, isolate):
    """vmap of ``somatic_rollout`` over the batch (sample b's fire masks from fold_in(key, b)).
    Returns (x [B, H, W, C], ids [B, H, W], owner [B, H, W])."""
    scfg = SomaticConfig(genome_size=genomes.shape[1], max_clones=genomes.shape[0])
    steps = cfg.rollout_max - 1

    def one(x, ids, b):
        out = somatic_rollout(params, x, ids, founders(genomes, genomes.shape[0]), jax.random.fold_in(key, b),
                              steps, cfg.model, scfg, every=steps, isolate=isolate, remat=cfg.remat,
                              active_steps=n_steps)
        return out[0], out[1], out[3]

    return jax.vmap(one)(x0, ids0, jnp.arange(x0.shape[0]))


def clone_territory(x: Array, owner: Array, k: int) -> Array:
    """Each clone's territory: clipped alpha summed over the cells it owns, per grid cell,
    batch mean. x: [B, H, W, C]; owner: [B, H, W] -> [K]."""
    terr = jnp.clip(x[..., 3], 0.0, 1.0)
    norm = x.shape[-3] * x.shape[-2]
    return jnp.stack([jnp.mean(jnp.sum(jnp.where(owner == i, terr, 0.0), axis=(-2, -1))) for i in range(k)]) / norm


def somatic_train_step(cfg, tcfg: SomaticTrainConfig, state: SomaticTrainState, target: Array):
    """One step of the game (pure). target: [H, W, 4].

    The shared rule follows the gradient of the organism's shape loss (RGBA MSE, full
    cooperative credit); with ``tcfg.selfish`` each clone's genome follows the gradient of
    its own territory (``clone_territory``) with clone-isolated credit, so the sum's
    gradient gives every genome exactly its own (tested). The pool protocol is the
    lineages' (``nca.selfish.training.lineage_train_step``). Returns (state, metrics
    {"loss", "territory" [K], "counts" [K]}).
    """
    import optax

    from ..train import make_optimizer, sample_batch
    from .fitness import cell_error
    from .lineages import lineage_counts

    k = tcfg.clones
    key = step_key(state.key, state.step)
    k_batch, k_len, k_roll = jax.random.split(key, 3)
    g = cfg.grid_size
    seed_x, seed_ids = seed_clones(g, g, cfg.model, k, tcfg.radius)
    if cfg.uses_pool:
        idx, x0 = sample_batch(cfg, state.pool, target, k_batch)
        ids0 = owned_ids(x0, state.pool_ids[idx], cfg.model.alive_threshold)
        x0, ids0 = x0.at[0].set(seed_x), ids0.at[0].set(seed_ids)
    else:
        idx = jnp.zeros((cfg.batch_size,), jnp.int32)
        x0 = jnp.broadcast_to(seed_x, (cfg.batch_size,) + seed_x.shape)
        ids0 = jnp.broadcast_to(seed_ids, (cfg.batch_size,) + seed_ids.shape)
    n_steps = jax.random.randint(k_len, (), cfg.rollout_min, cfg.rollout_max)

    def shape_loss(params):
        x, ids, _ = _batch_rollout(params, jax.lax.stop_gradient(state.genomes), x0, ids0, k_roll, cfg, n_steps,
                                   False)
        return jnp.mean(cell_error(x, target)) / 4.0, (x, ids)

    (loss, (x, ids)), grads = jax.value_and_grad(shape_loss, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    genomes, genome_opt = state.genomes, state.genome_opt
    if tcfg.selfish:
        def minus_territory(gen):
            xg, _, owner = _batch_rollout(jax.lax.stop_gradient(state.params), gen, x0, ids0, k_roll, cfg, n_steps,
                                          True)
            terr = clone_territory(xg, owner, k)
            return -jnp.sum(terr), terr

        (_, terr), ggrads = jax.value_and_grad(minus_territory, has_aux=True)(state.genomes)
        gupd, genome_opt = _genome_optimizer(tcfg).update(ggrads, state.genome_opt, state.genomes)
        genomes = optax.apply_updates(state.genomes, gupd)
    else:
        terr = jnp.zeros((k,))
    pool, pool_ids = state.pool, state.pool_ids
    if cfg.uses_pool:
        pool, pool_ids = pool.at[idx].set(x), pool_ids.at[idx].set(ids)
    metrics = {"loss": loss, "territory": terr, "counts": jnp.sum(lineage_counts(ids, k), axis=0)}
    return SomaticTrainState(params, genomes, opt_state, genome_opt, pool, pool_ids, state.key,
                             state.step + 1), metrics


def compiled_somatic_train_step(cfg, tcfg: SomaticTrainConfig):
    from functools import partial

    return jax.jit(partial(somatic_train_step, cfg, tcfg), donate_argnums=(0,))
