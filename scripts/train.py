"""Train a Growing NCA: flags -> nca.train_command (checks, training, the resume command).
``python scripts/train.py --help`` lists the flags and examples (nca.train_command.HELP)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/train.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, add_quiet, nonneg_int_list, restart_with_huge_pages, run_cli  # noqa: E402

if __name__ == "__main__":  # before JAX starts: ~15-25 % less time per training step on a CPU
    restart_with_huge_pages()  # (nca.cli.huge_pages_environ; $NCA_HUGE_PAGES=0 keeps the process as started)

from nca.config import PRESETS, add_config_args  # noqa: E402
from nca.distributed import add_distributed_args  # noqa: E402
from nca.train_command import HELP  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=HELP, prog="train.py")
    # In the "required arguments" group: every new run needs it; --resume DIR names its own folder.
    ap.required_args.add_argument("--out", type=Path, metavar="PATH",
                                  help="run folder to create, new or empty (required unless --resume DIR)")
    ap.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR with its saved config")
    ap.add_argument("--preset", default=None, metavar="NAME",
                    help=f"settings to start from: {', '.join(PRESETS)} (default: quick); not with --resume")
    ap.add_argument("--seeds", type=nonneg_int_list, default=None, metavar="LIST",
                    help="comma-separated seeds trained at once into OUT/seed_<s>/ (default: one run, --seed)")
    add_quiet(ap)
    add_config_args(ap)
    add_distributed_args(ap)
    return ap


def main() -> int:
    from nca import train_command

    return train_command.main(parser().parse_args())


if __name__ == "__main__":
    run_cli(main)
