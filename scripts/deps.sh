#!/usr/bin/env bash
# Installs the Debian packages that proxyloss needs to build, test, benchmark
# and run its demos, when they are missing (as root, or through sudo).
set -euo pipefail

# PROXYLOSS_SKIP_DEPS=1: the dependencies come from elsewhere (another
# LibTorch through CMAKE_PREFIX_PATH, a distribution without apt).
if [ "${PROXYLOSS_SKIP_DEPS:-0}" = 1 ]; then
  exit 0
fi

packages=(
  build-essential cmake     # compiler (with the ASan/UBSan runtimes) and build system
  libtorch-dev              # LibTorch 1.13 (CPU)
  libgloo-dev               # Gloo's headers, for c10d Gloo process groups (test_distributed)
  libsleef-dev              # SLEEF, for the AVX2 build of the CPU kernels
  libgtest-dev              # GoogleTest
  librapidcheck-dev         # rapidcheck, for the property-based tests
  libbenchmark-dev          # Google Benchmark
  ccache                    # faster rebuilds (optional, used when present)
  jq                        # bench/run_benchmarks.sh reads benchmark JSON
  libcli11-dev              # CLI11, the demos' command-line parser (header-only)
  python3-torch             # Python torch on the same LibTorch: the ops from Python
  python3-pytest            # pytest, for the Python tests
  python3-venv              # the Python tests' venv (scripts/test.sh)
  python3-sklearn           # the Python demos' data and metrics, a test oracle
  python3-matplotlib        # the Python demos' plots (--out DIR)
)
# Optional, not installed here: gnuplot-nox, with which the demos also draw
# PNG plots beside their CSV files (--out DIR).

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  echo "proxyloss: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
