"""Knockout atlas of a Growing NCA: single and double knockouts of the hidden channels (and
top PCs) in growth, persistence and regeneration; the 128 units of the update MLP and
their pairs; redundancy scored as Segre et al.'s scaled epistasis with its eligibility;
self-repair after McGrath et al. 2023 (direct vs total effect, attributed to the backups) at
several horizons. Every headline number has n and a 95 % interval over fire-mask
replicates. Several models (e.g. the seeds of a --seeds run) are compared.

    python scripts/knockout_report.py distill:lizard/regenerating --out reports/ko
    python scripts/knockout_report.py runs/lizard4/seed_* --out reports/ko4 --pairs growth,regeneration

Writes DIR/report.json (every number; keys in docs/dissection2.md), DIR/index.html and the
figures as DIR/*.png.
"""

import shlex
import sys
import time

from nca import cli

CONDITIONS = ("growth", "persistence", "regeneration")


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--grow", type=cli.positive_int, default=160, metavar="N",
                   help="CA steps of the growth condition (knockout from the seed)")
    p.add_argument("--persist", type=cli.positive_int, default=160, metavar="N",
                   help="CA steps of knockout after intact growth")
    p.add_argument("--regrow", type=cli.positive_int, default=100, metavar="N", help="CA steps of regrowth after the cut")
    p.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                   help="the regeneration cut (nca.animate.Cut)")
    cli.add_replicates(p, 5)
    p.add_argument("--pcs", type=cli.nonneg_int, default=3, metavar="N",
                   help="top hidden-state PCs knocked out too (mean ablation)")
    p.add_argument("--mode", default="zero", choices=["zero", "mean"],
                   help="channel knockout: zero, or the channel's mean over alive cells of the intact run")
    p.add_argument("--pairs", type=cli.str_list, default="growth", metavar="LIST",
                   help="comma-separated conditions in which all channel pairs are knocked out "
                        "(growth, persistence, regeneration; 'none': no pairs)")
    p.add_argument("--units", default="growth", choices=["growth", "persistence", "none"],
                   help="condition of the 128 hidden-unit knockouts and their pairs ('none': skip)")
    p.add_argument("--unit-pairs", type=cli.nonneg_int, default=96, metavar="N",
                   help="eligible unit pairs measured (most similar output weights first)")
    p.add_argument("--repair-at", type=cli.nonneg_int_list, default="5,10,20,40,60", metavar="LIST",
                   help="comma-separated horizons (CA steps after the grown state) of the self-repair "
                        "measures; '0': skip")
    p.add_argument("--no-attribution", action="store_true",
                   help="skip attributing the repair to other channels (n - 1 fewer runs per channel)")
    p.add_argument("--no-unit-attribution", action="store_true",
                   help="skip the first-order attribution of the repair to the MLP's units (3 fewer runs per channel)")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    p.add_argument("--chunk", type=cli.positive_int, default=16, metavar="N", help="knockouts per compiled batch")
    cli.add_quiet(p)
    return p.parse_args(argv)


def settings_from(a):
    from analysis.knockouts import KnockoutSettings
    from nca.errors import NCAError

    pairs = () if a.pairs == ["none"] else tuple(a.pairs)
    bad = set(pairs) - set(CONDITIONS)
    if bad:
        raise NCAError(f"--pairs: unknown condition(s) {', '.join(sorted(bad))}; choose from {', '.join(CONDITIONS)}")
    at = tuple(sorted(set(a.repair_at) - {0}))
    return KnockoutSettings(grow=a.grow, persist=a.persist, regrow=a.regrow, cut=a.cut, replicates=a.replicates,
                            pcs=a.pcs, mode=a.mode, pairs=pairs, unit_condition=None if a.units == "none" else a.units,
                            max_unit_pairs=a.unit_pairs, repair_at=at, repair_attribute=not a.no_attribution,
                            repair_units=not a.no_unit_attribution,
                            seed=a.seed, size=a.size, chunk=a.chunk)


