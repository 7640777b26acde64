"""The selfish-cells pipeline's training loops and the policing assay (library side of
``scripts/selfish.py``: settings in, states and numpy results out; run folders are
written with ``nca.checkpoint``'s atomic writes).

Training loops are driven by ``nca.loop.drive`` (progress bar, Ctrl-C saves a checkpoint
between steps, a non-finite loss or non-finite parameters stop the run with one clear
line). Re-running with the same folder reuses a finished run and continues an unfinished
one; a folder holding another configuration is refused.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import checkpoint as ckpt
from ..config import Config
from ..errors import NCAError
from ..loop import LoopSpec, all_finite, drive

SETTINGS = "selfish_settings.json"


def _claim(run_dir: Path, settings: dict) -> bool:
    """Write ``settings`` to a new run folder, or check an existing one holds the same.
    Returns True when the folder already held this run."""
    path = run_dir / SETTINGS
    text = json.dumps(settings, indent=1, sort_keys=True, default=str)
    if path.exists():
        if json.loads(path.read_text()) != json.loads(text):
            raise NCAError(f"{run_dir} holds a run with other settings; use a new --out (nothing was changed)")
        return True
    ckpt.atomic_write_bytes(path, (text + "\n").encode())
    return False


def _loop(state, step_fn, target, total: int, every: int, path: Path, run_dir: Path, progress: bool, desc: str,
          loss_of, postfix):
    """Drive ``step_fn(state, target) -> (state, metrics)`` from ``state.step`` to ``total``."""
    start = int(state.step)
    if start >= total:
        return state, None
    t = time.perf_counter()
    box = {"state": state, "metrics": None}

    def step():
        box["state"], box["metrics"] = step_fn(box["state"], target)
        return loss_of(box["metrics"])

    def record(s, losses, elapsed):
        return postfix(box["metrics"], losses)

    result = drive(LoopSpec(start=start, end=total, total=total, checkpoint_every=every, where=run_dir,
                            progress=progress, desc=desc),
                   step=step, record=record, save=lambda s, elapsed: ckpt.save_checkpoint(path, box["state"]),
                   params_finite=lambda: all_finite(box["state"].params))
    if result.interrupted:  # Ctrl-C: the checkpoint is saved; stop the whole run (re-run continues it)
        raise KeyboardInterrupt
    jax.block_until_ready(box["state"].params)
    return box["state"], time.perf_counter() - t


def train_lineage_run(cfg: Config, k: int, radius: int, run_dir: Path, progress: bool = True,
                      arm: str = "lineages"):
    """Train (or finish, or reuse) a competing-lineages run, one arm of the fair comparison:

    - ``"lineages"``: K rules, each ``hidden // K`` units, cut from the one-rule baseline's
      initial rule (``fair_lineage_state``): same parameter count, same initial weights;
    - ``"baseline"``: one rule of ``hidden`` units seeded with the same K seed cells;
    - ``"unfair"``: K independently initialised full-size rules (the variant before issue 16).

    Returns (state, seconds spent now or None when reused)."""
    from ..targets import load_target
    from .training import compiled_lineage_train_step, fair_lineage_state, init_lineage_state

    if arm == "lineages":
        state, step = fair_lineage_state(cfg, k, radius), compiled_lineage_train_step(fair_lineage_config(cfg, k), radius)
    elif arm == "baseline":
        state, step = init_lineage_state(cfg, 1, radius, seed_cells=k), compiled_lineage_train_step(cfg, radius, k)
    elif arm == "unfair":
        state, step = init_lineage_state(cfg, k, radius), compiled_lineage_train_step(cfg, radius)
    else:
        raise NCAError(f"unknown lineage arm {arm!r}")
    path = run_dir / "lineages.msgpack"
    if _claim(run_dir, {"kind": "lineages", "arm": arm, "train": cfg.to_dict(), "k": k, "radius": radius}) \
            and path.exists():
        state = ckpt.load_checkpoint(path, state)
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding, cfg.target_background))
    return _loop(state, step, target, cfg.train_steps, cfg.checkpoint_every, path, run_dir, progress,
                 f"{arm} {run_dir.name}", lambda m: m["loss"], lambda m, l: f"loss={l[0]:.4g}")


def fair_lineage_config(cfg: Config, k: int) -> Config:
    """The training config of each of K rules that together have ``cfg``'s hidden units."""
    from dataclasses import replace

    if cfg.model.hidden % k:
        raise NCAError(f"hidden={cfg.model.hidden} does not split into {k} equal rules")
    return replace(cfg, model=replace(cfg.model, hidden=cfg.model.hidden // k))


def train_somatic_run(cfg: Config, tcfg, run_dir: Path, progress: bool = True):
    """Train (or finish, or reuse) one arm of the somatic game (``somatic_train_step``).
    Returns (state, seconds spent now or None when reused)."""
    from ..targets import load_target
    from .somatic import compiled_somatic_train_step, init_somatic_state

    state = init_somatic_state(cfg, tcfg)
    path = run_dir / "somatic.msgpack"
    if _claim(run_dir, {"kind": "somatic", "train": cfg.to_dict(), "game": asdict(tcfg)}) and path.exists():
        state = ckpt.load_checkpoint(path, state)
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding, cfg.target_background))
    return _loop(state, compiled_somatic_train_step(cfg, tcfg), target, cfg.train_steps, cfg.checkpoint_every, path,
                 run_dir, progress, f"somatic {run_dir.parent.name}/{run_dir.name}", lambda m: m["loss"],
                 lambda m, l: f"loss={l[0]:.4g}")


