"""The interactive viewer: one self-contained HTML page that runs a model in the browser.

    import nca, analysis.viewer as v
    model = nca.load_model("distill:lizard/regenerating")
    v.write_viewer(model, "viewer.html")          # or: python scripts/viewer.py MODEL --out viewer.html
    v.view(model)                                 # inline in Jupyter (an object with _repr_html_)

The page embeds the weights (float32, base64) and the analysis data (the PCA basis of the
model's hidden states, ``analysis.representation.pca``; per-channel means for mean ablation) and runs the
CA step of ``nca.model.step`` in plain JavaScript (``viewer_assets/engine.js``; why this
runtime: docs/viewer.md). No network, no server. The page's test API (``window.ncaViewer``)
lets a test feed Python's fire masks and read the state back: the browser's states equal
``nca.model.rollout``'s to 1e-4 (tests/test_viewer_browser.py).

The model: Mordvintsev et al., "Growing Neural Cellular Automata", Distill 2020 (whose
interactive demo is the inspiration); knockouts follow ``analysis.causal.interventions.ablate``.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jax
import numpy as np

from nca.api import LoadedModel
from nca.errors import NCAError

ASSETS = "assets"

# Named PRNG stream of the PCA rollout (fold_in of the user's seed).
PCA_STREAM = 0x7CA

# The engine runs any channel count >= 4 and any hidden size; beyond these the page would
# be too slow to be interactive (the article's model: 16 channels, 128 hidden units).
MAX_CHANNELS = 64
MAX_HIDDEN = 1024
MAX_GRID = 256


@dataclass(frozen=True)
class ViewerSettings:
    """What the exported page embeds besides the weights.

    steps: CA steps of the rollout (from the seed, fire-mask PRNG ``fold_in(key(seed),
    PCA_STREAM)``) whose alive cells the PCA and the channel means are taken over;
    pca_every: analyse one state every this many steps of the second half of that rollout;
    components: PCs embedded (views and knockouts); size: the grid (None: the model's
    training grid); seed: the page's initial fire-mask seed and the PCA rollout's seed;
    autoplay: start running when the page opens.
    """

    steps: int = 200
    pca_every: int = 10
    components: int = 6
    size: int | None = None
    seed: int = 0
    autoplay: bool = True


def _f32_b64(a) -> str:
    return base64.b64encode(np.ascontiguousarray(np.asarray(a, "<f4")).tobytes()).decode("ascii")


def check_exportable(model: LoadedModel, size: int) -> None:
    """Refuse, with one clear line, what the page cannot run interactively."""
    cfg = model.model_config
    if not cfg.is_article:  # the page's shader is the article's step: a variant would run wrongly
        differs = ", ".join(f"{k}={v!r}" for k, v in cfg.variant_fields.items())
        raise NCAError(f"the viewer runs the article's architecture only (Sobel perception, zero padding, "
                       f"alive masking, square grid); {model.name} has {differs}")
    if not 4 <= cfg.channels <= MAX_CHANNELS:
        raise NCAError(f"the viewer runs models with 4..{MAX_CHANNELS} channels; {model.name} has {cfg.channels}")
    if not 1 <= cfg.hidden <= MAX_HIDDEN:
        raise NCAError(f"the viewer runs models with 1..{MAX_HIDDEN} hidden units; {model.name} has {cfg.hidden}")
    if not 3 <= size <= MAX_GRID:
        raise NCAError(f"viewer grid size must be 3..{MAX_GRID}, got {size}")
    shapes = {k: tuple(np.shape(v)) for k, v in model.params.items()}
    want = {"w1": (3 * cfg.channels, cfg.hidden), "b1": (cfg.hidden,), "w2": (cfg.hidden, cfg.channels),
            "b2": (cfg.channels,)}
    if shapes != want:
        raise NCAError(f"{model.name}: parameter shapes {shapes} do not match its architecture {want}; "
                       "the viewer runs the article's perception + two-layer MLP only")


def analysis_data(model: LoadedModel, settings: ViewerSettings = ViewerSettings()) -> dict:
    """PCA basis of the hidden channels and per-channel means, from one rollout.

    Returns {"pca": {...} or None, "pca_note": str, "channel_means": [C]}. The PCA is
    ``analysis.representation.pca.fit_cell_pca`` of the hidden channels (4..C-1) of the alive cells
    (alpha > threshold, ``analysis.representation.axes.alive_of``) pooled over the analysed steps;
    channel_means: each channel's mean over the same cells (the value mean ablation sets).
    """
    from analysis.representation.axes import alive_of
    from analysis.representation.pca import fit_cell_pca
    from analysis.rollouts import grow_states

    cfg = model.model_config
    size = settings.size or model.grid_size
    key = jax.random.fold_in(jax.random.key(settings.seed), PCA_STREAM)
    states = grow_states(model, settings.steps, key, size=size)[:, 0]  # [T+1, H, W, C]
    at = list(range(max(1, settings.steps // 2), settings.steps + 1, settings.pca_every))
    if at[-1] != settings.steps:
        at.append(settings.steps)
    sel = states[at]
    alive = alive_of(sel[..., 3], cfg.alive_threshold)
    k = min(settings.components, cfg.hidden_channels)
    if k < 1:
        return analysis_from(None, sel[alive], at, note="the model has no hidden channels")
    try:
        fit = fit_cell_pca(sel[..., 4:], alive, k, standardize=False, name="hidden")
    except NCAError as e:
        return analysis_from(None, sel[alive], at, note=str(e))
    return analysis_from(fit, sel[alive], at)


def analysis_from(pca, cells: np.ndarray, steps: list[int], rollouts: int = 1, note: str = "") -> dict:
    """``analysis_data``'s dict from a PCA of the hidden channels (an ``analysis.representation.pca.CellPCA``,
    or None with ``note``) and the states of the cells it was fitted on (cells: [N, C]) at
    ``steps`` of ``rollouts`` rollouts. ``analysis.reports.pca`` passes its own pooled PCA,
    so that a report's live viewer shows the report's components."""
    cells = np.asarray(cells)
    means = cells.mean(0) if len(cells) else np.zeros(cells.shape[-1])
    out = None
    if pca is not None:
        out = {"features": "hidden", "offset": 4, "steps": [int(t) for t in steps], "rollouts": int(rollouts),
               "n_samples": pca.n_samples, "components": pca.components.tolist(), "mean": pca.mean.tolist(),
               "scale": pca.scale.tolist(), "explained_variance_ratio": pca.explained_variance_ratio.tolist()}
    return {"pca": out, "pca_note": note, "channel_means": np.asarray(means, float).tolist(),
            "n_alive_cells": int(len(cells))}


def payload(model: LoadedModel, settings: ViewerSettings = ViewerSettings(), analysis: dict | None = None) -> dict:
    """Everything the page embeds, JSON-ready. Keys (docs/viewer.md):

    name; model {channels, hidden, fire_rate, alive_threshold, angle_deg, height, width,
    w1 [3C, hidden], b1, w2 [hidden, C], b2 (float32 little-endian, base64)}; pca (see
    ``analysis_data``) or None with pca_note; channel_means [C]; seed; autoplay.
    """
    cfg = model.model_config
    size = settings.size or model.grid_size
    check_exportable(model, size)
    if analysis is None:
        analysis = analysis_data(model, settings)
    p = {k: np.asarray(v, np.float32) for k, v in model.params.items()}
    return {
        "name": model.name,
        "model": {"channels": cfg.channels, "hidden": cfg.hidden, "fire_rate": cfg.fire_rate,
                  "alive_threshold": cfg.alive_threshold, "angle_deg": cfg.angle_deg,
                  "height": size, "width": size, **{k: _f32_b64(v) for k, v in p.items()}},
        **analysis,
        "seed": settings.seed,
        "autoplay": settings.autoplay,
    }


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(ASSETS, name).read_text(encoding="utf-8")


def render_html(data: dict) -> str:
    """The self-contained page for a ``payload``."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # never close the <script>
    page = _asset("viewer.html")
    parts = {"__TITLE__": html.escape(str(data["name"])), "__ENGINE__": _asset("engine.js"),
             "__UI__": _asset("ui.js"), "__PAYLOAD__": text}
    out = []
    rest = page
    for key in ("__TITLE__", "__PAYLOAD__", "__ENGINE__", "__UI__"):  # template order, each once
        head, sep, rest = rest.partition(key)
        if not sep:
            raise RuntimeError(f"viewer template lacks {key}")
        out += [head, parts[key]]
    out.append(rest)
    return "".join(out)


