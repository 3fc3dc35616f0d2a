#!/usr/bin/env bash
# Set up, then run a small grid of the example study on the embedded store and print the runs table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd examples/aggregation_study
../../.venv/bin/python -m study.run --multirun task=digits_300 aggregation=branching,mean classifier=softmax,mlp
../../.venv/bin/hyperspace runs ls
