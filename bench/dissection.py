"""The cost and the calibration of the PCA report's spatial null, measured side by side.

    python bench/dissection.py --out /tmp/bench_dissection                 # timing, 2 rounds
    python bench/dissection.py --out /tmp/bench_dissection --validate      # + the null's battery
    python bench/dissection.py --out /tmp/b --only battery --draws 120
    python bench/dissection.py --out /tmp/b --only dissect --rounds 3         # the first command's time

timing: ``scripts/pca_report.py distill:lizard/persistent`` as it was at ``--baseline`` (the
commit before the null; extracted with ``git archive`` into a temporary folder and run from
there, its own ``analysis`` package included) and as it is now, each with its defaults,
alternating old/new for ``--rounds`` rounds; wall-clock and CPU seconds (user + system of the
child process) of each run, and the ratio new/old of the medians. The brief: new <= 2x old.

dissect: ``scripts/dissect.py`` (the README's first command, defaults) at ``--dissect-baseline``
(the commit before issue 14's compile cuts) and now, alternating old/new for ``--rounds``
rounds, each in a fresh process (a cold start: every program compiled); wall-clock and CPU
seconds and the ratio new/old of the medians. The brief: under 20 s on an idle 2-core machine.

battery (issue 23, item 3): on the published regenerating lizard's own body (step 200, first
rollout; the audit's body):
- false positives: ``--draws`` fields of each family of ``analysis.representation.null_battery.FAMILIES``
  (Matérn nu 0.5 / 1.5 / 2.5 at lengths 3-40 cells, two-scale mixtures, anisotropic fields:
  none is what the null is built from, none has an axis); the rate of p < 0.05 of each of the
  four tests (any direction, radial, along and across the body's long axis), one body and one
  map at a time (no Holm), each with its 95 % Clopper-Pearson interval; and the same fields'
  rates under the null at ``--old-null`` (the texture-matched null of issue 13);
- power: ``--power-draws`` planted ramps along the body axis, across it, at a random angle,
  and core-periphery maps, on two textures, at each signal-to-texture ratio of ``--stt``.
models / cross_models (issue 23): agreement across independently trained models
(``--models`` run folders: per-model kinds and the combined test of
``analysis.representation.cross_model``), and that combined test's calibration on planted
"models" (``--draws`` sets per family, ``--power-draws`` per power cell, ``--cross-stt``):

    python bench/dissection.py --out /tmp/b --only models --models runs/q/seed_0 runs/q/seed_1 runs/q/seed_2 runs/q/seed_3
    python bench/dissection.py --out /tmp/b --only cross_models --draws 60 --power-draws 30
    python bench/dissection.py --out /tmp/b --only cross_models --draws 0 --power-draws 1000 \
        --cross-cells confound_random_direction --direction-only   # the direction null alone, cheap
Writes OUT/dissection.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "e166389a5409f2594d693e66dc3ea71cbbf15d42"  # the last commit before the spatial null (issue 13)
DISSECT_BASELINE = "ae4835e"  # the last commit before dissect.py's compile cuts (issue 14)


def _child_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one command."""
    c0, t0 = _child_seconds(), time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _child_seconds() - c0
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {p.stderr.strip().splitlines()[-1:]}")
    return wall, cpu


