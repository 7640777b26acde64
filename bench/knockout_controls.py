"""The planted controls of the knockout report, measured: power and false-positive rate of the
backup flags, and the repair scores of the two planted rules at the report's horizons.

    python bench/knockout_controls.py --keys 20 > controls.json

* **Backups** (``analysis.causal.knockouts.redundancy``): the colour-backup rule of
  tests/test_knockouts.py (c4 OR c5 licenses R; c6 -> G and c7 -> B independently), run at
  fire rate 0.5 (so replicates differ) with ``--keys`` independent keys of ``--replicates``
  replicates each, and the colour value ``--colour`` set so the function's share of the body
  (its loss over the empty-grid loss) varies. Power: the fraction of keys in which 4+5 is
  flagged; false-positive rate: flagged pairs among the other 5 pairs (the additive 6+7, the
  pairs where one single does it all, unread-free pairs), each with its Wilson interval;
  for buffering and for the old scaled-epistasis rule.
* **Repair** (``analysis.causal.repair``): the mediation rule (no compensation; the channel drives a
  second output through c5), the passive copying channel, erasure, relaxation and the twin
  integral controllers (with and without the twin's feedback) of tests/test_repair.py, at the
  horizons ``--horizons``, under both direct definitions (deterministic: fire rate 1).

Results go to stdout (JSON), progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20, help="independent keys (each: a replicate set)")
    ap.add_argument("--replicates", type=int, default=3, help="fire-mask replicates per key")
    ap.add_argument("--colours", default="0.1,0.2,0.5", help="comma-separated colour values (function shares)")
    ap.add_argument("--horizons", default="5,10,20,40,60,120", help="repair horizons")
    a = ap.parse_args(argv)

    import jax
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_knockouts as TK  # the planted rules, exactly as tested
    import test_repair as TR

    from analysis.causal import knockouts as K
    from analysis.causal.repair import RepairSettings, repair_curves
    from analysis.stats import proportion_ci
    from nca.model import ModelConfig
    from nca.rng import stream

    t0, cpu0 = time.time(), time.process_time()
    out = {"backups": [], "repair": {}}
    for colour in (float(c) for c in a.colours.split(",")):
        cfg, params, x0, target = TK.colour_backup_model()
        cfg = ModelConfig(channels=8, hidden=8, fire_rate=0.5)
        w2 = np.array(params["w2"])
        w2[3:6, 0] *= colour / 0.2  # the licence writes `colour` instead of 0.2
        w2[6, 1] *= colour / 0.2
        w2[7, 2] *= colour / 0.2
        params = {**params, "w2": jax.numpy.asarray(w2)}
        x0 = np.repeat(x0[:1], a.replicates, 0)
        x0[..., :3] = colour
        target = target.copy()
        target[..., :3] = colour
        share = (colour ** 2 / 4) / K.empty_loss(target)
        hits = {"buffering": [], "scaled_epistasis": []}
        false = {"buffering": [], "scaled_epistasis": []}
        for i in range(a.keys):
            atl = K.atlas(params, cfg, target, stream(jax.random.key(0), "control", i),
                          K.AtlasSettings(6, (4, 5, 6, 7), K.Assay(grow_steps=12, persist_steps=1, regrow_steps=1,
                                                                   replicates=a.replicates), chunk=16), x0=x0)
            r = atl["conditions"]["growth"]["redundancy"]
            for name, key in (("buffering", "flagged"), ("scaled_epistasis", "flagged_scaled_epistasis")):
                pairs = ["+".join(f["pair"]) for f in r[key]]
                hits[name].append("4+5" in pairs)
                false[name] += [p in pairs for p in ("4+6", "4+7", "5+6", "5+7", "6+7")]
            print(f"colour {colour}: key {i + 1}/{a.keys}", file=sys.stderr)
        out["backups"].append({"colour": colour, "function_share": share, "keys": a.keys,
                               "replicates": a.replicates,
                               **{f"power_{n}": proportion_ci(hits[n]) for n in hits},
                               **{f"false_positive_{n}": proportion_ci(false[n]) for n in false}})
    hz = tuple(int(h) for h in a.horizons.split(","))
    s = RepairSettings(horizons=hz, chunk=8)
    key = jax.random.key(0)
    for name, rule, x in (("mediation", TR.mediation_rule(), TR.start(c0=0.5, c1=0.5, c4=1.0, c5=1.0)),
                          ("passive_copy", TR.follower_rule(), TR.start(c0=0.5, c4=1.0, c5=1.0)),
                          ("erasure", TR.erasing_rule(), TR.start(c6=1.0)),
                          ("relaxation", TR.relaxing_rule(), TR.start(c6=1.0)),
                          ("twin", TR.twin_rule(), TR.start(c4=1.0, c5=1.0)),
                          ("twin_cut", TR.twin_rule(twin_feedback=False), TR.start(c4=1.0, c5=1.0))):
        ch = 6 if name in ("erasure", "relaxation") else 4
        r = repair_curves(rule, TR.CFG, x, key, 0, [ch], s)
        out["repair"][name] = {str(e["h"]): {d: {k: e["definitions"][d][k]["mean"] for k in
                                                 ("repair_fraction", "along_direct")}
                                             for d in e["definitions"]} | {"compensating": e["compensating"]}
                               for e in r["per_channel"][0]["at"]}
    out["wall_s"], out["cpu_s"] = round(time.time() - t0, 1), round(time.process_time() - cpu0, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
