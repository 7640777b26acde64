"""Selfish cells: selfish credit, competing lineages (compared fairly), cheater invasion,
and somatic evolution (heritable per-cell genomes: spontaneous cheaters, the mutant-invasion
fitness landscape of published hosts, policing). Writes index.html + report.json + PNGs.

    python scripts/selfish.py --out runs/selfish                        # somatic experiments, seeds 0,1,2
    python scripts/selfish.py --out runs/selfish --seeds 0,1,2,3,4      # re-uses finished runs, adds seeds
    python scripts/selfish.py --out runs/all --experiments all          # also the variants, invasion, credit
    python scripts/selfish.py --out runs/som --experiments spontaneous,landscape distill:lizard/regenerating
    python scripts/selfish.py --out /tmp/s --preset smoke --seeds 0     # spontaneous + landscape, small

Re-running with the same --out reuses finished training runs and continues unfinished
ones; a folder holding other settings is refused. See docs/selfish.md.
"""

import sys

from nca import cli

EXPERIMENT_HELP = ("comma-separated experiments: variants (cooperative, selfish credit, fair lineages and their "
                   "one-rule baseline), invasion (whole mutant rules in the first host), credit (selfish vs "
                   "private-copy gradient), spontaneous (cheaters arising by mutation), landscape (selection "
                   "coefficient vs mutation size), policing (organisms trained with vs without selfish clones)")


def parse(argv=None):
    from nca.selfish.pipeline import DEFAULT_EXPERIMENTS, SMOKE_EXPERIMENTS

    p = cli.Parser(description=__doc__)
    p.add_argument("hosts", nargs="*", metavar="HOST",
                   help="published models or run folders used as hosts (default: the preset's, "
                        "distill:lizard/regenerating and distill:lizard/persistent for cpu)")
    cli.add_out(p, "output folder (created; re-use continues it)")
    p.add_argument("--preset", default="cpu", choices=("cpu", "smoke"),
                   help="cpu: the 2-core comparison; smoke: tiny sizes, a plumbing check")
    cli.add_seeds(p, "0,1,2", "comma-separated seeds (>= 5 for the README's intervals)")
    p.add_argument("--experiments", type=cli.str_list, metavar="LIST",
                   help=EXPERIMENT_HELP + f"; all: every one (default: {','.join(DEFAULT_EXPERIMENTS)} for cpu, "
                        f"{','.join(SMOKE_EXPERIMENTS)} for smoke)")
    p.add_argument("--train-steps", type=cli.positive_int, metavar="N",
                   help="override the preset's training steps (variants and policing arms)")
    p.add_argument("--steps", type=cli.positive_int, metavar="N",
                   help="CA steps of each spontaneous-cheater run (default: the preset's, 400 for cpu)")
    p.add_argument("--mutation-rate", type=float, metavar="P",
                   help="probability that a newborn cell founds a new clone, in [0, 1] (default 0.02)")
    p.add_argument("--mutation-size", type=float, metavar="S",
                   help="standard deviation of each gene's change at a mutation (default 0.02)")
    p.add_argument("--genome-size", type=int, metavar="G", help="genes per clone, 1..channels (default 4: RGBA)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse(argv)
    from nca.selfish.pipeline import load_hosts, selfish_settings

    settings = selfish_settings(a.preset, a.seeds, a.experiments, a.hosts or None, a.train_steps, a.steps,
                                a.mutation_rate, a.mutation_size, a.genome_size)
    load_hosts(settings)  # a host that does not grow: one line before any training

    from analysis.reports import selfish as SR

    s = SR.SelfishReportSettings(settings, a.out, " ".join(["scripts/selfish.py", *sys.argv[1:]]))
    # Files no selfish.py run wrote: refused. Its own folder is re-used (finished runs kept,
    # seeds added): run_all checks the settings against the ones saved there.
    with cli.claim_report_dir(a.out, "selfish", None):
        result = SR.run_with_progress(s, a.quiet)
        SR.write(result, a.out)
    print(f"wrote {a.out / 'index.html'} and {a.out / 'report.json'} "
          f"({result.report['timings']['total_s']:.0f} s)")
    for line in SR.summary_lines(result):  # results: stdout (progress: stderr)
        print("  " + line)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
