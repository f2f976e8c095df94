"""Matching the customer's search text against a plugin's known terms, with a relevance in 0–1."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["relevance"]


def relevance(query: str, terms: Iterable[str]) -> float:
    """1.0 for an exact term, 0.9 when the query contains a term, 0.7 when a term contains the query
    (two characters or more), else 0.0. Case-insensitive."""
    q = query.casefold().strip()
    best = 0.0
    for term in terms:
        t = term.casefold()
        if q == t:
            return 1.0
        if t in q:
            best = max(best, 0.9)
        elif len(q) >= 2 and q in t:
            best = max(best, 0.7)
    return best
