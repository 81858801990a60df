#!/usr/bin/env bash
# What a unit costs for running as its own Slurm task rather than inside one local process:
# the same N-unit comparison run locally (`--threads 1`) and through `huelab run --slurm` on the
# private local cluster, one task at a time (`--parallel 1`, so that both are sequential), timed
# from submission to the gather's end. Also the cost of a task whose unit is already done (the
# process, libtorch's load and the script up to the unit) and the gather alone.
#
#   bash scripts/slurm-overhead.sh [OUT.json]     # needs root and Debian's Slurm (setup.sh)
#
# The per-unit overhead is (slurm - local) / N: Slurm's scheduling and launch, the process and
# libtorch start, the script's run up to the unit (data loading) and the gather's share.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
huelab=${HUELAB:-$(command -v huelab || echo "$here/target/release/huelab")}
out=${1:-}
units_per_arm=${UNITS_PER_ARM:-4}   # 2 arms × seeds × folds
work=$(mktemp -d /tmp/huelab-overhead.XXXXXX)
cluster=$work/cluster
trap 'bash "$here/scripts/local-slurm.sh" stop "$cluster" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

bash "$here/scripts/local-slurm.sh" start "$cluster" >/dev/null
eval "$(bash "$here/scripts/local-slurm.sh" env "$cluster")"
cd "$work"
cat > cmp.rhai <<'RHAI'
let data = dataset("digits").subset(#{ per_class: 30, seed: 0 });
let base = #{ epochs: 3, batch_size: 32, device: "cpu", progress: false };
let arms = [base + #{ name: "onehot", loss: "onehot" }, base + #{ name: "hue", loss: "onehot+hue" }];
slurm(#{ cpus_per_task: 1, parallel: 1 });
let c = compare(data, arms, #{ seeds: [0, 1], folds: 2 });
write_comparison(run_dir(arg("name", "cmp")), c);
RHAI
units=$((2 * units_per_arm))
now() { date +%s.%N; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

repeats=${REPEATS:-3}
local_s=() slurm_s=() done_task_s=() gather_s=()
for r in $(seq "$repeats"); do
  t0=$(now)
  "$huelab" run --threads 1 cmp.rhai name=local$r > local.log 2>&1 || { cat local.log >&2; exit 1; }
  t1=$(now); local_s+=("$(seconds "$t0" "$t1")")

  t0=$(now)
  "$huelab" run --slurm --run-dir planned$r cmp.rhai name=slurm$r >/dev/null
  while [ -n "$(squeue -h)" ]; do sleep 0.1; done
  t1=$(now); slurm_s+=("$(seconds "$t0" "$t1")")
  grep -q "every unit" planned$r/logs/gather.log || { echo "the gather did not finish: planned$r/logs/gather.log" >&2; exit 1; }

  # A task whose unit is done: the process, libtorch and the script up to the unit.
  t0=$(now)
  "$huelab" run --task 0 --run-dir planned$r cmp.rhai name=slurm$r > task.log 2>&1 || { cat task.log >&2; exit 1; }
  t1=$(now); done_task_s+=("$(seconds "$t0" "$t1")")
  # The gather alone (every unit done): evaluation, tables, figures.
  t0=$(now)
  "$huelab" run --gather --run-dir planned$r cmp.rhai name=slurm$r > gather.log 2>&1 || { cat gather.log >&2; exit 1; }
  t1=$(now); gather_s+=("$(seconds "$t0" "$t1")")
done

report=$(python3 - "$units" "${local_s[*]}" "${slurm_s[*]}" "${done_task_s[*]}" "${gather_s[*]}" <<'PY'
import json, os, statistics, sys
units = int(sys.argv[1])
local, slurm, done_task, gather = ([float(x) for x in a.split()] for a in sys.argv[2:6])
overhead = [(s - l) / units for s, l in zip(slurm, local)]
def spread(xs):
    return {"median": round(statistics.median(xs), 2), "min": round(min(xs), 2), "max": round(max(xs), 2), "each": [round(x, 2) for x in xs]}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(json.dumps({
    "units": units,
    "repeats": len(local),
    "local_seconds": spread(local),
    "slurm_submit_to_gather_end_seconds": spread(slurm),
    "overhead_per_unit_seconds": spread(overhead),
    "task_of_a_done_unit_seconds": spread(done_task),
    "gather_alone_seconds": spread(gather),
    "machine": f"{cpu}, {os.cpu_count()} cores",
}, indent=1))
PY
)
echo "$report"
if [ -n "$out" ]; then
  tmp=$(mktemp "$(dirname "$out")/.overhead.XXXXXX")
  echo "$report" > "$tmp" && mv "$tmp" "$out"
fi
