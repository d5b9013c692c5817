"""Prometheus metrics of the REST API (``GET /metrics``), with the standard ``prometheus_client``.

Each application gets its own registry: requests by route and status, request latency
(histogram), predictions by class and how many of them need human review. With several
uvicorn workers each process counts its own requests (a scrape reaches one worker).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"


class ServeMetrics:
    """The counters and histogram of one API application, and their text exposition."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("prodcat_http_requests", "HTTP requests answered, by method, route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("prodcat_http_request_duration_seconds", "Time to answer a request, by route.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("prodcat_predictions", "Products classified, by predicted code.",
                                   ["code", "name"], registry=self.registry)
        self.reviews = Counter("prodcat_predictions_needs_review", "Products classified whose confidence is below "
                               "the model's review threshold.", registry=self.registry)
        self.review_share = Gauge("prodcat_review_share", "Share of the products classified since start that "
                                  "need human review (0 before the first prediction).", registry=self.registry)
        self._n_predicted = 0
        self._n_review = 0
        self._lock = threading.Lock()  # answers are counted from the thread pool

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_answers(self, answers: Iterable[Mapping[str, Any]]) -> None:
        """Count the predictions of answered products (the dicts of :class:`PredictionService`)."""
        with self._lock:
            for answer in answers:
                self.predictions.labels(str(answer["code"]), answer["name"]).inc()
                self._n_predicted += 1
                if answer.get("needs_review"):
                    self.reviews.inc()
                    self._n_review += 1
            if self._n_predicted:
                self.review_share.set(self._n_review / self._n_predicted)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware timing every HTTP request and counting it by route template and status."""

    def __init__(self, app: Any, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            self.metrics.observe_request(scope.get("method", ""), route, status["code"],
                                         time.perf_counter() - started)