def write_viewer(model: LoadedModel, out: str | Path, settings: ViewerSettings = ViewerSettings(),
                 analysis: dict | None = None) -> Path:
    """Export the page to ``out`` (written atomically). Returns the path."""
    from nca.checkpoint import atomic_write_bytes

    page = render_html(payload(model, settings, analysis))
    out = Path(out)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


class Viewer:
    """The page inline in Jupyter: ``_repr_html_`` is an iframe holding the whole page
    (``srcdoc``, scripts allowed, nothing fetched). ``html`` is the page itself."""

    def __init__(self, page: str, height: int = 760):
        self.html = page
        self.height = height

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:{self.height}px;'
                'border:0" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | Path) -> Path:
        from nca.checkpoint import atomic_write_bytes

        atomic_write_bytes(Path(path), self.html.encode("utf-8"))
        return Path(path)


def view(model: LoadedModel | str, settings: ViewerSettings | None = None, **kw) -> Viewer:
    """The viewer for ``model`` (a LoadedModel or a spec for ``nca.load_model``), to display
    in a notebook. kw: fields of ``ViewerSettings`` (steps=, components=, size=, seed=)."""
    import nca

    if isinstance(model, (str, Path)):
        model = nca.load_model(model)
    settings = settings or ViewerSettings(**kw)
    return Viewer(render_html(payload(model, settings)))
