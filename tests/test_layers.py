"""The library's modules import only from their own layer or the layers below it (README, *Layout*)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hyperspace_hydra"

LAYERS = [
    {"errors", "bounds", "files", "config", "overrides", "settings", "seeding"},
    {"store", "store.base", "store.sql", "store.sql_schema", "store.sql_conditions", "store.sql_connection", "store.mongo", "store.retry", "store.grouping", "store.sql_grouping", "store.sqlite_anchor"},
    {"identity", "provenance", "job_process", "slurm", "slurm.environment"},
    {"composer", "config_yaml", "app", "targets", "target_overrides"},
    {"capture", "metric_buffer", "observer", "recorder", "tracking", "scenario"},
    {"queue", "launcher", "worker", "slurm.workers", "hpo", "hpo.base", "hpo.history", "hpo.pruners", "hpo.pruning", "hpo.refine", "hpo.report", "hpo.search", "hpo.space", "hpo.sweeper", "hpo.tuner"},
    {"results", "filters", "analysis", "report", "reproduce", "backfill", "sacred_import", "store_copy"},
    {"", "__main__", "cli", *(f"cli.{path.stem}" for path in (PACKAGE / "cli").glob("*.py") if path.stem != "__init__"), "ui", "ui.app", "ui.views"},
]
"""Layer by layer, from the bottom: words and settings, store, a job's identity, composing, recording,
queue and search, looking back, commands ("" is the package itself, whose public names load lazily)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """The library's modules that the module at ``path`` imports, anywhere in it (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hyperspace_hydra":
            base = node.module.removeprefix("hyperspace_hydra").lstrip(".")
            for alias in node.names:
                submodule = f"{base}.{alias.name}".lstrip(".")
                found.add(submodule if _module_path(submodule) else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("hyperspace_hydra").lstrip(".") for alias in node.names if alias.name.split(".")[0] == "hyperspace_hydra"}
    return found


def _module_path(name: str) -> bool:
    relative = Path(*name.split(".")) if name else Path()
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def _layer(name: str) -> int:
    [layer] = [index for index, modules in enumerate(LAYERS) if name in modules]
    return layer


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert {_module_name(path) for path in MODULES} == set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(path) or "hyperspace_hydra" for path in MODULES])
def test_a_module_imports_nothing_from_a_layer_above_its_own(path: Path) -> None:
    module = _module_name(path)
    above = {name for name in _imported(path) if _layer(name) > _layer(module)}
    assert not above, f"{module or 'hyperspace_hydra'} (layer {_layer(module) + 1}) imports {sorted(above)} from above"
