#!/usr/bin/env bash
# Creates (or updates) the venv of the tests' Python peers and prints its interpreter's path.
#   bash tests/python/setup-venv.sh            -> /var/tmp/robust-snn-venv
#   ROBUST_SNN_VENV=DIR bash tests/python/...  -> DIR
# Then: ROBUST_SNN_PYTHON=<printed path> cargo test --release
# The tests that need these packages skip with a message when no interpreter has them; when
# ROBUST_SNN_PYTHON is set they require them and fail instead of skipping.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${ROBUST_SNN_VENV:-/var/tmp/robust-snn-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
"$venv/bin/python" -c "import numpy, brian2, nir, h5py, rockpool" >&2
echo "$venv/bin/python"