# --------------------------------------------------------------------------- policing


@dataclass(frozen=True)
class PolicingConfig:
    """The policing assay. grow: steps from the K-clone seed (genomes 0) before planting;
    steps: after planting; every: record cadence; cheater_genes: alpha-gene values of the
    planted cheater (one assay each)."""

    grow: int = 48
    steps: int = 96
    every: int = 8
    cheater_genes: tuple[float, ...] = (0.03, 0.1)


def policing_eval(arms: dict, model_cfg, target, tcfg, pcfg: PolicingConfig, seeds: list[int], key) -> dict:
    """arms: {name: [state per seed]} (``SomaticTrainState``). For each arm and seed: the
    wild-type body (all genomes 0) and the body with the arm's trained genomes, grown
    ``grow`` steps from the K-clone seed -> shape losses (the cost) and living cells; then,
    in the body as trained, one cheater cell per ``cheater_genes`` value: a random living
    cell whose alpha gene rises that much above its own clone's (``plant_cheater_clones``).

    Returns {arm: {"loss_wild" [S], "loss_trained_genomes" [S], "alive_wild" [S],
    "alive_trained" [S], "genomes" [S, K, G], "cheater": {gene: {"share": [S, T], "harm":
    [S, T]}}}}.
    """
    from .experiments import plant_cheater_clones
    from .fitness import visible_mse
    from .somatic import SomaticConfig, founders, seed_clones, somatic_rollout

    g = target.shape[0]
    x0, ids0 = seed_clones(g, g, model_cfg, tcfg.clones, tcfg.radius)
    scfg = SomaticConfig(genome_size=tcfg.genome_size, mutation_rate=0.0, max_clones=tcfg.clones)
    keys = jnp.stack([jax.random.fold_in(key, s) for s in seeds])

    @jax.jit
    def grow(params, genomes, k):
        x, ids, _, _, _ = somatic_rollout(params, x0, ids0, founders(genomes, tcfg.clones), k, pcfg.grow, model_cfg,
                                          scfg, every=pcfg.grow)
        return x, ids, visible_mse(x, target)

    out = {}
    for arm, states in arms.items():
        params = jax.tree.map(lambda *a: jnp.stack(a), *[s.params for s in states])
        genomes = jnp.stack([s.genomes for s in states])
        zero = jnp.zeros_like(genomes)
        xw, idw, lw = jax.vmap(grow)(params, zero, keys)
        xt, idt, lt = jax.vmap(grow)(params, genomes, keys)
        cheat = {}
        for gene in pcfg.cheater_genes:
            # in the organism as trained (its own clones' genomes): a cell whose alpha gene
            # rises by ``gene`` above its own clone's
            cheat[str(gene)] = plant_cheater_clones(params, model_cfg, target, xt, idt, genomes, gene, seeds, key,
                                                    pcfg.steps, pcfg.grow, pcfg.every)
        out[arm] = {"loss_wild": np.asarray(lw), "loss_trained_genomes": np.asarray(lt), "genomes": np.asarray(genomes),
                    "cheater": cheat, "alive_wild": np.asarray(jnp.sum(xw[..., 3] > model_cfg.alive_threshold, (-2, -1))),
                    "alive_trained": np.asarray(jnp.sum(xt[..., 3] > model_cfg.alive_threshold, (-2, -1)))}
    return out


