"""A job run by ``App.run`` (the worker's job processes, ``rerun``) is the job Hydra's own ``run_job`` runs:
the same ``.hydra`` files byte for byte, the same job log, the same job return, the same working directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLE_STUDY, PROBE_STUDY, copy_study, enqueue, python_in, run_worker

from hyperspace_hydra.store import open_store

RUN_BOTH = """
import json, os, re, shutil, sys
from pathlib import Path
from hydra._internal.callbacks import Callbacks
from hydra.core.utils import run_job as hydra_run_job
from hydra.types import HydraContext
from hyperspace_hydra.app import load_app, run_job

app = load_app(sys.argv[1])
overrides = json.loads(sys.argv[2])
output = Path(sys.argv[3])
seen = {}
for name in ("hydra", "ours"):
    config = app.compose([*overrides, f"hydra.run.dir={output}"])
    callbacks = Callbacks(config)
    if name == "hydra":
        job = hydra_run_job(hydra_context=HydraContext(config_loader=app.hydra().config_loader, callbacks=callbacks),
                            task_function=app.task_function, config=config, job_dir_key="hydra.run.dir", job_subdir_key=None)
    else:
        job = run_job(app.task_function, config, callbacks)
    files = {str(path.relative_to(output)): re.sub(r"^\\[[0-9-]+ [0-9:,]+\\]", "[time]", path.read_text(), flags=re.M)
             for path in sorted(output.rglob("*")) if path.is_file()}
    seen[name] = {
        "files": files,
        "cfg": repr(job.cfg), "struct": job.cfg._get_flag("struct"), "hydra_cfg": repr(job.hydra_cfg),
        "overrides": job.overrides, "working_dir": job.working_dir, "task_name": job.task_name,
        "status": str(job.status), "return_value": repr(job._return_value), "cwd": os.getcwd(),
    }
    shutil.rmtree(output)
print(json.dumps(seen))
"""

CASES = [
    (PROBE_STUDY, "probe.run", ["~hydra.callbacks.hyperspace", "message=bytes", "model=large", "result=float"]),
    (PROBE_STUDY, "probe.run", ["~hydra.callbacks.hyperspace", "fail=true", "result=float", "hydra.job.chdir=true", "+hydra.job.env_set.PROBE=1"]),
    (PROBE_STUDY, "probe.run", ["~hydra.callbacks.hyperspace", "hydra.output_subdir=null", "hydra.verbose=true", "result=float"]),
    (EXAMPLE_STUDY, "study.run", ["~hydra.callbacks.hyperspace", "task=digits_300", "aggregation=branching", "hydra.job.name=named"]),
]


@pytest.mark.parametrize(("source", "module", "overrides"), CASES, ids=["groups", "failing-chdir-env", "no-subdir-verbose", "example"])
def test_a_job_writes_and_returns_what_hydras_run_job_does(tmp_path: Path, source: Path, module: str, overrides: list[str]) -> None:
    study = copy_study(source, tmp_path / "study")
    finished = python_in(study, RUN_BOTH.replace("sys.argv[1]", repr(module)).replace("sys.argv[2]", repr(json.dumps(overrides))).replace("sys.argv[3]", repr(str(tmp_path / "out"))))
    assert finished.returncode == 0, finished.stderr
    seen = json.loads(finished.stdout.strip().splitlines()[-1])
    assert seen["hydra"]["files"], "Hydra wrote nothing: the case checks nothing"
    assert seen["ours"] == seen["hydra"]



HYDRA_RUNS_IT = """
import json, sys
from hydra._internal.callbacks import Callbacks
from hydra.core.utils import run_job
from hydra.types import HydraContext
from hyperspace_hydra.app import load_app

app = load_app("probe.run")
config = app.compose([*json.loads(sys.argv[1]), "hydra.run.dir=" + sys.argv[2]])
context = HydraContext(config_loader=app.hydra().config_loader, callbacks=Callbacks(config))
run_job(hydra_context=context, task_function=app.task_function, config=config, job_dir_key="hydra.run.dir", job_subdir_key=None)
"""


def _hydra_files(output_dir: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted((output_dir / ".hydra").iterdir())}


def test_a_queued_job_writes_the_hydra_files_that_hydra_writes_for_it(probe_study: Path) -> None:
    """Both jobs of the grid: the first composed in full by the worker, the second made from it in its job process, its
    files from the entries the worker wrote before the fork (with a top-level ``seed``, unicode and interpolations).
    Hydra's own ``run_job`` then runs each job's config, as the worker composes it, in the same directory."""
    assert enqueue(probe_study, "message='ünïcødé ✓',plain", "+note=${message}/${seed}", "score=${seed}").returncode == 0
    run_worker(probe_study)
    with open_store(f"sqlite:///{probe_study}/.hyperspace/store.db") as store:
        jobs = store.list_jobs()
    assert [job["state"] for job in jobs] == ["COMPLETED", "COMPLETED"]
    written = ""
    for job in jobs:
        output_dir = probe_study / job["output_dir"]
        queued = _hydra_files(output_dir)
        shutil.rmtree(output_dir)
        script = HYDRA_RUNS_IT.replace("sys.argv[1]", repr(json.dumps(job["overrides"]))).replace("sys.argv[2]", repr(job["output_dir"]))
        ran = python_in(probe_study, script)
        assert ran.returncode == 0, ran.stderr
        assert queued == _hydra_files(output_dir), job["overrides"]
        written += queued["config.yaml"]
    assert "ünïcødé ✓" in written and "note: ${message}/${seed}" in written and "seed: 7" in written, "the case checks what it says"
