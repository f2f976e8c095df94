"""Operating the host: Prometheus metrics, structured logs with request ids, per-client rate limits."""
