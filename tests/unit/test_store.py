"""The write side (registry.store), the read side (registry.queries) and the schema (registry.db) on
an in-process SQLite database, fed synthetic DecodedLog objects built from real canonical records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from chain.abi import DecodedLog
from registry import queries, tree
from registry.canonical import canonical_bytes, code_id
from registry.db import Base, CatalogRow, Cursor, make_engine, migrate, session_factory
from registry.errors import ReorgDetected
from registry.messages import SHARE_TYPES
from registry.models import CatalogRecord, SystemRecord
from registry.store import apply_event, apply_events, args_json

ZERO32 = b"\x00" * 32
# checksummed addresses; events carry them in lowercase, as the ABI decoder returns them
ADMIN = to_checksum_address("0x" + keccak(text="admin").hex()[:40])
KEY_XC = to_checksum_address("0x" + keccak(text="key xc").hex()[:40])
KEY_DX = to_checksum_address("0x" + keccak(text="key dx").hex()[:40])
DIRECTORY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
CHAIN_ID = 31337

CITY, XICHENG, DAXING = "110000", "110102", "110115"
XC_CIVIL, DX_CIVIL = "DXC0001", "DDX0001"


# ---------------------------------------------------------------------------------------- builders


class Chain:
    """Hands out consecutive (block, log index) positions and builds DecodedLog objects."""

    def __init__(self) -> None:
        self.block = 0
        self.log_index = 0
        self.seq = 0

    def next_block(self) -> None:
        self.block += 1
        self.log_index = 0

    def log(self, event: str, args: dict[str, Any], *, block_hash: str | None = None) -> DecodedLog:
        self.seq += 1
        args = {
            k: v.lower() if isinstance(v, str) and v.startswith("0x") and len(v) == 42 else v for k, v in args.items()
        }
        ev = DecodedLog(
            event=event,
            args=args,
            address=DIRECTORY,
            block_number=self.block,
            block_hash=block_hash or block_hash_of(self.block),
            tx_hash="0x" + keccak(text=f"tx{self.block}").hex(),
            tx_index=0,
            log_index=self.log_index,
        )
        self.log_index += 1
        return ev


def block_hash_of(number: int) -> str:
    return "0x" + keccak(text=f"block{number}").hex()


def timestamp_of(number: int) -> int:
    return 1_700_000_000 + 2 * number


def catalog(code: str = "301001/XC0001", dept: str = XC_CIVIL, jur: str = XICHENG, **kw: Any) -> CatalogRecord:
    data: dict[str, Any] = {
        "code": code,
        "name": "困难家庭数据库",
        "classification": code.split("/")[0],
        "provider": "西城区民政局",
        "provider_code": dept,
        "jurisdiction": jur,
        "summary": "困难家庭救助对象基本信息",
        "format": "database",
        "data_items": [{"name": "户主姓名", "data_type": "string"}, {"name": "救助类别", "data_type": "code"}],
        "share_type": "conditional",
        "share_conditions": "仅用于社会救助审核",
        "open_type": "none",
        "update_frequency": "monthly",
        "publish_date": date(2021, 1, 1),
        "grade": "3",
    }
    data.update(kw)
    return CatalogRecord.model_validate(data)


def system(code: str = "SXC0001", dept: str = XC_CIVIL, jur: str = XICHENG, **kw: Any) -> SystemRecord:
    data: dict[str, Any] = {
        "code": code,
        "name": "智慧救助平台",
        "owner": "西城区民政局",
        "owner_code": dept,
        "jurisdiction": jur,
        "status": "online",
    }
    data.update(kw)
    return SystemRecord.model_validate(data)


def sig(n: int) -> bytes:
    return keccak(text=f"sig{n}") + keccak(text=f"sig{n}b") + b"\x1b"


def jurisdiction_added(c: Chain, code: str, name: str, tier: int, parent: str | None) -> DecodedLog:
    args = {
        "id": code_id(code),
        "parent": code_id(parent) if parent else ZERO32,
        "tier": tier,
        "code": code,
        "name": name,
        "signer": ADMIN,
        "nonce": c.seq + 1,
    }
    return c.log("JurisdictionAdded", args)


def department_registered(c: Chain, code: str, name: str, jur: str) -> DecodedLog:
    args = {
        "id": code_id(code),
        "jurisdiction": code_id(jur),
        "code": code,
        "name": name,
        "signer": ADMIN,
        "nonce": c.seq + 1,
    }
    return c.log("DepartmentRegistered", args)


def account_set(c: Chain, dept: str, jur: str, account: str, active: bool) -> DecodedLog:
    args = {
        "department": code_id(dept),
        "account": account,
        "jurisdiction": code_id(jur),
        "active": active,
        "signer": ADMIN,
        "nonce": c.seq + 1,
    }
    return c.log("DepartmentAccountSet", args)


def record_event(
    c: Chain,
    kind: str,
    code: str,
    version: int,
    raw: bytes,
    *,
    dept: str = XC_CIVIL,
    jur: str = XICHENG,
    source: bytes = ZERO32,
    signer: str = KEY_XC,
    nonce: int | None = None,
) -> DecodedLog:
    args: dict[str, Any] = {
        "codeHash": code_id(code),
        "jurisdiction": code_id(jur),
        "department": code_id(dept),
        "code": code,
        "version": version,
        "digest": keccak(raw),
        "signer": signer,
        "nonce": c.seq + 1 if nonce is None else nonce,
        "deadline": 1_900_000_000,
        "signature": sig(c.seq),
        "record": raw,
    }
    if kind == "Catalog":
        args["sourceSystem"] = source
        args["shareType"], args["itemCount"] = _sharing_terms(raw)
    return c.log(f"{kind}VersionRecorded", args)


def _sharing_terms(raw: bytes) -> tuple[int, int]:
    """(shareType, itemCount) a relayer would put on chain for these record bytes ((1, 1) if not a catalog)."""
    try:
        record = CatalogRecord.model_validate_json(raw)
    except ValueError:
        return 1, 1
    return SHARE_TYPES[record.share_type], len(record.data_items)


def retire_event(
    c: Chain, kind: str, code: str, version: int, *, dept: str = XC_CIVIL, jur: str = XICHENG
) -> DecodedLog:
    args = {
        "codeHash": code_id(code),
        "jurisdiction": code_id(jur),
        "department": code_id(dept),
        "code": code,
        "version": version,
        "signer": KEY_XC,
        "nonce": c.seq + 1,
        "deadline": 1_900_000_000,
        "signature": sig(c.seq),
    }
    return c.log(f"{kind}Retired", args)


def world_events(c: Chain) -> list[DecodedLog]:
    """Directory set-up: 北京市 → 西城区, 大兴区; a department with a key in each district."""
    c.next_block()
    evs = [
        c.log("RoleGranted", {"role": ZERO32, "account": ADMIN, "sender": ADMIN}),
        jurisdiction_added(c, CITY, "北京市", 1, None),
        jurisdiction_added(c, XICHENG, "西城区", 2, CITY),
        jurisdiction_added(c, DAXING, "大兴区", 2, CITY),
    ]
    c.next_block()
    evs += [
        department_registered(c, XC_CIVIL, "西城区民政局", XICHENG),
        department_registered(c, DX_CIVIL, "大兴区民政局", DAXING),
        account_set(c, XC_CIVIL, XICHENG, KEY_XC, True),
        account_set(c, DX_CIVIL, DAXING, KEY_DX, True),
    ]
    return evs


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = make_engine("sqlite://")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as s:
        yield s


def apply_all(session: Session, events: list[DecodedLog]) -> None:
    for ev in events:
        apply_event(session, ev, timestamp_of(ev.block_number), chain_id=CHAIN_ID)


# ---------------------------------------------------------------------------------------- schema


def test_migration_creates_the_models_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    migrate(url)
    migrate(url)  # idempotent
    eng = make_engine(url)
    with eng.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 1000
    eng.dispose()


def test_tiers_migration_goes_down_to_0003_and_up_again(tmp_path: Path) -> None:
    """0004 empties the derived index both ways (it is rebuilt from the chain) and gives back each schema."""
    from alembic import command

    from registry.db import alembic_config

    url = f"sqlite:///{tmp_path / 'index.db'}"
    migrate(url)
    command.downgrade(alembic_config(url), "0003")
    eng = make_engine(url)
    with eng.connect() as conn:
        columns = {row[1] for row in conn.execute(text("PRAGMA table_info(blocks)"))}
        assert columns == {"number", "hash", "timestamp"}
        tables = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
        assert "directories" not in tables and "relayed_records" not in tables and "relay_checkpoints" in tables
    eng.dispose()
    migrate(url)
    eng = make_engine(url)
    with eng.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    eng.dispose()


def test_no_autoincrement_or_wall_clock_columns() -> None:
    for table in Base.metadata.sorted_tables:
        assert table.autoincrement_column is None, table.name  # no SERIAL / AUTOINCREMENT surrogate
        for column in table.columns:
            assert column.server_default is None and column.default is None, column
            assert column.name not in {"created_at", "inserted_at", "indexed_at"}, column


def test_postgresql_ddl_has_no_serial_columns() -> None:
    import contextlib
    import io

    from alembic import command

    from registry.db import alembic_config

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        command.upgrade(alembic_config("postgresql://user@localhost/index"), "head", sql=True)
    ddl = buf.getvalue()
    assert "CREATE TABLE catalogs" in ddl and "SERIAL" not in ddl.upper()


# ---------------------------------------------------------------------------------------- directory


def test_directory_events_fill_jurisdictions_departments_accounts(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    jurisdictions = {j.code: j for j in queries.list_jurisdictions(session)}
    assert list(jurisdictions) == [CITY, XICHENG, DAXING]
    assert jurisdictions[CITY].tier == "city" and jurisdictions[CITY].parent_id is None
    assert jurisdictions[XICHENG].parent_id == "0x" + code_id(CITY).hex()
    assert [d.code for d in queries.list_departments(session)] == [DX_CIVIL, XC_CIVIL]
    assert [d.code for d in queries.list_departments(session, XICHENG)] == [XC_CIVIL]
    assert queries.counts(session) == {"jurisdictions": 3, "departments": 2, "systems": 0, "catalogs": 0, "events": 8}

    # revoke then re-bind the key elsewhere: the row follows the latest event
    c.next_block()
    apply_all(session, [account_set(c, XC_CIVIL, XICHENG, KEY_XC, False)])
    row = session.execute(text("SELECT active FROM department_accounts WHERE account = :a"), {"a": KEY_XC}).one()
    assert row.active in (0, False)
    c.next_block()
    apply_all(session, [account_set(c, DX_CIVIL, DAXING, KEY_XC, True)])
    row = session.execute(
        text("SELECT active, department_id FROM department_accounts WHERE account = :a"), {"a": KEY_XC}
    ).one()
    assert row.active in (1, True) and row.department_id == "0x" + code_id(DX_CIVIL).hex()


def test_tree_point_reads_answer_as_the_listings(session: Session) -> None:
    """registry.tree: the point reads (a jurisdiction by code, a department by code or jurisdiction) give exactly
    the entries of the full listings; keys follow revocation; a department of a jurisdiction that is not indexed
    shows the jurisdiction's id."""
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    second = to_checksum_address("0x" + keccak(text="key xc 2").hex()[:40])
    apply_all(session, [account_set(c, XC_CIVIL, XICHENG, second, True), account_set(c, XC_CIVIL, XICHENG, KEY_XC,
                                                                                     False)])
    listed = {j["code"]: j for j in tree.jurisdictions(session)}
    assert list(listed) == [CITY, XICHENG, DAXING]
    for code, entry in listed.items():
        assert tree.jurisdiction(session, code) == entry
    assert listed[XICHENG]["parent"] == CITY and listed[CITY]["parent"] is None
    assert tree.jurisdiction(session, "999999") is None

    departments = {d["code"]: d for d in tree.departments(session)}
    assert departments[XC_CIVIL]["jurisdiction"] == XICHENG and departments[XC_CIVIL]["accounts"] == [second]
    assert departments[DX_CIVIL]["accounts"] == [KEY_DX]
    for code, entry in departments.items():
        assert tree.departments(session, code=code) == [entry]
    assert tree.departments(session, jurisdiction=DAXING) == [departments[DX_CIVIL]]
    assert tree.departments(session, jurisdiction=DAXING, code=XC_CIVIL) == []
    assert tree.departments(session, code="D-NONE") == []

    c.next_block()
    apply_all(session, [department_registered(c, "DORPHAN", "未索引区划的部门", "120000")])
    (orphan,) = tree.departments(session, code="DORPHAN")
    assert orphan["jurisdiction"] == "0x" + code_id("120000").hex() and orphan["accounts"] == []


