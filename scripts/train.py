"""Train a Growing NCA (the article's growing / persistent / regenerating experiments).

    python scripts/train.py --target lizard --experiment regenerating --preset quick --out runs/lizard
    python scripts/train.py --resume runs/lizard          # continue a stopped run
    python scripts/train.py --preset quick --lr 1e-3 --hidden 64 --out runs/x   # any config field
    python scripts/train.py --preset quick --seeds 4 --out runs/lizard4   # 4 seeds at once

With --seeds K, K models (seeds --seed .. --seed+K-1) train at once (vmapped) into
OUT/seed_<s>/, each a normal run directory (continue one alone with --resume OUT/seed_<s>).
On a CPU the cores are exposed as JAX devices and each trains its share of the seeds,
side by side, in one compiled program (nca.multiseed; $JAX_NUM_CPU_DEVICES=1 keeps all
the seeds on one device).

The run directory gets config.json, checkpoint.msgpack (atomic, every --checkpoint-every
steps and on Ctrl-C), metrics.csv, preview.png ([target | grown from the seed]) and
checkpoints/step_*.msgpack (params at log-spaced steps; --keep-checkpoints none: off).
"""

import argparse
from pathlib import Path

from nca.cli import run_cli
from nca.config import EXPERIMENTS, PRESETS, add_config_args, overrides_from_args, preset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default: quick)")
    ap.add_argument("--out", type=Path, help="run directory to create")
    ap.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--seeds", type=int, default=1, metavar="K",
                    help="train K seeds at once (vmapped) into OUT/seed_<s>/ (default: 1, a plain run)")
    add_config_args(ap)
    ap.set_defaults(cfg_experiment=None)
    a = ap.parse_args()
    if a.seeds > 1 and not a.resume:  # before anything starts JAX (nca.multiseed)
        from nca.parallel import use_cpu_cores

        use_cpu_cores()
    from nca.errors import NCAError
    from nca.train import train

    overrides = overrides_from_args(a)
    if a.seeds < 1:
        raise NCAError(f"--seeds must be >= 1, got {a.seeds}")
    if a.resume:
        if a.seeds != 1:
            raise NCAError("--resume continues one run; resume a seed of a --seeds run with --resume OUT/seed_<s>")
        if set(overrides) - {"train_steps"}:
            raise NCAError("--resume continues a run with its saved config; only --train-steps may change")
        cfg = preset(a.preset, **overrides) if overrides else None
        train(cfg, a.resume, resume=True, progress=not a.no_progress)
        return 0
    if a.out is None:
        raise NCAError("give --out DIR for a new run (or --resume DIR to continue one)")
    if overrides.get("experiment", "regenerating") not in EXPERIMENTS:
        raise NCAError(f"unknown experiment {overrides['experiment']!r}; choose one of {', '.join(EXPERIMENTS)}")
    cfg = preset(a.preset, **overrides)
    seeds = f"seed {cfg.seed}" if a.seeds == 1 else f"seeds {cfg.seed}..{cfg.seed + a.seeds - 1}"
    print(f"training {cfg.experiment} {cfg.target!r} on a {cfg.grid_size}x{cfg.grid_size} grid, "
          f"{cfg.train_steps} steps, {seeds} -> {a.out}")
    if a.seeds > 1:
        from nca.multiseed import train_seeds

        train_seeds(cfg, a.out, a.seeds, progress=not a.no_progress)
    else:
        train(cfg, a.out, progress=not a.no_progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
