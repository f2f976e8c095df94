"""Wiring observability into a host: metrics on the dispatcher, and the app's extra middleware.

``attach_metrics(runtime)`` runs in ``build_runtime``; ``middleware_before_auth(settings)`` and
``middleware_after_auth(runtime)`` give ``create_app`` its request-id and rate-limit layers;
``startup_hooks(runtime)`` and ``shutdown_hooks(runtime)`` what must start and stop with the app;
``scrape(app)`` the ``/metrics`` body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar
from litestar.logging.config import BaseLoggingConfig, LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.types import EmptyType

from fulcrum_core.observability.logging import RequestIdMiddleware, configure_logging, echo_request_id
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.observability.ratelimit import (
    Counter,
    MemoryCounter,
    RateLimiter,
    RateLimitMiddleware,
    RedisCounter,
)
from fulcrum_core.observability.shared_metrics import MetricsShare
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import Settings

__all__ = [
    "attach_metrics",
    "before_send",
    "logging_config",
    "metrics_of",
    "middleware_after_auth",
    "middleware_before_auth",
    "rate_limiter_of",
    "runtime_metrics",
    "scrape",
    "shutdown_hooks",
    "start_logging",
    "startup_hooks",
]

_METRICS = "metrics"
_LIMITER = "ratelimiter"
_SHARE = "metrics_share"


def attach_metrics(runtime: Runtime) -> Metrics:
    """Give the runtime its own metrics and make the dispatcher report to them."""
    metrics = Metrics()
    runtime.dispatcher.observer = metrics
    metrics.watch_breakers(runtime.dispatcher.resilience.snapshot)
    runtime.extras[_METRICS] = metrics
    settings = runtime.settings
    if settings.metrics_dir:
        runtime.extras[_SHARE] = MetricsShare(
            settings.metrics_dir, metrics, runtime.dispatcher.resilience.snapshot,
            every=settings.metrics_share_seconds,
        )
    return metrics


def runtime_metrics(runtime: Runtime) -> Metrics | None:
    """The runtime's metrics, if :func:`attach_metrics` gave it some."""
    metrics: Metrics | None = runtime.extras.get(_METRICS)
    return metrics


def metrics_of(app: Litestar) -> Metrics:
    """The metrics of ``app`` (attached when the runtime was built)."""
    metrics: Metrics = app.state.runtime.extras[_METRICS]
    return metrics


async def scrape(app: Litestar) -> bytes:
    """The ``/metrics`` body: every worker sharing ``metrics_dir``, or this worker's own counts."""
    share: MetricsShare | None = app.state.runtime.extras.get(_SHARE)
    return await share.arender() if share is not None else metrics_of(app).render()


def start_logging(settings: Settings) -> None:
    """JSON log lines with ``log_json``, set up before the runtime is built: plugin loading and the
    first read of the branch files log as JSON too."""
    if settings.log_json:
        configure_logging(settings.log_level)


def middleware_before_auth(runtime: Runtime) -> list[Any]:
    """The request-id layer (outermost, so even a 401 carries an id); sets up JSON logs if asked."""
    start_logging(runtime.settings)
    return [RequestIdMiddleware]


def logging_config(runtime: Runtime) -> BaseLoggingConfig | EmptyType | None:
    """``create_app``'s ``logging_config``: with ``log_json`` none, since litestar's default setup,
    run as the app is built, would replace the JSON handler on the root logger; otherwise litestar's,
    with the root logger at ``log_level``."""
    if runtime.settings.log_json:
        return None
    return LoggingConfig(root={"handlers": ["queue_listener"], "level": runtime.settings.log_level.upper()})


def middleware_after_auth(runtime: Runtime) -> list[Any]:
    """The rate limit (it needs the authenticated client), on Redis when configured."""
    settings = runtime.settings
    if not settings.rate_limit.enabled:
        return []
    counter: Counter = (
        RedisCounter(settings.redis_url, prefix=f"{settings.redis_prefix}ratelimit:")
        if settings.redis_url
        else MemoryCounter()
    )
    limiter = RateLimiter(settings.rate_limit, counter)
    runtime.extras[_LIMITER] = limiter
    return [DefineMiddleware(RateLimitMiddleware, limiter=limiter)]


def rate_limiter_of(runtime: Runtime) -> RateLimiter | None:
    """The app's rate limiter (None when the limit is off)."""
    limiter: RateLimiter | None = runtime.extras.get(_LIMITER)
    return limiter


def before_send() -> list[Any]:
    """``before_send`` hooks for ``create_app``: the request id echoed in every response."""
    return [echo_request_id]


def startup_hooks(runtime: Runtime) -> list[Callable[[], Any]]:
    """What to start with the app (the rate limiter's connections, the shared metrics' periodic writes)."""
    limiter: RateLimiter | None = runtime.extras.get(_LIMITER)
    share: MetricsShare | None = runtime.extras.get(_SHARE)
    return [hook for hook in (limiter.start if limiter else None, share.start if share else None) if hook]


def shutdown_hooks(runtime: Runtime) -> list[Callable[[], Any]]:
    """What to close when the app stops (the rate limiter's connections, the shared metrics' files)."""
    limiter: RateLimiter | None = runtime.extras.get(_LIMITER)
    share: MetricsShare | None = runtime.extras.get(_SHARE)
    return [hook for hook in (limiter.close if limiter else None, share.stop if share else None) if hook]
