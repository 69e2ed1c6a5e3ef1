"""chain.relay without a chain: events of a child directory turned back into the calls the child received."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from chain import eip712
from chain.abi import DecodedLog
from chain.relay import (
    JurisdictionScope,
    Origin,
    RelayBuildError,
    decode_call,
    encode_call,
    relay_item,
    relay_items,
    single_call,
)

ROOT = Path(__file__).resolve().parents[2]
CHAIN = 31338
CHILD = "0x00000000000000000000000000000000000000C1"
STREET = "0x00000000000000000000000000000000000000A1"
ZERO = b"\x00" * 32
CITY_ID, DISTRICT_ID, STREET_ID = keccak(text="110000"), keccak(text="110102"), keccak(text="110102/月坛街道")


def types() -> eip712.Types:
    """The EIP-712 types from contracts/libraries/DirectoryTypes.sol (what ``eip712Types()`` returns)."""
    text = (ROOT / "contracts" / "libraries" / "DirectoryTypes.sol").read_text(encoding="utf-8")
    return eip712.parse_types(re.findall(r'_TYPE =\s*"([^"]+)"', text))


def log(event: str, args: dict[str, Any], *, tx: int = 1, index: int = 0, block: int = 7) -> DecodedLog:
    return DecodedLog(event, args, CHILD, block, "0x" + "bb" * 32, "0x" + f"{tx:064x}", 0, index)


def signed_jurisdiction(key: LocalAccount, code: str, nonce: int) -> tuple[Any, ...]:
    message = {"code": code, "name": "月坛街道", "tier": 3, "parent": DISTRICT_ID, "nonce": nonce, "deadline": 10**10}
    data = eip712.typed_data(types(), "Jurisdiction", eip712.domain(CHAIN, CHILD), message)
    return (code, "月坛街道", 3, DISTRICT_ID, nonce, 10**10, eip712.sign(key, data))


def jurisdiction_added(signer: str, nonce: int, code: str = "110102/月坛街道") -> DecodedLog:
    return log("JurisdictionAdded", {"id": keccak(text=code), "parent": DISTRICT_ID, "tier": 3, "code": code,
                                     "name": "月坛街道", "signer": signer, "nonce": nonce})


def test_origin_key_is_the_contracts_abi_encode() -> None:
    origin = Origin(CHAIN, CHILD, b"\x01" * 32, 5, b"\x02" * 32, 3)
    packed = (CHAIN.to_bytes(32, "big") + bytes(12) + bytes.fromhex(CHILD[2:]) + b"\x01" * 32
              + (3).to_bytes(32, "big"))
    assert origin.key == keccak(packed)
    assert origin.as_tuple() == (CHAIN, CHILD, b"\x01" * 32, 5, b"\x02" * 32, 3)


def test_event_without_signature_is_read_from_the_element_that_recovers_to_its_signer() -> None:
    a, b = Account.create(), Account.create()
    same_a, same_b = signed_jurisdiction(a, "110102/月坛街道", 9), signed_jurisdiction(b, "110102/月坛街道", 9)
    tx_input = encode_call("addJurisdictions", [[signed_jurisdiction(a, "110102/展览路街道", 9), same_a, same_b]])
    item = relay_item(jurisdiction_added(b.address, 9), CHAIN, tx_input=tx_input, types=types())
    assert item is not None and item.call == single_call("addJurisdictions", same_b)
    assert item.method == "addJurisdictions" and item.code == "110102/月坛街道" and item.via is None
    with pytest.raises(RelayBuildError, match="2 different elements"):  # without types: ambiguous
        relay_item(jurisdiction_added(b.address, 9), CHAIN, tx_input=tx_input)
    with pytest.raises(RelayBuildError, match="no element"):
        relay_item(jurisdiction_added(b.address, 8), CHAIN, tx_input=tx_input, types=types())


def test_missing_or_foreign_input_is_a_build_failure_naming_the_event() -> None:
    ev = jurisdiction_added(Account.create().address, 1)
    result = relay_items([ev], CHAIN)
    assert not result.items and len(result.failed) == 1
    assert result.failed[0].event == "JurisdictionAdded" and "input is missing" in result.failed[0].reason
    assert result.failed[0].origin == Origin.of_log(ev, CHAIN)
    other = encode_call("registerDepartments", [[("D1", "x", STREET_ID, 1, 1, b"")]])
    with pytest.raises(RelayBuildError, match="calls registerDepartments, expected addJurisdictions"):
        relay_item(ev, CHAIN, tx_input=other)


def record_event(name: str, **args: Any) -> dict[str, Any]:
    base = {"codeHash": keccak(text="301001/YT01"), "jurisdiction": STREET_ID, "department": keccak(text="DYT0001"),
            "code": "301001/YT01", "version": 1, "signer": "0x" + "11" * 20, "nonce": 4, "deadline": 99,
            "signature": b"\x05" * 65}
    base.update(args)
    return base


def test_record_and_sharing_events_rebuild_their_calls() -> None:
    record = b'{"code":"301001/YT01"}'
    catalog = log("CatalogVersionRecorded", record_event(
        "CatalogVersionRecorded", version=2, digest=keccak(record), sourceSystem=ZERO, shareType=2, itemCount=2,
        record=record))
    item = relay_item(catalog, CHAIN)
    assert item is not None
    method, (batch,) = decode_call(item.call)
    assert method == "submitCatalogs" and batch[0][0] == 2 and batch[0][8] == record  # action update, record
    retired = relay_item(log("SystemRetired", record_event("SystemRetired", version=3)), CHAIN)
    assert retired is not None and decode_call(retired.call)[1][0][0][:5] == (3, "301001/YT01", STREET_ID,
                                                                             keccak(text="DYT0001"), 3)
    bad = log("CatalogVersionRecorded", record_event("CatalogVersionRecorded", digest=ZERO, sourceSystem=ZERO,
                                                      shareType=2, itemCount=2, record=record))
    with pytest.raises(RelayBuildError, match="digest"):
        relay_item(bad, CHAIN)

    def status(to: int, signer: str) -> DecodedLog:
        return log("SharingStatusChanged", {"id": b"\x07" * 32, "catalogHash": ZERO, "from": 1, "to": to,
                                            "reason": "r", "signer": signer, "nonce": 3, "deadline": 9,
                                            "signature": b"\x01" * 65})

    assert relay_item(status(2, "0x" + "00" * 20), CHAIN) is None  # automatic grant: the parent derives it
    decided = relay_item(status(3, "0x" + "22" * 20), CHAIN)
    assert decided is not None and decided.method == "decideSharing"
    assert decode_call(decided.call)[1][0][0][:2] == (b"\x07" * 32, False)
    revoked = relay_item(status(5, "0x" + "22" * 20), CHAIN)
    assert revoked is not None and revoked.method == "revokeSharing"
    assert relay_item(log("RoleGranted", {}), CHAIN) is None


def test_a_relay_in_the_child_yields_its_calls_under_their_own_origins() -> None:
    first, second = Origin(CHAIN, STREET, b"\x0a" * 32, 3, b"\x0b" * 32, 0), Origin(CHAIN, STREET, b"\x0c" * 32, 4,
                                                                                     b"\x0d" * 32, 2)
    call_a = single_call("revokeSharing", (b"\x07" * 32, "r", 1, 2, b"\x01" * 65))
    call_b = single_call("decideSharing", (b"\x08" * 32, True, "ok", 1, 2, b"\x02" * 65))
    tx_input = encode_call("relay", [[first.as_tuple(), second.as_tuple()], [call_a, call_b]])

    def relayed(origin: Origin, selector: bytes, index: int) -> DecodedLog:
        return log("Relayed", {"originKey": origin.key, "chainId": origin.chain_id, "directory": origin.directory,
                               "txHash": origin.tx_hash, "blockNumber": origin.block_number,
                               "blockHash": origin.block_hash, "logIndex": origin.log_index, "selector": selector},
                   tx=5, index=index)

    revocation = {"id": b"\x07" * 32, "catalogHash": ZERO, "from": 2, "to": 5, "reason": "r",
                  "signer": "0x" + "22" * 20, "nonce": 1, "deadline": 2, "signature": b"\x01" * 65}
    decision = {**revocation, "id": b"\x08" * 32, "from": 1, "to": 2, "reason": "ok", "signature": b"\x02" * 65}
    events = [  # one relay transaction: each submission's effects, then its Relayed event
        log("SharingStatusChanged", revocation, tx=5, index=0),
        relayed(first, call_a[:4], 1),
        log("SharingStatusChanged", decision, tx=5, index=2),
        relayed(second, call_b[:4], 3),
    ]
    result = relay_items(reversed(events), CHAIN, inputs={"0x" + f"{5:064x}": tx_input})
    assert [(it.origin, it.call) for it in result.items] == [(first, call_a), (second, call_b)]
    assert result.ignored == 2 and not result.failed
    assert result.items[0].via == Origin.of_log(events[1], CHAIN) and result.items[0].event == "Relayed"
    with pytest.raises(RelayBuildError, match="expected relay"):
        relay_item(events[1], CHAIN, tx_input=call_a)


def test_scope_keeps_scaffolding_and_the_home_out() -> None:
    parents = {CITY_ID: ZERO, DISTRICT_ID: CITY_ID, STREET_ID: DISTRICT_ID}
    scope = JurisdictionScope(DISTRICT_ID, parents.get)

    def added(code: str, parent: bytes) -> DecodedLog:
        return log("JurisdictionAdded", {"id": keccak(text=code), "parent": parent, "tier": 1, "code": code,
                                         "name": code, "signer": "0x" + "11" * 20, "nonce": 1})

    assert not scope.relays(added("110000", ZERO))  # the city: a copy above home
    assert not scope.relays(added("110102", CITY_ID))  # the home: the parent registered it before setChild
    assert scope.relays(added("110102/月坛街道", DISTRICT_ID))
    dept = {"id": ZERO, "code": "D", "name": "D", "signer": "0x" + "11" * 20, "nonce": 1}
    assert scope.relays(log("DepartmentRegistered", {**dept, "jurisdiction": STREET_ID}))
    assert scope.relays(log("DepartmentRegistered", {**dept, "jurisdiction": DISTRICT_ID}))
    assert not scope.relays(log("DepartmentRegistered", {**dept, "jurisdiction": CITY_ID}))
    assert not scope.relays(log("AdministratorSet", {"jurisdiction": keccak(text="unknown"), "account": CHILD,
                                                     "active": True, "signer": CHILD, "nonce": 1}))
    assert JurisdictionScope(ZERO, parents.get).relays(added("110000", ZERO))  # a directory serving everything
