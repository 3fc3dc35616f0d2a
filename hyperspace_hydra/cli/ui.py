"""``hyperspace ui``: serve the web UI over a store until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import socket
import sys

from hyperspace_hydra.cli.common import add_app_option, add_store_option, open_store_for
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
"""Hosts that only this machine reaches; any other gets a warning."""


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``ui``."""
    ui = commands.add_parser("ui", help="serve a web UI of the runs and the queue (needs the ui extra)")
    add_store_option(ui, with_app=True)
    add_app_option(ui)
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0: any free port)")
    ui.add_argument("--allow-actions", action="store_true", help="let the Queue and Sweeps pages pause, resume, retry and cancel sweeps (default: read-only)")
    ui.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from hyperspace_hydra.ui.app import create_app
    except ImportError as error:
        raise HyperspaceError(f"hyperspace ui needs the ui extra ({error.name} is missing): pip install 'hyperspace-hydra[ui]'") from None
    listener = _listen(args.host, args.port)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone who reaches this address can read every run in the store", file=sys.stderr)
    with listener, open_store_for(args) as store:
        host, port = listener.getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        mode = "actions allowed" if args.allow_actions else "read-only"
        print(f"hyperspace ui on http://{shown_host}:{port}/ ({mode}; store {redact_credentials(store.uri)}); Ctrl-C stops it", flush=True)
        server = uvicorn.Server(uvicorn.Config(create_app(store, args.allow_actions), log_level="warning", lifespan="off"))
        server.run(sockets=[listener])


MAX_PORT = 65535


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``; a port in use or an address this machine lacks is one :class:`HyperspaceError`."""
    if not 0 <= port <= MAX_PORT:
        raise HyperspaceError(f"--port must be from 0 (any free port) to {MAX_PORT}, not {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise HyperspaceError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        hint = " (another program uses it: choose another with --port)" if error.errno == errno.EADDRINUSE else ""
        raise HyperspaceError(f"cannot listen on {host}:{port}: {error.strerror or error}{hint}") from None
    return listener
