#!/usr/bin/env bash
# Set up, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/install_test_servers.sh
exec .venv/bin/python -m pytest "$@"
