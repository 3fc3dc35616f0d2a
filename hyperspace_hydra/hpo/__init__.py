"""Hyper-parameter search with Optuna samplers, informed by every compatible past run.

``space`` parses Hydra-style search spaces, ``history`` finds past runs that lie in
a space, ``tuner`` rebuilds an Optuna study from the store and asks for the next
trials; the sweeper plugin and the worker drive it.
"""

SEARCH = "search"
"""The kind of a search sweep (kept here, free of Optuna, for modules that only need the name)."""
