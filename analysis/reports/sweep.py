"""The results table of a sweep (or a population of seeds): final training loss, growth,
persistence and regeneration scores with 95 % intervals, as CSV and HTML.

Scores of one trained model (the article's three experiments, Mordvintsev et al., Distill
2020, §"Experiment 1-3"), measured with the knockout assay's protocol
(``analysis.causal.knockouts.assay_starts``): ``replicates`` bodies grow from the seed with
independent fire masks for ``grow_steps`` CA steps, then

- growth: the loss right then;
- persistence: the loss after ``persist_steps`` more steps, undisturbed (the growing
  experiment's models decay here; the persistent ones hold);
- regeneration: the left half cut away (all channels zeroed, ``nca.damage.Cut``) at
  ``grow_steps``, the loss after ``regrow_steps`` steps of regrowth;

where the loss is the training loss, MSE of the RGBA (clipped, as seen) to the target
(``nca.train.per_sample_loss``). Per model: the mean over replicates and its t interval
(``analysis.stats.mean_ci``). Per config of a sweep: the mean of its seeds' means and the t
interval over seeds (independently trained models), n = the number of seeds. An empty grid
scores ``mean(target**2)`` (``empty_loss``, in the table for scale).
"""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from nca.errors import NCAError, require_at_least

from analysis.stats import fmt_ci, mean_ci

SCORES = ("growth", "persistence", "regeneration")


@dataclass(frozen=True)
class ScoreSettings:
    """grow_steps, persist_steps, regrow_steps: CA steps (see the module docstring);
    replicates: bodies per model (independent fire masks); seed: the one PRNG seed
    (stream ``"sweep-score"``); cut: the ``nca.damage.Cut`` part removed."""

    grow_steps: int = 200
    persist_steps: int = 300
    regrow_steps: int = 200
    replicates: int = 4
    seed: int = 0
    cut: str = "left"

    def __post_init__(self):
        require_at_least(self, ("grow_steps", "persist_steps", "regrow_steps", "replicates"), 1,
                         lambda name: name.replace("_", "-"))
        if self.replicates < 2:
            raise NCAError(f"--replicates must be >= 2 for an interval, got {self.replicates}")


def score_model(params, cfg, target: np.ndarray, grid: int, s: ScoreSettings) -> dict:
    """target: [grid, grid, 4]. -> {score: losses [replicates] (NumPy)} plus "empty_loss"."""
    from nca.model import to_rgba
    from nca.rng import stream
    from nca.train import per_sample_loss

    from analysis.causal.knockouts import Assay, advance, assay_starts, empty_loss

    key = stream(jax.random.key(s.seed), "sweep-score")
    assay = Assay(grow_steps=s.grow_steps, persist_steps=s.persist_steps, regrow_steps=s.regrow_steps,
                  cut=s.cut, replicates=s.replicates)
    starts = assay_starts(params, cfg, key, grid, assay)
    t = np.asarray(target, np.float32)

    def loss(x):
        return np.asarray(per_sample_loss(to_rgba(x), t), np.float64)

    out = {"growth": loss(starts["persistence"].x0)}  # the grown bodies: the persistence start
    for name in ("persistence", "regeneration"):
        st = starts[name]
        out[name] = loss(advance(params, st.x0, key, st.steps, cfg, st.t0))
    out["empty_loss"] = empty_loss(t)
    return out


def score_run(run_dir: Path, s: ScoreSettings) -> dict:
    """One trained run folder -> {"final_loss": its last metrics row, score: mean_ci over
    replicates, "empty_loss"}."""
    import nca

    m = nca.load_model(run_dir)
    scores = score_model(m.params, m.model_config, m.target_image(), m.grid_size, s)
    return {"final_loss": _final_loss(Path(run_dir)), "empty_loss": scores.pop("empty_loss"),
            **{k: mean_ci(v) for k, v in scores.items()}}


def _final_loss(run_dir: Path) -> float | None:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(open(path, newline="")))
    return float(rows[-1]["loss"]) if rows else None


