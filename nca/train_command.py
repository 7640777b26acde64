"""The pipeline behind ``scripts/train.py`` (``nca-train``): flags -> checked settings ->
``nca.train`` / ``nca.multiseed`` -> the resume command after Ctrl-C.

The script holds the parser; ``main(args)`` here checks the flags' combinations (one
``NCAError`` line each), starts the processes of a distributed job, trains and returns the
exit code. Config errors name the flags that set the fields (``--hidden``, not ``hidden``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .config import field_flag, fields_as_flags, overrides_from_args
from .errors import NCAError

HELP = """Train a Growing NCA (the article's growing / persistent / regenerating experiments).

    python scripts/train.py --target lizard --experiment regenerating --preset quick --out runs/lizard
    python scripts/train.py --resume runs/lizard          # continue a stopped run
    python scripts/train.py --resume runs/lizard --train-steps 3000   # ... and extend it
    python scripts/train.py --preset quick --lr 1e-3 --hidden 64 --out runs/x   # any config field
    python scripts/train.py --preset quick --seeds 0,1,2,3 --out runs/lizard4   # 4 seeds at once

With --seeds LIST, one model per seed trains at once (vmapped) into OUT/seed_<s>/, each a
normal run directory (continue one alone with --resume OUT/seed_<s>, or all of them with
--resume OUT), and OUT/summary.csv lists each seed's final loss. On a CPU the cores
are exposed as JAX devices and each trains its share of the seeds, side by side, in one
compiled program (nca.multiseed; $JAX_NUM_CPU_DEVICES=1 keeps all the seeds on one device).

Many processes, many machines (jax.distributed; docs/distributed.md): start the same command
once per process with --coordinator HOST:PORT --num-processes N --process-id I (or
--distributed on SLURM / Open MPI); each process trains every N-th seed, process 0 writes
OUT/summary.csv. OUT must be a folder every process can write (a shared file system):

    python scripts/train.py --preset quick --seeds 0,1,2,3 --out runs/l4 \
        --coordinator localhost:12345 --num-processes 2 --process-id 0   # and --process-id 1

The run directory gets config.json, checkpoint.msgpack (atomic, every --checkpoint-every
steps and on Ctrl-C), metrics.csv, preview.png ([target | grown from the seed]) and
checkpoints/step_*.msgpack (params kept along training: --keep-checkpoints log (default,
log-spaced steps), every:N, log+every:N or none).

--out must be a new or empty folder; a folder holding a run or any other files is refused,
as is a folder another run is writing to. --resume keeps the run's saved config: only
--train-steps may be given with it (to extend or shorten the run).
"""


def resume_command(folder: Path) -> str:
    """The exact command that continues the run in ``folder``, as this script was started
    (``python scripts/train.py`` or the installed ``nca-train``), quoted for a shell."""
    import shlex

    prog = sys.argv[0]
    head = [Path(sys.executable).name, prog] if prog.endswith(".py") else [Path(prog).name]
    return shlex.join([*head, "--resume", str(folder)])


def stopped_early(folders: list[Path], steps) -> int:
    """After Ctrl-C (the loop saved a checkpoint and returned): print the exact command
    that resumes each run, on stderr, and return the interrupted exit code (130)."""
    import numpy as np

    from .cli import EXIT_INTERRUPTED
    from .config import load_config

    left = [d for d, s in zip(folders, np.atleast_1d(np.asarray(steps)))
            if not (d / "config.json").is_file() or int(s) < load_config(d / "config.json").train_steps]
    for d in left:
        print(f"resume with: {resume_command(d)}", file=sys.stderr)
    return EXIT_INTERRUPTED if left else 0


def check_resume(a, overrides: dict) -> None:
    """--resume takes only --train-steps; a new run needs --out (one ``NCAError`` line)."""
    if a.resume is not None:
        extra = [flag for flag, given in (("--out", a.out is not None), ("--preset", a.preset is not None),
                                          ("--seeds", a.seeds is not None)) if given]
        extra += [field_flag(k) for k in sorted(overrides) if k != "train_steps"]
        if extra:
            raise NCAError(f"--resume continues a run with its saved config; only --train-steps may be given "
                           f"with it (got {', '.join(extra)})")
    elif a.out is None:
        raise NCAError("give --out DIR for a new run (or --resume DIR to continue one)")


def check_seeds(a, overrides: dict, population: bool, cluster) -> None:
    """Processes need several seeds; a folder of runs takes no flags; seeds do not repeat."""
    if cluster is not None and a.seeds is None and not population:
        raise NCAError("a single run cannot be split over processes; give --seeds LIST (or --resume a "
                       "folder of seeds) to train with several processes")
    if population and overrides:
        raise NCAError(f"--resume {a.resume} continues every run in it with its saved config; "
                       "--train-steps cannot be given for a folder of runs")
    if a.seeds is not None:
        if "seed" in overrides:
            raise NCAError("give --seed (one run) or --seeds (several), not both")
        if len(set(a.seeds)) != len(a.seeds):
            raise NCAError(f"--seeds repeat in {','.join(map(str, a.seeds))}; each seed trains once")


def _config(make):
    """The library names config fields; on the command line they are the flags."""
    try:
        return make()
    except NCAError as e:
        raise NCAError(fields_as_flags(str(e))) from None


def main(a) -> int:
    """Run ``scripts/train.py`` with its parsed flags ``a``; -> the exit code (130 after Ctrl-C)."""
    from .distributed import SINGLE, cluster_from_args, initialize
    from .multiseed import is_population_dir

    overrides = overrides_from_args(a)
    check_resume(a, overrides)
    population = a.resume is not None and is_population_dir(a.resume)
    cluster = cluster_from_args(a)
    check_seeds(a, overrides, population, cluster)
    # Before anything starts JAX: the cores as devices, over which many seeds split
    # (nca.multiseed) and so does one run's batch (nca.train.cores_mesh).
    from .parallel import use_cpu_cores

    use_cpu_cores()
    job = SINGLE if cluster is None else initialize(cluster)  # before JAX starts its backends
    try:
        return _train(a, overrides, population, job)
    except NCAError as e:  # the hint after the last "; " names config fields: give the flags
        head, sep, hint = str(e).rpartition("; ")
        if sep and hint.startswith(("lower ", "try ")):
            hint = fields_as_flags(hint)
        raise NCAError((head + sep + hint).replace("resume it", "resume it with --resume")) from None


def _train(a, overrides: dict, population: bool, job) -> int:
    from .config import load_config, preset
    from .train import train

    if population:
        from .multiseed import resume_runs

        resume_runs(a.resume, progress=not a.quiet, job=job)
        return 0
    if a.resume is not None:
        cfg = None
        if overrides and (a.resume / "config.json").is_file():  # only --train-steps: checked above
            saved = load_config(a.resume / "config.json")
            cfg = _config(lambda: saved.from_dict({**saved.to_dict(), **overrides}))
        state = train(cfg, a.resume, resume=True, progress=not a.quiet)
        return stopped_early([a.resume], state.step)
    cfg = _config(lambda: preset(a.preset or "quick", **overrides))
    seeds = f"seed {cfg.seed}" if a.seeds is None else f"seeds {','.join(map(str, a.seeds))}"
    if job.distributed:
        seeds += f" (process {job.index} of {job.count})"
    print(f"training {cfg.experiment} {cfg.target!r} on a {cfg.grid_size}x{cfg.grid_size} grid, "
          f"{cfg.train_steps} steps, {seeds} -> {a.out}")
    if a.seeds is None:
        state = train(cfg, a.out, progress=not a.quiet)
        return stopped_early([a.out], state.step)
    import numpy as np

    from .distributed import share
    from .multiseed import seed_dir, train_seeds

    states = train_seeds(cfg, a.out, a.seeds, progress=not a.quiet, job=job)
    steps = [s.step for s in (states if isinstance(states, list) else [states])]
    mine = [seed_dir(a.out, s) for s in share(list(a.seeds), job)]  # this process's seeds, in order
    return stopped_early(mine, np.concatenate([np.atleast_1d(np.asarray(s)) for s in steps]))
