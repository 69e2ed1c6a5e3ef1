"""Provenance of a record across tiers (read side): for each version of a catalog or system, where it was first
recorded — signer, chain, directory, transaction, block, log — and every directory above that holds it as
relayed, each with its own transaction, block and log and the ``Relayed`` event naming the origin.

The chain of custody runs from the top (the city directory's copy) down to the origin (e.g. the street
directory's transaction that created it); a hop matches its origin by (chain id, directory, transaction hash,
log index) — the fields the parent's at-most-once origin key is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Executable, and_, bindparam, select
from sqlalchemy.orm import Session, aliased

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


@cache
def _holders_of(kind: str) -> Executable:
    """One statement (built once per kind; the record's code is the bound parameter ``code``): every version of
    the record joined with its directory's home, and each relayed copy of it
    (matched on the origin's chain id, directory, transaction hash and log index) with the copy's directory's
    home; ordered by version (a version without copies comes once, with null copy columns)."""
    versions: type[CatalogVersionRow] | type[SystemVersionRow]
    versions = CatalogVersionRow if kind == "catalog" else SystemVersionRow
    v_dir, c_dir = aliased(DirectoryRow), aliased(DirectoryRow)
    v_home, c_home = aliased(JurisdictionRow), aliased(JurisdictionRow)
    c = RelayedRecordRow
    return (
        select(versions.version, versions.action, versions.digest, versions.signer, versions.chain_id,
               versions.directory, versions.tx_hash, versions.block_number, versions.block_hash, versions.log_index,
               versions.block_timestamp, v_home.code, v_home.tier,
               c.chain_id, c.directory, c.tx_hash, c.block_number, c.log_index, c.block_timestamp,
               c.relayed_log_index, c.origin_key, c_home.code, c_home.tier)
        .outerjoin(v_dir, and_(v_dir.chain_id == versions.chain_id, v_dir.address == versions.directory))
        .outerjoin(v_home, v_home.id == v_dir.home_id)
        .outerjoin(c, and_(c.subject == versions.code, c.event.in_(EVENTS[kind]),
                           c.origin_chain_id == versions.chain_id, c.origin_directory == versions.directory,
                           c.origin_tx_hash == versions.tx_hash, c.origin_log_index == versions.log_index))
        .outerjoin(c_dir, and_(c_dir.chain_id == c.chain_id, c_dir.address == c.directory))
        .outerjoin(c_home, c_home.id == c_dir.home_id)
        .where(versions.code == bindparam("code"))
        .order_by(versions.version)
    )


def provenance(session: Session, kind: str, code: str) -> list[VersionProvenance] | None:
    """Every version of the ``kind`` (``catalog``/``system``) record ``code`` with its chain of custody, oldest
    version first; None if the record is not indexed. Raises KeyError for an unknown ``kind``.

    One SQL statement (the versions, their copies and every holder's home in one join; see :func:`_holders_of`)."""
    if kind not in EVENTS:
        raise KeyError(kind)
    rows = session.execute(_holders_of(kind), {"code": code}).all()
    if not rows:
        return None
    out: list[VersionProvenance] = []
    current: tuple[Any, ...] | None = None
    origin: Holder | None = None
    hops: list[Holder] = []

    def close() -> None:
        if current is not None and origin is not None:
            hops.sort(key=lambda h: (_TIER_RANK.get(h.tier or "", 9), h.chain_id, h.directory))
            out.append(VersionProvenance(current[0], current[1], current[2], current[3], origin, [*hops, origin]))

    for r in rows:
        if current is None or r[0] != current[0]:
            close()
            current, hops = tuple(r), []
            origin = Holder(r[11], r[12], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
        if r[13] is not None:
            hops.append(Holder(r[21], r[22], r[13], r[14], r[15], r[16], None, r[17], r[18], r[19], r[20]))
    close()
    return out
