"""Sparse dictionary features: a sparse autoencoder on the hidden channels of living cells ->
reconstruction (held-out FVE), sparsity (L0) and dead features beside two controls (shuffled
channels, an untrained rule), the features mapped on the body, and each feature's causal effect
on the body beside a norm-matched random direction.

    python scripts/features_report.py distill:lizard/regenerating --out reports/features
    python scripts/features_report.py runs/lizard --out reports/f --features 16 --k 2 --condition persistence

Writes DIR/report.json (every number; keys in docs/features.md), DIR/index.html and the figures
as DIR/*.png (analysis.reports.features).
"""

import shlex
import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("model", help="a run directory or published name")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--features", type=cli.positive_int, default=32, metavar="N", help="dictionary size")
    p.add_argument("--sparsity", choices=("topk", "l1"), default="topk", help="top-k activation or an L1 penalty")
    p.add_argument("--k", type=cli.positive_int, default=3, metavar="N", help="active features per cell (top-k)")
    p.add_argument("--l1", type=float, default=0.05, metavar="X", help="L1 coefficient (--sparsity l1)")
    p.add_argument("--train-steps", type=cli.positive_int, default=2000, metavar="N", help="Adam steps of the SAE")
    p.add_argument("--grow", type=cli.positive_int, default=200, metavar="N", help="CA steps of the rollouts sampled")
    cli.add_every(p, 10, help="sample the cells of one frame every N CA steps")
    p.add_argument("--rollouts", type=cli.positive_int, default=3, metavar="N",
                   help="rollouts sampled (independent fire masks); the last one is held out")
    p.add_argument("--fits", type=cli.positive_int, default=3, metavar="N", help="SAE trainings (seeds) per data set")
    p.add_argument("--condition", choices=("growth", "persistence"), default="growth", help="the causal test")
    p.add_argument("--effect-steps", type=cli.positive_int, default=100, metavar="N",
                   help="CA steps with the feature removed")
    cli.add_replicates(p, 3)
    p.add_argument("--no-untrained", action="store_true", help="skip the untrained-rule control")
    p.add_argument("--layer", choices=("channels", "mlp"), default="channels",
                   help="what the SAE reads: the hidden channels, or the update MLP's hidden activations")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.reports import features as FR
    from analysis.representation.sparse_features import SAEConfig

    sae = SAEConfig(a.features, a.sparsity, a.k, a.l1, a.train_steps)
    s = FR.FeaturesSettings(a.model, sae, a.grow, a.every, a.rollouts, a.fits, a.condition, a.effect_steps,
                            a.replicates, not a.no_untrained, a.layer, a.seed, a.size,
                            "python scripts/features_report.py " + " ".join(shlex.quote(x) for x in argv))
    model = FR.preflight(s)  # a bad model name: one line, nothing written
    with cli.claim_report_dir(a.out, "features_report", a):  # another report, or files not ours: refused
        result = FR.run_with_progress(s, a.quiet, model)
        FR.write(result, a.out)
    for line in FR.summary_lines(result):  # results: stdout (progress bar: stderr)
        print(line)
    print(f"wrote {a.out}/index.html, report.json and {len(result.figures)} figures in "
          f"{result.report['timing_s']:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
