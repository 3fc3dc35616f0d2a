#!/usr/bin/env bash
# Set up, install the servers the tests start, check style (ruff) and types (mypy), then run
# the whole test suite. Extra arguments go to pytest.
#   scripts/test.sh --fast   the fast lane while developing: no servers, no ruff or mypy, no test
#                            marked postgres, slurm, browser or soak (see setup.cfg), and one
#                            pytest-xdist process per core (-n 0 after --fast: one process)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  scripts/setup.sh test
  exec .venv/bin/python -m pytest -n auto -m "not postgres and not slurm and not browser and not soak" "$@"
fi
scripts/setup.sh test
scripts/install_test_servers.sh
.venv/bin/ruff check hyperspace_hydra hydra_plugins tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
