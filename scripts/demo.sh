#!/usr/bin/env bash
# Builds proxyloss and runs the main demo.
#   bash scripts/demo.sh [demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target train_smooth_ap
"$build_dir/examples/train_smooth_ap" "$@"
