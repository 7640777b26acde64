"""Dissect a model in one command: the PCA/axis report plus a growth-and-regrowth animation.

    python scripts/dissect.py                                   # the published persistent lizard
    python scripts/dissect.py distill:butterfly/regenerating --out reports/butterfly
    python scripts/dissect.py runs/lizard --out reports/my-lizard

Writes DIR/index.html + DIR/report.json + figures (analysis.pca_report: every component's
axis measures tested against a spatial null, intervals over --replicates rollouts; lighter
than scripts/pca_report.py's defaults, for speed: steps 100 and 200 analysed, emergence every
10 steps, 200 steps of regrowth, one rotation, no model comparison) and
DIR/growth.gif: the organism beside its first two principal-component maps (the report's
pooled PCA), growing from the seed, cut in half at step 200 and regrowing (scripts/animate.py).
"""

import shlex
import sys
from pathlib import Path

from nca import cli
from nca.cli import run_cli


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    ap = cli.Parser(description=__doc__)
    ap.add_argument("model", nargs="?", default="distill:lizard/persistent", help="run directory or published name")
    cli.add_out(ap, "output folder (default: reports/<model>/, e.g. reports/lizard-persistent/)", required=False)
    cli.add_seed(ap, 0)
    cli.add_replicates(ap, 5)
    cli.add_quiet(ap)
    a = ap.parse_args(argv)
    if a.out is None:  # one folder per model: a second model's report never lands on the first's
        a.out = Path("reports") / model_slug(a.model)

    from analysis.figure_pool import FigurePool

    # The figures are drawn in a second process beside the analysis (analysis.figure_pool),
    # started first so that its imports overlap this process's own.
    with FigurePool(1) as figures:
        return dissect(a, argv, figures)


def model_slug(model: str) -> str:
    """A folder name for a model: ``distill:lizard/regenerating`` -> ``lizard-regenerating``,
    ``runs/l4/seed_0`` -> ``l4-seed_0`` (the run folder and its parent)."""
    import re

    if model.startswith("distill:"):
        parts = model[len("distill:"):].split("/")
    else:
        parts = [p for p in Path(model).resolve().parts[-2:] if p not in ("/", "")]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-.") or "model"


def dissect(a, argv: list[str], figures) -> int:
    from analysis import pca_report

    # Lighter than scripts/pca_report.py's defaults, for a quick first look: the null and the
    # intervals at steps 100 and 200 only, emergence every 10 steps, one rotation, no other
    # models (scripts/pca_report.py has them all).
    settings = pca_report.PCAReportSettings(
        model=a.model, seed=a.seed, replicates=a.replicates, at=(100, 200), every=10, rotations=(90.0,), compare=(),
        regrow=200,  # as long as the growth: regrowth and the second-seed comparison share one compiled rollout
        command="python scripts/dissect.py " + " ".join(shlex.quote(x) for x in argv))
    pca_report.preflight(settings)  # bad settings or model name: one line, nothing written
    with cli.claim_report_dir(a.out, "dissect", a):  # another model's report, or files not ours: refused
        return _dissect(a, settings, figures)


def _dissect(a, settings, figures) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from analysis import pca_report
    from analysis.panels import fitted, register
    from nca.animate import Animation, Cut, export

    register()
    anim = Animation(models=(a.model,), seeds=(a.seed,), steps=400, every=4, scale=3,
                     damage=(Cut(200, "left"),), panels=("rgba", "pc1", "pc2"))
    gif = a.out / "growth.gif"
    bar = None if a.quiet else (lambda d, n: tqdm(total=n, desc=d, unit="step", file=sys.stderr, position=1))
    # The animation's PC panels show the report's own pooled PCA (the movie's PC1 is the
    # report's PC1), and the animation runs beside the rest of the report from the moment
    # that PCA is fitted.
    movie = []
    with ThreadPoolExecutor(1) as pool:
        def start_movie(pca, features):
            movie.append(pool.submit(export, anim, gif, progress=bar, command=settings.command,
                                     panel_context=fitted(pca, features)))

        result = pca_report.run_with_progress(settings, a.quiet, on_pca=start_movie, figures=figures)
        pca_report.write(result, a.out)
        movie[0].result()
    for line in pca_report.summary_lines(result["report"]):  # results: stdout (progress bars: stderr)
        print(line)
    print(f"open {a.out / 'index.html'} (report) and {gif} (growth, cut at step 200, regrowth)")
    return 0


if __name__ == "__main__":
    run_cli(main)