def test_administrator_set_and_revoked(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    args = {"jurisdiction": code_id(XICHENG), "account": KEY_DX, "active": True, "signer": ADMIN, "nonce": 1}
    apply_all(session, [c.log("AdministratorSet", args)])
    c.next_block()
    apply_all(session, [c.log("AdministratorSet", {**args, "active": False, "nonce": 2})])
    rows = session.execute(text("SELECT account, active, block_number FROM administrators")).all()
    assert [(r.account, bool(r.active), r.block_number) for r in rows] == [(KEY_DX, False, c.block)]


def test_role_events_are_kept_only_as_chain_events(session: Session) -> None:
    c = Chain()
    c.next_block()
    apply_all(session, [c.log("RoleGranted", {"role": ZERO32, "account": ADMIN, "sender": ADMIN})])
    dump = queries.dump_index(session)
    assert len(dump["chain_events"]) == 1 and len(dump["blocks"]) == 1
    assert all(not rows for name, rows in dump.items() if name not in {"chain_events", "blocks"})


def test_args_json_hex_bytes_and_wide_ints_as_strings() -> None:
    args = {"code": "X", "version": 3, "nonce": 2**255 + 1, "deadline": 5, "digest": b"\x01" * 32, "signer": ADMIN}
    decoded = json.loads(args_json("CatalogRetired", args))
    assert decoded["version"] == 3  # uint32 stays a number
    assert decoded["nonce"] == str(2**255 + 1) and decoded["deadline"] == "5"  # uint256 → decimal string
    assert decoded["digest"] == "0x" + "01" * 32
    assert json.loads(args_json("SomethingUnknown", {"n": 2**70, "m": 7})) == {"n": str(2**70), "m": 7}


def test_same_block_number_with_another_hash_is_a_reorg(session: Session) -> None:
    c = Chain()
    evs = world_events(c)
    apply_all(session, evs)
    other = c.log("RoleGranted", {"role": ZERO32, "account": KEY_XC, "sender": ADMIN}, block_hash="0x" + "ee" * 32)
    with pytest.raises(ReorgDetected) as info:
        apply_event(session, other, timestamp_of(other.block_number), chain_id=CHAIN_ID)
    assert info.value.block_number == c.block and info.value.got_hash == "0x" + "ee" * 32


# ---------------------------------------------------------------------------------------- records


def test_catalog_register_update_retire(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    v1 = catalog()
    v2 = catalog(name="困难家庭数据库（2022版）", share_type="unconditional", share_conditions=None)
    c.next_block()
    apply_all(session, [record_event(c, "Catalog", v1.code, 1, canonical_bytes(v1))])
    c.next_block()
    apply_all(session, [record_event(c, "Catalog", v1.code, 2, canonical_bytes(v2))])

    row = session.get(CatalogRow, v1.code)
    assert row is not None
    assert (row.name, row.share_type, row.status, row.latest_version, row.record_version) == (
        "困难家庭数据库（2022版）",
        "unconditional",
        "active",
        2,
        2,
    )
    assert row.record == canonical_bytes(v2).decode()
    assert row.latest_digest == "0x" + keccak(canonical_bytes(v2)).hex()
    assert (row.jurisdiction_code, row.tier, row.department_code) == (XICHENG, "district", XC_CIVIL)
    assert row.updated_at == timestamp_of(c.block) and row.block_number == c.block
    assert "户主姓名" in (row.search_text or "")

    c.next_block()
    apply_all(session, [retire_event(c, "Catalog", v1.code, 3)])
    detail = queries.get_catalog(session, v1.code)
    assert detail is not None
    assert (detail.catalog.status, detail.catalog.latest_version, detail.catalog.name) == (
        "retired",
        3,
        "困难家庭数据库（2022版）",
    )
    assert detail.catalog.latest_digest == "0x" + keccak(canonical_bytes(v2)).hex()  # retire carries none
    assert [(v.version, v.action, v.valid) for v in detail.versions] == [
        (1, "register", True),
        (2, "update", True),
        (3, "retire", True),
    ]
    retire = detail.versions[2]
    assert retire.record is None and retire.digest is None and retire.nonce.isdigit()
    assert retire.block_hash == block_hash_of(c.block) and retire.block_timestamp == timestamp_of(c.block)
    assert detail.versions[0].record == canonical_bytes(v1).decode()
    assert queries.get_catalog(session, "301001/NOPE") is None


def test_catalog_with_source_system(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    s = system()
    cat = catalog(source_system=s.code)
    c.next_block()
    apply_all(
        session,
        [
            record_event(c, "System", s.code, 1, canonical_bytes(s)),
            record_event(c, "Catalog", cat.code, 1, canonical_bytes(cat), source=code_id(s.code)),
        ],
    )
    detail = queries.get_catalog(session, cat.code)
    assert detail is not None and detail.versions[0].valid and detail.catalog.source_system == s.code


def test_system_register_update_retire(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    s1, s2 = system(status="building", programme="智慧云"), system(status="online", summary="救助业务一网通办")
    c.next_block()
    apply_all(session, [record_event(c, "System", s1.code, 1, canonical_bytes(s1))])
    c.next_block()
    apply_all(session, [record_event(c, "System", s1.code, 2, canonical_bytes(s2))])
    c.next_block()
    apply_all(session, [retire_event(c, "System", s1.code, 3)])
    detail = queries.get_system(session, s1.code)
    assert detail is not None
    row = detail.system
    assert (row.status, row.lifecycle, row.latest_version, row.record_version) == ("online", "retired", 3, 2)
    assert row.search_text is not None and "一网通办" in row.search_text
    assert [(v.version, v.action) for v in detail.versions] == [(1, "register"), (2, "update"), (3, "retire")]
    assert queries.get_system(session, "SNOPE") is None


def test_applying_an_event_twice_is_a_no_op(session: Session) -> None:
    c = Chain()
    evs = world_events(c)
    c.next_block()
    evs.append(record_event(c, "Catalog", "301001/XC0001", 1, canonical_bytes(catalog())))
    c.next_block()
    evs.append(retire_event(c, "Catalog", "301001/XC0001", 2))
    apply_all(session, evs)
    once = queries.dump_index(session)
    apply_all(session, evs)
    apply_all(session, list(reversed(evs)))
    assert queries.dump_index(session) == once


def _noncanonical(record: CatalogRecord) -> bytes:
    return json.dumps(json.loads(canonical_bytes(record)), ensure_ascii=False, indent=1).encode()


BAD_RECORDS: list[tuple[str, Any, str]] = [
    ("noncanonical", lambda: _noncanonical(catalog()), "canonical JSON"),
    ("wrong code", lambda: canonical_bytes(catalog(code="301001/XC0999")), "differs from the event's code"),
    ("wrong jurisdiction", lambda: canonical_bytes(catalog(jur=DAXING)), "jurisdiction"),
    ("wrong department", lambda: canonical_bytes(catalog(dept=DX_CIVIL)), "provider_code"),
    ("unnamed source system", lambda: canonical_bytes(catalog(source_system="SXC0001")), "source_system"),
    ("not utf-8", lambda: b'{"code":"\xff"}', "not UTF-8"),
    ("not json", lambda: b"{code:", "not JSON"),
    ("not an object", lambda: b"[1,2]", "expected an object"),
    ("invalid record", lambda: canonical_bytes({**json.loads(canonical_bytes(catalog())), "grade": "9"}), "grade"),
]


@pytest.mark.parametrize(("label", "make", "reason"), BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_invalid_update_is_stored_but_does_not_replace_content(
    session: Session, label: str, make: Any, reason: str
) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    good = catalog()
    c.next_block()
    apply_all(session, [record_event(c, "Catalog", good.code, 1, canonical_bytes(good))])
    bad = make()
    c.next_block()
    apply_all(session, [record_event(c, "Catalog", good.code, 2, bad)])

    detail = queries.get_catalog(session, good.code)
    assert detail is not None
    v2 = detail.versions[1]
    assert not v2.valid and v2.invalid_reason is not None and reason in v2.invalid_reason, v2.invalid_reason
    assert v2.digest == "0x" + keccak(bad).hex()
    assert v2.record == bad.decode("utf-8", errors="replace")
    row = detail.catalog
    # content stays at version 1; the chain-side columns follow version 2
    assert (row.record_version, row.record, row.name) == (1, canonical_bytes(good).decode(), good.name)
    assert (row.latest_version, row.status, row.block_number) == (2, "active", c.block)
    assert row.latest_digest == "0x" + keccak(bad).hex()


def test_invalid_first_version_leaves_content_empty(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    s = system(code="SXC0002")
    apply_all(session, [record_event(c, "System", "SXC0001", 1, canonical_bytes(s))])  # code mismatch
    detail = queries.get_system(session, "SXC0001")
    assert detail is not None
    assert not detail.versions[0].valid and "SXC0002" in (detail.versions[0].invalid_reason or "")
    assert (detail.system.name, detail.system.record, detail.system.lifecycle, detail.system.latest_version) == (
        None,
        None,
        "active",
        1,
    )
    assert (detail.system.jurisdiction_code, detail.system.department_code) == (XICHENG, XC_CIVIL)


def test_digest_that_does_not_match_the_bytes_is_invalid(session: Session) -> None:
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    good = catalog()
    ev = record_event(c, "Catalog", good.code, 1, canonical_bytes(good))
    ev.args["digest"] = b"\x00" * 32
    apply_all(session, [ev])
    detail = queries.get_catalog(session, good.code)
    assert detail is not None and not detail.versions[0].valid
    assert "digest" in (detail.versions[0].invalid_reason or "") and detail.catalog.record is None


@pytest.mark.parametrize(
    "field, value, said",
    [("shareType", 1, "shareType 1 differs"), ("shareType", 3, "shareType 3 differs"), ("itemCount", 7, "itemCount 7")],
)
def test_sharing_terms_that_disagree_with_the_record_are_invalid(
    session: Session, field: str, value: int, said: str
) -> None:
    """The contract enforces sharing with the event's shareType/itemCount: they must restate the record."""
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    good = catalog()  # conditional, two data items
    ev = record_event(c, "Catalog", good.code, 1, canonical_bytes(good))
    assert (ev.args["shareType"], ev.args["itemCount"]) == (2, len(good.data_items))
    ev.args[field] = value
    apply_all(session, [ev])
    detail = queries.get_catalog(session, good.code)
    assert detail is not None and not detail.versions[0].valid
    assert said in (detail.versions[0].invalid_reason or ""), detail.versions[0].invalid_reason


# ---------------------------------------------------------------------------------------- queries


def _populate(session: Session) -> Chain:
    c = Chain()
    apply_all(session, world_events(c))
    c.next_block()
    evs = []
    for i in range(12):
        xc = i % 3 != 0
        rec = catalog(
            code=f"301001/C{i:04d}",
            dept=XC_CIVIL if xc else DX_CIVIL,
            jur=XICHENG if xc else DAXING,
            name=f"数据资源{i:02d}" + ("人口" if i % 4 == 0 else ""),
            share_type="unconditional" if i % 2 == 0 else "conditional",
            share_conditions=None if i % 2 == 0 else "审核后共享",
            open_type="unconditional" if i % 5 == 0 else "none",
        )
        evs.append(
            record_event(
                c,
                "Catalog",
                rec.code,
                1,
                canonical_bytes(rec),
                dept=rec.provider_code,
                jur=rec.jurisdiction,
                signer=KEY_XC if xc else KEY_DX,
            )
        )
    apply_all(session, evs)
    c.next_block()
    apply_all(session, [retire_event(c, "Catalog", "301001/C0001", 2)])
    for i, (dept, jur, status) in enumerate([(XC_CIVIL, XICHENG, "online"), (DX_CIVIL, DAXING, "planned")]):
        s = system(code=f"SSYS{i}", dept=dept, jur=jur, status=status, name=f"系统{i}", owner=f"单位{i}")
        apply_all(session, [record_event(c, "System", s.code, 1, canonical_bytes(s), dept=dept, jur=jur)])
    return c


def test_list_catalogs_filters(session: Session) -> None:
    _populate(session)
    rows, total = queries.list_catalogs(session, limit=100)
    assert total == 12 and [r.code for r in rows] == sorted(r.code for r in rows)
    _, total = queries.list_catalogs(session, jurisdiction=DAXING)
    assert total == 4  # i = 0, 3, 6, 9
    rows, total = queries.list_catalogs(session, owner=XC_CIVIL, share_type="unconditional")
    assert total == 4 and {r.code for r in rows} == {"301001/C0002", "301001/C0004", "301001/C0008", "301001/C0010"}
    _, total = queries.list_catalogs(session, open_type="unconditional")
    assert total == 3  # 0, 5, 10
    rows, total = queries.list_catalogs(session, status="retired")
    assert total == 1 and rows[0].code == "301001/C0001"
    _, total = queries.list_catalogs(session, tier="district")
    assert total == 12
    _, total = queries.list_catalogs(session, tier="city")
    assert total == 0
    rows, total = queries.list_catalogs(session, text="人口")
    assert total == 3 and {r.code for r in rows} == {"301001/C0000", "301001/C0004", "301001/C0008"}
    _, total = queries.list_catalogs(session, text="户主姓名")  # data item names are searchable
    assert total == 12
    _, total = queries.list_catalogs(session, text="%")  # wildcards match literally
    assert total == 0
    _, total = queries.list_catalogs(session, jurisdiction=XICHENG, text="人口", share_type="unconditional")
    assert total == 2  # 4, 8


def test_list_catalogs_pagination(session: Session) -> None:
    _populate(session)
    seen: list[str] = []
    for offset in range(0, 12, 5):
        rows, total = queries.list_catalogs(session, limit=5, offset=offset)
        assert total == 12
        seen += [r.code for r in rows]
    assert seen == [f"301001/C{i:04d}" for i in range(12)]
    rows, total = queries.list_catalogs(session, limit=5, offset=40)
    assert rows == [] and total == 12
    with pytest.raises(ValueError):
        queries.list_catalogs(session, limit=-1)


def test_list_systems_filters(session: Session) -> None:
    _populate(session)
    rows, total = queries.list_systems(session)
    assert total == 2 and [r.code for r in rows] == ["SSYS0", "SSYS1"]
    rows, total = queries.list_systems(session, jurisdiction=DAXING)
    assert total == 1 and rows[0].code == "SSYS1"
    _, total = queries.list_systems(session, owner=XC_CIVIL, status="online", lifecycle="active")
    assert total == 1
    rows, total = queries.list_systems(session, text="单位1")
    assert total == 1 and rows[0].code == "SSYS1"
    rows, total = queries.list_systems(session, limit=1, offset=1)
    assert total == 2 and [r.code for r in rows] == ["SSYS1"]


def test_counts_and_cursor(session: Session) -> None:
    _populate(session)
    counts = queries.counts(session)
    assert counts["catalogs"] == 12 and counts["systems"] == 2 and counts["jurisdictions"] == 3
    assert counts["events"] == 8 + 12 + 1 + 2
    assert queries.cursor(session, 31337, DIRECTORY) is None
    session.add(
        Cursor(chain_id=31337, address="0x5FbDB2315678afecb367f032d93F642f64180aa3", block_number=9, block_hash="0x")
    )
    session.flush()
    cur = queries.cursor(session, 31337, DIRECTORY)
    assert cur is not None and cur.block_number == 9


# ---------------------------------------------------------------------------------------- property


def _scenario() -> list[DecodedLog]:
    """A fixed chain history: set-up, catalogs and systems registered, updated (one invalidly), retired."""
    c = Chain()
    evs = world_events(c)
    s = system()
    a, b = catalog(), catalog(code="301001/XC0002", source_system=s.code)
    c.next_block()
    evs += [
        record_event(c, "System", s.code, 1, canonical_bytes(s)),
        record_event(c, "Catalog", a.code, 1, canonical_bytes(a)),
        record_event(c, "Catalog", b.code, 1, canonical_bytes(b), source=code_id(s.code)),
    ]
    c.next_block()
    evs += [
        record_event(c, "Catalog", a.code, 2, _noncanonical(catalog(name="改名"))),
        record_event(c, "System", s.code, 2, canonical_bytes(system(status="offline"))),
        account_set(c, XC_CIVIL, XICHENG, KEY_XC, False),
    ]
    c.next_block()
    evs += [
        retire_event(c, "Catalog", b.code, 2),
        c.log(
            "AdministratorSet",
            {"jurisdiction": code_id(DAXING), "account": KEY_DX, "active": True, "signer": ADMIN, "nonce": 99},
        ),
        record_event(c, "Catalog", a.code, 3, canonical_bytes(catalog(name="第三版"))),
        retire_event(c, "System", s.code, 3),
    ]
    return evs


SCENARIO = _scenario()


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[int], list[int], list[int], list[int]]:
    """(subset of event indexes in chain order, an application order with duplicates, commit points,
    batch boundaries): events are applied in slices with ``apply_events`` (one event when a slice
    is a single event, through ``apply_event``) and committed at the commit points."""
    subset = [i for i in range(len(SCENARIO)) if draw(st.booleans())]
    order: list[int] = []
    for pos, i in enumerate(subset):
        order.append(i)
        repeats = draw(st.lists(st.sampled_from(subset[: pos + 1]), max_size=3))
        order += repeats
    points = st.lists(st.integers(0, max(len(order) - 1, 0)), max_size=5)
    return subset, order, draw(points), draw(points)


def _dump_after(
    indexes: list[int], commits: set[int] | None = None, cuts: set[int] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    eng = make_engine("sqlite://")
    Base.metadata.create_all(eng)
    sessions = session_factory(eng)
    session = sessions()
    batch: list[tuple[DecodedLog, int]] = []
    for n, i in enumerate(indexes):
        ev = SCENARIO[i]
        batch.append((ev, timestamp_of(ev.block_number)))
        if cuts is None or n in cuts or n == len(indexes) - 1:
            if len(batch) == 1:
                apply_event(session, *batch[0], chain_id=CHAIN_ID)
            else:
                apply_events(session, batch, chain_id=CHAIN_ID)
            batch = []
        if commits and n in commits:
            session.commit()
    assert not batch
    session.commit()
    session.close()
    with sessions() as s:
        dump = queries.dump_index(s)
    eng.dispose()
    return dump


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replays())
def test_duplicate_reapplications_do_not_change_the_index(
    case: tuple[list[int], list[int], list[int], list[int]],
) -> None:
    subset, order, commits, cuts = case
    assert _dump_after(order, set(commits), set(cuts)) == _dump_after(subset)


def test_apply_events_counts_new_events_only(session: Session) -> None:
    evs = [(ev, timestamp_of(ev.block_number)) for ev in SCENARIO]
    assert apply_events(session, evs[:5] + evs[:2], chain_id=CHAIN_ID) == 5
    assert apply_events(session, evs, chain_id=CHAIN_ID) == len(evs) - 5
    assert apply_events(session, evs, chain_id=CHAIN_ID) == 0


def test_scenario_full_replay_shape() -> None:
    dump = _dump_after(list(range(len(SCENARIO))))
    versions = {(r[0], r[1]): r for r in dump["catalog_versions"]}
    assert len(versions) == 5 and len(dump["system_versions"]) == 3
    valid_col = [c.name for c in Base.metadata.tables["catalog_versions"].columns].index("valid")
    assert not versions[("301001/XC0001", 2)][valid_col] and versions[("301001/XC0001", 3)][valid_col]


# ---------------------------------------------------------------------------------------- fast paths


def test_catalog_named_before_its_jurisdiction_and_department_gets_the_names(session: Session) -> None:
    """Back-fills: a catalog indexed before its jurisdiction and department (recorded on another chain) gets their
    names when they arrive — in a later batch (an ORM object the session holds reads the new values) or later in
    the same batch."""
    c = Chain()
    c.next_block()
    first = catalog()
    apply_events(session, [(ev, timestamp_of(ev.block_number))
                           for ev in [record_event(c, "Catalog", first.code, 1, canonical_bytes(first))]],
                 chain_id=CHAIN_ID)
    row = session.get(CatalogRow, first.code)
    assert row is not None and (row.jurisdiction_code, row.tier, row.department_code) == (None, None, None)
    second = catalog(code="301001/XC0002")
    c.next_block()
    evs = [record_event(c, "Catalog", second.code, 1, canonical_bytes(second)), *world_events(c)]
    assert apply_events(session, [(ev, timestamp_of(ev.block_number)) for ev in evs], chain_id=CHAIN_ID) == len(evs)
    assert (row.jurisdiction_code, row.tier, row.department_code) == (XICHENG, "district", XC_CIVIL)
    again = session.get(CatalogRow, second.code)
    assert again is not None and (again.jurisdiction_code, again.department_code) == (XICHENG, XC_CIVIL)


def _outcome(decode: Any, blob: bytes) -> tuple[str, Any]:
    """("ok", what ``decode(blob)`` returns) or ("error", the type of what it raises)."""
    try:
        return "ok", decode(blob)
    except Exception as exc:
        return "error", type(exc)


_DECODER_TYPES = [
    ["string", "uint32", "bytes32", "bytes32", "uint8", "uint16", "address", "uint256", "uint256", "bytes", "bytes"],
    ["bool", "address", "uint256"],
    ["bytes4", "uint64"],
    ["int256", "string"],  # not read by the fast path: eth_abi answers
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fast_decoder_answers_as_eth_abi(data: st.DataObject) -> None:
    """The log decoder's fast path returns eth_abi's values for canonical encodings and eth_abi's values or
    errors for anything else (flipped bytes, truncated or extended data)."""
    from eth_abi import decode as abi_decode
    from eth_abi import encode as abi_encode

    from chain.abi import fast_decoder

    types = data.draw(st.sampled_from(_DECODER_TYPES))
    strategies = {
        "string": st.text(max_size=40), "bytes": st.binary(max_size=80), "bytes32": st.binary(min_size=32, max_size=32),
        "bytes4": st.binary(min_size=4, max_size=4), "bool": st.booleans(),
        "address": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
        "int256": st.integers(-(2**255), 2**255 - 1),
        **{f"uint{n}": st.integers(0, 2**n - 1) for n in (8, 16, 32, 64, 256)},
    }
    values = [data.draw(strategies[t]) for t in types]
    encoded = abi_encode(types, values)
    variants = [encoded, encoded[:-1], encoded + b"\x00" * 32]
    for _ in range(4):
        at = data.draw(st.integers(0, len(encoded) - 1))
        variants.append(encoded[:at] + bytes([data.draw(st.integers(0, 255))]) + encoded[at + 1 :])
    decode = fast_decoder(types)
    for blob in variants:
        assert _outcome(decode, blob) == _outcome(lambda b: tuple(abi_decode(types, b)), blob)


_WORD_TYPES = ["bytes32", "bytes4", "uint8", "uint64", "uint256", "address", "bool", "int256", "string", "bytes"]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_word_decoder_answers_as_eth_abi(data: st.DataObject) -> None:
    """An indexed parameter's topic is decoded to eth_abi's value for a canonical word and to eth_abi's value or
    error for anything else (a flipped byte, a short or long word, a dynamic type's hash)."""
    from eth_abi import decode as abi_decode

    from chain.abi import word_decoder

    abi_type = data.draw(st.sampled_from(_WORD_TYPES))
    word = data.draw(st.binary(min_size=32, max_size=32))
    width = {"bytes32": 32, "bytes4": 4, "uint8": 1, "uint64": 8, "uint256": 32, "address": 20, "bool": 1}
    if abi_type in width and data.draw(st.booleans()):  # a canonical word more often than chance would give
        keep = width[abi_type]
        word = word[:keep] + bytes(32 - keep) if abi_type.startswith("bytes") else bytes(32 - keep) + word[-keep:]
        if abi_type == "bool":
            word = bytes(31) + bytes([word[-1] % 2])
    variants = [word, word[:-1], word + bytes(1), bytes(32)]
    decode = word_decoder(abi_type)
    for blob in variants:
        assert _outcome(decode, blob) == _outcome(lambda b: abi_decode([abi_type], b)[0], blob)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.one_of(st.text(max_size=30), st.binary(max_size=40), st.booleans(), st.none(),
                                 st.integers(-(2**80), 2**80)), max_size=6))
def test_args_json_writes_the_text_of_earlier_indexes(args: dict[str, Any]) -> None:
    """``chain_events.args`` keeps the exact text earlier versions wrote (``json.dumps``, sorted keys, no whitespace,
    UTF-8 kept): an index re-built from the chain has the same rows as one that has followed it all along."""
    expected = {k: "0x" + v.hex() if isinstance(v, bytes) else
                str(v) if type(v) is int and not -(2**63) <= v < 2**63 else v for k, v in args.items()}
    text = args_json("SomethingUnknown", args)
    assert text == json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "value",
    [
        {"b": "x", "a": [1, True, None, "\u0000\u001f\b\f\n\r\t\"\\/\u007f\u2028 中文 😀"]},
        {"n": 2**53 - 1, "m": -(2**53) + 1},
        {"n": 2**60},  # beyond RFC 8785's integers: its encoder decides (and refuses)
        {"f": 1.0, "g": 1e21},  # floats: its encoder decides
        {"\u00e9": 1, "z": 2, "\U0001f600": 3, "\uff61": 4},  # non-ASCII keys: UTF-16 order
        {"lone": "\ud800"},  # not UTF-8-encodable: its encoder refuses
    ],
)
def test_canonical_check_agrees_with_rfc8785(value: dict[str, Any]) -> None:
    from registry.store import _is_canonical

    try:
        expected: Any = canonical_bytes(value)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _is_canonical(value, b"")
        return
    assert _is_canonical(value, expected)
    assert not _is_canonical(value, expected + b" ")
    assert not _is_canonical(value, json.dumps(value, ensure_ascii=False).encode("utf-8"))
