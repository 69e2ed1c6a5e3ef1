"""Deployment of the Directory contract, recorded per chain id under a home folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from chain.abi import ContractCodec, signature_of
from chain.artifacts import load_artifact
from chain.errors import DeploymentError
from chain.rpc import Rpc, RpcError
from chain.sender import TxSender


@dataclass(frozen=True)
class Deployment:
    """Where a Directory lives: ``address``, the ``block_number`` and ``tx_hash`` that created it, ``chain_id``;
    ``factory`` that cloned it and its ``home`` jurisdiction id (0x-hex; zero = serves every jurisdiction)."""

    address: str
    block_number: int
    tx_hash: str
    chain_id: int
    factory: str = ""
    home: str = "0x" + "00" * 32


def _deploy(sender: TxSender, name: str, args_types: list[str], args: list[Any]) -> tuple[str, str]:
    artifact = load_artifact(name)
    data = bytes.fromhex(artifact.bytecode[2:]) + (abi_encode(args_types, args) if args_types else b"")
    gas = sender.estimate_gas(None, data)
    tx_hash = sender.send(None, data, gas + gas // 5, label=f"deploy {name}")
    sender.wait(tx_hash)
    raw = sender.rpc.call("eth_getTransactionReceipt", [tx_hash])
    return to_checksum_address(raw["contractAddress"]), tx_hash


def deploy_factory(sender: TxSender) -> str:
    """Deploy the Directory implementation and a DirectoryFactory cloning it; returns the factory address."""
    implementation, _ = _deploy(sender, "Directory", [], [])
    factory, _ = _deploy(sender, "DirectoryFactory", ["address"], [implementation])
    return factory


def create_directory(
    sender: TxSender, factory: str, administrator: str, relayer: str, home: bytes = b"\x00" * 32
) -> Deployment:
    """Clone a directory for ``home`` (keccak of a jurisdiction code; zero = all) through ``factory`` and wait.

    ``administrator`` gets DEFAULT_ADMIN_ROLE, ``relayer`` RELAYER_ROLE. Raises ContractRevert (e.g. the sender
    already made one for ``home``), TransactionFailed / TransactionTimeout.
    """
    entry = next(e for e in load_artifact("DirectoryFactory").abi if e.get("name") == "createDirectory")
    args = [home, to_checksum_address(administrator), to_checksum_address(relayer)]
    data = keccak(text=signature_of(entry))[:4] + abi_encode(["bytes32", "address", "address"], args)
    try:
        gas = sender.budget_gas(factory, data, 1)
    except RpcError as exc:
        raise ContractCodec(load_artifact("DirectoryFactory").abi).decode_revert(exc.data) from exc
    tx_hash = sender.send(factory, data, gas, label="createDirectory")
    receipt = sender.wait(tx_hash)
    codec = ContractCodec(load_artifact("DirectoryFactory").abi)
    created = [ev for ev in map(codec.decode_log, receipt.logs) if ev is not None and ev.event == "DirectoryCreated"]
    return Deployment(
        address=to_checksum_address(created[0].args["directory"]),
        block_number=receipt.block_number,
        tx_hash=tx_hash,
        chain_id=sender.chain_id,
        factory=factory,
        home="0x" + home.hex(),
    )


def predict_directory(rpc: Rpc, factory: str, creator: str, home: bytes) -> str:
    """Checksummed address ``factory.createDirectory`` gives (or gave) ``creator`` for ``home`` (CREATE2, so
    known before the directory exists): the factory's ``predictDirectory`` view."""
    data = keccak(text="predictDirectory(address,bytes32)")[:4] + abi_encode(
        ["address", "bytes32"], [to_checksum_address(creator), home]
    )
    result = rpc.call("eth_call", [{"to": to_checksum_address(factory), "data": "0x" + data.hex()}, "latest"])
    return to_checksum_address("0x" + str(result)[-40:])


def factory_implementation(rpc: Rpc, factory: str) -> str:
    """Checksummed address of the Directory implementation behind ``factory``'s clones (``IMPLEMENTATION()``)."""
    data = keccak(text="IMPLEMENTATION()")[:4]
    result = rpc.call("eth_call", [{"to": to_checksum_address(factory), "data": "0x" + data.hex()}, "latest"])
    return to_checksum_address("0x" + str(result)[-40:])


def load_or_deploy_factory(sender: TxSender, home: Path) -> tuple[Deployment, bool]:
    """The DirectoryFactory recorded for this chain under ``home`` (``deployments/<chain id>-factory.json``), or
    one deployed (with its implementation) and recorded now; the bool says whether it was deployed now. The
    Deployment's ``address`` and ``factory`` are both the factory's, ``block_number`` its deployment block.
    Raises :class:`DeploymentError` for a record of a factory the chain does not have (a reset chain)."""
    path = home / "deployments" / f"{sender.chain_id}-factory.json"
    if path.exists():
        dep = Deployment(**json.loads(path.read_text(encoding="utf-8")))
        if sender.rpc.call("eth_getCode", [dep.address, "latest"]) in (None, "0x", "0x0"):
            raise DeploymentError(f"{path} records a DirectoryFactory at {dep.address} but chain {sender.chain_id} "
                                  "has no code there: the chain was reset; remove the file to deploy afresh")
        return dep, False
    before = int(sender.rpc.call("eth_blockNumber", []), 16)
    factory = deploy_factory(sender)
    dep = Deployment(address=factory, block_number=before, tx_hash="", chain_id=sender.chain_id, factory=factory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(dep), indent=2) + "\n", encoding="utf-8")
    return dep, True


def deploy_directory(sender: TxSender, administrator: str, relayer: str, home: bytes = b"\x00" * 32) -> Deployment:
    """Deploy implementation and factory, then clone one directory for ``home``; see :func:`create_directory`."""
    return create_directory(sender, deploy_factory(sender), administrator, relayer, home)


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
