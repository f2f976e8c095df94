"""``DemoDataProvider``: the demo bank's systems, answered from a packaged seed of synthetic customers.

The seed (``seed/customers.toml``) holds fifteen invented customers: the five personas of the domain
brief in each of the three demo branches. It is decoded and validated with the SDK's own
:class:`~fulcrum_sdk.data.CustomerRecord`, so a typo in it fails loudly at load time, naming the key.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import msgspec
from fulcrum_sdk.data import CustomerRecord, StaticDataProvider

__all__ = ["BRANCH_NAMES", "DemoDataProvider", "SeedError"]

BRANCH_NAMES: dict[str, str] = {"0755": "深圳分行", "021": "上海分行", "028": "成都分行"}
"""The demo branches by code."""


class _Seed(msgspec.Struct, forbid_unknown_fields=True):
    customers: list[CustomerRecord]


class SeedError(ValueError):
    """The seed file is missing, malformed, or repeats a customer id."""


class DemoDataProvider(StaticDataProvider):
    """A :class:`~fulcrum_sdk.data.DataProvider` over the seeded synthetic customers."""

    @classmethod
    def from_seed(cls, path: str | Path | None = None) -> DemoDataProvider:
        """Load the packaged seed (or the TOML file at ``path``); raises :class:`SeedError`."""
        source = files("fulcrum_core.data") / "seed" / "customers.toml" if path is None else Path(path)
        try:
            seed = msgspec.toml.decode(source.read_bytes(), type=_Seed)
        except OSError as exc:
            raise SeedError(f"{source}: cannot read the seed: {exc}") from None
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError and names the key
            raise SeedError(f"{source}: {exc}") from None
        records: dict[str, CustomerRecord] = {}
        for record in seed.customers:
            if record.id in records:
                raise SeedError(f"{source}: customer id {record.id!r} appears twice")
            records[record.id] = record
        return cls(records)

    def customers(self) -> list[CustomerRecord]:
        """Every customer, by branch (in ``BRANCH_NAMES`` order) and then by id."""
        order = {code: i for i, code in enumerate(BRANCH_NAMES)}
        return sorted(self.records.values(), key=lambda r: (order.get(r.profile.branch, len(order)), r.id))

    def customer(self, customer_id: str) -> CustomerRecord | None:
        """One customer's full record, or ``None``."""
        return self.records.get(customer_id)