def _side_by_side(baseline: str, rounds: int, command: list[str], new_extra: list[str]) -> dict:
    """Run ``command`` (a script and its arguments; "OUT" is replaced by a fresh folder) from
    the tree at ``baseline`` and from this one, alternating, ``rounds`` times each."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        arch = subprocess.run(["git", "archive", baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=arch, check=True)
        runs = {"old": [], "new": []}
        for r in range(rounds):
            for name, tree, extra in (("old", old, []), ("new", ROOT, new_extra)):
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = str(tmp / f"{name}{r}")
                wall, cpu = _run([sys.executable] + [out if c == "OUT" else c for c in command] + extra, tree, env)
                runs[name].append({"wall_s": wall, "cpu_s": cpu})
                print(f"round {r} {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("wall_s", "cpu_s")} for k, v in runs.items()}
    return {"baseline": baseline, "rounds": rounds, "runs": runs, "median": med,
            "ratio_new_over_old": {m: med["new"][m] / med["old"][m] for m in ("wall_s", "cpu_s")},
            "load_average_1min_at_end": os.getloadavg()[0]}


def dissect_timing(baseline: str, rounds: int) -> dict:
    res = _side_by_side(baseline, rounds, ["scripts/dissect.py", "--out", "OUT", "--quiet"], [])
    res["command"] = "python scripts/dissect.py --out DIR --quiet (old: git archive BASELINE)"
    return res


def timing(baseline: str, rounds: int, model: str) -> dict:
    res = _side_by_side(baseline, rounds, ["scripts/pca_report.py", model, "--out", "OUT"], ["--quiet"])
    return {"model": model, **res,
            "commands": {"old": f"git archive {baseline}; python scripts/pca_report.py {model} --out DIR",
                         "new": f"python scripts/pca_report.py {model} --out DIR --quiet"}}


def _old_null(commit: str):
    """The null module as it was at ``commit`` (for before/after rates on the same fields)."""
    import importlib.util

    src = subprocess.run(["git", "show", f"{commit}:analysis/representation/axis_null.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.replace("from .axes import", "from analysis.representation.axes import")
    path = Path(tempfile.mkdtemp()) / "old_axis_null.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_axis_null", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_axis_null"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


PATTERNS = ("ramp_along_axis", "ramp_across_axis", "ramp_random_angle", "radial")
TESTS = {"any_direction": "p_value", "radial": "radial_p_value", "along_axis": "along_p_value",
         "across_axis": "across_p_value"}


def battery(draws: int, n_power: int, stts: list[float], seed: int, model: str, old: str | None,
            families: list[str] | None = None, parts: tuple[str, ...] = ("fp", "power"), partial=None,
            max_anisotropy: float = 4.0, patterns: tuple[str, ...] = PATTERNS) -> dict:
    """The null's calibration on field families it was not built from, and its power on
    planted patterns, on ``model``'s own body (step 200, key(0), first rollout). families:
    names of ``FAMILIES`` (None: all), in the order run; parts: "fp", "power"; partial:
    callable(result so far), called after each family and power cell (a long run leaves
    what it measured)."""
    import jax
    import numpy as np

    import nca
    from analysis.representation.axes import body_frame, view_coords
    from analysis.representation.axis_null import BodyNull, NullSettings
    from analysis.representation.null_battery import FAMILIES, draw_family, planted_ramp
    from analysis.stats import binomial_interval
    from analysis.rollouts import grow_states

    states = grow_states(nca.load_model(model), 200, jax.random.key(0))
    alpha = states[200, 0, ..., 3]
    mask = alpha > 0.1
    frame = body_frame(alpha)
    centre = view_coords([frame.centroid_rc[0]], [frame.centroid_rc[1]])[0]
    settings = NullSettings(max_anisotropy=max_anisotropy)
    old_mod = _old_null(old) if old else None

    def rate(hits):
        k, n = int(np.sum(hits)), int(np.size(hits))
        return {"rate": k / n, "ci95_clopper_pearson": binomial_interval(k, n), "k": k, "n": n}

    def rates(res):
        out = {name: rate(res[key] < 0.05) for name, key in TESTS.items() if key in res}
        out["kind_rule_any_or_radial"] = rate((res["p_value"] < 0.05) | (res["radial_p_value"] < 0.05))
        return out

    fp, cpu, power = {}, {}, {}
    out = {"body": f"{model}, step 200, key(0), first rollout", "n_alive": int(mask.sum()),
           "body_length_cells": float(BodyNull(mask, centre, settings, axis_deg=frame.axis_deg).length),
           "body_axis_deg": frame.axis_deg, "settings": str(settings), "nominal": 0.05,
           "false_positives": fp, "cpu_s_per_family": cpu, "power_p_lt_0.05": power,
           "signal_to_texture": "the planted pattern's sd over the body / the texture's sd", "old_null_commit": old}
    names = list(FAMILIES) if families is None else families
    for name in names if "fp" in parts else []:
        i = list(FAMILIES).index(name)  # the family's own stream, whatever the order run
        kind, params = FAMILIES[name]
        fields = draw_family(mask, kind, params, draws, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, i))),
                             axis_deg=frame.axis_deg)
        t0 = time.process_time()
        res = BodyNull(mask, centre, settings, seed=seed, key=(i,), axis_deg=frame.axis_deg).test(fields)
        cpu[name] = time.process_time() - t0
        fp[name] = {"params": params, **rates(res), "median_surrogates_drawn": float(np.median(res["n_drawn"]))}
        if old_mod is not None:
            r_old = old_mod.BodyNull(mask, centre, old_mod.NullSettings(), seed=seed, key=(i,)).test(fields)
            fp[name]["old_null"] = {"any_direction": rate(r_old["p_value"] < 0.05),
                                    "radial": rate(r_old["radial_p_value"] < 0.05)}
        print(f"{name}: " + ", ".join(f"{k} {v['k']}/{v['n']}" for k, v in fp[name].items() if isinstance(v, dict)
                                      and "k" in v) + f" (old: {fp[name].get('old_null')})", file=sys.stderr, flush=True)
        if partial is not None:
            partial(out)
    rows, cols = np.nonzero(mask)
    uv = view_coords(rows, cols)
    d = np.hypot(*(uv - centre).T)
    textures = {"matern1.5_l3": ("matern", {"nu": 1.5, "ell": 3}),
                "two_scale_f2_b15_w0.3": ("two_scale", {"ell_fine": 2, "ell_broad": 15, "broad": 0.3})}
    for ti, (tname, (kind, params)) in enumerate(textures.items() if "power" in parts else []):
        gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, ti)))
        for pi, pattern in enumerate(PATTERNS):
            if pattern not in patterns:
                continue
            for si, stt in enumerate(stts):
                tex = draw_family(mask, kind, params, n_power, gen)
                maps = []
                for m in range(n_power):
                    if pattern == "radial":
                        maps.append(stt * (d - d.mean()) / d.std() * gen.choice([-1, 1]) + tex[:, m])
                        continue
                    theta = {"ramp_along_axis": frame.axis_deg, "ramp_across_axis": frame.axis_deg + 90.0,
                             "ramp_random_angle": gen.uniform(0, 360)}[pattern] + gen.choice([0.0, 180.0])
                    maps.append(planted_ramp(uv, theta, tex[:, m], stt))
                res = BodyNull(mask, centre, settings, seed=seed, key=(1000 + ti, pi, si),
                               axis_deg=frame.axis_deg).test(np.stack(maps, 1))
                power[f"{tname}/{pattern}/stt{stt:g}"] = rates(res)
                print(f"power {tname} {pattern} stt {stt:g}: " + ", ".join(
                    f"{k} {v['k']}/{v['n']}" for k, v in power[f"{tname}/{pattern}/stt{stt:g}"].items()),
                      file=sys.stderr, flush=True)
                if partial is not None:
                    partial(out)
    return out


def models_agreement(paths: list[str], step: int, replicates: int, seed: int, components: int = 3) -> dict:
    """Agreement across independently trained models (training seeds): each model grown
    ``replicates`` times to ``step`` (key(seed)), its own pooled hidden-channel PCA, each PC map
    tested on each body (pca_report's null and kind rule). Per model and PC: kinds, axis
    gradients and p-values per replicate; the radial association; the signed association with
    the position along the body's long axis, the PC's sign fixed so that its core is high
    (radial association < 0; a PC's sign is arbitrary). Over models: how many give each kind
    (Wilson interval) and the mean signed along-axis association (t interval over models): a
    head-tail gradient shared by independently trained models has one sign in all of them."""
    import jax
    import numpy as np

    import nca
    from analysis.representation.axes import direction_vector, spearman, view_coords
    from analysis.representation.axis_null import KindRule, NullSettings, agreed_kind
    from analysis.representation.pca import fit_cell_pca, pc_maps, state_features
    from analysis.reports.pca import _body_tests
    from analysis.rollouts import grow_states
    from analysis.stats import mean_ci, proportion_ci

    from analysis.representation.axis_null import BodyNull
    from analysis.representation.cross_model import CombinedSettings, combined_axis_test

    per_model, bodies, body_values = [], [], []
    for mi, path in enumerate(paths):
        t0 = time.process_time()
        m = nca.load_model(path)
        thr = m.model_config.alive_threshold
        st = grow_states(m, step, jax.random.key(seed), seeds=replicates, every=step)[-1]  # [R, H, W, C]
        f = state_features(st, "hidden")
        alive = st[..., 3] > thr
        pca = fit_cell_pca(f, alive, components, False, "hidden")
        maps = pc_maps(pca, f, alive)  # [R, H, W, k]
        recs = [_body_tests(step, r, maps[r], st[r, ..., 3], thr, NullSettings(), KindRule(), seed)
                for r in range(replicates)]
        # replicate 0's body for the combined test, with this model's own surrogate stream
        fr0 = recs[0]["frame"]
        centre = view_coords([fr0.centroid_rc[0]], [fr0.centroid_rc[1]])[0]
        bodies.append(BodyNull(alive[0], centre, NullSettings(), seed=seed, key=(mi, step, 0), axis_deg=fr0.axis_deg))
        body_values.append(recs[0]["values"])
        comps = []
        for j in range(components):
            rec = recs[0]
            rows, cols = np.nonzero(alive[0])
            uv = view_coords(rows, cols)
            y = maps[0][rows, cols, j]
            sign = -1.0 if rec["meas"][j].radial_association > 0 else 1.0  # core high
            along = spearman(sign * y, uv @ direction_vector(rec["frame"].axis_deg))
            t = [r["test"] for r in recs]
            comps.append({
                "pc": j + 1, "explained_variance_ratio": float(pca.explained_variance_ratio[j]),
                "kind": agreed_kind([r["kinds"][j] for r in recs])[0], "kind_seeds": [r["kinds"][j] for r in recs],
                "axis_gradient": agreed_kind([r["gradients"][j] for r in recs])[0],
                **{f"{name}_seeds": [None if x is None else float(x[name][j]) for x in t]
                   for name in ("p_value", "radial_p_value", "along_p_value", "across_p_value")},
                "radial_association": float(sign * rec["meas"][j].radial_association),
                "signed_along_axis_association": float(along), "body_axis_deg": rec["frame"].axis_deg})
        per_model.append({"model": path, "n_alive": int(alive[0].sum()), "components": comps,
                          "cpu_s": time.process_time() - t0})
        print(f"{path}: " + "; ".join(f"PC{c['pc']} {c['kind']}/{c['axis_gradient']} p_rad "
                                       f"{c['radial_p_value_seeds']} p_along {c['along_p_value_seeds']} "
                                       f"along {c['signed_along_axis_association']:+.2f}" for c in comps),
              file=sys.stderr, flush=True)
    # is a gradient along (across) the long axis shared by the models? (the combined test:
    # mean signed association over models against per-model surrogates and turned planes; Fisher; sign flips)
    combined = combined_axis_test(bodies, body_values, CombinedSettings()) if len(paths) >= 2 else None
    over = {}
    for j in range(components):
        cs = [pm["components"][j] for pm in per_model]
        over[f"PC{j + 1}"] = {
            "kinds": [c["kind"] for c in cs], "axis_gradients": [c["axis_gradient"] for c in cs],
            "radial_kind_rate": proportion_ci([c["kind"] == "radial" for c in cs]),
            "any_kind_rate": proportion_ci([c["kind"] != "none" for c in cs]),
            "axis_gradient_rate": proportion_ci([c["axis_gradient"] != "none" for c in cs]),
            "radial_association": mean_ci([c["radial_association"] for c in cs]),
            "signed_along_axis_association": mean_ci([c["signed_along_axis_association"] for c in cs]),
            "combined": None if combined is None else combined["components"][j]}
        if combined is not None:
            print(f"PC{j + 1} across models: " + "; ".join(
                f"{ax} mean {combined['components'][j][ax]['mean_signed']:+.2f} p {combined['components'][j][ax]['p_value']:.3f} "
                f"(surrogates {combined['components'][j][ax]['p_surrogate']:.3f}, "
                f"directions {combined['components'][j][ax]['p_direction']:.3f}; Fisher {combined['components'][j][ax]['fisher_p']:.3f}, sign flip {combined['components'][j][ax]['sign_flip_p']:.3f})"
                for ax in ("along", "across")), file=sys.stderr, flush=True)
    return {"models": paths, "step": step, "replicates": replicates, "seed": seed, "per_model": per_model,
            "over_models": over, "combined_settings": None if combined is None else
            {k: combined[k] for k in ("n_models", "draws", "min_p", "sign_flip_min_p", "orient", "axis_deg")},
            "note": "n = number of independently trained models; PCs matched by index"}


CROSS_FAMILIES = ("matern1.5_l3", "matern0.5_l20", "matern2.5_l10", "matern2.5_l40", "two_scale_f2_b15_w0.6",
                  "aniso_along_l20_r4", "aniso_across_l10_r4")


def cross_models_battery(sets: int, n_power: int, stts: list[float], seed: int, model: str, n_models: int = 4,
                         families: list[str] | None = None, partial=None, cells: str | None = None,
                         first_set: int = 0, statistic: str = "mean", direction_only: bool = False,
                         wide: bool = True) -> dict:
    """The combined test across models (``analysis.representation.cross_model``) on planted
    "models": ``n_models`` copies of ``model``'s body (step 200, key(0), first rollout), each
    with its own surrogate stream and its own field. False positives: independent fields of a
    family per model (``sets`` sets per family). Power: a head-tail ramp shared by every
    model (signal-to-texture ``stts``) on two textures. Confounds: ramps along the axis with
    the head high in half the models and the tail in the others, ramps in a random direction
    per model (sd ratio 3; and of one slope, sd ratio 3 along the axis: ``confound_random_slope``),
    and a core-high radial map (sd ratio 2): no shared gradient. Rates of p < 0.05 per definition
    (combined, and its two parts: the surrogate and the direction null; Fisher, sign flip) and
    of any one body's own along-axis p < 0.05, along the axis; and of the combined test across
    it (across_combined, across_surrogate, across_direction). cells: only
    the power cells whose name contains this; first_set: the sets' index offset (more sets of
    a cell, independent of the first run's, with ``first_set`` = the sets already run);
    statistic: ``CombinedSettings.statistic`` (either reads the same sets and surrogates);
    direction_only: only the direction null's p (no surrogates, about 15 x cheaper; the same
    sets and draws as a full run's ``combined_direction``, and a bound on its ``combined``,
    which is never below it); wide: ``CombinedSettings.wide`` (False: the surrogate p of rounds
    4-14, the fitted and broader mixtures only). With it, a set is first tested without the
    wide mixture and again with it only if its surrogate p is below 0.05 along or across: the
    wide mixture can only raise that p, and the reported p is never below it, so the rates are
    exact and the cost is round 14's plus those sets' ("wide_rechecked" counts them)."""
    from dataclasses import replace

    import jax
    import numpy as np

    import nca
    from analysis.representation.axes import body_frame, direction_vector, view_coords
    from analysis.representation.axis_null import BodyNull, NullSettings
    from analysis.representation.cross_model import CombinedSettings, combined_axis_test, direction_p, oriented_axes
    from analysis.representation.null_battery import FAMILIES, draw_family, planted_radial, planted_ramp
    from analysis.rollouts import grow_states
    from analysis.stats import binomial_interval

    states = grow_states(nca.load_model(model), 200, jax.random.key(0))
    alpha = states[200, 0, ..., 3]
    mask = alpha > 0.1
    frame = body_frame(alpha)
    centre = view_coords([frame.centroid_rc[0]], [frame.centroid_rc[1]])[0]
    head = frame.axis_deg
    out = {"model": model, "n_models": n_models, "body_cells": int(mask.sum()), "axis_deg": head,
           "settings": {"null": "NullSettings()", "combined": f"CombinedSettings(orient='none', statistic={statistic!r}, wide={wide!r})",
                        "direction_only": direction_only},
           "fp": {}, "power": {}}
    tests = ("combined", "combined_surrogate", "combined_direction", "fisher", "sign_flip", "any_one_body",
             "across_combined", "across_surrogate", "across_direction")

    def one_set(part: int, cell: int, s: int, texture: tuple, theta) -> dict:
        nulls, values = [], []
        for m in range(n_models):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(part, cell, s, m)))
            tex = draw_family(mask, *texture, 1, rng, axis_deg=head)[:, 0]
            body = BodyNull(mask, centre, NullSettings(), seed=seed, key=(part, cell, s, m), axis_deg=head)
            t = theta(m, rng)
            if t is not None and t[0] == "radial":  # core high, no gradient: the body's shape gives it axis associations
                values.append(planted_radial(body.uv, centre, tex, -t[1])[:, None])
            elif t is not None and t[0] == "slope":  # a ramp of one slope whatever its direction: its sd over
                # the body is t[2] x the texture's when it runs along the body's long axis
                p = body.uv @ direction_vector(t[1])
                values.append((t[2] * (p - p.mean()) / (body.uv @ direction_vector(head)).std() + tex)[:, None])
            else:
                values.append((tex if t is None else planted_ramp(body.uv, t[0], tex, t[1]))[:, None])
            nulls.append(body)
        settings = CombinedSettings(orient="none", statistic=statistic, wide=wide)
        if direction_only:
            p = direction_p(nulls, [v[:, 0] for v in values], oriented_axes(nulls, head), settings)
            return {"combined_direction": p[0], "across_direction": p[1]}
        res = combined_axis_test(nulls, values, replace(settings, wide=False), reference_deg=head)["components"][0]
        rechecked = wide and min(res["along"]["p_surrogate"], res["across"]["p_surrogate"]) < 0.05
        if rechecked:  # the wide mixture can only raise the surrogate p (a maximum over one more
            # mixture), and the reported p is never below it: only a set whose surrogate p is
            # below 0.05 without it can be called with it, so the counts of p < 0.05 are exact
            res = combined_axis_test(nulls, values, settings, reference_deg=head)["components"][0]
        a, c = res["along"], res["across"]
        return {"combined": a["p_value"], "combined_surrogate": a["p_surrogate"], "combined_direction": a["p_direction"],
                "fisher": a["fisher_p"], "sign_flip": a["sign_flip_p"], "any_one_body": min(a["per_model_p"]),
                "across_combined": c["p_value"], "across_surrogate": c["p_surrogate"],
                "across_direction": c["p_direction"], "wide_rechecked": int(rechecked), "mean_signed": a["mean_signed"]}

    def rates(rows: list[dict]) -> dict:
        n = len(rows)
        return {t: {"k": int(sum(r[t] < 0.05 for r in rows)), "n": n,
                    "rate_ci": binomial_interval(int(sum(r[t] < 0.05 for r in rows)), n)} for t in tests if rows[0].get(t) is not None}

    def run_cell(part, ci, name, n, texture, theta, where):
        if n == 0:  # a part not asked for (--draws 0 or --power-draws 0)
            return
        t0 = time.process_time()
        rows = [one_set(part, ci, s, texture, theta) for s in range(first_set, first_set + n)]
        where[name] = {**rates(rows), "cpu_s": time.process_time() - t0,
                       "wide_rechecked": sum(r.get("wide_rechecked", 0) for r in rows)}
        print(f"cross-models {name}: " + ", ".join(f"{t} {where[name][t]['k']}/{n}" for t in tests if t in where[name]),
              file=sys.stderr, flush=True)
        if partial is not None:
            partial(out)

    for fi, fam in enumerate(families or CROSS_FAMILIES):
        run_cell(0, fi, fam, sets, FAMILIES[fam], lambda m, rng: None, out["fp"])
    textures = {"matern1.5_l3": FAMILIES["matern1.5_l3"], "two_scale_f2_b15_w0.6": FAMILIES["two_scale_f2_b15_w0.6"]}
    power_cells = [(f"shared_head_tail/{tn}/stt{x:g}", tx, (lambda m, rng, x=x: (head, x)))
                   for tn, tx in textures.items() for x in stts]
    power_cells += [("confound_sign_differs/matern1.5_l3/stt3", textures["matern1.5_l3"],
                     lambda m, rng: (head + 180.0 * (m % 2), 3.0)),
                    ("confound_random_direction/matern1.5_l3/stt3", textures["matern1.5_l3"],
                     lambda m, rng: (float(rng.uniform(0, 360)), 3.0)),
                    ("confound_radial/matern1.5_l3/stt2", textures["matern1.5_l3"], lambda m, rng: ("radial", 2.0)),
                    ("confound_random_slope/matern1.5_l3/stt3", textures["matern1.5_l3"],
                     lambda m, rng: ("slope", float(rng.uniform(0, 360)), 3.0))]
    for ci, (name, tx, theta) in enumerate(power_cells):
        if cells is None or cells in name:
            run_cell(1, ci, name, n_power, tx, theta, out["power"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    req = ap.add_argument_group("required arguments")
    req.add_argument("--out", type=Path, required=True, help="folder for dissection.json")
    ap.add_argument("--only", default="timing", help="comma-separated: timing, dissect, battery, models, cross_models (default: %(default)s)")
    ap.add_argument("--validate", action="store_true", help="also run the null's battery (same as --only timing,battery)")
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds, old and new alternating (default: %(default)s)")
    ap.add_argument("--baseline", default=BASELINE, help="commit of 'today' (default: %(default)s)")
    ap.add_argument("--dissect-baseline", default=DISSECT_BASELINE,
                    help="commit of the dissect timing's 'before' (default: %(default)s)")
    ap.add_argument("--model", default="distill:lizard/persistent", help="model of the timing runs (default: %(default)s)")
    ap.add_argument("--draws", type=int, default=120, help="fields per family of the battery (default: %(default)s)")
    ap.add_argument("--power-draws", type=int, default=30,
                    help="planted maps per pattern, texture and signal-to-texture ratio (default: %(default)s)")
    ap.add_argument("--stt", default="0.5,1,2,4", help="comma-separated signal-to-texture ratios (default: %(default)s)")
    ap.add_argument("--families", default=None,
                    help="comma-separated battery families, in the order run (default: all of FAMILIES)")
    ap.add_argument("--parts", default="fp,power", help="battery parts: fp, power (default: %(default)s)")
    ap.add_argument("--models", nargs="*", default=[],
                    help="run folders of independently trained models for --only models")
    ap.add_argument("--models-step", type=int, default=60, help="step the models are analysed at (default: %(default)s)")
    ap.add_argument("--cross-stt", default=None,
                    help="signal-to-texture ratios of the shared ramps of --only cross_models (default: 0.25,0.5,1)")
    ap.add_argument("--cross-cells", default=None,
                    help="--only cross_models: only the power cells whose name contains this")
    ap.add_argument("--first-set", type=int, default=0,
                    help="--only cross_models: index of the first set (more sets, independent of a first run; a "
                         "set's streams are keyed by its family's position in --families and its index, so give "
                         "indices no earlier run used at that position)")
    ap.add_argument("--direction-only", action="store_true",
                    help="--only cross_models: only the direction null's p (no surrogates; a bound on the combined test's rate)")
    ap.add_argument("--no-wide", action="store_true",
                    help="--only cross_models: the surrogate p without the wide mixture (rounds 4-14's)")
    ap.add_argument("--combined-statistic", default="mean",
                    help="--only cross_models: CombinedSettings.statistic, mean or t (default: %(default)s)")
    ap.add_argument("--battery-model", default="distill:lizard/regenerating",
                    help="whose body the battery is drawn on (default: %(default)s)")
    ap.add_argument("--old-null", default="de498a5",
                    help="commit of the null to compare on the same fields ('' for none; default: %(default)s, "
                         "the texture-matched null of issue 13)")
    ap.add_argument("--patterns", default=",".join(PATTERNS),
                    help="comma-separated planted patterns of the power part (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="the PRNG seed (default: %(default)s)")
    ap.add_argument("--max-anisotropy", type=float, default=4.0,
                    help="NullSettings.max_anisotropy of the battery's null (1: the isotropic null; default: %(default)s)")
    a = ap.parse_args()
    only = set(a.only.replace("validate", "battery").split(",")) | ({"battery"} if a.validate else set())
    a.out.mkdir(parents=True, exist_ok=True)
    res = {"command": "python bench/dissection.py " + " ".join(sys.argv[1:])}
    if "timing" in only:
        res["timing"] = timing(a.baseline, a.rounds, a.model)
    if "dissect" in only:
        res["dissect"] = dissect_timing(a.dissect_baseline, a.rounds)
    sys.path.insert(0, str(ROOT))
    from nca.checkpoint import atomic_write_bytes

    def partial(b):
        atomic_write_bytes(a.out / "dissection.json", json.dumps({**res, "battery": b, "partial": True}, indent=1).encode())

    if "models" in only:
        res["models"] = models_agreement(a.models, a.models_step, 3, a.seed)
    if "cross_models" in only:
        res["cross_models"] = cross_models_battery(
            a.draws, a.power_draws, [float(x) for x in (a.cross_stt or "0.25,0.5,1").split(",")], a.seed,
            a.battery_model, families=a.families.split(",") if a.families else None, cells=a.cross_cells,
            first_set=a.first_set, statistic=a.combined_statistic, direction_only=a.direction_only, wide=not a.no_wide,
            partial=lambda b: atomic_write_bytes(a.out / "dissection.json",
                                                 json.dumps({**res, "cross_models": b, "partial": True}, indent=1).encode()))
    if "battery" in only:
        res["battery"] = battery(a.draws, a.power_draws, [float(x) for x in a.stt.split(",")], a.seed,
                                 a.battery_model, a.old_null or None,
                                 a.families.split(",") if a.families else None, tuple(a.parts.split(",")), partial,
                                 a.max_anisotropy, tuple(a.patterns.split(",")))
    text = json.dumps(res, indent=1)

    atomic_write_bytes(a.out / "dissection.json", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
