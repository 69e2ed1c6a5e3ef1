"""Deployment of the Directory contract, recorded per chain id under a home folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from chain.artifacts import load_artifact
from chain.errors import DeploymentError
from chain.rpc import Rpc
from chain.sender import TxSender


@dataclass(frozen=True)
class Deployment:
    """Where a Directory lives: ``address``, the ``block_number`` and ``tx_hash`` that created it, ``chain_id``."""

    address: str
    block_number: int
    tx_hash: str
    chain_id: int


def deploy_directory(sender: TxSender, administrator: str, relayer: str) -> Deployment:
    """Deploy ``Directory(administrator, relayer)`` from ``sender``'s account and wait for it.

    ``administrator`` gets DEFAULT_ADMIN_ROLE, ``relayer`` RELAYER_ROLE. Raises TransactionFailed /
    TransactionTimeout from the sender.
    """
    artifact = load_artifact("Directory")
    args = abi_encode(["address", "address"], [to_checksum_address(administrator), to_checksum_address(relayer)])
    data = bytes.fromhex(artifact.bytecode[2:]) + args
    gas = sender.estimate_gas(None, data)
    tx_hash = sender.send(None, data, gas + gas // 5, label="deploy Directory")
    receipt = sender.wait(tx_hash)
    raw = sender.rpc.call("eth_getTransactionReceipt", [tx_hash])
    return Deployment(
        address=to_checksum_address(raw["contractAddress"]),
        block_number=receipt.block_number,
        tx_hash=tx_hash,
        chain_id=sender.chain_id,
    )


def deployment_file(home: Path, chain_id: int) -> Path:
    """``<home>/deployments/<chain id>.json``."""
    return home / "deployments" / f"{chain_id}.json"


def load_deployment(rpc: Rpc, home: Path, chain_id: int) -> Deployment | None:
    """The recorded deployment on this chain, or None if none is recorded.

    Raises :class:`DeploymentError` if one is recorded but the chain has no code at its address
    (a reset chain with a stale record).
    """
    path = deployment_file(home, chain_id)
    if not path.exists():
        return None
    dep = Deployment(**json.loads(path.read_text(encoding="utf-8")))
    code = rpc.call("eth_getCode", [dep.address, "latest"])
    if code in (None, "0x", "0x0"):
        raise DeploymentError(
            f"{path} records a Directory at {dep.address} but chain {chain_id} has no code there: "
            "the chain was reset; remove the file to deploy afresh"
        )
    return dep


def save_deployment(home: Path, dep: Deployment) -> Path:
    """Record a deployment under ``home``; returns the file written."""
    path = deployment_file(home, dep.chain_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(dep), indent=2) + "\n", encoding="utf-8")
    return path


def load_or_deploy(sender: TxSender, home: Path, administrator: str, relayer: str) -> tuple[Deployment, bool]:
    """The recorded deployment, or a new one recorded now; the bool says whether it was deployed now."""
    dep = load_deployment(sender.rpc, home, sender.chain_id)
    if dep is not None:
        return dep, False
    dep = deploy_directory(sender, administrator, relayer)
    save_deployment(home, dep)
    return dep, True
