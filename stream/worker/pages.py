"""The worker's HTTP pages: /healthz, /readyz and, unless faust's sensors serve it, /metrics."""

from __future__ import annotations

from typing import Any

from .upkeep import ready


def add_metrics_page(app: Any, registry: Any) -> None:
    from aiohttp.web import Response as HttpResponse
    from faust.web import Request, Response, View
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # a header, not aiohttp's content_type, which refuses the charset it carries
            page = HttpResponse(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
            return page  # type: ignore[return-value]


def add_health_pages(app: Any) -> None:
    from faust.web import Request, Response, View

    @app.page("/healthz")
    class Healthz(View):  # the process is up and its event loop answers
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Readyz(View):  # 503 until recovery is complete and the worker owns partitions
        async def get(self, request: Request) -> Response:
            if ready(app):
                return self.json({"status": "ready"})
            return self.json({"status": "recovering"}, status=503)
