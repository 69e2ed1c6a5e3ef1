"""Hardhat artifacts: the compiled contracts the Python side reads (ABI and creation bytecode).

One compile path: ``npx hardhat compile`` (Hardhat 2, npm ``solc`` pinned in package.json, EVM
``cancun``) writes ``artifacts/contracts/<File>.sol/<Name>.json`` under the project root.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chain.errors import ArtifactMissing, ChainError

#: Project root: the folder holding hardhat.config.js (this file is <root>/chain/artifacts.py).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: ``abi`` (list of ABI entries) and ``bytecode`` (creation code, 0x-hex)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def artifact_path(name: str, source: str | None = None) -> Path:
    """Path of the Hardhat artifact of contract ``name`` declared in ``contracts/<source>.sol``."""
    return PROJECT_ROOT / "artifacts" / "contracts" / f"{source or name}.sol" / f"{name}.json"


@cache
def load_artifact(name: str, source: str | None = None) -> Artifact:
    """Read a compiled contract. Raises :class:`ArtifactMissing` if Hardhat has not compiled it."""
    path = artifact_path(name, source)
    if not path.exists():
        raise ArtifactMissing(str(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    return Artifact(name=data["contractName"], abi=data["abi"], bytecode=data["bytecode"])


def compile_contracts() -> None:
    """Run the project's one compile path (``npx hardhat compile``) in the project root.

    Raises :class:`ChainError` with Hardhat's output if compilation fails.
    """
    proc = subprocess.run(
        ["npx", "--no-install", "hardhat", "compile", "--quiet"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ChainError(f"hardhat compile failed:\n{proc.stdout}\n{proc.stderr}")
    load_artifact.cache_clear()
