"""Provenance of a record across tiers (read side): for each version of a catalog or system, where it was first
recorded — signer, chain, directory, transaction, block, log — and every directory above that holds it as
relayed, each with its own transaction, block and log and the ``Relayed`` event naming the origin.

The chain of custody runs from the top (the city directory's copy) down to the origin (e.g. the street
directory's transaction that created it); a hop matches its origin by (chain id, directory, transaction hash,
log index) — the fields the parent's at-most-once origin key is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import CatalogVersionRow, DirectoryRow, JurisdictionRow, RelayedRecordRow, SystemVersionRow

#: Version events of each record kind, as indexed in ``relayed_records.event``.
EVENTS = {
    "catalog": ("CatalogVersionRecorded", "CatalogRetired"),
    "system": ("SystemVersionRecorded", "SystemRetired"),
}
#: Tier order, top first.
_TIER_RANK = {"city": 0, "district": 1, "street": 2}


@dataclass(frozen=True)
class Holder:
    """A directory holding a version: its home ``jurisdiction`` code and ``tier`` (None for a zero-home
    directory), ``chain_id`` and ``directory`` address, and the log recording the version there (``tx_hash``,
    ``block_number``, ``block_hash``, ``log_index``, ``block_timestamp`` in unix seconds). For a relayed copy,
    ``relayed_log_index`` is the ``Relayed`` event's log and ``origin_key`` the parent's at-most-once key (0x-hex);
    both None at the origin."""

    jurisdiction: str | None
    tier: str | None
    chain_id: int
    directory: str
    tx_hash: str
    block_number: int
    block_hash: str | None
    log_index: int
    block_timestamp: int
    relayed_log_index: int | None = None
    origin_key: str | None = None


@dataclass(frozen=True)
class VersionProvenance:
    """One version: ``action``, ``digest`` (0x-hex, None for a retirement), ``signer``, its ``origin`` and the
    ``custody`` chain — the holders from the top tier down to the origin (the origin last)."""

    version: int
    action: str
    digest: str | None
    signer: str
    origin: Holder
    custody: list[Holder]


def _homes(session: Session) -> dict[tuple[int, str], tuple[str | None, str | None]]:
    """(chain id, address) → (home code, tier) of every indexed directory."""
    rows = session.execute(
        select(DirectoryRow.chain_id, DirectoryRow.address, JurisdictionRow.code, JurisdictionRow.tier)
        .outerjoin(JurisdictionRow, JurisdictionRow.id == DirectoryRow.home_id)
    ).all()
    return {(chain_id, address): (code, tier) for chain_id, address, code, tier in rows}


def provenance(session: Session, kind: str, code: str) -> list[VersionProvenance] | None:
    """Every version of the ``kind`` (``catalog``/``system``) record ``code`` with its chain of custody, oldest
    version first; None if the record is not indexed. Raises KeyError for an unknown ``kind``."""
    events = EVENTS[kind]
    versions: list[CatalogVersionRow] | list[SystemVersionRow]
    if kind == "catalog":
        versions = list(session.scalars(select(CatalogVersionRow).where(CatalogVersionRow.code == code)
                                        .order_by(CatalogVersionRow.version)))
    else:
        versions = list(session.scalars(select(SystemVersionRow).where(SystemVersionRow.code == code)
                                        .order_by(SystemVersionRow.version)))
    if not versions:
        return None
    homes = _homes(session)
    copies = session.scalars(
        select(RelayedRecordRow).where(RelayedRecordRow.subject == code, RelayedRecordRow.event.in_(events))
    ).all()
    out = []
    for v in versions:
        home, tier = homes.get((v.chain_id, v.directory), (None, None))
        origin = Holder(home, tier, v.chain_id, v.directory, v.tx_hash, v.block_number, v.block_hash, v.log_index,
                        v.block_timestamp)
        hops = []
        for c in copies:
            if (c.origin_chain_id, c.origin_directory, c.origin_tx_hash, c.origin_log_index) != (
                v.chain_id, v.directory, v.tx_hash, v.log_index
            ):
                continue
            c_home, c_tier = homes.get((c.chain_id, c.directory), (None, None))
            hops.append(Holder(c_home, c_tier, c.chain_id, c.directory, c.tx_hash, c.block_number, None, c.log_index,
                               c.block_timestamp, c.relayed_log_index, c.origin_key))
        hops.sort(key=lambda h: (_TIER_RANK.get(h.tier or "", 9), h.chain_id, h.directory))
        out.append(VersionProvenance(v.version, v.action, v.digest, v.signer, origin, [*hops, origin]))
    return out
