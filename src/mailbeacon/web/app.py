"""The application factory: the tracking hot path in front, Starlette for the rest."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mailbeacon import __version__
from mailbeacon.clock import Clock
from mailbeacon.config import Config
from mailbeacon.core.tokens import Keyring
from mailbeacon.services import events, reporting
from mailbeacon.store.sql import SqlStore
from mailbeacon.store.writer import GroupCommitter
from mailbeacon.web.auth import RequireApiKey
from mailbeacon.web.tracking import TrackingApp


def api(store: SqlStore, committer: GroupCommitter | None = None) -> Starlette:
    """``/api/report`` reads the rollups the judge process keeps; it does not judge (a
    pass here would run in the tracking process, beside the hot path)."""
    async def index(_: Request) -> PlainTextResponse:
        return PlainTextResponse(f"mailbeacon {__version__} tracking server\n")

    async def health(_: Request) -> PlainTextResponse:
        try:
            await asyncio.to_thread(store.ping)
        except Exception as exc:
            return PlainTextResponse(f"store unavailable: {exc.__class__.__name__}\n", 503)
        return PlainTextResponse("ok\n")

    async def report_json(request: Request) -> JSONResponse:
        """The same figures as ``mailbeacon report --json`` (services.reporting)."""
        name = request.query_params.get("campaign")
        try:
            found = await asyncio.to_thread(reporting.build, store, name, judge=False,
                                            now=time.time())
        except reporting.UnknownCampaign as exc:
            return JSONResponse({"error": str(exc)}, 404)
        return JSONResponse(found.as_json())

    async def events_json(request: Request) -> JSONResponse:
        """A page of the stream in commit order; ``after`` is the ``X-Next-Cursor`` of the
        previous page (``TX.ID``; a plain event id is still taken)."""
        try:
            after = events.cursor(request.query_params.get("after", "0"))
            limit = int(request.query_params.get("limit", "100"))
        except events.BadCursor as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except ValueError:
            return JSONResponse({"error": "limit must be a whole number"}, 400)
        try:
            page = await asyncio.to_thread(events.page, store, after=after, limit=limit)
        except events.BadPage as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse([v.as_json() for v in page.events],
                            headers={"X-Next-Cursor": str(page.next)})

    async def stats(_: Request) -> JSONResponse:
        if committer is None:
            return JSONResponse({})
        return JSONResponse({"hits_written": committer.written, "batches": committer.batches,
                             "spooling": committer.spooling})

    return Starlette(routes=[
        Route("/api/stats", stats),
        Route("/", index), Route("/healthz", health),
        Route("/api/report", report_json), Route("/api/events", events_json),
    ])


def create_app(config: Config, store: SqlStore, keyring: Keyring, committer: GroupCommitter,
               clock: Clock) -> Any:
    return TrackingApp(
        keyring=keyring, record=committer.record, clock=clock,
        fallback=RequireApiKey(api(store, committer), store,
                               clock.now),
        load_attachment=store.get_attachment, trusted_proxies=config.trusted_proxies,
    )
