"""Imported by Hydra's plugin scan, before any config is composed: registers the ``hyperspace`` config in the
ConfigStore and lets a study's plain override set a parameter that exists only as a target default."""

from hyperspace_hydra import target_overrides
from hyperspace_hydra.settings import register_configs

register_configs()
target_overrides.install()