# --------------------------------------------------------------------------- the whole run


EXPERIMENTS = ("variants", "invasion", "credit", "spontaneous", "landscape", "policing")
# The default of the cpu preset: issue 16's somatic-evolution experiments (spontaneous
# cheaters, the published lizards as hosts, policing), within 15 minutes on 2 cores at 3
# seeds. The variants (selfish credit, fair lineages), the whole-rule invasion and the credit
# measure train 4 more organisms per seed (the lineage trainer alone takes minutes per seed):
# ask for them by name, or all with "all".
DEFAULT_EXPERIMENTS = ("spontaneous", "landscape", "policing")
SMOKE_EXPERIMENTS = ("spontaneous", "landscape")  # the smoke preset's default: one compile each
VARIANT_ARMS = ("cooperative", "selfish", "lineages", "baseline")


@dataclass(frozen=True)
class SelfishSettings:
    """Everything one ``scripts/selfish.py`` run does (hashable, validated on creation).

    preset: "cpu" or "smoke"; seeds; experiments: names from ``EXPERIMENTS``; hosts:
    published names or run folders used by the invasion, spontaneous and landscape
    experiments; comparison / experiment / policing / game: the settings of each part;
    policing_train_steps: training steps of each policing arm; credit_cells: cells
    sampled by the credit measure."""

    preset: str
    seeds: tuple
    experiments: tuple
    hosts: tuple
    comparison: object
    experiment: object
    policing: PolicingConfig
    game: object
    policing_train_steps: int
    credit_cells: int = 16

    def __post_init__(self):
        bad = sorted(set(self.experiments) - set(EXPERIMENTS))
        if bad:
            raise NCAError(f"unknown experiment(s) {', '.join(bad)}; choose from {', '.join(EXPERIMENTS)}")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise NCAError(f"seeds must be distinct, got {list(self.seeds)}")
        if not self.hosts and set(self.experiments) & {"invasion", "spontaneous", "landscape"}:
            raise NCAError("give at least one host for the invasion, spontaneous and landscape experiments")