def config_table(runs: list[dict], varied: list[str]) -> list[dict]:
    """Per config (the ``varied`` fields but seed): n seeds, and for final_loss and each score
    the mean over seeds with the t interval over seeds. runs: ``score_run`` dicts with the
    run's ``values`` ({field: value}, seed included)."""
    by: dict = defaultdict(list)
    for r in runs:
        key = tuple((k, r["values"][k]) for k in varied if k != "seed")
        by[key].append(r)
    table = []
    for key, rs in by.items():
        row = {"config": dict(key), "seeds": [r["values"].get("seed") for r in rs],
               "final_loss": mean_ci([np.nan if r["final_loss"] is None else r["final_loss"] for r in rs]),
               "empty_loss": float(np.mean([r["empty_loss"] for r in rs]))}
        for k in SCORES:
            row[k] = mean_ci([r[k]["mean"] for r in rs])
        table.append(row)
    return table


CSV_FIELDS = ("n_seeds", "final_loss", "final_loss_lo", "final_loss_hi",
              *(f"{k}{x}" for k in SCORES for x in ("", "_lo", "_hi")), "empty_loss")


def to_csv(table: list[dict], varied: list[str]) -> str:
    keys = [k for k in varied if k != "seed"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*keys, *CSV_FIELDS])
    for row in table:
        cells = [row["config"][k] for k in keys] + [len(row["seeds"])]
        for k in ("final_loss", *SCORES):
            c = row[k]
            cells += ["" if c[f] is None else f"{c[f]:.6g}" for f in ("mean", "lo", "hi")]
        w.writerow(cells + [f"{row['empty_loss']:.6g}"])
    return buf.getvalue()


def to_html(table: list[dict], varied: list[str], s: ScoreSettings, title: str = "Sweep results") -> str:
    keys = [k for k in varied if k != "seed"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in [*keys, "seeds", "final loss", *SCORES])
    body = []
    for row in table:
        cells = [html.escape(str(row["config"][k])) for k in keys] + [html.escape(",".join(map(str, row["seeds"])))]
        cells += [fmt_ci(row[k], 4) for k in ("final_loss", *SCORES)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = (f"Mean over seeds [95 % t interval over seeds] (n = seeds). Scores: MSE of the RGBA to the target "
            f"of {s.replicates} bodies per model grown {s.grow_steps} steps from the seed (growth), "
            f"{s.persist_steps} steps later (persistence), and {s.regrow_steps} steps after the {s.cut} part "
            f"was cut away at step {s.grow_steps} (regeneration); lower is better. An empty grid scores about "
            f"{np.mean([r['empty_loss'] for r in table]):.4f}.")
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>\n")


def varied_fields(cfgs) -> list[str]:
    """The config fields (flat names, model fields without ``model.``) whose values differ
    between the runs, seed last."""
    flat = [_flat(c) for c in cfgs]
    keys = [k for k in flat[0] if k != "seed" and len({repr(f[k]) for f in flat}) > 1]
    return keys + ["seed"]


def _flat(cfg) -> dict:
    d = cfg.to_dict()
    return {**{k: v for k, v in d.items() if k != "model"}, **d["model"]}


def score_job(out_dir: Path, s: ScoreSettings, job=None, progress=None) -> dict | None:
    """Score every run of the population or sweep folder ``out_dir`` (``nca.multiseed.read_job``).

    Each process scores its share of the runs (the one it trained) and process 0 gathers
    them (``nca.distributed``). -> the ``config_table`` on process 0, None on the others."""
    from nca.distributed import SINGLE, Job, gather, post_result, share
    from nca.multiseed import read_job

    job = SINGLE if job is None else job
    out_dir = Path(out_dir)
    names, cfgs = read_job(out_dir)
    varied = varied_fields(cfgs)
    mine = share(list(range(len(names))), job)
    rows = []
    for i in mine:
        if not (out_dir / names[i] / "config.json").is_file():
            raise NCAError(f"{out_dir / names[i]} holds no trained run; train or resume the sweep first")
        r = score_run(out_dir / names[i], s)
        flat = _flat(cfgs[i])
        rows.append({"run": names[i], "values": {k: flat[k] for k in varied}, **r})
        if progress is not None:
            progress(names[i])
    post_result(job, rows, tag="scores")
    everyone = gather(job, rows, lambda p: ", ".join(names[i] for i in share(list(range(len(names))),
                                                                              Job(p, job.count))), tag="scores")
    if not job.is_main:
        return None
    runs = sorted((r for rs in everyone for r in rs), key=lambda r: names.index(r["run"]))
    return {"varied": varied, "runs": runs, "table": config_table(runs, varied)}
