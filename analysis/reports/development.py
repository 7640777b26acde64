"""The development report (scripts/development_report.py): positional information, steering
and transplants of a Growing NCA (issue 15; the measures are ``analysis.development.parts``'s,
keys in docs/development.md).

``DevelopmentReportSettings`` -> ``run(settings)`` -> ``DevelopmentReportResult`` ->
``write(result, out)`` (report.json, index.html, PNGs) and ``summary_lines(result)``.
``settings_from_args`` turns the script's flags into settings (one ``NCAError`` line each).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nca.errors import NCAError

from analysis.development import parts as Dv


@dataclass(frozen=True)
class DevelopmentReportSettings:
    """model: a run directory or published name; development: the parts and their
    settings; seed: the command's one PRNG seed; command: the command line, recorded."""

    model: str
    development: Dv.DevelopmentSettings
    seed: int = 0
    command: str = ""


@dataclass(frozen=True)
class DevelopmentReportResult:
    """report: every number (report.json, JSON-safe after ``analysis.reports.html.json_safe``);
    figures: (name, title, caption, PNG bytes); head, rows: the page's summary table (one
    row per finding, with its interval); title: the page's title."""

    settings: DevelopmentReportSettings
    report: dict
    title: str
    figures: list = field(default_factory=list)
    head: list = field(default_factory=list)
    rows: list = field(default_factory=list)


def settings_from_args(a, argv: list[str]) -> DevelopmentReportSettings:
    """The flags of scripts/development_report.py -> settings; a bad combination is one
    ``NCAError`` line, before anything is computed or written."""
    from analysis.development import positional as P
    from analysis.causal import steering as S

    if a.steer_window is not None and len(a.steer_window) != 2:
        raise NCAError("--steer-window takes two steps: START,STOP")
    t0, t1 = a.steer_window if a.steer_window else (0, None)
    if a.placements and not 3 <= a.placements <= len(P.DEFAULT_PLACEMENTS):
        raise NCAError(f"--placements must be 0 or 3..{len(P.DEFAULT_PLACEMENTS)}, got {a.placements}")
    placement = (P.PlacementSettings(steps=a.steps, placements=P.DEFAULT_PLACEMENTS[:a.placements],
                                     replicates=a.placement_replicates, features=a.features, grid=a.size)
                 if a.placements else None)
    dev = Dv.DevelopmentSettings(
        parts=tuple(a.parts),
        positional=P.PositionalSettings(steps=a.steps, every=a.every, features=a.features, replicates=a.replicates),
        placement=placement,
        steering=S.SteeringSettings(steps=a.steps, t_start=t0, t_stop=t1, doses=tuple(a.doses),
                                    replicates=a.replicates, region=a.steer_region, n_random=a.n_random),
        transplant=S.TransplantSettings(t_graft=a.graft_at, after=a.after, every=a.every, replicates=a.replicates),
        grid=a.size)
    if "transplant" in dev.parts and a.after % a.every:
        raise NCAError(f"--after {a.after} must be a multiple of --every {a.every}")
    import shlex

    return DevelopmentReportSettings(a.model, dev, a.seed, "python scripts/development_report.py "
                                     + " ".join(shlex.quote(x) for x in argv))


