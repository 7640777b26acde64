"""Benchmark nca-lens on this machine, side by side with the peer implementations.

    python bench/run.py                                   # our numbers + plain-JAX peer
    python bench/run.py --torch-python /tmp/tvenv/bin/python --cax-python /tmp/cvenv/bin/python
    python bench/run.py --json                            # one JSON object on stdout
    python bench/run.py --only train,rollout --no-peers   # a subset, quickly

Measured (min over --reps timed calls after one warm-up; "useful" GFLOP/s count 17,248
FLOP per cell update forward and 3x that per cell update of a training step, as the
peers do, whether or not the FLOP are actually executed):

- train: the canonical Distill training step (batch 8, 72x72, exactly 96 CA steps,
  remat on) on a pool of grown lizards (the published ``distill:lizard/regenerating``
  parameters and states), with the fast path (the default on CPU) and the dense
  reference path; plus the fast path's worst case, a grid where every cell stays alive.
- cores: the canonical fast step on one device and with its batch split over the CPU cores
  exposed as devices (``nca.parallel.split_value_and_grad``, what ``scripts/train.py`` runs
  on a CPU), in a fresh process, timed in turns.
- compile: seconds to lower and compile the canonical training step.
- rollout: one 72x72 organism from the seed for 1000 steps; 64 organisms for 100 steps.
- rss: peak resident memory of a process running canonical training steps, and of
  ``scripts/train.py --preset distill`` (the user's command, checkpoints included).
- seeds: K=8 models trained in one program (``vmap`` of ``train_step`` over a stacked
  TrainState) against one, on the quick preset (fixed 63-step rollouts): on one device,
  and split over the CPU cores exposed as devices (``population_train_step``, what
  ``scripts/train.py --seeds 8`` runs), timed in turns.
- peers (subprocesses, from their own virtual environments): ../shared/peers scripts.
- distill (only with ``--only distill``): the article's whole training run, preset
  ``distill`` (8000 steps, or ``--distill-steps``), through ``nca.train.train`` with its
  checkpoints and metrics, wall clock -- the figure to take on a GPU.

Timings on a shared or busy machine are noisy; compare ratios from one run. Like
``scripts/train.py``, the bench restarts itself with glibc's huge pages where they help
(``nca.cli.restart_with_huge_pages``; the machine's ``glibc_tunables`` says whether), and
its children and the peers inherit the setting; ``NCA_HUGE_PAGES=0`` measures without.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's nca/, also when run as `python bench/run.py`
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nca.cli import restart_with_huge_pages, run_cli  # noqa: E402

if __name__ == "__main__":  # as scripts/train.py does, so that "ours" is what the user's command runs;
    restart_with_huge_pages()  # the children and the peers inherit it ($NCA_HUGE_PAGES=0: without)

MEASUREMENTS = ("train", "cores", "compile", "rollout", "rss", "seeds")
OPTIONAL = ("distill",)  # only when asked for with --only (the whole article's training run)
CANONICAL_STEPS = 96


# --------------------------------------------------------------------------- set-up


def canonical_config(**overrides):
    """The Distill training config with exactly 96 CA steps per training step."""
    from nca.config import preset

    return preset("distill", rollout_min=CANONICAL_STEPS, rollout_max=CANONICAL_STEPS + 1, **overrides)


def lizard():
    """(params, grown states [8, 72, 72, 16] at ages 125..1000, target [72, 72, 4])."""
    import jax
    import jax.numpy as jnp

    from nca.api import load_model
    from nca.model import rollout, seed_state

    m = load_model("distill:lizard/regenerating")
    params = {k: jnp.asarray(v) for k, v in m.params.items()}
    g = m.grid_size
    _, traj = jax.jit(partial(rollout, steps=1000, cfg=m.model_config, every=125, fast=True))(
        params, seed_state(g, g, m.model_config), jax.random.key(0))
    return params, traj.states, jnp.asarray(m.target_image())


def bench_state(cfg, params, states):
    """A TrainState whose params are ``params`` and whose pool repeats ``states``."""
    import jax
    import jax.numpy as jnp

    from nca.train import init_train_state, make_optimizer

    st = init_train_state(cfg)
    params = jax.tree.map(jnp.array, params)  # copies: the compiled step donates its state
    pool = jnp.tile(states, (cfg.pool_size // states.shape[0] + 1, 1, 1, 1))[: cfg.pool_size]
    return st._replace(params=params, opt_state=make_optimizer(cfg).init(params), pool=pool)


def interleaved(calls: dict, reps: int) -> dict:
    """Time several no-argument callables in turns (one call of each per round, after a
    warm-up round), so that a noisy machine slows them alike.
    -> {name: {"ms_min", "ms_median", "reps"}}."""
    import jax

    for c in calls.values():
        jax.block_until_ready(c())
    ts = {name: [] for name in calls}
    for _ in range(reps):
        for name, c in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(c())
            ts[name].append(time.perf_counter() - t0)
    return {name: {"ms_min": round(min(v) * 1e3, 1), "ms_median": round(statistics.median(v) * 1e3, 1), "reps": reps}
            for name, v in ts.items()}


def time_calls(fn, reps: int) -> dict:
    """Call ``fn`` once to warm up, then ``reps`` timed calls. -> ms_min, ms_median, reps."""
    return interleaved({"call": fn}, reps)["call"]


def stateful(step_fn, state, target):
    """A no-argument callable that advances ``state`` one training step per call."""
    box = [state]

    def call():
        box[0], loss = step_fn(box[0], target)
        return loss

    return call


def with_gflops(r: dict, cell_updates: int, flop_per_cell: int) -> dict:
    return {**r, "gflops_useful": round(cell_updates * flop_per_cell / (r["ms_min"] / 1e3) / 1e9, 1)}


# --------------------------------------------------------------------------- measurements


def measure_train(reps: int) -> dict:
    from nca.model import ModelConfig, alive_mask
    from nca.train import compiled_train_step

    cfg = canonical_config()
    params, states, target = lizard()
    cells = cfg.batch_size * cfg.grid_size**2 * CANONICAL_STEPS
    flop = 3 * ModelConfig().flop_per_cell_update
    out = {"alive_fraction_of_pool": round(float(alive_mask(states).mean()), 3)}
    for name, fast in (("train_step", True), ("train_step_dense", False)):
        call = stateful(compiled_train_step(cfg, fast=fast), bench_state(cfg, params, states), target)
        out[name] = with_gflops(time_calls(call, reps), cells, flop)
    # Worst case for the fast path: alpha pushed up everywhere, so every cell stays alive
    # and only the fire mask (half the cells) is skipped.
    full = {**params, "b2": params["b2"].at[3].add(1.0)}
    full_states = states.at[..., 3].set(1.0)
    call = stateful(compiled_train_step(cfg, fast=True), bench_state(cfg, full, full_states), target)
    out["train_step_full_grid"] = with_gflops(time_calls(call, reps), cells, flop)
    return out


def measure_compile() -> dict:
    import jax
    import jax.numpy as jnp

    from nca.train import init_train_state, train_step

    cfg = canonical_config()
    st = init_train_state(cfg)
    target = jnp.zeros((cfg.grid_size, cfg.grid_size, 4))
    t0 = time.perf_counter()
    jax.jit(partial(train_step, cfg, fast=True)).lower(st, target).compile()
    return {"compile_s": round(time.perf_counter() - t0, 2)}


def measure_rollout(reps: int) -> dict:
    import jax

    from nca.api import load_model
    from nca.model import rollout, seed_state

    m = load_model("distill:lizard/regenerating")
    g, mc = m.grid_size, m.model_config
    flop = mc.flop_per_cell_update
    out = {}
    for name, batch, steps in (("rollout_1000", None, 1000), ("batch64_100", 64, 100)):
        x0 = seed_state(g, g, mc, batch=batch) + 0.0
        cells = (batch or 1) * g * g * steps
        for suffix, fast in (("", True), ("_dense", False)):
            f = jax.jit(partial(rollout, steps=steps, cfg=mc, record=(), fast=fast))
            r = time_calls(lambda: f(m.params, x0, jax.random.key(1))[0], reps)
            out[name + suffix] = with_gflops(r, cells, flop)
    return out


def measure_distill(steps: int) -> dict:
    """The article's training run (preset ``distill``, ``steps`` steps) end to end with
    ``nca.train.train`` -- compilation, checkpoints, metrics and preview included."""
    import csv
    import tempfile

    import jax

    from nca.config import preset
    from nca.train import train

    cfg = preset("distill", train_steps=steps)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        train(cfg, Path(d) / "run", progress=False, log=lambda *_: None)
        wall = time.perf_counter() - t0
        rows = list(csv.DictReader(open(Path(d) / "run" / "metrics.csv")))
    return {"distill_train": {"steps": steps, "wall_s": round(wall, 1), "steps_per_s": round(steps / wall, 2),
                              "final_loss": float(rows[-1]["loss"]), "device": str(jax.devices()[0].device_kind)}}


def _child_json(flag: str, n: int) -> dict:
    """Run this file as ``python run.py FLAG N`` in a fresh process; -> the JSON object
    that its last line of output holds."""
    proc = subprocess.run([sys.executable, __file__, flag, str(n)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{flag} child failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_rss(steps: int = 3) -> dict:
    """Peak RSS of canonical training: a fresh process doing canonical training steps (fast
    path) on the benchmark pool, and the user's command itself, ``scripts/train.py
    --preset distill`` for ``steps`` steps (set-up, compilation, checkpoints, preview)."""
    import tempfile

    out = _child_json("--rss-child", steps)
    with tempfile.TemporaryDirectory() as d:
        args = ["--preset", "distill", "--train-steps", str(steps), "--out", str(Path(d) / "run"), "--quiet"]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", _SCRIPT_HWM, str(ROOT / "scripts" / "train.py"), *args],
                              capture_output=True, text=True, env=env)
        marks = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("NCA_BENCH_VMHWM_KIB ")]
        if proc.returncode or not marks:
            raise RuntimeError(f"scripts/train.py {' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    out["peak_rss_train_script_mb"] = round(int(marks[-1]) / 1024, 1)
    return out


# Runs a script as ``python script args`` would, then reports the process's peak resident
# memory (Linux VmHWM, which starts afresh at exec -- unlike the child's ru_maxrss, which
# also counts the moment it was forked from this large process).
_SCRIPT_HWM = """
import atexit, runpy, sys
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("NCA_BENCH_VMHWM_KIB " + line.split()[1] + "\\n")
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _vm_hwm_kib() -> int | None:
    """This process's resident-memory high-water mark (Linux /proc), KiB; None elsewhere."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_child(steps: int) -> None:
    """Peak RSS of canonical training: whole process, and the training steps alone.

    The set-up builds the benchmark pool next to the seed pool ``init_train_state`` makes
    (2 x 340 MB for a moment) -- a bench artefact a real run does not have. So the
    high-water mark is reset after set-up (Linux ``clear_refs``; it restarts from the
    memory then resident: pool, parameters, JAX) and read again after the steps.
    """
    import jax

    from nca.train import compiled_train_step

    cfg = canonical_config()
    params, states, target = lizard()
    call = stateful(compiled_train_step(cfg), bench_state(cfg, params, states), target)
    del params, states
    setup = _vm_hwm_kib()  # VmHWM starts at exec; ru_maxrss would also count the fork
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    for _ in range(steps):
        jax.block_until_ready(call())
    train = _vm_hwm_kib() if reset else None
    if setup is None or train is None:  # no /proc: the whole process, as the OS counts it
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        out = {"peak_rss_process_mb": round(kib / 1024, 1), "peak_rss_mb": round(kib / 1024, 1)}
    else:
        out = {"peak_rss_process_mb": round(max(setup, train) / 1024, 1), "peak_rss_mb": round(train / 1024, 1)}
    print(json.dumps({**out, "train_steps_run": steps}))


def measure_cores(reps: int) -> dict:
    """The canonical fast step on one device and split over the cores, in a fresh process."""
    return _child_json("--cores-child", reps)


def cores_child(reps: int) -> None:
    """The canonical fast step (``bench_state``'s pool of grown lizards) on one device and
    with its batch split over the CPU cores exposed as devices (``sharded_train_step(fast=True)``,
    what ``nca.train.train`` runs there), timed in turns. Prints one JSON line."""
    from nca.parallel import use_cpu_cores

    use_cpu_cores()  # before anything starts JAX
    import jax

    from nca.model import ModelConfig
    from nca.parallel import shard_train_state, sharded_train_step
    from nca.train import compiled_train_step, cores_mesh

    cfg = canonical_config()
    params, states, target = lizard()
    mesh = cores_mesh(cfg)
    out = {"cpu_devices": len(jax.devices()), "split_devices": 0 if mesh is None else int(mesh.devices.size)}
    calls = {"train_step_one_device": stateful(compiled_train_step(cfg, fast=True), bench_state(cfg, params, states), target)}
    if mesh is not None:
        calls["train_step_cores"] = stateful(sharded_train_step(cfg, mesh, fast=True),
                                             shard_train_state(cfg, bench_state(cfg, params, states), mesh), target)
    cells = cfg.batch_size * cfg.grid_size**2 * CANONICAL_STEPS
    for name, r in interleaved(calls, reps).items():
        out[name] = with_gflops(r, cells, 3 * ModelConfig().flop_per_cell_update)
    if mesh is not None:
        for stat in ("min", "median"):
            out[f"train_step_one_device_over_cores_{stat}"] = round(
                out["train_step_one_device"][f"ms_{stat}"] / out["train_step_cores"][f"ms_{stat}"], 2)
    print(json.dumps(out))


def measure_seeds(reps: int) -> dict:
    """K=8 seeds against one, in a fresh process (it exposes the CPU cores as devices)."""
    return _child_json("--seeds-child", reps)


def seeds_child(reps: int, k: int = 8) -> None:
    """K seeds vs one on the quick preset (fixed 63-step rollouts), timed in turns:
    ``vmap(train_step)`` over K stacked TrainStates on one device; the same program on
    the K seeds split over the CPU cores exposed as devices (``population_train_step``); and
    one seed. Fast and dense paths. Prints one JSON line."""
    from nca.parallel import use_cpu_cores

    use_cpu_cores()  # before anything starts JAX
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P

    from nca.api import load_model
    from nca.config import preset
    from nca.parallel import make_mesh, pad_population, population_train_step, shard_population, stack_states
    from nca.train import init_train_state, make_optimizer, train_step

    cfg = preset("quick", rollout_min=63, rollout_max=64)
    m = load_model("distill:lizard/regenerating")
    g = cfg.grid_size
    target = jnp.asarray(m.target_image())[12:12 + g, 12:12 + g]  # central crop: same shape
    devices = jax.devices()

    def state(seed):
        st = init_train_state(preset("quick", rollout_min=63, rollout_max=64, seed=seed))
        noise = jax.random.normal(jax.random.key(seed), m.params["w1"].shape) * 0.01
        params = {**{n: jnp.array(v) for n, v in m.params.items()}, "w1": m.params["w1"] + noise}  # copies: donated
        return st._replace(params=params, opt_state=make_optimizer(cfg).init(params))

    out = {"cpu_devices": len(devices)}
    for suffix, fast in (("", True), ("_dense", False)):
        # State donated, as in nca.train.compiled_train_step / nca.parallel.population_train_step.
        f1 = jax.jit(partial(train_step, cfg, fast=fast), donate_argnums=(0,))
        fk = jax.jit(jax.vmap(partial(train_step, cfg, fast=fast), in_axes=(0, None)), donate_argnums=(0,))
        calls = {f"seeds1{suffix}": stateful(f1, state(0), target),
                 f"seeds{k}{suffix}": stateful(fk, stack_states([state(s) for s in range(k)]), target)}
        if fast and len(devices) > 1:
            mesh = make_mesh(devices)
            on_mesh = shard_population(pad_population(stack_states([state(s) for s in range(k)]), len(devices)), mesh)
            calls[f"seeds{k}_cores"] = stateful(population_train_step(cfg, mesh), on_mesh,
                                                jax.device_put(target, NamedSharding(mesh, P())))
        r = interleaved(calls, reps)
        out.update(r)
        for name in r:
            if name != f"seeds1{suffix}":
                out[f"{name}_over_1"] = round(r[name]["ms_min"] / r[f"seeds1{suffix}"]["ms_min"], 2)
                out[f"{name}_over_1_median"] = round(r[name]["ms_median"] / r[f"seeds1{suffix}"]["ms_median"], 2)
    print(json.dumps(out))


# --------------------------------------------------------------------------- report


def machine() -> dict:
    import jax

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": len(jax.devices()), "python": platform.python_version(),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}


def table(res: dict) -> str:
    rows = [("measurement", "ms (min)", "useful GFLOP/s", "note")]

    def add(label, key, note=""):
        r = res.get(key)
        if r:
            rows.append((label, f"{r['ms_min']:,.0f}", f"{r.get('gflops_useful', ''):}", note))

    add("train step, fast path (default on CPU)", "train_step", f"pool alive {res.get('alive_fraction_of_pool', '?')}")
    add("train step, dense reference path", "train_step_dense")
    add("train step, fast path, all cells alive", "train_step_full_grid", "worst case")
    add("train step, fast path, one device (fresh process)", "train_step_one_device")
    add("train step, fast path, batch split over the cores", "train_step_cores", f"{res.get('split_devices', '?')} CPU devices")
    add("rollout 1 x 1000 steps, fast", "rollout_1000")
    add("rollout 1 x 1000 steps, dense", "rollout_1000_dense")
    add("rollout 64 x 100 steps, fast", "batch64_100")
    add("rollout 64 x 100 steps, dense", "batch64_100_dense")
    add("quick preset, 1 seed", "seeds1")
    add("quick preset, 8 seeds, one vmapped program", "seeds8")
    add("quick preset, 8 seeds, one program over the cores", "seeds8_cores", f"{res.get('cpu_devices', '?')} CPU devices")
    for name, p in res.get("peers", {}).items():
        for what, key in (("train step", "train"), ("rollout 1 x 1000", "rollout_1000"), ("rollout 64 x 100", "batch64")):
            r = p.get(key)
            if r:
                rows.append((f"{p['label']}: {what}", f"{r['ms_min']:,.0f}", f"{r.get('gflops_useful', r.get('gflops_min_time', '')):}", "peer"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    extra = []
    for k in ("compile_s", "peak_rss_mb", "peak_rss_train_script_mb"):
        if k in res:
            extra.append(f"{k} = {res[k]}")
    if "distill_train" in res:
        d = res["distill_train"]
        extra.append(f"distill training: {d['steps']} steps in {d['wall_s']} s on {d['device']} "
                     f"({d['steps_per_s']} steps/s, final loss {d['final_loss']:.4g})")
    for k in sorted(res):
        if k.startswith("ratio_") or (k.startswith("seeds8") and "_over_1" in k) or "_over_cores" in k:
            extra.append(f"{k} = {res[k]}")
    return "\n".join(lines + [""] + extra)


def ratios(res: dict) -> dict:
    out = {}
    # (our figure, the peer's figure it is compared with)
    ours = {"train": ("train_step", "train"), "train_cores": ("train_step_cores", "train"),
            "rollout_1000": ("rollout_1000", "rollout_1000"), "batch64": ("batch64_100", "batch64")}
    for name, p in res.get("peers", {}).items():
        for label, (key, peer_key) in ours.items():
            if res.get(key) and p.get(peer_key):
                out[f"ratio_{label}_{name}_over_ours"] = round(p[peer_key]["ms_min"] / res[key]["ms_min"], 2)
    if res.get("train_step") and res.get("train_step_dense"):
        out["ratio_train_dense_over_fast"] = round(res["train_step_dense"]["ms_min"] / res["train_step"]["ms_min"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="timed calls per measurement (min is reported)")
    ap.add_argument("--only", default=",".join(MEASUREMENTS),
                    help=f"comma list of {', '.join(MEASUREMENTS + OPTIONAL)} (default: all but {', '.join(OPTIONAL)})")
    ap.add_argument("--distill-steps", type=int, default=8000, help="training steps of --only distill (default 8000)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--save", type=Path, help="also write the JSON object to this file")
    ap.add_argument("--no-peers", action="store_true", help="skip the peer implementations")
    ap.add_argument("--peers-dir", type=Path, default=None, help="folder of the peer scripts (default ../shared/peers)")
    ap.add_argument("--torch-python", help="python of a venv with torch (or $NCA_BENCH_TORCH_PYTHON)")
    ap.add_argument("--cax-python", help="python of a venv with cax (or $NCA_BENCH_CAX_PYTHON); ~2 min")
    ap.add_argument("--peer-timeout", type=float, default=900, help="seconds per peer before giving up")
    a = ap.parse_args()

    from tqdm.auto import tqdm

    from nca.errors import NCAError
    from peers import DEFAULT_PEERS_DIR, PEERS, peer_python, run_peer

    only = [s for s in a.only.split(",") if s]
    bad = set(only) - set(MEASUREMENTS + OPTIONAL)
    if bad:
        raise NCAError(f"unknown measurement(s) {sorted(bad)}; choose from {', '.join(MEASUREMENTS + OPTIONAL)}")
    if a.distill_steps < 1:
        raise NCAError("--distill-steps must be >= 1")
    if a.reps < 1:
        raise NCAError("--reps must be >= 1")
    peers_dir = a.peers_dir or Path(os.environ.get("NCA_BENCH_PEERS_DIR", DEFAULT_PEERS_DIR))
    if a.peers_dir and not a.peers_dir.is_dir():
        raise NCAError(f"--peers-dir {a.peers_dir} is not a folder")

    res: dict = {"machine": machine(), "reps": a.reps}
    jobs = [m for m in MEASUREMENTS + OPTIONAL if m in only]
    peer_jobs, skipped = [], {}
    if a.no_peers:
        skipped = {n: "--no-peers" for n in PEERS}
    elif not peers_dir.is_dir():
        skipped = {n: f"no peer scripts at {peers_dir} (give --peers-dir or $NCA_BENCH_PEERS_DIR)" for n in PEERS}
    else:
        given = {"torch": a.torch_python, "cax": a.cax_python, "jax": None}
        for n in ("jax", "torch", "cax"):
            if py := peer_python(n, given[n]):
                peer_jobs.append((n, py))
            else:
                skipped[n] = f"no interpreter: give --{n}-python or $NCA_BENCH_{n.upper()}_PYTHON"
    for n, why in skipped.items():  # never skip silently: say which peer and why
        if why != "--no-peers":
            print(f"bench: skipping peer {PEERS[n].label}: {why}", file=sys.stderr)
    res["peers_skipped"] = skipped
    bar = tqdm(total=len(jobs) + len(peer_jobs), desc="bench", unit="part", file=sys.stderr)
    for m in jobs:
        bar.set_postfix_str(m)
        if m == "train":
            res.update(measure_train(a.reps))
        elif m == "cores":
            res.update(measure_cores(a.reps + 2))
        elif m == "compile":
            res.update(measure_compile())
        elif m == "rollout":
            res.update(measure_rollout(a.reps))
        elif m == "rss":
            res.update(measure_rss())
        elif m == "seeds":
            res.update(measure_seeds(a.reps + 2))
        elif m == "distill":
            res.update(measure_distill(a.distill_steps))
        bar.update(1)
    res["peers"] = {}
    for name, py in peer_jobs:
        bar.set_postfix_str(f"peer {name}")
        peer = PEERS[name]
        lines = run_peer(peer, py, peers_dir, a.reps, a.peer_timeout)
        if lines:
            res["peers"][name] = {"label": peer.label, "train": lines.get(peer.train),
                                  "rollout_1000": lines.get(peer.rollout_1000 or ""),
                                  "batch64": lines.get(peer.batch64 or "")}
        bar.update(1)
    bar.close()
    res.update(ratios(res))
    for key in ("train_step", "rollout_1000"):  # the headline figures, flat
        if key in res:
            res[f"{key}_ms"] = res[key]["ms_min"]
    if a.save:
        from nca.checkpoint import atomic_write_bytes

        atomic_write_bytes(a.save, (json.dumps(res, indent=1) + "\n").encode())
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        m = res["machine"]
        print(f"machine: {m['cpu']}, {m['cores']} cores, jax {m['jax']} ({m['backend']}, {m['devices']} device(s))"
              + (f", GLIBC_TUNABLES={m['glibc_tunables']}" if m["glibc_tunables"] else ""))
        print(table(res))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        rss_child(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--cores-child":
        cores_child(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--seeds-child":
        seeds_child(int(sys.argv[2]))
    else:
        run_cli(main)
