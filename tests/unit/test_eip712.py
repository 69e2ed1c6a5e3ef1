"""chain.eip712: the EIP-712 message of each submission is what eth-account's ``encode_typed_data`` gives for the full
typed data, whether its domain separator was just hashed or remembered from an earlier message; ``recover`` names the
signer eth-account's ``recover_message`` names, and refuses a malformed or unrecoverable signature."""

from __future__ import annotations

import contextlib

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import eip712
from chain.errors import SignatureError
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


@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < eip712.SECP256K1_N),
       n=st.integers(min_value=0, max_value=2**64))
def test_recover_names_the_signer_eth_account_names(key: bytes, n: int) -> None:
    account = Account.from_key(key)
    data = _catalog(n, 31337, "0x" + "c3" * 20)
    signature = eip712.sign(account, data)
    assert eip712.recover(data, signature) == account.address == Account.recover_message(
        encode_typed_data(full_message=data), signature=signature)
    other = _catalog(n + 1, 31337, "0x" + "c3" * 20)  # another message: another (or no) signer, never this one
    with contextlib.suppress(SignatureError):
        assert eip712.recover(other, signature) != account.address


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda sig: sig[:64], "expected 65 bytes"),
    (lambda sig: sig[:32] + (eip712.SECP256K1_N - 1).to_bytes(32, "big") + sig[64:], "low s"),
    (lambda sig: sig[:64] + b"\x01", "expected v 27 or 28"),
    (lambda sig: b"\x00" * 32 + sig[32:], "does not recover a signer"),  # r = 0: no point on the curve
])
def test_a_malformed_or_unrecoverable_signature_is_a_signature_error(mangle: object, reason: str) -> None:
    data = _catalog(7, 31337, "0x" + "c3" * 20)
    signature = mangle(eip712.sign(KEY, data))  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason):
        eip712.recover(data, signature)
