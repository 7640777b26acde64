"""Benchmark the interactive viewer in headless Chromium (issue #17's speed targets).

    python bench/browser.py                               # the article's lizard, 72x72
    python bench/browser.py --json                        # one JSON object on stdout
    python bench/browser.py distill:lizard/growing --size 96 --reps 5

Measured, on this machine's CPU (headless Chromium, software rendering, no GPU):

- file_bytes: size of the exported page (target: < 2 MB for the article's model);
- first_frame_ms: ``performance.now()`` when the page first drew the seed, i.e. ms after
  navigation start (target: < 1000), median over --reps fresh page loads;
- engine_steps_per_s: CA steps per second of the engine alone (no drawing), on the grown
  organism (after 200 steps from the seed), median over --reps runs of --steps steps;
  also from the seed (``engine_steps_per_s_from_seed``: small organism, faster);
- playing_steps_per_s: the page's own steps/s counter while playing at full speed with the
  RGBA view drawn every frame (target: >= 30), median of --reps 1.5-s samples;
- webgl2_available / webgl2_renderer: whether this browser offers WebGL2 at all here, and
  on what; webgl2_mlp_ms: the per-cell MLP of every cell as two WebGL2 fragment-shader
  passes (bench/webgl_mlp.js, the bulk of a WebGL2 step; median of --reps timings of 10
  evaluations) -- the runtime question of docs/viewer.md.

With ``--numerics N``: also the largest difference between the page's states and
``nca.grow``'s given the same fire masks (test mode), after every 10th of N steps, for keys
0..4 and perception rotated by 0, 45 and 90 degrees (``numerics_max_abs``).

Timings on a shared machine are noisy; the report says how many cores were busy.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nca.cli import Parser, positive_int, run_cli  # noqa: E402


def parse_args(argv=None):
    ap = Parser(__doc__)
    ap.add_argument("model", nargs="?", default="distill:lizard/regenerating",
                    help="run directory or published name")
    ap.add_argument("--size", type=positive_int, default=None, metavar="N", help="grid size (default: training grid)")
    ap.add_argument("--steps", type=positive_int, default=200, metavar="N", help="CA steps per engine timing")
    ap.add_argument("--reps", type=positive_int, default=5, metavar="N", help="timed repetitions (median reported)")
    ap.add_argument("--numerics", type=positive_int, default=None, metavar="N",
                    help="also compare N-step runs with nca.grow's (keys 0-4; 0, 45, 90 degrees)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return ap.parse_args(argv)


def numerics(drv, page, model, size, steps, every=10) -> dict:
    """{angle: [max abs difference per key]} between the page and nca.grow, same fire masks."""
    import jax
    import numpy as np

    import nca
    from analysis.viewer import browser as vb

    vb.open_page(drv, page)
    out = {}
    for angle in (0.0, 45.0, 90.0):
        m = model.rotated(angle) if angle else model
        errs = []
        for seed in range(5):
            _, tr = nca.grow(m, steps, jax.random.key(seed), size=size, record=("state", "fire"))
            want = np.asarray(tr.states)[every - 1::every]
            drv.execute_script("ncaViewer.setAngle(arguments[0]); ncaViewer.reset()", angle)
            got = vb.run(drv, steps, np.asarray(tr.fire)[..., 0] > 0.5, every=every)
            errs.append(float(np.abs(got - want).max()))
        out[str(angle)] = errs
    return out


def main(argv=None) -> int:
    a = parse_args(argv)
    import nca
    from analysis import viewer as V
    from analysis.viewer import browser as vb
    from nca.errors import NCAError

    _, _, why = vb.find_browser()
    if why:
        raise NCAError(why)
    model = nca.load_model(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="nca-viewer-bench-"))
    page = V.write_viewer(model, tmp / "viewer.html", V.ViewerSettings(size=a.size, autoplay=False))
    out = {"model": a.model, "size": a.size or model.grid_size, "file_bytes": page.stat().st_size,
           "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]}

    drv = vb.start_browser()
    try:
        out["browser"] = drv.capabilities.get("browserVersion")
        out["webgl2_renderer"] = drv.execute_script(
            "const g=document.createElement('canvas').getContext('webgl2'); if(!g) return null;"
            "const e=g.getExtension('WEBGL_debug_renderer_info');"
            "return e ? g.getParameter(e.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER);")
        out["webgl2_available"] = out["webgl2_renderer"] is not None
        first, seed_sps, grown_sps, play_sps = [], [], [], []
        for _ in range(a.reps):
            vb.open_page(drv, page)
            first.append(drv.execute_script("return ncaViewer.info().firstFrameMs"))
            seed_sps.append(drv.execute_script("return ncaViewer.bench(arguments[0])", a.steps))
            grown_sps.append(drv.execute_script("return ncaViewer.bench(arguments[0])", a.steps))
            drv.execute_script("ncaViewer.setPlaying(true)")
            time.sleep(2.0)  # the page's counter averages over 0.5-s windows
            play_sps.append(drv.execute_script("return ncaViewer.info().sps"))
            drv.execute_script("ncaViewer.setPlaying(false)")
        med = statistics.median
        if out["webgl2_available"]:
            js = (Path(__file__).parent / "webgl_mlp.js").read_text()
            cfg = model.model_config
            runs = [drv.execute_script(js, out["size"], out["size"], cfg.channels, cfg.hidden, 10) for _ in range(a.reps)]
            if "error" in runs[0]:
                out["webgl2_mlp_error"] = runs[0]["error"]
            else:
                out["webgl2_mlp_ms"] = med(r["ms_per_mlp"] for r in runs)
                out["webgl2_mlp_ms_all"] = [r["ms_per_mlp"] for r in runs]
        out.update(reps=a.reps, steps=a.steps,
                   first_frame_ms=med(first), first_frame_ms_all=first,
                   engine_steps_per_s_from_seed=med(seed_sps), engine_steps_per_s=med(grown_sps),
                   engine_steps_per_s_all=grown_sps, playing_steps_per_s=med(play_sps),
                   playing_steps_per_s_all=play_sps)
        if a.numerics:
            out["numerics_steps"] = a.numerics
            out["numerics_max_abs"] = numerics(drv, page, model, out["size"], a.numerics)
    finally:
        drv.quit()
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    run_cli(main)
