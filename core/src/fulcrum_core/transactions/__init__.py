"""The transaction pipeline: validate, check, journal, execute, reconcile."""