def conventions(s) -> dict:
    from analysis import knockouts as K

    th = K.RedundancySettings()
    return {
        "effect": "(L - L_ref) / (L_empty - L_ref) per replicate (same fire masks as its intact run): L = RGBA MSE "
                  "to the target after the condition's steps, L_empty = mean(target^2); 0 = no effect, 1 = as empty",
        "interval": f"every *_ci: mean and 95% t-interval over the {s.replicates} fire-mask replicates "
                    "(counts: percentile bootstrap over replicates); n is given",
        "knockout": "channel: zeroed (or set to its mean) in the incoming state of every step of the condition; "
                    "PC: its component set to its mean over alive cells (mean ablation); unit: its output weights "
                    "zeroed (= its activation zeroed)",
        "epistasis": "additive: effect(ij) - effect(i) - effect(j); < 0 where effects saturate at 1",
        "scaled_epistasis": "Segre et al. 2005 with fitness W = 1 - effect (clipped to [0, 1]): (W_ij - W_i W_j) / "
                            "|W~ - W_i W_j|, W~ = 0 if aggravating, min(W_i, W_j) if alleviating; -1 = the pair "
                            "kills although each single is harmless (backups), 0 = independent, +1 = same pathway",
        "backup pair": f"eligible (both single effects < {th.single_max}), double effect >= {th.double_min}, scaled "
                       f"epistasis <= -{th.flag} with its interval's upper end < 0",
        "eligible_pairs": "pairs that could have been flagged (both singles small); 'none eligible' means the "
                          "question could not be asked, not that there is no redundancy",
        "essential": f"mean single effect >= {K.ESSENTIAL}",
        "repair_fraction": "McGrath et al. 2023: (direct - total) / direct, RMS RGBA deviation from the clean run "
                           "after h steps of ablating the channel's perception; direct = other hidden channels and "
                           "life masks frozen at the clean run (the RGBA keeps its own dynamics)",
        "attribution share": "(effect with channel k frozen at the clean run - total) / (direct - total): the part of "
                             "the compensation that disappears when k cannot react",
        "unit share": "first order: -<sum over steps of the change (total - direct) of unit j's write fire*h_j*W2[j,:4], "
                      "d> / <d, d>, d = the direct effect (RGBA); > 0 compensates, < 0 amplifies; sum_of_units vs "
                      "measured_along_direct = <d - total, d> / <d, d> shows how much first order accounts for",
    }