def selfish_settings(preset: str = "cpu", seeds=(0, 1, 2), experiments=None, hosts=None,
                     train_steps: int | None = None, steps: int | None = None, mutation_rate: float | None = None,
                     mutation_size: float | None = None, genome_size: int | None = None) -> SelfishSettings:
    """A preset with the command line's overrides; every bad value is one NCAError here,
    before anything is computed. experiments: names from ``EXPERIMENTS`` or "all"; default
    ``DEFAULT_EXPERIMENTS`` for "cpu", ``SMOKE_EXPERIMENTS`` for "smoke"."""
    from .compare import comparison_preset
    from .experiments import ExperimentConfig
    from .somatic import SomaticConfig, SomaticTrainConfig

    over = {} if train_steps is None else {"train_steps": train_steps}
    ccfg = comparison_preset(preset, **over)
    mut = SomaticConfig(genome_size=4 if genome_size is None else genome_size,
                        mutation_rate=0.02 if mutation_rate is None else mutation_rate,
                        mutation_size=0.02 if mutation_size is None else mutation_size, max_clones=512)
    if preset == "smoke":
        ecfg = ExperimentConfig(steps=steps or 40, every=10, mutation=mut, plant_at=20, window=20,
                                sizes=(0.0, 0.1), directions=1)
        pcfg = PolicingConfig(grow=8, steps=8, every=8, cheater_genes=(0.1,))
        game = SomaticTrainConfig(clones=2, genome_size=mut.genome_size)
        p_steps = train_steps or 2
        default_hosts = ("distill:lizard/persistent",)
        cells = 2
    else:
        ecfg = ExperimentConfig(steps=steps or 400, every=10, mutation=mut)
        pcfg = PolicingConfig()
        game = SomaticTrainConfig(clones=4, genome_size=mut.genome_size)
        p_steps = train_steps or 200
        default_hosts = ("distill:lizard/regenerating", "distill:lizard/persistent")
        cells = 16
    if experiments is None:
        experiments = SMOKE_EXPERIMENTS if preset == "smoke" else DEFAULT_EXPERIMENTS
    elif "all" in experiments:
        experiments = EXPERIMENTS
    return SelfishSettings(preset, tuple(seeds), tuple(experiments), tuple(hosts or default_hosts), ccfg, ecfg, pcfg,
                           game, p_steps, cells)


def load_hosts(settings: SelfishSettings, log=None) -> dict:
    """Load every host and check it grows a body (``host_grow`` steps from its seed):
    a host that does not grow is one NCAError, before any training starts."""
    from .. import api
    from ..model import jit_rollout, seed_state

    need = set(settings.experiments) & {"invasion", "spontaneous", "landscape"}
    hosts = {}
    for name in settings.hosts if need else ():
        m = api.load_model(name)
        g = m.grid_size
        x, _ = jit_rollout(m.params, seed_state(g, g, m.model_config), jax.random.key(0),
                           settings.comparison.host_grow, m.model_config, record=())
        alive = int(jnp.sum(x[..., 3] > m.model_config.alive_threshold))
        if alive < 9 or not bool(jnp.all(jnp.isfinite(x))):
            raise NCAError(f"host {name} does not grow (alive cells after {settings.comparison.host_grow} steps: "
                           f"{alive}); give a model that grows a body")
        hosts[name] = m
    return hosts


def _log_default(msg):
    import sys

    print(msg, file=sys.stderr, flush=True)


def train_core_run(cfg: Config, run_dir: Path, progress: bool, log) -> float | None:
    """Train (or finish, or reuse) a core run folder with ``nca.train.train``; seconds or None."""
    from ..config import load_config
    from ..train import train

    t = time.perf_counter()
    if (run_dir / ckpt.CONFIG).exists():
        if load_config(run_dir / ckpt.CONFIG) != cfg:
            raise NCAError(f"{run_dir} holds a run with another config; use a new --out (nothing was changed)")
        rows = (run_dir / ckpt.METRICS).read_text().split() if (run_dir / ckpt.METRICS).exists() else []
        if rows and rows[-1].split(",")[0] == str(cfg.train_steps):
            return None
        train(cfg, run_dir, resume=True, progress=progress, log=log)
    else:
        train(cfg, run_dir, progress=progress, log=log)
    return time.perf_counter() - t


@contextmanager
def _timed(timings: dict, key: str):
    """Record the seconds the block takes as ``timings[key]`` (0.1 s resolution)."""
    t = time.perf_counter()
    yield
    timings[key] = _seconds(time.perf_counter() - t)


