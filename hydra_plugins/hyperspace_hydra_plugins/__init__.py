"""Hydra glue for hyperspace_hydra; all logic lives in the ``hyperspace_hydra`` package."""