def figures(out, images, s):
    import numpy as np

    from analysis import plots

    res = out["results"]
    first = res[0]
    atl = first["atlas"]
    labels = atl["conditions"]["growth"]["labels"]
    figs = [("effects", f"Single knockouts ({first['model']})",
             f"Effect of knocking out each hidden channel (and PC) per condition; error bars: 95% interval over "
             f"{s.replicates} fire-mask replicates; dotted: as bad as an empty grid.",
             plots.fig_ci_bars([lab if lab.startswith("PC") else f"ch {lab}" for lab in labels],
                               {name: atl["conditions"][name]["effect_ci"] for name in CONDITIONS},
                               "single knockout effect", "effect (1 = as empty)", hline=1.0, horizontal=True)),
            ("gallery", f"Knocked-out bodies ({first['model']})",
             f"Final RGBA of each condition (replicate 0): start state, intact, then each single knockout. "
             f"Regeneration: {s.cut} cut after {s.grow} steps of intact growth, {s.regrow} steps of regrowth.",
             plots.fig_knockout_gallery(images[0], labels))]
    if len(res) > 1:
        figs.append(("effects_models", "Single knockouts across models",
                     "Bars: mean over the models, error bars: sd, dots: each model.",
                     plots.fig_knockout_effects([r["atlas"] for r in res])))
    chans = atl["channels"]
    for name in s.pairs:
        figs.append((f"epistasis_{name}", f"Double knockouts and epistasis: {name} ({first['model']})",
                     "Left: effects (singles on the diagonal); right: additive epistasis. Boxed: pairs flagged by "
                     "the old all-or-none rule. Scaled epistasis with intervals and eligibility: report.json "
                     "(redundancy).", plots.fig_epistasis(atl["conditions"][name], chans)))
    if first["units"] is not None:
        u = first["units"]
        figs.append(("units", f"Hidden units of the update MLP ({first['model']})",
                     f"Left: each unit's single knockout effect ({u['condition']}), sorted, 95% intervals; right: "
                     f"scaled epistasis of the {u['redundancy']['tested_pairs']} tested pairs of eligible units "
                     f"({u['redundancy']['eligible_pairs']} eligible); -1 = a backup pair.",
                     plots.fig_unit_atlas(u)))
    if first["repair"] is not None:
        figs.append(("repair", f"Self-repair, McGrath et al. 2023 ({first['model']})",
                     f"From the grown bodies at step {s.grow}, each channel's perception ablated. direct: the other "
                     "hidden channels and the life masks frozen at the clean run; total: everything reacts; pulse: "
                     "ablated in one step only. RMS RGBA deviation from the clean run, bands: 95% over replicates. "
                     "Bottom: repair fraction (direct - total) / direct per horizon.",
                     plots.fig_repair_hydra(first["repair"])))
    if len(res) > 1:
        names = [f"{cond[:5]}: essential" for cond in CONDITIONS]
        vals = np.array([[r["summary"][cond]["essential_channels"] for cond in CONDITIONS] for r in res])
        figs.append(("spread_essential", "Across models: essential channels",
                     "Number of channels whose knockout has mean effect >= 0.5, per condition (dots: models).",
                     plots.fig_spread(names, vals, "essential channels", "count")))
    return figs


def page_intro(out, s) -> str:
    from analysis import report
    from analysis.stats import fmt_ci

    rows = []
    for r in out["results"]:
        sm = r["summary"]
        rows.append([r["model"]] + [fmt_ci(sm[cn]["essential_channels_ci"], 1) for cn in CONDITIONS]
                    + [sm[p]["redundancy_verdict"] for p in s.pairs]
                    + [sm[p].get("pc_redundancy_verdict", "-") for p in s.pairs if s.pcs >= 2]
                    + ([sm["units"]["redundancy_verdict"]] if "units" in sm else []))
    head = (["model"] + [f"essential channels ({cn})" for cn in CONDITIONS]
            + [f"channel pairs ({p})" for p in s.pairs] + [f"PC pairs ({p})" for p in s.pairs if s.pcs >= 2]
            + (["unit pairs"] if s.unit_condition else []))
    html = (f"<p><code>{report.esc(out['command'])}</code><br>{s.replicates} fire-mask replicates; intervals are 95% "
            f"over them. Ran in {out['timing_s']:.0f} s.</p>" + report.table(head, rows))
    if s.repair_at:
        rr = []
        for r in out["results"]:
            by = r["summary"]["repair"]["by_horizon"]
            rr.append([r["model"], "repair fraction (norms)"] + [fmt_ci(x["median_repair_fraction"]) for x in by])
            if all("median_compensation_along_direct" in x for x in by):
                rr.append([r["model"], "compensation along the direct effect"]
                          + [fmt_ci(x["median_compensation_along_direct"]) for x in by])
        html += ("<h3>Self-repair: medians over channels, by horizon</h3>"
                 + report.table(["model", "measure"] + [f"h = {h}" for h in s.repair_at], rr))
        first = out["results"][0]["repair"]
        brows = []
        for p in first["per_channel"]:
            for a in p["at"]:
                if a.get("backups"):
                    brows.append([p["channel"], a["h"], fmt_ci(a["repair_fraction"]), ", ".join(map(str, a["backups"]))])
        if s.repair_units:
            urows = []
            for p in first["per_channel"]:
                a = p["at"][-1]
                if "units" in a:
                    u = a["units"]
                    urows.append([p["channel"], a["h"], fmt_ci(u["measured_along_direct"]), fmt_ci(u["sum_of_units"]),
                                  ", ".join(f"{x['unit']}: {x['share']['mean']:+.2f}" for x in u["top_units"]
                                            if x["share"]["mean"] is not None)])
            html += ("<h3>Which units' changed output makes the difference (first order, largest horizon)</h3>"
                     + report.table(["channel", "h", "compensation along the direct effect", "sum over units",
                                     "largest unit shares"], urows))
        html += ("<h3>Backups of the repair (share >= 0.25 of the compensation)</h3>"
                 + (report.table(["channel", "h", "repair fraction", "backup channels"], brows) if brows
                    else "<p>none</p>"))
    red = []
    for r in out["results"]:
        for p in s.pairs:
            cond = r["atlas"]["conditions"][p]
            for what, key in (("channels", "redundancy"), ("PCs", "extra_redundancy")):
                for f in (cond.get(key) or {}).get("flagged", []):
                    red.append([r["model"], f"{what}, {p}", "+".join(f["pair"]), fmt_ci(f["effect_double"]),
                                fmt_ci(f["scaled_epistasis"])])
        if r["units"] is not None:
            for f in r["units"]["redundancy"]["flagged"]:
                red.append([r["model"], f"units, {r['units']['condition']}", "+".join(map(str, f["pair"])),
                            fmt_ci(f["effect_double"]), fmt_ci(f["scaled_epistasis"])])
    html += ("<h3>Backup pairs (redundancy)</h3>" + (report.table(
        ["model", "what", "pair", "double effect", "scaled epistasis"], red) if red else
        "<p>none flagged; see the eligibility in the first table</p>"))
    return html