CONVENTIONS = {
    "coordinates": "body frame of the grown body (mean alpha over replicates at the last step): along the long "
                   "axis, across it, distance from the centroid, px",
    "probes": "per_step: ridge (standardised features) and kNN (k=10, features' own metric), "
              "leave-one-replicate-out (measures reproducibility: a fixed random field passes it); "
              "placement: trained on bodies at other seed positions / orientations, scored on a held-out one "
              "in its own frame, k and alpha by inner cross-validation, with fixed_field_* nulls; "
              "shuffled_*: trained on shuffled positions",
    "sigma_x": "positional error of Dubuis et al. 2013 from replicate-to-replicate variability (Cramer-Rao, "
               "Ledoit-Wolf covariance) over placements x replicates aligned in their body frames; not the "
               "decoding bound",
    "bits": "decoding lower bound h(coord) - 1/2 log2(2 pi e MSE) at 1 px resolution (Dubuis et al. 2013), clipped at 0",
    "intervals": "mean and 95% t-interval over held-out replicates (n = replicates)",
    "steering": "dose = L2 norm of the total push added to each steered cell's state over the window (state "
                "units, the same for every direction: unit directions, dose / window per step); effect = read-out "
                "minus the same replicate's unsteered read-out; specific = outside the random directions' 95% "
                "prediction band and beyond every random direction, at that dose",
    "identity_index": "(decoded graft position - host) / (donor - host): 1 keeps the donor's identity, 0 takes the host's",
}


def _quartiles(s: dict) -> str:
    return "-" if s.get("median") is None else f"{s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]"


def _largest_dose(doses, sign: int) -> int:
    """Index of the dose of largest magnitude with the given sign (the first dose if none)."""
    best = max(((abs(d), i) for i, d in enumerate(doses) if d * sign > 0), default=(0, 0))
    return best[1]


def _mean(values) -> float:
    return sum(values) / len(values)


# A rotation-invariant rule (Laplacian perception: the isotropic NCA) has no direction of its
# own: each rollout's pose is chosen by its fire noise (docs/importing.md, "Where the head
# goes"), and turning the perception turns nothing.
POSE_NOTE = ("rotation-invariant rule: each rollout picks its own pose, so body frames taken from the alpha averaged "
             "over replicates, or turned with the perception (the held-out placements), do not follow the body: the "
             "along/across numbers are undefined for it; radius is pose-free")


HEX_GEOMETRY = ("hex grid: positional information (per step and held-out placements) is measured in the body's "
                "Euclidean frame (states resampled, analysis.rollouts.euclidean); steering's frame, regions and "
                "read-outs and the transplant's discs are placed where that resampled image draws each cell "
                "(analysis.rollouts.image_positions: the same frame, px of the drawn image, 1 cell spacing = "
                "1.155 px); the pushes and grafts act on the cells as stored")


