"""The Starlette application of ``hyperspace ui``: HTML pages and the JSON answers their script polls.

Each page and its JSON come from one function of :mod:`hyperspace_hydra.ui.views`. The store is
used by one request at a time (a :class:`~hyperspace_hydra.store.Store` object is used from one
thread at a time), in a worker thread so that a query never blocks the event loop.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jinja2
import plotly
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hyperspace_hydra.cli.output import cell, to_json
from hyperspace_hydra.errors import HyperspaceError
from hyperspace_hydra.settings import redact_credentials
from hyperspace_hydra.store import Store
from hyperspace_hydra.store.base import RUN_STATUSES, STALE_RUN_SECONDS, JobNotFoundError, RunNotFoundError
from hyperspace_hydra.ui import views

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
"""plotly.js as the installed plotly package ships it: the UI's charts work offline."""
STALE_CHECK_SECONDS = STALE_RUN_SECONDS / 4
"""How often the UI looks for runs whose process died unseen (:meth:`Store.end_stale_runs`)."""
TOKEN_HEADER = "X-Hyperspace-Token"
"""The header that carries an action's token: a form on another site cannot set it, and a script there would need
a CORS preflight that this app never grants."""
ACTIONS_OFF = "actions are off: this UI is read-only (start hyperspace ui with --allow-actions to pause, resume, retry or cancel sweeps and jobs)"


def create_app(store: Store, allow_actions: bool = False) -> Starlette:
    """The web UI over ``store`` (open; the caller closes it). With ``allow_actions`` the Queue and Sweeps pages can
    pause, resume, retry and cancel sweeps (and the Queue page single jobs), by POST requests that carry a token made anew for this app (another site cannot know it)."""
    ui = _UI(store, allow_actions)
    routes = [
        Route("/", lambda request: RedirectResponse("/runs")),
        Route("/runs", ui.page(ui.runs)),
        Route("/runs.json", ui.json(ui.runs)),
        Route("/runs/{run_id:int}", ui.page(ui.run)),
        Route("/runs/{run_id:int}.json", ui.json(ui.run)),
        Route("/api/run-states", ui.json(ui.run_states)),
        Route("/api/latest-run", ui.json(ui.latest_run)),
        Route("/api/runs/{run_id:int}/live", ui.json(ui.run_live)),
        Route("/compare", ui.page(ui.compare)),
        Route("/compare.json", ui.json(ui.compare)),
        Route("/sweeps", ui.page(ui.sweeps)),
        Route("/sweeps.json", ui.json(ui.sweeps)),
        Route("/sweeps/{sweep_id:int}", ui.page(ui.sweep)),
        Route("/sweeps/{sweep_id:int}.json", ui.json(ui.sweep)),
        Route("/queue", ui.page(ui.queue)),
        Route("/queue.json", ui.json(ui.queue)),
        Route("/actions/sweeps/{sweep_id:int}/{action}", ui.change_jobs, methods=["POST"]),
        Route("/actions/jobs/{job_id:int}/{action}", ui.change_jobs, methods=["POST"]),
        Route("/static/plotly.min.js", lambda request: FileResponse(PLOTLY_JS, media_type="text/javascript")),
        Mount("/static", StaticFiles(packages=[("hyperspace_hydra.ui", "static")])),
    ]
    return Starlette(routes=routes)


View = Callable[[Store, Request], tuple[str, dict[str, Any]]]
"""A view: asks the store, returns the template that renders its answer and the answer."""