def _seconds(secs: float | None) -> float | None:
    """Seconds at 0.1 s resolution for the report (None: a finished run was re-used)."""
    return None if secs is None else round(secs, 1)


def run_all(settings: SelfishSettings, out: Path, progress: bool = True, log=None) -> dict:
    """Run the selected experiments; returns numpy results for ``analysis.reports.selfish``.

    Layout of ``out``: cooperative/seedN, selfish/seedN (core run folders), lineages/seedN,
    baseline/seedN, adversary/seedN, policing/{selfish,control}/seedN. The stages, in order:
    ``_train_variants``, ``_evaluate_variants``, ``_credit``, ``_invasion``, ``_somatic``
    (spontaneous cheaters and the landscape, per host), ``_policing``.
    """
    from ..targets import load_target

    log = log or _log_default
    hosts = load_hosts(settings, log)
    res = {"timings": {"train_s": {}}, "variants": {}, "invasion": {}, "credit": {}, "spontaneous": {},
           "landscape": {}, "policing": {}}
    t_start = time.perf_counter()
    tcfg = settings.comparison.train
    target = jnp.asarray(load_target(tcfg.target, tcfg.target_size, tcfg.target_padding, tcfg.target_background))
    want_variants = "variants" in settings.experiments
    trained = _train_variants(settings, out, progress, log, res, want_variants)
    if want_variants:
        _evaluate_variants(settings, log, res, trained, target)
    if "credit" in settings.experiments:
        _credit(settings, log, res, trained, target)
    if "invasion" in settings.experiments:
        _invasion(settings, out, progress, log, res, trained, hosts)
    _somatic(settings, log, res, hosts)
    if "policing" in settings.experiments:
        _policing(settings, out, progress, log, res, target)
    res["timings"]["total_s"] = _seconds(time.perf_counter() - t_start)
    return res


def _train_variants(settings: SelfishSettings, out: Path, progress: bool, log, res: dict, want_variants: bool) -> dict:
    """Train the variant arms (all with "variants"; else the selfish one when credit or
    invasion needs it) -> {(arm, seed): (params stacked [1, ...], model config)}."""
    from dataclasses import replace

    from .. import api
    from .lineages import stack_params
    from .training import selfish_config

    ccfg = settings.comparison
    tcfg = ccfg.train
    seeds = list(settings.seeds)
    trained = {}
    arms = [a for a in VARIANT_ARMS if want_variants or (a == "selfish" and
                                                          {"credit", "invasion"} & set(settings.experiments))]
    for arm in arms:
        for s in seeds:
            cfg = replace(tcfg, seed=s)
            run_dir = out / arm / f"seed{s}"
            log(f"[{arm} seed {s}] training {cfg.train_steps} steps on {cfg.grid_size}x{cfg.grid_size} -> {run_dir}")
            if arm in ("lineages", "baseline"):
                state, secs = train_lineage_run(cfg, ccfg.lineages, ccfg.seed_radius, run_dir, progress, arm)
                trained[arm, s] = (state.params, cfg.model if arm == "baseline" else fair_lineage_config(cfg, ccfg.lineages).model)
            else:
                cfg = selfish_config(cfg) if arm == "selfish" else cfg
                secs = train_core_run(cfg, run_dir, progress, log)
                m = api.load_model(run_dir)
                trained[arm, s] = (stack_params([m.params]), m.model_config)
            res["timings"]["train_s"].setdefault(arm, {})[s] = _seconds(secs)
    return trained