def headline(rep: dict) -> tuple[list[str], list[list]]:
    """The table at the top of the page: one row per finding, with its interval."""
    from analysis.development.positional import COORDS
    from analysis.stats import fmt_ci

    rows = []
    pos = rep.get("positional")
    if pos:
        ok = [e for e in pos["per_step"] if "null_reason" not in e]
        if ok:
            last = ok[-1]
            for c in ("along", "across", "radius"):
                rows.append([f"held-out R\u00b2 of {c} at step {last['step']}: kNN / ridge / shuffled kNN",
                             f"{fmt_ci(last['knn'][c]['r2'])} / {fmt_ci(last['ridge'][c]['r2'])} / "
                             f"{fmt_ci(last['shuffled_knn'][c]['r2'])}"])
            rows.append([f"positional error (kNN RMSE, px) along / across at step {last['step']}",
                         f"{fmt_ci(last['knn']['along']['rmse'])} / {fmt_ci(last['knn']['across']['rmse'])}"])
            rows.append([f"bits about the along-axis position (kNN decoding bound) at step {last['step']}",
                         f"{fmt_ci(last['knn']['along']['bits'])} (shuffled: {fmt_ci(last['shuffled_knn']['along']['bits'])})"])
            first = next((e["step"] for e in ok if (e["knn"]["along"]["r2"]["lo"] or -1) > 0.5), None)
            rows.append(["first analysed step whose kNN along-axis R\u00b2 is > 0.5 (lower CI bound)", first])
            rows[:0] = [["(the rows below: leave-one-replicate-out; replicates put the body on the same grid cells, "
                         "so they measure reproducibility, not position: a fixed random field passes them)", ""]]
        pl = pos.get("placement")
        if pl and "null_reason" in pl:
            rows.append(["held-out placements", pl["null_reason"]])
        elif pl:
            nulls = [k for k in pl if k.startswith("fixed_field")]
            for probe in ("knn", "ridge"):
                for metric, nd in (("r2", 2), ("bits", 2)):
                    rows.append([f"held-out placement {metric} ({probe}), along / across / radius: model | "
                                 + " | ".join(nulls) + " (null)",
                                 " | ".join(" / ".join(fmt_ci(pl[code]["probes"][probe][c][metric], nd) for c in COORDS)
                                            for code in ["model"] + nulls)])
            ch = pl["model"]["probes"]["chosen"]
            rows.append(["kNN k / ridge alpha chosen by inner cross-validation (per held-out placement)",
                         f"{ch['knn_k']} / {ch['ridge_alpha']}"])
            rows.append(["positional error sigma_x (Dubuis et al. 2013; replicate noise over placements x rollouts), "
                         "median [quartiles over body points] px, along / across: "
                         "model | " + " | ".join(nulls),
                         " | ".join(" / ".join(_quartiles(pl[code]["sigma_x"][c]) for c in ("along", "across"))
                                    for code in ["model"] + nulls)])
    st = rep.get("steering")
    if st:
        doses = st["settings"]["doses"]
        n_rnd = sum(n.startswith("random") for n in st["direction_names"])
        for meas in ("length", "shift_along"):
            band = st["random_band"][meas]
            for j in (int(_largest_dose(doses, sign)) for sign in (-1, 1)):
                if doses[j] == 0:
                    continue
                lo, hi = band["lo"][j], band["hi"][j]
                cells = []
                for n in st["direction_names"]:
                    if n.startswith("random"):
                        continue
                    sp = st["directions"][n]["specificity"][meas]
                    mark = "specific" if sp["outside"][j] else "within random"
                    cells.append(f"{n} {fmt_ci(st['directions'][n]['effect'][meas][j], 1)} ({mark})")
                rows.append([f"steering, change of {meas.replace('_', ' ')} (px) at dose {doses[j]:g}: each direction "
                             f"vs {n_rnd} norm-matched random directions (band {lo:.1f} to {hi:.1f})", "; ".join(cells)])
        oc = st.get("outside_count")
        if oc:
            rows.append(["steering: (direction, read-out, dose) tests outside the random band / tests / expected by "
                         "chance (random directions' leave-one-out rate)",
                         f"{oc['outside']} / {oc['tests']} / {oc['expected_by_chance']:.1f}: {', '.join(oc['cells']) or '-'}"])
        fp = [f["mean"] for f in st["random_false_positives"]["length"] if f and f["mean"] is not None]
        rows.append(["random directions called specific by the others' band (length, leave one out; mean over doses)",
                     f"{_mean(fp):.2f} (n = {n_rnd} per dose)" if fp else "-"])
    tr = rep.get("transplant")
    if tr:
        rows.append([f"transplant: identity index right after / {tr['settings']['after']} steps after the graft",
                     f"{fmt_ci(tr['identity_index'][0])} / {fmt_ci(tr['identity_index'][-1])}"])
    pose = rep.get("conventions", {}).get("pose")
    if pose:
        rows.insert(0, ["(read first)", pose])
    return ["finding", "value (mean [95% CI], n = replicates)"], rows


