"""Somatic-evolution experiments (pure computation: arrays in, numpy dicts out; no disk).

Built on ``nca.selfish.somatic``. Every experiment runs its seeds in one vmapped program
and pairs each arm with controls on the *same fire masks* (the rollout key of seed s is
``fold_in(key, s)`` in every arm), so differences between arms are due to the genomes.

- ``spontaneous``: a host grows from its seed with mutation at birth on. Three arms:
  ``mutant`` (rate r, size s), ``neutral`` (rate r, size 0: new clone ids with the parent's
  genome exactly -- the null for clonal expansion by drift and founder effects alone),
  ``control`` (no mutation: the host's own shape). Measures: clone sizes over time, time
  to the first *cheater*, takeover curves, shape loss over time.
- ``landscape``: a single mutant cell with genome ``delta * u`` is planted in a host at
  ``plant_at``; its selection coefficient over the window is the log odds ratio of its
  final share against the same cell planted with genome 0 (same masks): ``s = logit(p) -
  logit(p0)`` (shares with +0.5 pseudo-counts). s > 0: the mutant out-grows its neutral
  twin (Lenski et al. 1991 define relative fitness the same way from paired competitions;
  here the competitor is the unmutated host).
- ``plant_cheater``: policing assay -- one cheater cell in a grown body, its final share
  and the harm to the shape against the uninvaded twin.

A *cheater* (``cheater_times``) is a derived clone (not a founder) that holds at least
``share`` of the living cells while at least ``outside`` of its cells lie where the
target is empty: a clonal expansion that grows at the expense of the shape (a cancer
analogue). Intervals are 95% t-intervals over seeds (``interval``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import NCAError
from ..model import ModelConfig, Params, seed_state
from ..stats import mean_ci, wilson
from .lineages import alive_cells
from .somatic import SomaticConfig, founders, somatic_rollout

Array = jax.Array

# Named PRNG streams of the experiments (folded into the user's key).
PLANT_STREAM = 0x706C61  # "pla": which alive cell receives the mutant
DIRECTION_STREAM = 0x646972  # "dir": random gene directions of the landscape


def interval(values, level: float = 0.95) -> dict:
    """Mean and two-sided t-interval over seeds: ``nca.stats.mean_ci`` ({"mean", "lo", "hi",
    "n", "sd"}; lo/hi None with a reason when n < 2) with the per-seed "values" (None kept)."""
    vals = [None if v is None else float(v) for v in values]
    return {**mean_ci([np.nan if v is None else v for v in vals], level), "values": vals}


def proportion_interval(k: int, n: int) -> dict:
    """Wilson 95% interval of a proportion k/n (``nca.stats.wilson``): {"mean", "lo", "hi", "n"}
    as every interval, with "k" and "p" (= mean) for the report's "k/n [lo, hi]"."""
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "k": 0, "p": None}
    lo, hi = wilson(k, n)
    return {"mean": k / n, "lo": lo, "hi": hi, "n": int(n), "k": int(k), "p": k / n}


@dataclass(frozen=True)
class ExperimentConfig:
    """Settings of the somatic experiments (one host).

    steps: CA steps of a spontaneous run (from the seed); every: record every n steps;
    mutation: the mutant arm's SomaticConfig; cheater_share / cheater_outside: the cheater
    definition (module docstring); plant_at: host age when a landscape mutant is planted;
    window: steps after planting; sizes: mutation sizes (gene-vector norms) of the
    landscape; directions: random unit gene directions per size (plus "alpha up");
    cheater_gene: alpha-gene value of the policing assay's planted cheater.
    """

    steps: int = 400
    every: int = 10
    mutation: SomaticConfig = SomaticConfig(genome_size=4, mutation_rate=0.05, mutation_size=0.02, max_clones=512)
    cheater_share: float = 0.05
    cheater_outside: float = 0.25
    plant_at: int = 60
    window: int = 200
    sizes: tuple[float, ...] = (0.0, 0.003, 0.01, 0.03, 0.1)
    directions: int = 3
    cheater_gene: float = 0.03

    def __post_init__(self):
        if self.steps % self.every or self.window % self.every:
            raise NCAError(f"steps and window must be multiples of every={self.every}")
        if not self.mutation.evolve:
            raise NCAError("the mutant arm needs evolution on")


def _counts(ids: Array, m: int, outside: Array) -> tuple[Array, Array]:
    """Per-clone alive cells and those outside the target. ids: [..., T, H, W] -> [..., T, M] x2."""
    flat = ids.reshape(ids.shape[:-2] + (-1,))
    seg = jnp.where(flat >= 0, flat, m)
    one = jax.nn.one_hot(seg, m + 1, dtype=jnp.int32)[..., :m]  # [..., T, HW, M]
    return one.sum(-2), (one * outside.reshape(-1)[:, None]).sum(-2)


