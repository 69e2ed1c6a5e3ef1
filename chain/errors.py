"""Exceptions of the ``chain`` package: one root, leaves that keep their fields.

Custom Solidity errors (``error SubmissionNonceUsed(address signer, uint256 nonce)``) surface as
:class:`ContractRevert` carrying the error's name and decoded arguments, decoded from the revert
data with the contract's ABI (see :mod:`chain.abi`).
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by the ``chain`` package."""


class ArtifactMissing(ChainError):
    """A Hardhat artifact is not on disk (run ``npx hardhat compile``)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"expected a Hardhat artifact at {path}, found none: run `npx hardhat compile`")
        self.path = path


class NodeError(ChainError):
    """The local anvil node could not be found, started or reached."""


class SignatureError(ChainError):
    """A signature is not 65 bytes, has a high s (EIP-2) or a v other than 27/28, or does not recover."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContractRevert(ChainError):
    """A call or transaction reverted with a custom error of the contract (or OpenZeppelin's).

    ``name`` is the Solidity error name, ``args`` its decoded arguments by parameter name.
    """

    def __init__(self, name: str, args: dict[str, Any], data: bytes = b"") -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{name}({shown})")
        self.name = name
        self.args_by_name = args
        self.data = data


class UnknownRevert(ChainError):
    """A call reverted with data no known ABI error matches (or with none)."""

    def __init__(self, data: bytes, message: str = "") -> None:
        super().__init__(f"reverted with unrecognised data 0x{data.hex()} {message}".strip())
        self.data = data


class TransactionTimeout(ChainError):
    """No receipt for a transaction within the bounded wait (seconds)."""

    def __init__(self, tx_hash: str, waited_s: float) -> None:
        super().__init__(f"no receipt for {tx_hash} after {waited_s:.1f} s")
        self.tx_hash = tx_hash
        self.waited_s = waited_s


class TransactionFailed(ChainError):
    """A mined transaction has receipt status 0."""

    def __init__(self, tx_hash: str, block_number: int, reason: str = "") -> None:
        super().__init__(f"transaction {tx_hash} reverted in block {block_number} {reason}".strip())
        self.tx_hash = tx_hash
        self.block_number = block_number
        self.reason = reason


class DeploymentError(ChainError):
    """A recorded deployment has no code at its address on this chain."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
