"""The declarative base for the registry's tables."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

__all__ = ["RegistryBase"]

# Same convention as the host's tables, so alembic names every constraint deterministically.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class RegistryBase(DeclarativeBase):
    """Base for registry tables (publishers, plugins, releases, reviews, grants, audit)."""

    metadata = MetaData(naming_convention=_NAMING)