def spontaneous(params: Params, cfg: ModelConfig, target: Array, ecfg: ExperimentConfig, seeds: list[int],
                key: Array) -> dict:
    """Grow the host from its seed with mutation on, in three paired arms (module
    docstring). target: [H, W, 4]. Returns numpy arrays: times [T]; per arm
    ("mutant", "neutral", "control"): counts [S, T, M], outside [S, T, M], loss [S, T],
    parent [S, M], born [S, M], genomes [S, M, G], n_clones [S], dropped [S],
    final_ids [S, H, W], final_states [S, H, W, C]."""
    g = target.shape[0]
    mut = ecfg.mutation
    arms = {"mutant": mut,
            "neutral": replace(mut, mutation_size=0.0),
            "control": replace(mut, mutation_rate=0.0, mutation_size=0.0)}
    x0 = seed_state(g, g, cfg)
    ids0 = jnp.where(x0[..., 3] > cfg.alive_threshold, 0, -1).astype(jnp.int32)
    outside = target[..., 3] <= cfg.alive_threshold
    keys = jnp.stack([jax.random.fold_in(key, s) for s in seeds])
    out = {"times": np.arange(1, ecfg.steps // ecfg.every + 1) * ecfg.every, "seeds": list(seeds)}
    for name, scfg in arms.items():
        def one(k, scfg=scfg):
            cl0 = founders(jnp.zeros((1, scfg.genome_size)), scfg.max_clones)
            x, ids, cl, _, traj = somatic_rollout(params, x0, ids0, cl0, k, ecfg.steps, cfg, scfg, every=ecfg.every,
                                                  target=target)
            counts, outs = _counts(traj.ids, scfg.max_clones, outside)
            return counts, outs, traj.loss, cl, ids, x

        counts, outs, loss, cl, ids, x = jax.jit(jax.vmap(one))(keys)
        out[name] = {"counts": np.asarray(counts), "outside": np.asarray(outs), "loss": np.asarray(loss),
                     "parent": np.asarray(cl.parent), "born": np.asarray(cl.born), "genomes": np.asarray(cl.genomes),
                     "n_clones": np.asarray(cl.n), "dropped": np.asarray(cl.dropped),
                     "final_ids": np.asarray(ids), "final_states": np.asarray(x)}
    return out


def cheater_times(counts: np.ndarray, outside: np.ndarray, times: np.ndarray, share: float, out_frac: float,
                  founders_n: int = 1) -> list[int | None]:
    """First recorded step with a cheater (module docstring), per seed. counts, outside:
    [S, T, M] -> [S] (None: no cheater)."""
    res = []
    total = counts.sum(-1, keepdims=True)
    frac = counts / np.maximum(total, 1)
    out_share = outside / np.maximum(counts, 1)
    is_cheat = (frac >= share) & (out_share >= out_frac)
    is_cheat[..., :founders_n] = False
    for s in range(counts.shape[0]):
        hit = np.nonzero(is_cheat[s].any(-1))[0]
        res.append(int(times[hit[0]]) if len(hit) else None)
    return res


def expansion_times(counts: np.ndarray, times: np.ndarray, share: float, founders_n: int = 1) -> list[int | None]:
    """First recorded step at which any derived clone holds >= ``share`` of the living
    cells (clonal expansion, harmful or not), per seed. counts: [S, T, M]."""
    frac = counts / np.maximum(counts.sum(-1, keepdims=True), 1)
    big = (frac[..., founders_n:] >= share).any(-1)
    return [int(times[np.nonzero(b)[0][0]]) if b.any() else None for b in big]


def summarise_spontaneous(res: dict, ecfg: ExperimentConfig) -> dict:
    """Scalars with intervals over seeds, per arm: first cheater / expansion step (and how
    many seeds had one, Wilson interval), final derived share (takeover), largest derived
    clone's final share, final shape loss, clones founded, final loss minus control."""
    times = res["times"]
    out = {}
    for arm in ("mutant", "neutral", "control"):
        r = res[arm]
        c = r["counts"]
        total = np.maximum(c.sum(-1), 1)
        derived = c[..., 1:].sum(-1) / total  # [S, T]
        largest = c[..., 1:].max(-1) / total
        ct = cheater_times(c, r["outside"], times, ecfg.cheater_share, ecfg.cheater_outside)
        et = expansion_times(c, times, ecfg.cheater_share)
        out[arm] = {
            "first_cheater_step": interval(ct),
            "seeds_with_cheater": proportion_interval(sum(t is not None for t in ct), len(ct)),
            "first_expansion_step": interval(et),
            "seeds_with_expansion": proportion_interval(sum(t is not None for t in et), len(et)),
            "final_derived_share": interval(derived[:, -1]),
            "final_largest_derived_share": interval(largest[:, -1]),
            "final_loss": interval(r["loss"][:, -1]),
            "final_loss_minus_control": interval(r["loss"][:, -1] - res["control"]["loss"][:, -1]),
            "clones_founded": interval(r["n_clones"] - 1),
            "dropped_mutations": int(r["dropped"].sum()),
        }
    return out


def final_clone_sizes(res_arm: dict) -> np.ndarray:
    """Sizes (alive cells) of every derived clone alive at the end, pooled over seeds."""
    c = res_arm["counts"][:, -1, 1:]
    return c[c > 0]


# --------------------------------------------------------------------------- invasion


def _logit(p):
    return np.log(p) - np.log1p(-p)


def host_grown(params: Params, cfg: ModelConfig, grid: int, steps: int, key: Array) -> Array:
    """The host grown ``steps`` from its seed (the core rollout: all genomes 0). -> [H, W, C]."""
    from ..model import rollout

    return rollout(params, seed_state(grid, grid, cfg), key, steps, cfg, record=())[0]


def _random_alive(x: Array, key: Array, thr: float) -> Array:
    alive = alive_cells(x, thr).reshape(-1)
    return jax.random.categorical(key, jnp.where(alive, 0.0, -jnp.inf))


def plant_and_run(params: Params, cfg: ModelConfig, target: Array, x: Array, cell: Array, genome: Array,
                  key: Array, steps: int, t0: int, every: int, scfg: SomaticConfig):
    """One mutant cell (flat index ``cell``) with ``genome`` [G] in host state x [H, W, C]
    (clone 0 = host, genome 0). Returns (mutant counts [T], host counts [T], loss [T],
    final ids [H, W], final state)."""
    h, w = x.shape[:2]
    ids = jnp.where(alive_cells(x, cfg.alive_threshold), 0, -1).astype(jnp.int32)
    ids = ids.reshape(-1).at[cell].set(1).reshape(h, w)
    cl = founders(jnp.stack([jnp.zeros_like(genome), genome]), scfg.max_clones)
    xf, idf, _, _, traj = somatic_rollout(params, x, ids, cl, key, steps, cfg, scfg, t0=t0, every=every,
                                          target=target)
    return traj.counts[:, 1], traj.counts[:, 0], traj.loss, idf, xf


def landscape(params: Params, cfg: ModelConfig, target: Array, ecfg: ExperimentConfig, seeds: list[int],
              key: Array) -> dict:
    """Selection coefficient of a single planted mutant vs mutation size (module docstring).

    For each seed: the host grown ``plant_at`` steps, a random alive cell; for each size
    and direction (``directions`` random unit vectors in gene space, plus "alpha up": gene 3
    only) the mutant run for ``window`` steps next to its neutral twin (genome 0, same cell,
    same masks). Returns {"sizes", "directions": names, "s": [S, D, Z], "share": [S, D, Z],
    "share_neutral": [S], "harm": [S, D, Z] (final visible MSE minus the twin's)}.
    """
    g = target.shape[0]
    gs = ecfg.mutation.genome_size
    scfg = SomaticConfig(genome_size=gs, mutation_rate=0.0, max_clones=2)
    kd = jax.random.fold_in(key, DIRECTION_STREAM)
    dirs = jax.random.normal(kd, (ecfg.directions, gs))
    dirs = dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)
    alpha_up = jnp.zeros((1, gs)).at[0, min(3, gs - 1)].set(1.0)
    dirs = jnp.concatenate([alpha_up, dirs])  # [D, G]
    sizes = jnp.asarray(ecfg.sizes, jnp.float32)
    genomes = dirs[:, None, :] * sizes[None, :, None]  # [D, Z, G]

    flat = jnp.concatenate([genomes.reshape(-1, gs), jnp.zeros((1, gs))])  # the neutral twin last
    keys = jnp.stack([jax.random.fold_in(key, s) for s in seeds])

    def per_seed(k):
        x = host_grown(params, cfg, g, ecfg.plant_at, k)
        cell = _random_alive(x, jax.random.fold_in(k, PLANT_STREAM), cfg.alive_threshold)
        mc, hc, loss = jax.vmap(lambda gen: plant_and_run(params, cfg, target, x, cell, gen, k, ecfg.window,
                                                          ecfg.plant_at, ecfg.window, scfg)[:3])(flat)
        return mc[:, -1], hc[:, -1], loss[:, -1]

    mc, hc, loss = (np.asarray(a, np.float64) for a in jax.jit(jax.vmap(per_seed))(keys))  # [S, D*Z + 1]
    p = (mc + 0.5) / (mc + hc + 1.0)
    d, z = genomes.shape[:2]
    lg = _logit(p)
    s_all = (lg[:, :-1] - lg[:, -1:]).reshape(-1, d, z)
    share_all = (mc / np.maximum(mc + hc, 1))[:, :-1].reshape(-1, d, z)
    share0 = (mc / np.maximum(mc + hc, 1))[:, -1]
    harm_all = (loss[:, :-1] - loss[:, -1:]).reshape(-1, d, z)
    return {"sizes": list(ecfg.sizes), "directions": ["alpha up"] + [f"random {i}" for i in range(ecfg.directions)],
            "s": np.asarray(s_all), "share": np.asarray(share_all), "share_neutral": np.asarray(share0),
            "harm": np.asarray(harm_all), "seeds": list(seeds)}


def summarise_landscape(res: dict) -> dict:
    """Per size: s over seeds x random directions, and s of "alpha up", with intervals."""
    out = {}
    for j, size in enumerate(res["sizes"]):
        out[str(size)] = {"alpha_up": interval(res["s"][:, 0, j]),
                          "random": interval(res["s"][:, 1:, j].ravel()),
                          "harm_alpha_up": interval(res["harm"][:, 0, j])}
    return out


def plant_cheater(params: Params, cfg: ModelConfig, target: Array, grown: Array, genome: Array, seeds: list[int],
                  key: Array, steps: int, t0: int, every: int) -> dict:
    """Policing assay: one cheater cell (genome [G]) at a random alive cell of each grown
    body (grown: [S, H, W, C]; params: one rule per body, leaves [S, ...]), run ``steps``;
    its twin without the cheater (genome 0, same cell, same masks) is the control.
    Returns {"share": [S, T] cheater share of the living cells, "harm": [S, T] visible MSE
    minus the twin's, "loss_control": [S, T], "final_ids": [S, H, W], "final_states"}."""
    scfg = SomaticConfig(genome_size=genome.shape[0], mutation_rate=0.0, max_clones=2)

    def one(p, x, s):
        k = jax.random.fold_in(key, s)
        cell = _random_alive(x, jax.random.fold_in(k, PLANT_STREAM), cfg.alive_threshold)
        mc, hc, loss, ids, xf = plant_and_run(p, cfg, target, x, cell, genome, k, steps, t0, every, scfg)
        _, _, loss0, _, _ = plant_and_run(p, cfg, target, x, cell, jnp.zeros_like(genome), k, steps, t0, every, scfg)
        return mc / jnp.maximum(mc + hc, 1), loss - loss0, loss0, ids, xf

    share, harm, loss0, ids, xf = jax.jit(jax.vmap(one))(params, grown, jnp.asarray(seeds))
    return {"share": np.asarray(share), "harm": np.asarray(harm), "loss_control": np.asarray(loss0),
            "final_ids": np.asarray(ids), "final_states": np.asarray(xf)}


def plant_cheater_clones(params: Params, cfg: ModelConfig, target: Array, grown: Array, grown_ids: Array,
                         genomes: Array, gene: float, seeds: list[int], key: Array, steps: int, t0: int,
                         every: int) -> dict:
    """Policing assay in a body of K clones (params leaves [S, ...]; grown [S, H, W, C];
    grown_ids [S, H, W]; genomes [S, K, G]): the living cell picked as in ``plant_cheater``
    becomes a new clone K whose genome is its own clone's plus ``gene`` on the alpha gene --
    a cheater *relative to its own lineage* -- and runs ``steps`` next to its twin without
    the mutation (same cell, same masks). Returns {"share": [S, T] the cheater's share of
    the living cells, "harm": [S, T], "loss_control": [S, T]}."""
    k, gs = genomes.shape[1:]
    scfg = SomaticConfig(genome_size=gs, mutation_rate=0.0, max_clones=k + 1)
    alpha = jnp.zeros(gs).at[min(3, gs - 1)].set(gene)

    def one(p, x, ids, gen, s):
        kk = jax.random.fold_in(key, s)
        cell = _random_alive(x, jax.random.fold_in(kk, PLANT_STREAM), cfg.alive_threshold)
        own = ids.reshape(-1)[cell]
        h, w = ids.shape
        ids1 = ids.reshape(-1).at[cell].set(k).reshape(h, w)

        def run(extra):
            cl = founders(jnp.concatenate([gen, (gen[own] + extra)[None]]), k + 1)
            _, _, _, _, traj = somatic_rollout(p, x, ids1, cl, kk, steps, cfg, scfg, t0=t0, every=every, target=target)
            return traj.counts, traj.loss

        counts, loss = run(alpha)
        _, loss0 = run(jnp.zeros(gs))
        return counts[:, k] / jnp.maximum(counts.sum(-1), 1), loss - loss0, loss0

    share, harm, loss0 = jax.jit(jax.vmap(one))(params, grown, grown_ids, genomes, jnp.asarray(seeds))
    return {"share": np.asarray(share), "harm": np.asarray(harm), "loss_control": np.asarray(loss0)}

