"""Export a rollout's living cells as AnnData (.h5ad) for scanpy, squidpy and scVelo
(issue 27): cells x channels (RGBA + hidden) in X, the update vector in
layers["velocity"], the MLP hidden activations in obsm["mlp_hidden"], grid (x, y) in
obsm["spatial"], and row, col, step, replicate, model, frame, body_along, body_across in obs
(docs/atlas.md).

    python scripts/export_h5ad.py distill:lizard/regenerating --out lizard.h5ad
    python scripts/export_h5ad.py runs/lizard --steps 200 --every 10 --replicates 4 --out cells.h5ad
    python scripts/export_h5ad.py distill:lizard/regenerating --somatic 0.05 --out clones.h5ad

With --somatic RATE the rollouts are the selfish experiments' somatic ones (heritable
per-clone genomes, a new clone founded at a birth with probability RATE): obs gets clone,
clone_parent and clone_born, obsm["genome"] each cell's genome (no velocity or MLP layer).

Then, in Python: ``adata = scanpy.read_h5ad("lizard.h5ad")``; squidpy's spatial graphs take
``library_key="frame"``. Needs the [atlas] extra: pip install -e '.[atlas]'. Written atomically.
"""

from nca import cli
from nca.errors import NCAError


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("model", help="a run directory or a published name (distill:lizard/regenerating)")
    cli.add_out(p, "the .h5ad file to write")
    cli.add_steps(p, 96)
    cli.add_every(p, 8, "keep the cells of every N-th step (step 0, the seed, included)")
    cli.add_replicates(p, 2)
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the model's)")
    p.add_argument("--somatic", type=float, default=None, metavar="RATE",
                   help="somatic rollouts with clone ids, mutation rate RATE in [0, 1] (nca.selfish.somatic)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.out.suffix != ".h5ad":
        raise NCAError(f"--out must end in .h5ad, got {a.out.name!r}")
    from analysis.representation import atlas

    atlas.require("anndata")
    from nca.checkpoint import check_writable

    check_writable(a.out)  # before any computing
    import nca

    model = nca.load_model(a.model)
    kw = dict(steps=a.steps, every=a.every, replicates=a.replicates, seed=a.seed, size=a.size)
    adata = (atlas.export(model, **kw) if a.somatic is None
             else atlas.export_somatic(model, mutation_rate=a.somatic, **kw))
    atlas.write_h5ad(adata, a.out)
    print(f"{a.out}: {adata.n_obs} cells x {adata.n_vars} channels, steps 0..{a.steps} every {a.every}, "
          f"{a.replicates} replicates")
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
