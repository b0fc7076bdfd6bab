"""The dashboard as a Starlette app: server-rendered pages over the store."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from fulmen.dashboard import _queries as queries
from fulmen.dashboard import _release_queries as release_queries
from fulmen.dashboard import _rollout_queries as rollout_queries
from fulmen.dashboard._errors import BadFilter
from fulmen.dashboard._filters import parse_nothing, parse_reward_query, parse_rollout_filter
from fulmen.dashboard._pages import (
    error_page,
    health_page,
    rewards_page,
    rollout_page,
    rollouts_page,
)
from fulmen.dashboard._reader import StoreReader
from fulmen.dashboard._versions_page import versions_page
from fulmen.dashboard._worker_metrics import read_worker


def create_app(reader: StoreReader, *, worker_metrics: Sequence[str] = ()) -> Starlette:
    """The dashboard over `reader`: /rollouts, /rollouts/{id}, /versions, /rewards and
    /health (`/` redirects to /rollouts). `worker_metrics` are the stream workers'
    Prometheus URLs (`http://host:6066/metrics`) that /health reads the lag from; empty
    means not configured.

    Bad query parameters answer 400 and an unknown rollout 404, each with a page saying
    why; a failing store query answers 500 with the store's message.
    """

    def params(request: Request) -> list[tuple[str, str]]:
        return request.query_params.multi_items()

    def rollouts(request: Request) -> Response:
        where = parse_rollout_filter(params(request))
        found = rollout_queries.rollouts(reader, where)
        return HTMLResponse(rollouts_page(found, where, rollout_queries.filter_choices(reader)))

    def rollout(request: Request) -> Response:
        parse_nothing(params(request))
        rollout_id = str(request.path_params["rollout_id"])
        detail = rollout_queries.rollout_detail(reader, rollout_id)
        if detail is None:
            raise HTTPException(404, f"no rollout {rollout_id!r} in the store")
        return HTMLResponse(rollout_page(rollout_id, detail))

    def versions(request: Request) -> Response:
        parse_nothing(params(request))
        return HTMLResponse(
            versions_page(
                queries.versions(reader),
                queries.training_runs(reader),
                release_queries.release_decisions(reader),
                release_queries.serving_states(reader),
            )
        )

    def rewards(request: Request) -> Response:
        query = parse_reward_query(params(request))
        return HTMLResponse(
            rewards_page(
                queries.reward_series(reader, query),
                query,
                queries.reward_names(reader),
                queries.versions(reader),
            )
        )

    def health(request: Request) -> Response:
        parse_nothing(params(request))
        workers = [read_worker(url) for url in worker_metrics] if worker_metrics else None
        return HTMLResponse(
            health_page(
                queries.dead_letter_counts(reader), queries.recent_dead_letters(reader), workers
            )
        )

    def home(request: Request) -> Response:
        return RedirectResponse("/rollouts", status_code=302)

    async def bad_filter(request: Request, exc: Exception) -> Response:
        return HTMLResponse(error_page(400, f"bad filter: {exc}"), status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return HTMLResponse(error_page(exc.status_code, exc.detail), status_code=exc.status_code)

    async def failure(request: Request, exc: Exception) -> Response:
        message = f"the store query failed: {type(exc).__name__}: {exc}"
        return HTMLResponse(error_page(500, message), status_code=500)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/rollouts", rollouts),
            Route("/rollouts/{rollout_id:path}", rollout),
            Route("/versions", versions),
            Route("/rewards", rewards),
            Route("/health", health),
        ],
        exception_handlers={BadFilter: bad_filter, HTTPException: http_error, Exception: failure},
    )
