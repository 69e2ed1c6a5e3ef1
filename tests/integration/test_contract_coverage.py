"""Meta-test: every custom error and every event of the Directory has a contract test.

Reads ``contracts/interfaces/IDirectory.sol``, ``IDirectorySharing.sol``, ``IDirectoryRelay.sol`` and
``contracts/DirectoryFactory.sol`` for each ``error X(`` and ``event X(`` and requires the name, as a quoted
string (how the tests assert it: ``expect_revert(..., "X")``, ``assert_event(e, "X")``), in the source of the
contract test files — so adding an error or event without a test fails CI. The OpenZeppelin errors and events
the Directory and the factory surface are held to the same rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chain.artifacts import load_artifact

ROOT = Path(__file__).resolve().parents[2]
INTERFACES = [
    *(
        ROOT / "contracts" / "interfaces" / n
        for n in ("IDirectory.sol", "IDirectorySharing.sol", "IDirectoryRelay.sol")
    ),
    ROOT / "contracts" / "DirectoryFactory.sol",
]
TEST_FILES = [
    Path(__file__).with_name(n)
    for n in (
        "test_contract_access.py",
        "test_contract_records.py",
        "test_contract_sharing.py",
        "test_contract_relay.py",
    )
]

#: OpenZeppelin errors and events the Directory or the factory raise or emit (AccessControl, ECDSA,
#: Initializable, Clones).
OPENZEPPELIN = (
    "AccessControlUnauthorizedAccount",
    "ECDSAInvalidSignature",
    "ECDSAInvalidSignatureS",
    "ECDSAInvalidSignatureLength",
    "RoleGranted",
    "RoleRevoked",
    "InvalidInitialization",
    "Initialized",
    "FailedDeployment",
)


def _declared(kind: str, interface: Path | None = None) -> list[str]:
    """Names of the ``error`` or ``event`` declarations of ``interface`` (default: all of
    :data:`INTERFACES`), comments stripped."""
    names: list[str] = []
    for path in [interface] if interface else INTERFACES:
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)
        names += re.findall(rf"\b{kind}\s+(\w+)\s*\(", text)
    return names


def _tested() -> str:
    return "\n".join(p.read_text() for p in TEST_FILES)


@pytest.mark.parametrize(
    ("interface", "least"),
    [
        ("IDirectory.sol", (20, 8)),
        ("IDirectorySharing.sol", (8, 2)),
        ("IDirectoryRelay.sol", (6, 3)),
        ("DirectoryFactory.sol", (0, 1)),
    ],
)
def test_the_interfaces_declare_errors_and_events(interface: str, least: tuple[int, int]) -> None:
    path = next(p for p in INTERFACES if p.name == interface)
    errors, events = _declared("error", path), _declared("event", path)
    assert len(errors) >= least[0] and len(events) >= least[1], (errors, events)
    # unique across both interfaces: the Directory implements both, and the ABI keys errors by name
    all_errors, all_events = _declared("error"), _declared("event")
    assert len(set(all_errors)) == len(all_errors) and len(set(all_events)) == len(all_events)


@pytest.mark.parametrize("name", [*_declared("error"), *_declared("event"), *OPENZEPPELIN])
def test_every_error_and_event_has_a_contract_test(name: str) -> None:
    assert f'"{name}"' in _tested(), f"{name} is declared but no contract test asserts it by name"


def test_the_openzeppelin_names_are_in_the_compiled_abis() -> None:
    """The list above names only errors and events the compiled Directory or DirectoryFactory can surface."""
    abi = [*load_artifact("Directory").abi, *load_artifact("DirectoryFactory").abi]
    names = {e["name"] for e in abi if e.get("type") in ("error", "event")}
    assert set(OPENZEPPELIN) <= names, set(OPENZEPPELIN) - names
    # and every declared error and event is in them (the sources parsed here are the ones compiled)
    assert set(_declared("error")) | set(_declared("event")) <= names
