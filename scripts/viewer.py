"""Export an interactive viewer: one self-contained HTML page that runs the model in the browser.

    python scripts/viewer.py distill:lizard/regenerating --out viewer.html
    python scripts/viewer.py runs/lizard --out lizard.html --size 96 --components 4

Open the page in any browser (no network, no server): play / pause / step / reset, speed,
PRNG seed, erase or seed with the mouse, views (RGBA, any channel, the first PCs of the
hidden state, update magnitude, fire and alive masks), live knockouts of hidden channels or
PC directions, perception rotation. The PCA basis comes from a rollout of --steps steps
from the seed (docs/viewer.md).
"""

from nca.cli import Parser, add_out, add_quiet, add_seed, add_steps, positive_int, run_cli


def parse_args(argv=None):
    ap = Parser(__doc__)
    ap.add_argument("model", help="run directory or published name (distill:lizard/regenerating)")
    add_out(ap, "the HTML file to write")
    add_seed(ap)
    add_steps(ap, 200, help="CA steps of the rollout whose alive cells the PCA basis and channel means come from")
    ap.add_argument("--components", type=positive_int, default=6, metavar="N", help="principal components embedded")
    ap.add_argument("--size", type=positive_int, default=None, metavar="N",
                    help="grid size of the page (default: the model's training grid)")
    ap.add_argument("--paused", action="store_true", help="open paused instead of running")
    add_quiet(ap)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    from nca.checkpoint import check_writable

    check_writable(a.out)  # before any computing

    import nca
    from analysis.viewer import ViewerSettings, write_viewer

    model = nca.load_model(a.model)
    settings = ViewerSettings(steps=a.steps, components=a.components, size=a.size, seed=a.seed,
                              autoplay=not a.paused)
    path = write_viewer(model, a.out, settings)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")  # the result: stdout (--quiet: no progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
