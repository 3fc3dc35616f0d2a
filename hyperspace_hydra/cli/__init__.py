"""The ``hyperspace`` command line.

Every error a user can cause is a :class:`HyperspaceError`, printed as one line
``error: ...`` on stderr with exit status 2; Ctrl-C is one such line with exit status 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from hyperspace_hydra.cli import backfill, importing, queue, report, rerun, runs, slurm, store, sweep, ui, worker
from hyperspace_hydra.errors import HyperspaceError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    The current directory is searched for modules first, as ``python -m study.run``
    does, so that commands started in a study's directory see its code (its apps,
    and the targets whose defaults complete past configs).
    """
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # psycopg logs "error ignored terminating <Pipeline>" when a batch it sent failed; the command reports that error itself
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    parser = _parser()
    args = parser.parse_args(_attach_dashed_values(sys.argv[1:] if argv is None else argv))
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except HyperspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # every write of a command is one transaction, rolled back as this exception unwinds it
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


_DASHED_VALUE_OPTIONS = ("--sort",)
"""Options whose value may start with ``-`` (``--sort -result``), which argparse would take for an option."""


def _attach_dashed_values(argv: Sequence[str]) -> list[str]:
    """``--sort -result`` as ``--sort=-result``, so that argparse reads ``-result`` as the value."""
    attached: list[str] = []
    for arg in argv:
        if attached and attached[-1] in _DASHED_VALUE_OPTIONS and arg.startswith("-") and not arg.startswith("--"):
            attached[-1] = f"{attached[-1]}={arg}"
        else:
            attached.append(arg)
    return attached


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperspace", description="Queue, run, record and tune Hydra experiments.")
    commands = parser.add_subparsers(title="commands")
    for module in (runs, queue, worker, slurm, rerun, sweep, backfill, report, store, importing, ui):
        module.add_commands(commands)
    return parser
