"""PCA of a Growing NCA's cell states: axis components tested against a spatial null, with
intervals over replicate rollouts; emergence, rotation, comparison.

    python scripts/pca_report.py distill:lizard/persistent --out reports/lizard
    python scripts/pca_report.py runs/lizard --out r --steps 200 --at 60,120,200 --replicates 8
    python scripts/pca_report.py distill:lizard/regenerating --out r --features mlp --standardize

Writes DIR/report.json (every number; keys in docs/pca.md), DIR/index.html (one
self-contained page) and the figures as DIR/*.png. Step t is the state after t CA steps.
"""

import argparse
import shlex
import sys
from pathlib import Path

from nca.cli import run_cli


def _ints(text: str, flag: str) -> tuple[int, ...]:
    from nca.errors import NCAError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise NCAError(f"{flag} takes comma-separated integers (e.g. {flag} 50,100), got {text!r}") from None


def _floats(text: str, flag: str) -> tuple[float, ...]:
    from nca.errors import NCAError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise NCAError(f"{flag} takes comma-separated numbers (e.g. {flag} 45,90), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="run directory or published name (distill:lizard/persistent)")
    req = ap.add_argument_group("required arguments")
    req.add_argument("--out", type=Path, required=True, help="output folder (created; checked before computing)")
    d = " (default: %(default)s)"
    ap.add_argument("--steps", type=int, default=None,
                    help="CA steps to grow (default: the largest of --at, or 200)")
    ap.add_argument("--at", default=None,
                    help="comma-separated steps to analyse (default: 1/4, 1/2, 3/4 and all of --steps)")
    ap.add_argument("--replicates", type=int, default=5,
                    help="rollouts with independent fire masks: pooled in the PCA; intervals and kind agreement "
                         "are over them" + d)
    ap.add_argument("--seed", type=int, default=0, help="the PRNG seed; every stream derives from it by name" + d)
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid)")
    ap.add_argument("--features", default="hidden", choices=["hidden", "state", "perception", "mlp"],
                    help="hidden: 12 hidden channels; state: all 16; perception: 48 perception "
                         "features; mlp: 128 hidden-layer activations" + d)
    ap.add_argument("--components", type=int, default=6, help="PCs to keep" + d)
    ap.add_argument("--standardize", action="store_true", help="scale each feature to unit variance first")
    ap.add_argument("--per-step", action="store_true", help="fit one PCA per analysed step instead of pooling")
    ap.add_argument("--every", type=int, default=5, help="emergence curves: keep one measurement every N CA steps" + d)
    ap.add_argument("--regrow", type=int, default=100,
                    help="after the rollout, damage the body (a disc) and regrow this many steps; 0: no damage" + d)
    ap.add_argument("--rotations", default="45,90,180",
                    help="comma-separated perception rotations (deg) for the rotation test; '' to skip" + d)
    ap.add_argument("--compare", default=None,
                    help="comma-separated models to compare with (default: the other experiments of a published "
                         "emoji; '' for none); a second seed of MODEL is always compared")
    ap.add_argument("--surrogates", type=int, default=199, help="spatial-null surrogate maps per map" + d)
    ap.add_argument("--bootstrap", type=int, default=100, help="bootstrap draws per direction interval" + d)
    ap.add_argument("--alpha", type=float, default=0.05,
                    help="significance level of a kind, Holm-corrected over a body's components" + d)
    ap.add_argument("--min-agreement", type=float, default=0.8,
                    help="fraction of replicates that must give the same kind" + d)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def settings_from_args(a, argv):
    from analysis.pca_report import PCAReportSettings

    return PCAReportSettings(
        model=a.model, steps=a.steps, at=_ints(a.at, "--at") if a.at is not None else None,
        replicates=a.replicates, seed=a.seed, size=a.size, features=a.features, components=a.components,
        standardize=a.standardize, per_step=a.per_step, every=a.every, regrow=a.regrow,
        rotations=_floats(a.rotations, "--rotations"),
        compare=tuple(x for x in a.compare.split(",") if x.strip()) if a.compare is not None else None,
        surrogates=a.surrogates, bootstrap=a.bootstrap, alpha=a.alpha, min_agreement=a.min_agreement,
        command="python scripts/pca_report.py " + " ".join(shlex.quote(x) for x in argv))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    from analysis import pca_report

    settings = settings_from_args(a, argv)
    settings.validate()
    pca_report.check_writable(a.out)
    result = pca_report.run_with_progress(settings, a.quiet)
    pca_report.write(result, a.out)
    for line in pca_report.summary_lines(result["report"]):
        print(line, file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(result['figures'])} figures in "
          f"{result['report']['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