def _evaluate_variants(settings: SelfishSettings, log, res: dict, trained: dict, target) -> None:
    """Persistence, regeneration and fitness maps of every trained variant (res["variants"])."""
    from dataclasses import replace

    from . import compare as cmp

    ccfg = settings.comparison
    tcfg = ccfg.train
    with _timed(res["timings"], "evaluate_s"):
        for (arm, s), (params, mcfg) in trained.items():
            log(f"[{arm} seed {s}] evaluating ({ccfg.persist_steps} steps, regeneration, fitness maps)")
            if arm in ("lineages", "baseline"):
                from .training import training_seed

                x0, ids0 = training_seed(replace(tcfg, model=mcfg), ccfg.lineages if arm == "lineages" else 1,
                                         ccfg.seed_radius, ccfg.lineages)
            else:
                x0, ids0 = cmp.start_state("cooperative", ccfg, mcfg)
            key = jax.random.fold_in(jax.random.key(s), EVAL_STREAM)
            res["variants"].setdefault(arm, {})[s] = cmp.evaluate_variant(params, mcfg, x0, ids0, target, ccfg, key)


def _credit(settings: SelfishSettings, log, res: dict, trained: dict, target) -> None:
    """Selfish vs private-copy gradients of the selfish organism's cells (res["credit"])."""
    from . import compare as cmp
    from .credit import private_gap

    ccfg = settings.comparison
    seeds = list(settings.seeds)
    with _timed(res["timings"], "credit_s"):
        for s in seeds:
            params, mcfg = trained["selfish", s]
            p = jax.tree.map(lambda l: l[0], params)
            x0, _ = cmp.start_state("cooperative", ccfg, mcfg)
            log(f"[credit seed {s}] selfish vs private-copy gradients of {settings.credit_cells} cells")
            key = jax.random.fold_in(jax.random.key(s), CREDIT_STREAM)
            res["credit"][s] = private_gap(p, mcfg, x0, target, key, ccfg.eval_at, settings.credit_cells)


def _invasion(settings: SelfishSettings, out: Path, progress: bool, log, res: dict, trained: dict, hosts: dict) -> None:
    """Whole mutant rules (the host, perturbed, selfish, a trained adversary) planted in the
    first host (res["invasion"])."""
    from dataclasses import replace

    from . import compare as cmp
    from .invasion import perturb_params
    from .lineages import pad_hidden

    ccfg = settings.comparison
    seeds = list(settings.seeds)
    with _timed(res["timings"], "invasion_s"):
        host = hosts[settings.hosts[0]]
        htarget = jnp.asarray(host.target_image())
        hcfg = host.model_config
        res["timings"]["adversary_s"] = {}
        for s in seeds:
            key = jax.random.fold_in(jax.random.key(s), INVASION_STREAM)
            grown = cmp.host_states(host.params, hcfg, host.grid_size, ccfg.host_grow, key, n=1)[0]
            mutants = {"host": host.params,
                       "perturbed": perturb_params(host.params, jax.random.fold_in(key, PERTURB_STREAM),
                                                   ccfg.perturb_scale)}
            sp, smcfg = trained["selfish", s]
            if smcfg.channels == hcfg.channels and smcfg.hidden <= hcfg.hidden:
                mutants["selfish"] = pad_hidden(jax.tree.map(lambda l: l[0], sp), hcfg.hidden)
            acfg = replace(ccfg.adversary, seed=s)
            states = cmp.host_states(host.params, hcfg, host.grid_size, ccfg.host_grow, key, n=4)
            log(f"[adversary seed {s}] training {acfg.steps} steps against {host.name}")
            mutants["adversary"], secs = train_adversary_run(acfg, host, states, htarget,
                                                             out / "adversary" / f"seed{s}" / "adversary.msgpack",
                                                             progress)
            res["timings"]["adversary_s"][s] = _seconds(secs)
            for name, mp in mutants.items():
                log(f"[invasion seed {s}] {name} mutant, {ccfg.invasion_steps} steps")
                res["invasion"].setdefault(name, {})[s] = cmp.run_invasion(host.params, mp, hcfg, grown, htarget,
                                                                           ccfg, key)


