"""Money display for plugins: integer fen shown as ``¥1,234.56``, the way the app prints amounts."""

from __future__ import annotations

__all__ = ["yuan"]


def yuan(fen: int) -> str:
    """Format an amount in fen as yuan with thousands separators: ``123456`` → ``¥1,234.56``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"
