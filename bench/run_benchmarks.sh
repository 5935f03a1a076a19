#!/usr/bin/env bash
# Runs every case of smooth_ap_bench in its own process (peak RSS is per
# process) and writes a markdown table: median time, peak RSS and the speedup
# of the fused op over the dense oracle.
#
#   bench/run_benchmarks.sh [BINARY] [OUTPUT]
#     BINARY  the built benchmark (default build/bench/smooth_ap_bench)
#     OUTPUT  markdown file to write (default bench/results.md); the table also
#             goes to stdout, the benchmark's own output to stderr.
#
# Needs jq. Threads: OMP_NUM_THREADS if set, else all hardware threads.
set -euo pipefail

bin=${1:-build/bench/smooth_ap_bench}
out=${2:-bench/results.md}

if [[ ! -x "$bin" ]]; then
  echo "error: benchmark binary '$bin' not found (build the smooth_ap_bench target)" >&2
  exit 1
fi
command -v jq >/dev/null || { echo "error: jq is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mapfile -t cases < <("$bin" --benchmark_list_tests=true 2>/dev/null)
if [[ ${#cases[@]} -eq 0 ]]; then
  echo "error: '$bin' lists no benchmark" >&2
  exit 1
fi

i=0
for name in "${cases[@]}"; do
  i=$((i + 1))
  echo "== [$i/${#cases[@]}] $name" >&2
  # Benchmark names are regexes to --benchmark_filter: escape them.
  pattern=$(printf '%s' "$name" | sed 's/[][\.*^$()+?{}|]/\\&/g')
  "$bin" --benchmark_filter="^${pattern}\$" \
    --benchmark_out="$tmp/$(printf '%03d' "$i").json" --benchmark_out_format=json >&2
done

# One TSV row per case: run_name, median real time (ms), max peak RSS (MiB), reps.
for f in "$tmp"/*.json; do
  jq -r '
    def ms: if .time_unit == "ns" then .real_time / 1e6
            elif .time_unit == "us" then .real_time / 1e3
            elif .time_unit == "s" then .real_time * 1e3
            else .real_time end;
    [.benchmarks[] | select(.run_type == "aggregate")] as $agg
    | ($agg | map(select(.aggregate_name == "median")) | first) as $med
    | ($agg | map(select(.aggregate_name == "max")) | first) as $max
    | [$med.run_name, ($med | ms), ($max.peak_rss_MiB // $med.peak_rss_MiB),
       $med.repetitions] | @tsv' "$f"
done >"$tmp/rows.tsv"

context() { jq -r ".context.$1 // \"\"" "$(ls "$tmp"/*.json | head -n 1)"; }
threads=$(context threads)
libtorch=$(context libtorch)
capability=$(context cpu_capability)
temperature=$(context temperature)
skipped=$(context oracle_skipped)
model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)

{
  echo "# Smooth-AP: fused op vs dense oracle (forward + backward)"
  echo
  echo "- Machine: $(nproc) cores, ${model:-unknown CPU}"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Threads (at::set_num_threads): $threads"
  echo "- LibTorch: $libtorch; proxyloss CPU kernels: $capability"
  echo "- Workload: float32 scores [M, C] (randn, positives +1), tau = $temperature,"
  echo "  loss = ap.nansum(), then backward. C = 1: 5% positives; C = 4: class 0 ~85%,"
  echo "  classes 1..3 5% each. Time: median wall time of the repetitions (reps)."
  echo "- Peak RSS: ru_maxrss of the case's own process (LibTorch itself and the data"
  echo "  included)."
  if [[ -n "$skipped" ]]; then
    echo "- Not run: $skipped."
  fi
  echo
  echo "| case | implementation | median time (ms) | peak RSS (MiB) | reps | fused speedup |"
  echo "|---|---|---:|---:|---:|---:|"
  awk -F'\t' -v skipped="$skipped" '
    {
      split($1, part, "/")            # impl / C:c / M:m / ...
      impl = part[1]; c = substr(part[2], 3); m = substr(part[3], 3)
      key = c SUBSEP m
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      t[key, impl] = $2; rss[key, impl] = $3; reps[key, impl] = $4
    }
    END {
      for (k = 1; k <= n; ++k) {
        split(order[k], cm, SUBSEP)
        label = sprintf("C=%s (%s), M=%s", cm[1], cm[1] == 1 ? "binary" : "multi-class", cm[2])
        key = order[k]
        has_oracle = ((key, "oracle") in t)
        if ((key, "fused") in t) {
          speedup = has_oracle ? sprintf("%.1fx", t[key, "oracle"] / t[key, "fused"]) : "n/a"
          printf "| %s | fused | %.1f | %.0f | %d | %s |\n", label, t[key, "fused"],
                 rss[key, "fused"], reps[key, "fused"], speedup
        }
        if (has_oracle) {
          printf "| %s | oracle | %.1f | %.0f | %d | |\n", label, t[key, "oracle"],
                 rss[key, "oracle"], reps[key, "oracle"]
        } else {
          printf "| %s | oracle | not run (memory) | | | |\n", label
        }
      }
    }' "$tmp/rows.tsv"
} | tee "$out"