def _somatic(settings: SelfishSettings, log, res: dict, hosts: dict) -> None:
    """Spontaneous cheaters and the mutant-invasion landscape in each host
    (res["spontaneous"], res["landscape"])."""
    from .experiments import landscape, spontaneous

    seeds = list(settings.seeds)
    for name, host in hosts.items():
        htarget = jnp.asarray(host.target_image())
        if "spontaneous" in settings.experiments:
            with _timed(res["timings"], f"spontaneous_s {name}"):
                log(f"[spontaneous {name}] {settings.experiment.steps} steps from the seed, seeds {seeds}")
                res["spontaneous"][name] = spontaneous(host.params, host.model_config, htarget, settings.experiment,
                                                       seeds, jax.random.key(SPONTANEOUS_STREAM))
        if "landscape" in settings.experiments:
            with _timed(res["timings"], f"landscape_s {name}"):
                log(f"[landscape {name}] sizes {list(settings.experiment.sizes)}, seeds {seeds}")
                res["landscape"][name] = landscape(host.params, host.model_config, htarget, settings.experiment, seeds,
                                                   jax.random.key(LANDSCAPE_STREAM))



def _policing(settings: SelfishSettings, out: Path, progress: bool, log, res: dict, target) -> None:
    """Organisms trained with vs without selfish clones, then the cheater assay (res["policing"])."""
    from dataclasses import replace

    tcfg = settings.comparison.train
    seeds = list(settings.seeds)
    with _timed(res["timings"], "policing_s"):
        pstates = {}
        for arm, selfish in (("control", False), ("selfish", True)):
            for s in seeds:
                cfg = replace(tcfg, train_steps=settings.policing_train_steps, seed=s)
                run_dir = out / "policing" / arm / f"seed{s}"
                log(f"[policing {arm} seed {s}] training {cfg.train_steps} steps -> {run_dir}")
                st, secs = train_somatic_run(cfg, replace(settings.game, selfish=selfish), run_dir, progress)
                pstates.setdefault(arm, []).append(st)
                res["timings"]["train_s"].setdefault(f"policing {arm}", {})[s] = _seconds(secs)
        log("[policing] planting cheaters")
        res["policing"] = policing_eval(pstates, tcfg.model, target, settings.game, settings.policing, seeds,
                                        jax.random.key(POLICING_STREAM))


# Named PRNG streams of the pipeline (folded into jax.random.key(seed) or used as keys).
EVAL_STREAM = 0x6576  # "ev": evaluation rollouts of the variants
CREDIT_STREAM = 0x6372  # "cr"
INVASION_STREAM = 0x696E  # "in"
PERTURB_STREAM = 0x7065  # "pe"
SPONTANEOUS_STREAM = 0x7370  # "sp"
LANDSCAPE_STREAM = 0x6C61  # "la"
POLICING_STREAM = 0x706F  # "po"


def train_adversary_run(acfg, host, states, target, path: Path, progress: bool):
    """Train (or load) the adversary mutant against the frozen host; (params, seconds)."""
    from functools import partial

    from .training import adversary_train_step, init_adversary_state

    state = init_adversary_state(acfg, host.params)
    if path.exists():
        return ckpt.load_checkpoint(path, {"params": state.params})["params"], None
    t = time.perf_counter()
    step = jax.jit(partial(adversary_train_step, acfg, host.model_config, host.params, states, target))
    box = {"state": state}

    def one():
        box["state"], loss = step(box["state"])
        return loss

    result = drive(LoopSpec(start=0, end=acfg.steps, total=acfg.steps, checkpoint_every=acfg.steps,
                            where=path.parent, progress=progress, desc=f"adversary {path.parent.name}"),
                   step=one, record=lambda s, l, elapsed: f"territory={-l[0]:.4g}",
                   save=lambda s, elapsed: None, params_finite=lambda: all_finite(box["state"].params))
    if result.interrupted:  # an adversary is saved only when complete (it is reused as finished)
        raise KeyboardInterrupt
    ckpt.save_checkpoint(path, {"params": box["state"].params})
    return box["state"].params, time.perf_counter() - t
