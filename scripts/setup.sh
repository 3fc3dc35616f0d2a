#!/usr/bin/env bash
# Create ./.venv (Python 3.11+) and install this checkout into it, editable, with the extras
# named by the first argument (default: examples, what the quickstart runs; scripts/test.sh
# asks for test). Safe to run again: it only installs what is missing, and runs pip only when
# setup.cfg, pyproject.toml, the version or the extras changed since it last did.
# The servers the tests need are installed by scripts/install_test_servers.sh (scripts/test.sh runs it).
#
# The editable install uses setuptools' "compat" mode (a path entry in a .pth file):
# Hydra 1.3 does not find plugins in namespace packages installed by the default
# PEP 660 editable mode (hydra issue #3252).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-examples}"

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
[ -n "$python_bin" ] || { echo "error: no Python >= 3.11 found; install python3 (Debian: apt-get install python3)" >&2; exit 1; }

if [ ! -x .venv/bin/pip ]; then
  rm -rf .venv
  if ! "$python_bin" -m venv .venv 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv && "$python_bin" -m venv .venv
    else
      echo "error: '$python_bin -m venv' failed; install the venv module (Debian: sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

# pip takes ~8 s even when nothing is missing: skip it while what it installed from is unchanged (the
# packaging files, the version, the extras, the Python); rm .venv/.installed to make it look again.
stamp="$(cat setup.cfg pyproject.toml; grep '^__version__' hyperspace_hydra/__init__.py; echo "$extras"; .venv/bin/python -V)"
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --config-settings editable_mode=compat -e ".[$extras]"
  printf '%s' "$stamp" > .venv/.installed
fi
