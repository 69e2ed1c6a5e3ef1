"""chain.eip712.signable: the EIP-712 message of each submission is what eth-account's ``encode_typed_data`` gives for
the full typed data, whether its domain separator was just hashed or remembered from an earlier message."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from chain import eip712
from tests.unit.test_relay import types

KEY = Account.from_key(b"\x05" * 32)


def _jurisdiction(n: int, chain_id: int, directory: str) -> dict[str, object]:
    message = {"code": f"110102/街道{n}", "name": f"街道{n}", "tier": 3, "parent": keccak(text="110102"), "nonce": n,
               "deadline": 10**10 + n}
    return eip712.typed_data(types(), "Jurisdiction", eip712.domain(chain_id, directory), message)


def _catalog(n: int, chain_id: int, directory: str) -> dict[str, object]:
    message = {"action": 1, "code": f"C{n}", "jurisdiction": keccak(text="110102"), "department": keccak(text="D"),
               "version": 1, "sourceSystem": b"\x00" * 32, "shareType": 1, "itemCount": 3, "digest": keccak(b"%d" % n),
               "nonce": n, "deadline": 10**10}
    return eip712.typed_data(types(), "Catalog", eip712.domain(chain_id, directory), message)


@pytest.mark.parametrize("build", [_jurisdiction, _catalog])
def test_messages_equal_eth_accounts_for_every_domain_first_or_remembered(build: object) -> None:
    directories = ["0x" + f"{d:040x}" for d in (0xA1, 0xB2, 0xC3)]
    for n in range(6):  # each domain seen first at n = 0, remembered after
        for chain_id in (31337, 31338):
            for directory in directories:
                data = build(n, chain_id, directory)  # type: ignore[operator]
                got = eip712.signable(data)
                assert tuple(bytes(part) for part in got) == tuple(
                    bytes(part) for part in encode_typed_data(full_message=data))
                assert eip712.recover(data, eip712.sign(KEY, data)) == KEY.address


def test_typed_data_of_another_shape_goes_the_full_way_with_eth_accounts_checks() -> None:
    data = _jurisdiction(1, 31337, "0x" + "a1" * 20)
    eip712.signable(data)  # its domain is remembered
    wrong = {**data, "primaryType": "Department"}
    with pytest.raises(Exception, match="primaryType"):
        eip712.signable(wrong)
