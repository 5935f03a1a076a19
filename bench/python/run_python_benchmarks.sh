#!/usr/bin/env bash
# Python modules against the seed's (proxy-losses 0.1.3): forward + backward
# times in one process, peak RSS of each case in its own process, and our
# Python module against our C++ module (Python overhead). Prints a markdown
# report (machine line, table, targets) ready for the README.
#
#   bench/python/run_python_benchmarks.sh [OUTPUT] [ranking_bench.py flags...]
#     OUTPUT  markdown file to write (default bench/python/results.md; every
#             number also goes to OUTPUT with .json). The report goes to
#             stdout, progress to stderr.
#
# Environment:
#   THREADS              torch threads (default 2): torch.set_num_threads,
#                        OMP_NUM_THREADS and MKL_NUM_THREADS
#   OMP_WAIT_POLICY      default passive (spinning OpenMP threads steal the
#                        other core of a shared machine)
#   PYTHON               interpreter with torch and proxy_losses (default
#                        build/python-env/bin/python, the test venv)
#   PROXYLOSS_LIBRARY    library of the development tree (default
#                        build/libproxyloss.so), loaded with python/ on
#                        PYTHONPATH; PROXYLOSS_INSTALLED=1 uses the installed
#                        package instead (no PYTHONPATH, no PROXYLOSS_LIBRARY)
#
# Takes about 6 to 8 minutes on a 2-core machine (the seed's dense
# SmoothAPLoss at M = 16,384, C = 4 and at M = 65,536, C = 1 is most of it;
# it needs ~4 GB of memory there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

out=$here/results.md
if [[ $# -gt 0 && $1 != -* ]]; then
  out=$1
  shift
fi

threads=${THREADS:-2}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

python=${PYTHON:-$root/build/python-env/bin/python}
if [[ ! -x "$python" ]]; then
  echo "error: no Python interpreter at '$python' (set PYTHON)" >&2
  exit 1
fi

if [[ ${PROXYLOSS_INSTALLED:-0} != 1 ]]; then
  export PROXYLOSS_LIBRARY=${PROXYLOSS_LIBRARY:-$root/build/libproxyloss.so}
  if [[ ! -e "$PROXYLOSS_LIBRARY" ]]; then
    echo "error: '$PROXYLOSS_LIBRARY' not found (build the library, set PROXYLOSS_LIBRARY," \
      "or PROXYLOSS_INSTALLED=1 for the installed package)" >&2
    exit 1
  fi
  export PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH}
fi

"$python" -c 'import proxy_losses' 2>/dev/null || {
  echo "error: '$python' cannot import the seed package proxy_losses" \
    "(pip install proxy-losses==0.1.3)" >&2
  exit 1
}

exec "$python" "$here/ranking_bench.py" --threads "$threads" --markdown "$out" \
  --json "${out%.md}.json" "$@"