def main(argv=None) -> int:
    a = parse_args(argv)
    s = settings_from(a)
    cli.check_writable(a.out, is_dir=True)

    from tqdm import tqdm

    import nca
    from analysis import knockouts as K
    from analysis import plots, report
    from analysis.stats import mean_ci
    from nca.checkpoint import atomic_write_bytes

    t_start = time.time()
    models = [nca.load_model(m) for m in a.models]  # fail early on a bad name
    per_model = K.rollouts_per_model(models[0].model_config, s)
    bar = tqdm(total=per_model * len(models), file=sys.stderr, unit="rollout", desc="knockouts", disable=a.quiet)
    measured = K.run(models, s, progress=bar.update)
    bar.close()
    results, images = measured["results"], measured["images"]
    out = {"models": [r["model"] for r in results],
           "command": "python scripts/knockout_report.py " + " ".join(shlex.quote(x) for x in
                                                                       (sys.argv[1:] if argv is None else argv)),
           "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.__dict__.items()},
           "conventions": conventions(s), "results": results}
    if len(results) > 1:
        sp = {}
        for name in CONDITIONS:
            sp[name] = {k: report.spread([r["summary"][name][k] for r in results])
                        for k, v in results[0]["summary"][name].items() if isinstance(v, (int, float))}
            for v in sp[name].values():  # across models (training seeds): n and a 95% interval too
                v["ci"] = mean_ci(v["values"])
        out["spread"] = sp
    pngs = [(n, t, cap, plots.png_bytes(f)) for n, t, cap, f in figures(out, images, s)]
    out["timing_s"] = time.time() - t_start
    intro = page_intro(out, s)
    for name, data in report.report_files("Knockout atlas: " + ", ".join(out["models"]), intro, out, pngs).items():
        atomic_write_bytes(a.out / name, data)
    from analysis.stats import fmt_ci

    for r in results:
        sm = r["summary"]
        print(f"{r['model']}: essential channels " + ", ".join(
            f"{cn} {fmt_ci(sm[cn]['essential_channels_ci'], 1)}" for cn in CONDITIONS)
            + "".join(f"; channel pairs ({p}): {sm[p]['redundancy_verdict']}" for p in s.pairs)
            + (f"; unit pairs: {sm['units']['redundancy_verdict']}" if "units" in sm else ""), file=sys.stderr)
    print(f"wrote {a.out}/index.html, report.json and {len(pngs)} figures in {out['timing_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
