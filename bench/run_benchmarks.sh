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

# OpenMP threads that spin while waiting steal the other core on a shared
# 2-core machine and make timings erratic: let them sleep unless told otherwise.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

bin=${1:-build/bench/smooth_ap_bench}
out=${2:-bench/results.md}

if [[ ! -x "$bin" ]]; then
  echo "error: benchmark binary '$bin' not found (build the smooth_ap_bench target)" >&2
  exit 1
fi
command -v jq >/dev/null || { echo "error: jq is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# BENCH_CASES (an extended regex) selects cases by name; all by default.
mapfile -t cases < <("$bin" --benchmark_list_tests=true 2>/dev/null | grep -E "${BENCH_CASES:-.}")
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
skipped=$(context oracle_skipped)
model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)

{
  echo "# Smooth-AP: fused op vs dense oracle (forward + backward)"
  echo
  echo "- Machine: $(nproc) cores, ${model:-unknown CPU}"
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Threads (at::set_num_threads): $threads; OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
  echo "- LibTorch: $libtorch; proxyloss CPU kernels: $capability"
  echo "- Workload: float32 scores [M, C] (randn; separated: positives +1, unseparated:"
  echo "  positives drawn like negatives); loss = ap.nansum(), then backward. C = 4:"
  echo "  class 0 ~85 %, classes 1..3 5 % each; C = 1000: M / C positives per class."
  echo "  Time: median wall time of 3 to 5 repetitions. Dense: the seed's [P, M]"
  echo "  algorithm (the oracle of the tests; run on separated scores only, its cost"
  echo "  does not depend on them). Sorts: torch::sort of a [C, M] float32 tensor"
  echo "  along M (one sort per class), the floor of any sort-based algorithm."
  echo "- Peak RSS: ru_maxrss of the case's own process (LibTorch itself and the data"
  echo "  included)."
  if [[ -n "$skipped" ]]; then
    echo "- Not run: $skipped."
  fi
  echo
  echo "| C | M | positives | tau | separated | fused (ms) | fused RSS (MiB) | dense (ms) | dense RSS (MiB) | speedup | C sorts (ms) | fused / sorts |"
  echo "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'\t' '
    {
      n_parts = split($1, part, "/")   # impl / C:c / M:m / pos:p / tau:t / sep:s, or sort / C:c / M:m
      impl = part[1]
      if (impl == "sort") { sort_ms[substr(part[2], 3) SUBSEP substr(part[3], 3)] = $2; next }
      key = substr(part[2], 3) SUBSEP substr(part[3], 3) SUBSEP substr(part[4], 5) SUBSEP substr(part[5], 5) SUBSEP substr(part[6], 5)
      if (!(key in seen)) { seen[key] = 1; order[++n] = key }
      t[key, impl] = $2; rss[key, impl] = $3
    }
    END {
      for (k = 1; k <= n; ++k) {
        key = order[k]
        split(key, f, SUBSEP)   # C, M, pos, tau, sep
        positives = f[1] == 1 ? sprintf("%g %%", f[3] * 100) : (f[1] == 4 ? "majority class" : sprintf("%d per class", f[2] / f[1]))
        dense = ((key, "oracle") in t)
        floor_ms = sort_ms[f[1], f[2]]
        printf "| %s | %s | %s | %s | %s | %.1f | %.0f | %s | %s | %s | %.1f | %.1fx |\n",
               f[1], f[2], positives, f[4], f[5] == 0 ? "no" : "yes", t[key, "fused"], rss[key, "fused"],
               dense ? sprintf("%.1f", t[key, "oracle"]) : "not run",
               dense ? sprintf("%.0f", rss[key, "oracle"]) : "",
               dense ? sprintf("%.1fx", t[key, "oracle"] / t[key, "fused"]) : "",
               floor_ms, t[key, "fused"] / floor_ms
      }
    }' "$tmp/rows.tsv"
} | tee "$out"
