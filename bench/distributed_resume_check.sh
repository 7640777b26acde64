#!/bin/bash
# A 2-process job with a killed worker, resumed, against uninterrupted seeds (docs/validation/distributed.md).
cd "$(dirname "$0")/.."  # the repository root
. .venv/bin/activate
export JAX_PLATFORMS=cpu PYTHONUNBUFFERED=1
rm -rf /tmp/rk /tmp/rk_ref0 /tmp/rk_ref1
T="--preset tiny --train-steps 40 --checkpoint-every 10 --keep-checkpoints none --quiet"
D="--coordinator localhost:23888 --num-processes 2 --heartbeat-timeout 5"
start=$(date +%s)
python scripts/train.py $T --seeds 0,1 --out /tmp/rk $D --process-id 0 > /tmp/rk_p0.out 2> /tmp/rk_p0.err &
P0=$!
python scripts/train.py $T --seeds 0,1 --out /tmp/rk $D --process-id 1 > /tmp/rk_p1.out 2> /tmp/rk_p1.err &
P1=$!
# kill process 1 once its seed has a checkpoint past step 0 (metrics rows written at step 10)
while true; do
  n=$(cat /tmp/rk/seed_1/metrics.csv 2>/dev/null | wc -l)
  if [ "$n" -ge 11 ]; then kill -9 $P1; echo "killed p1 at metrics rows $n after $(( $(date +%s) - start )) s"; break; fi
  if ! kill -0 $P1 2>/dev/null; then echo "p1 ended before the kill"; break; fi
  sleep 0.2
done
wait $P0; echo "p0 rc=$?"; grep "^error" /tmp/rk_p0.err
echo "seed_1 step before resume: $(tail -1 /tmp/rk/seed_1/metrics.csv)"
echo "seed_0 step before resume: $(tail -1 /tmp/rk/seed_0/metrics.csv)"
python scripts/train.py --resume /tmp/rk $D --process-id 0 --quiet > /tmp/rk_r0.out 2> /tmp/rk_r0.err &
python scripts/train.py --resume /tmp/rk $D --process-id 1 --quiet > /tmp/rk_r1.out 2> /tmp/rk_r1.err
echo "resume p1 rc=$?"; wait; echo "resume p0 rc=$?"; grep "^error" /tmp/rk_r0.err /tmp/rk_r1.err
cat /tmp/rk/summary.csv
python scripts/train.py $T --seeds 0 --out /tmp/rk_ref0 > /dev/null 2>&1; echo "ref0 rc=$?"
python scripts/train.py $T --seeds 1 --out /tmp/rk_ref1 > /dev/null 2>&1; echo "ref1 rc=$?"
python - <<'PY'
import numpy as np, nca
for s, ref in ((0, "/tmp/rk_ref0"), (1, "/tmp/rk_ref1")):
    a = nca.load_model(f"/tmp/rk/seed_{s}").params; b = nca.load_model(f"{ref}/seed_{s}").params
    d = max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)
    print(f"seed {s}: max |resumed - uninterrupted| over params = {d}")
    ma = open(f"/tmp/rk/seed_{s}/metrics.csv").read().splitlines(); mb = open(f"{ref}/seed_{s}/metrics.csv").read().splitlines()
    print("  losses equal:", [l.split(",")[1] for l in ma] == [l.split(",")[1] for l in mb], len(ma))
PY
echo "wall $(( $(date +%s) - start )) s"
