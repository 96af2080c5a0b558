"""Prometheus metrics, on a registry owned by the engine (no process-wide state)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]


class Metrics:
    """The core's metrics; each capability registers its own on ``registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.http_requests = Counter(
            "ownly_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "ownly_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.ready = Gauge(
            "ownly_ready",
            "1 when the database answers and a rule set is loaded.",
            registry=self.registry,
        )

        self.events_ingested = Counter(
            "ownly_events_ingested",
            "Events stored (duplicates not counted).",
            registry=self.registry,
        )
        self.writer_group_size = Histogram(
            "ownly_writer_group_size",
            "Writes committed together in one transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.writer_commit_seconds = Histogram(
            "ownly_writer_commit_seconds",
            "Time to apply and commit one group of writes.",
            registry=self.registry,
        )

        self.job_attempts = Counter(
            "ownly_job_attempts",
            "Attempts of jobs, by kind and the kind's outcome (delivered, timeout, crashed, ...).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "ownly_jobs_finished",
            "Jobs that ended, by kind and outcome (succeeded, failed).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.matches_unplanned = Counter(
            "ownly_matches_unplanned",
            "Matched rules whose kind planned nothing (no such kind runs in this engine).",
            ["kind"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ownly_queue_depth",
            "Jobs still to run (pending, held with their group, waiting in order), by kind.",
            ["kind"],
            registry=self.registry,
        )

    def request_answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP answer (the labelled children are looked up once per label set)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