def figures(rep: dict) -> list[tuple]:
    """(name, title, caption, matplotlib figure) for each part in ``rep``; drops the
    steering and transplant images from ``rep`` once drawn (they are not report.json's)."""
    from analysis.plots import development as DP

    figs = []
    if "positional" in rep:
        pos = rep["positional"]
        figs.append(("probes_r2", "When does a cell know where it is?",
                     "Held-out R\u00b2 of each probe per body coordinate at each development step; bands: 95% CI over "
                     "held-out replicates. Grey: probes trained on shuffled positions (the null).",
                     DP.fig_probes_over_development(pos, "r2")))
        figs.append(("probes_bits", "Positional information over development",
                     "Decoding lower bound on the bits the whole state carries about each coordinate.",
                     DP.fig_probes_over_development(pos, "bits")))
        if "placement" in pos and "null_reason" not in pos["placement"]:
            figs.append(("placement", "Positional information on held-out placements",
                         "Probes trained on bodies grown at other seed positions and orientations and scored on a "
                         "held-out one, in its own frame (k and alpha by inner cross-validation); hatched: a fixed "
                         "random field on the same cells (the null). Right: the positional error sigma_x from "
                         "replicate-to-replicate variability (Dubuis et al. 2013).", DP.fig_placement(pos["placement"])))
        if "null_reason" not in pos["information"]:
            figs.append(("feature_bits", "Bits per channel and per PC",
                         "1-D kNN decoder of each feature alone (held-out replicates); black marks: the shuffled "
                         "null's upper CI (along).", DP.fig_feature_bits(pos["information"])))
    if "steering" in rep:
        figs.append(("steering", "Steering: dose-response",
                     "Change of the final body after steering along each direction, every direction pushed with the "
                     "same norm at a dose (mean, 95% CI over replicates). Grey lines: the random hidden directions; "
                     "grey band: their 95% prediction band (where one more random direction would fall).",
                     DP.fig_steering(rep["steering"])))
        figs.append(("steering_gallery", "Steered bodies", "Replicate 0 at the end, per direction and dose.",
                     DP.fig_steering_gallery(rep["steering"])))
        del rep["steering"]["images"]
    if "transplant" in rep:
        figs.append(("transplant", "Transplant: does a graft keep its identity?",
                     "A disc of tissue (green) copied onto the other end of the body (red); the kNN position probe "
                     "decodes where the grafted cells are. Band: 95% CI over replicates.",
                     DP.fig_transplant(rep["transplant"])))
        del rep["transplant"]["images"]
    return figs


def run(settings: DevelopmentReportSettings, progress=None) -> DevelopmentReportResult:
    """Load the model, run every requested part, draw the figures.
    progress(name): called as each part starts."""
    import jax

    import nca

    from analysis import plots
    from analysis.rollouts import geometry_caveat

    t_start = time.time()
    model = nca.load_model(settings.model)
    rep = Dv.run(model, settings.development, jax.random.key(settings.seed), progress=progress)
    rep["command"] = settings.command
    rep["conventions"] = {**CONVENTIONS, **geometry_caveat([model], HEX_GEOMETRY),
                          **({"pose": POSE_NOTE} if model.model_config.perception == "laplacian" else {})}
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figures(rep)]
    rep["timing_s"] = time.time() - t_start
    head, rows = headline(rep)
    return DevelopmentReportResult(settings, rep, f"Development: {model.name}", pngs, head, rows)


def run_with_progress(settings: DevelopmentReportSettings, quiet: bool = False) -> DevelopmentReportResult:
    """``run`` with each part's name on stderr (nothing with ``quiet``)."""
    def say(part):
        if not quiet:
            print(f"{part} ...", file=sys.stderr)

    return run(settings, progress=say)


def write(result: DevelopmentReportResult, out: Path) -> None:
    """DIR/report.json, DIR/index.html and DIR/<figure>.png, each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.reports import html as report

    rep = result.report
    intro = (f"<p><code>{report.esc(rep['command'])}</code><br>Ran in {rep['timing_s']:.0f} s.</p>"
             + report.table(result.head, result.rows))
    for name, data in report.report_files(result.title, intro, rep, result.figures).items():
        atomic_write_bytes(out / name, data)


def summary_lines(result: DevelopmentReportResult) -> list[str]:
    """The results printed to stdout: one line per finding of the summary table."""
    return [f"  {r[0]}: {r[1]}" for r in result.rows]
