#!/usr/bin/env bash
# Set up, install the servers the tests start, check style (ruff) and types (mypy), then run
# the whole test suite. Extra arguments go to pytest.
#   scripts/test.sh --fast   the fast lane while developing: no servers, no ruff or mypy, no test
#                            marked postgres, slurm, browser or soak (see setup.cfg), and 1.5
#                            pytest-xdist processes per core (tests/conftest.py), each taking the
#                            next test when it is free (-n 0 after --fast: one process), and
#                            Python processes forked from a server that imported Hydra, SQLAlchemy and
#                            Optuna once (tests/fork_server.py)
set -euo pipefail
cd "$(dirname "$0")/.."
# Every process the tests start imports this project's modules; where PYTHONDONTWRITEBYTECODE is set
# (as in many containers) each one compiled them again (~60 ms a process): compile them once, here.
compile_bytecode() { .venv/bin/python -m compileall -q hyperspace_hydra hydra_plugins benchmarks >/dev/null; }
if [ "${1:-}" = "--fast" ]; then
  shift
  scripts/setup.sh test
  compile_bytecode
  export HYPERSPACE_TEST_FORK_SERVER=1
  exec .venv/bin/python -m pytest -n auto --dist worksteal -m "not postgres and not slurm and not browser and not soak" "$@"
fi
scripts/setup.sh test
compile_bytecode
scripts/install_test_servers.sh
.venv/bin/ruff check hyperspace_hydra hydra_plugins tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
