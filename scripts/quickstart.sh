#!/usr/bin/env bash
# Set up; enqueue a grid of the example study; drain the queue with two worker processes; print the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd examples/aggregation_study
../../.venv/bin/python -m study.run --multirun task=digits_300 aggregation=branching,mean classifier=softmax,mlp hydra/launcher=hyperspace
../../.venv/bin/hyperspace worker --app study.run --processes 2 --exit-when-empty
../../.venv/bin/hyperspace runs ls
