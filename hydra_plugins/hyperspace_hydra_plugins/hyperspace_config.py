"""Imported by Hydra's plugin scan: registers the ``hyperspace`` config in the ConfigStore."""

from hyperspace_hydra.settings import register_configs

register_configs()
