"""The URL table: every endpoint of the API document, plus /prefetch and /openapi.json."""

from __future__ import annotations

from aiohttp import web

from http_api import views


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/complete", views.complete, name="complete")
    app.router.add_post("/prefetch", views.prefetch, name="prefetch")
    app.router.add_get("/health", views.health, name="health", allow_head=False)
    app.router.add_get("/status", views.status, name="status", allow_head=False)
    app.router.add_post("/restart", views.restart, name="restart")
    app.router.add_get("/openapi.json", views.openapi, name="openapi", allow_head=False)
