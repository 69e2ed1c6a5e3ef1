"""Exceptions of the ``registry`` package: one root, leaves that keep their fields."""

from __future__ import annotations


class RegistryError(Exception):
    """Root of every error raised by the ``registry`` package."""


class ReorgDetected(RegistryError):
    """The chain no longer holds a block the index was built from: a reorganisation.

    ``block_number`` is the height checked, ``expected_hash`` the block hash the index recorded
    (0x-hex) and ``got_hash`` the hash the chain now reports at that height (or ``"none (head is
    N)"`` when the chain no longer reaches it). The index is left untouched; recovering (rewinding
    the cursor and the rows above it, or re-indexing) is an operator decision, never done silently.
    """

    def __init__(self, block_number: int, expected_hash: str, got_hash: str) -> None:
        super().__init__(f"reorganisation at block {block_number}: index has {expected_hash}, chain has {got_hash}")
        self.block_number = block_number
        self.expected_hash = expected_hash
        self.got_hash = got_hash
