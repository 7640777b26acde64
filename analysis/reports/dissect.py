"""The one-command dissection behind ``scripts/dissect.py`` (the README's first command): the
PCA/axis report (``analysis.reports.pca``) with lighter settings, plus DIR/growth.gif, the
organism beside its first two principal-component maps (the report's own pooled PCA),
growing from the seed, cut in half at step 200 and regrowing (``nca.animate``).

``settings(model, seed, replicates, command)`` -> ``run_into(settings, out, quiet, figures)``:
the animation runs in a thread beside the rest of the report from the moment its PCA is
fitted; the report and the GIF are written into ``out``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from analysis.reports import pca as pca_report


def model_slug(model: str) -> str:
    """A folder name for a model: ``distill:lizard/regenerating`` -> ``lizard-regenerating``,
    ``runs/l4/seed_0`` -> ``l4-seed_0`` (the run folder and its parent)."""
    if model.startswith("distill:"):
        parts = model[len("distill:"):].split("/")
    else:
        parts = [p for p in Path(model).resolve().parts[-2:] if p not in ("/", "")]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)).strip("-.") or "model"


def settings(model: str, seed: int, replicates: int, command: str) -> pca_report.PCAReportSettings:
    """Lighter than scripts/pca_report.py's defaults, for a quick first look: the null and
    the intervals at steps 100 and 200 only, emergence every 10 steps, one rotation, no other
    models (scripts/pca_report.py has them all)."""
    return pca_report.PCAReportSettings(
        model=model, seed=seed, replicates=replicates, at=(100, 200), every=10, rotations=(90.0,), compare=(),
        regrow=200,  # as long as the growth: regrowth and the second-seed comparison share one compiled rollout
        command=command)


def run_into(s: pca_report.PCAReportSettings, out: Path, quiet: bool, figures) -> pca_report.PCAReportResult:
    """The report and DIR/growth.gif into ``out`` (claimed by the caller). figures: an
    ``analysis.reports.figure_pool.FigurePool`` drawing the report's figures in a second process."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from nca.animate import Animation, Cut, export

    from analysis.representation.panels import fitted, register

    register()
    anim = Animation(models=(s.model,), seeds=(s.seed,), steps=400, every=4, scale=3,
                     damage=(Cut(200, "left"),), panels=("rgba", "pc1", "pc2"))
    gif = out / "growth.gif"
    bar = None if quiet else (lambda d, n: tqdm(total=n, desc=d, unit="step", file=sys.stderr, position=1))
    # The animation's PC panels show the report's own pooled PCA (the movie's PC1 is the
    # report's PC1), and the animation runs beside the rest of the report from the moment
    # that PCA is fitted.
    movie = []
    with ThreadPoolExecutor(1) as pool:
        def start_movie(pca, features):
            movie.append(pool.submit(export, anim, gif, progress=bar, command=s.command,
                                     panel_context=fitted(pca, features)))

        result = pca_report.run_with_progress(s, quiet, on_pca=start_movie, figures=figures)
        pca_report.write(result, out)
        movie[0].result()
    return result
