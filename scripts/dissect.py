"""Dissect a model in one command: the PCA/axis report plus a growth-and-regrowth animation.

    python scripts/dissect.py                                   # the published persistent lizard
    python scripts/dissect.py distill:butterfly/regenerating --out reports/butterfly
    python scripts/dissect.py runs/lizard --out reports/my-lizard

Writes DIR/index.html + DIR/report.json + figures (scripts/pca_report.py, defaults) and
DIR/growth.gif: the organism beside its first two principal-component maps, growing
from the seed, cut in half at step 200 and regrowing (scripts/animate.py).
"""

import argparse
import importlib.util
import sys
from pathlib import Path

from nca.cli import run_cli

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="distill:lizard/persistent",
                    help="run directory or published name (default: distill:lizard/persistent)")
    ap.add_argument("--out", type=Path, default=Path("reports/lizard"), help="output folder (default: reports/lizard)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    spec = importlib.util.spec_from_file_location("pca_report", HERE / "pca_report.py")
    pca_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pca_report)
    pca_report.main([a.model, "--out", str(a.out), "--seed", str(a.seed)])

    from tqdm import tqdm

    from analysis.panels import register
    from nca.animate import Animation, Cut, export

    register()
    anim = Animation(models=(a.model,), seeds=(a.seed,), steps=400, every=4, scale=3,
                     damage=(Cut(200, "left"),), panels=("rgba", "pc1", "pc2"))
    gif = a.out / "growth.gif"
    export(anim, gif, progress=lambda d, n: tqdm(total=n, desc=d, unit="step", file=sys.stderr),
           command=f"python scripts/dissect.py {a.model} --out {a.out} --seed {a.seed}")
    print(f"open {a.out / 'index.html'} (report) and {gif} (growth, cut at step 200, regrowth)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
