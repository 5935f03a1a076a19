#!/usr/bin/env bash
# Builds proxyloss and runs the main demo, compare_demo: warmup-only vs
# AP-only vs warmup+blend by validation AUCPR, with its defaults.
#   bash scripts/demo.sh [compare_demo options, e.g. --loss recall --out results]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target compare_demo
"$build_dir/examples/compare_demo" "$@"
