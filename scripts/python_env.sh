#!/usr/bin/env bash
# Creates (once) the Python environment the fixture scripts run in, and prints its python.
#   PY=$(scripts/python_env.sh) && "$PY" scripts/make_parity_fixtures.py
# The environment lives in $GENARM_PYENV (default ~/.cache/genarm/pyenv) and is rebuilt only when
# scripts/requirements-fixtures.txt changes. Nothing in CI needs it: the fixtures are committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
env_dir="${GENARM_PYENV:-${XDG_CACHE_HOME:-$HOME/.cache}/genarm/pyenv}"
requirements="$here/requirements-fixtures.txt"
stamp="$env_dir/.requirements"
if [[ ! -x "$env_dir/bin/python" ]] || ! cmp -s "$requirements" "$stamp"; then
    echo "python_env: installing $requirements into $env_dir" >&2
    python3 -m venv "$env_dir"
    "$env_dir/bin/pip" install --quiet --upgrade pip >&2
    "$env_dir/bin/pip" install --quiet -r "$requirements" >&2
    cp "$requirements" "$stamp"
fi
echo "$env_dir/bin/python"