class _UI:
    """The views of one app: its store, the lock that lets one request at a time use it, its templates and action token."""

    def __init__(self, store: Store, allow_actions: bool) -> None:
        self.store = store
        self.allow_actions = allow_actions
        self.token = secrets.token_urlsafe(32)
        self._one_at_a_time = anyio.CapacityLimiter(1)
        self._stale_checked_at = -STALE_CHECK_SECONDS
        self._templates = jinja2.Environment(loader=jinja2.PackageLoader("hyperspace_hydra.ui", "templates"), autoescape=True)
        self._templates.filters["cell"] = lambda value: redact_credentials(cell(value))
        self._templates.filters["short_cell"] = lambda value: redact_credentials(cell(value, short_paths=True))
        self._templates.filters["zip"] = zip
        self._templates.filters["pretty_json"] = lambda value: redact_credentials(to_json(value, indent=2))

    async def _ask(self, view: View, request: Request) -> tuple[str, dict[str, Any]]:
        return await anyio.to_thread.run_sync(functools.partial(view, self.store, request), limiter=self._one_at_a_time)

    def page(self, view: View) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint that renders ``view``'s answer as HTML (a :class:`HyperspaceError`: a page with its one line)."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                template, answer = await self._ask(view, request)
            except HyperspaceError as error:
                return HTMLResponse(self._render("error.html", {"error": str(error)}), status_code=_status_of(error))
            context = {"allow_actions": self.allow_actions, "token": self.token, "store_uri": redact_credentials(self.store.uri)}
            return _timed(HTMLResponse(self._render(template, {**context, **answer})), started)

        return endpoint

    def json(self, view: View) -> Callable[[Request], Awaitable[Response]]:
        """The endpoint that sends ``view``'s answer as JSON, credentials redacted (a :class:`HyperspaceError`: ``{"error": ...}``)."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                _, answer = await self._ask(view, request)
            except HyperspaceError as error:
                return _json({"error": str(error)}, _status_of(error))
            answer.pop("query", None)
            return _timed(_json(answer), started)

        return endpoint

    def _render(self, template: str, context: dict[str, Any]) -> str:
        return self._templates.get_template(template).render(context)

    def _end_stale_runs(self, store: Store) -> None:
        """Finish the runs whose process died unseen, as every CLI command does, so that no page shows them RUNNING;
        at most every :data:`STALE_CHECK_SECONDS` (it writes, and pages poll every second)."""
        now = time.monotonic()
        if now - self._stale_checked_at >= STALE_CHECK_SECONDS:
            self._stale_checked_at = now
            store.end_stale_runs()

    def runs(self, store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        query = views.RunsQuery.from_params(request.query_params)
        self._end_stale_runs(store)
        facets = {"statuses": RUN_STATUSES, "tasks": views.recent_tasks(store)}
        return "runs.html", {"query": query, **facets, **views.runs_table(store, query), "latest_run": views.latest_run_id(store)}

    @staticmethod
    def run(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "run.html", views.run_page(store, request.path_params["run_id"])

    def run_states(self, store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        self._end_stale_runs(store)
        return "", {"runs": views.run_states(store, _ids(request))}

    @staticmethod
    def latest_run(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "", {"id": views.latest_run_id(store)}

    @staticmethod
    def run_live(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "", views.run_live(store, request.path_params["run_id"])

    @staticmethod
    def compare(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "compare.html", views.compare_runs(store, _ids(request))

    @staticmethod
    def sweeps(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "sweeps.html", views.sweeps_list(store)

    @staticmethod
    def sweep(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "sweep.html", views.sweep_page(store, request.path_params["sweep_id"])

    @staticmethod
    def queue(store: Store, request: Request) -> tuple[str, dict[str, Any]]:
        return "queue.html", views.queue_overview(store)

    async def change_jobs(self, request: Request) -> Response:
        """POST: pause, resume, retry or cancel a sweep's jobs or one job; only with ``--allow-actions`` and this app's
        token in :data:`TOKEN_HEADER` (else 403)."""
        if not self.allow_actions:
            return _json({"error": ACTIONS_OFF}, 403)
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return _json({"error": "refused: the request lacks this UI's action token (reload the page)"}, 403)
        change = functools.partial(views.change_jobs, self.store, request.path_params["action"],
                                   sweep_id=request.path_params.get("sweep_id"), job_id=request.path_params.get("job_id"))  # fmt: skip
        try:
            done = await anyio.to_thread.run_sync(change, limiter=self._one_at_a_time)
        except HyperspaceError as error:
            return _json({"error": str(error)}, _status_of(error))
        return _json({"done": done})


def _ids(request: Request) -> list[int]:
    """The run ids of the request's ``ids`` parameter (``4,1,7``); what is not a number is left out."""
    return [int(part) for part in request.query_params.get("ids", "").split(",") if part.strip().isdigit()]


def _status_of(error: HyperspaceError) -> int:
    """404 for an unknown run or sweep, else 400: the request asked for something the store cannot answer."""
    return 404 if isinstance(error, (RunNotFoundError, JobNotFoundError)) else 400


def _timed(response: Response, started: float) -> Response:
    """``response`` with a ``Server-Timing`` header: the milliseconds since ``started`` (query and rendering)."""
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return response


def _json(answer: Any, status_code: int = 200) -> Response:
    return Response(to_json(views.redacted(answer)), status_code=status_code, media_type="application/json")
