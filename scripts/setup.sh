#!/usr/bin/env bash
# Create ./.venv (Python 3.11+) and install this checkout into it, editable, with the
# test and example extras. Safe to run again: it only installs what is missing.
#
# The editable install uses setuptools' "compat" mode (a path entry in a .pth file):
# Hydra 1.3 does not find plugins in namespace packages installed by the default
# PEP 660 editable mode (hydra issue #3252).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      python_bin="$candidate"; break
    fi
  done
fi
[ -n "$python_bin" ] || { echo "error: no Python >= 3.10 found; install python3 (Debian: apt-get install python3)" >&2; exit 1; }

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

.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  --config-settings editable_mode=compat -e ".[test]"

# Tests start a throwaway PostgreSQL server (tests/postgres_cluster.py) with initdb and pg_ctl
# from Debian's postgresql package, which keeps them in /usr/lib/postgresql/<version>/bin.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: PostgreSQL server binaries not found; the PostgreSQL tests will fail (Debian: sudo apt-get install postgresql)" >&2
  fi
fi

# The SLURM tests start a throwaway single-node cluster with accounting (tests/slurm_cluster.py):
# Debian's slurm-wlm, slurmdbd, munge and mariadb-server packages.
missing_slurm=""
for program in slurmctld slurmd slurmdbd munged mariadbd; do
  [ -x "/usr/sbin/$program" ] || missing_slurm="$missing_slurm $program"
done
if [ -n "$missing_slurm" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
  else
    echo "warning: SLURM, slurmdbd, MUNGE or MariaDB not found; the SLURM tests will fail (Debian: sudo apt-get install slurm-wlm slurmdbd munge mariadb-server)" >&2
  fi
fi
