"""Meta-test: every custom error and every event of the Directory has a contract test.

Reads ``contracts/interfaces/IDirectory.sol`` for each ``error X(`` and ``event X(`` and requires the name,
as a quoted string (how the tests assert it: ``expect_revert(..., "X")``, ``assert_event(e, "X")``), in the
source of the contract test files — so adding an error or event without a test fails CI. The OpenZeppelin
errors and events the Directory surfaces are held to the same rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTERFACE = ROOT / "contracts" / "interfaces" / "IDirectory.sol"
TEST_FILES = [Path(__file__).with_name(n) for n in ("test_contract_access.py", "test_contract_records.py")]

#: OpenZeppelin errors and events the Directory raises or emits (AccessControl, ECDSA).
OPENZEPPELIN = (
    "AccessControlUnauthorizedAccount",
    "ECDSAInvalidSignature",
    "ECDSAInvalidSignatureS",
    "ECDSAInvalidSignatureLength",
    "RoleGranted",
    "RoleRevoked",
)


def _declared(kind: str) -> list[str]:
    """Names of the ``error`` or ``event`` declarations of IDirectory.sol (comments stripped)."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", INTERFACE.read_text(), flags=re.S)
    return re.findall(rf"\b{kind}\s+(\w+)\s*\(", text)


def _tested() -> str:
    return "\n".join(p.read_text() for p in TEST_FILES)


def test_the_interface_declares_errors_and_events() -> None:
    errors, events = _declared("error"), _declared("event")
    assert len(errors) >= 20 and len(events) >= 8, (errors, events)
    assert len(set(errors)) == len(errors) and len(set(events)) == len(events)


@pytest.mark.parametrize("name", [*_declared("error"), *_declared("event"), *OPENZEPPELIN])
def test_every_error_and_event_has_a_contract_test(name: str) -> None:
    assert f'"{name}"' in _tested(), f"{name} is declared but no contract test asserts it by name"
