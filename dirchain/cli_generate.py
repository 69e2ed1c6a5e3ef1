"""``dirchain generate``: write a generated benchmark directory and its sharing requests.

``dirchain generate --scale beijing --seed 1 --out DIR`` writes ``DIR/beijing-1-directory.json`` and
``DIR/beijing-1-sharing.json`` (see :mod:`registry.generate`); ``dirchain load
DIR/beijing-1-directory.json`` then finds the sharing file next to it
(:func:`registry.loader.sharing_file_for`).
"""

from __future__ import annotations

import time
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["ScaleName", "generated_paths", "register"]

_console = Console()


class ScaleName(StrEnum):
    """The presets of :data:`registry.generate.SCALES`."""

    BEIJING = "beijing"
    MEDIUM = "medium"
    SMALL = "small"


def generated_paths(out: Path, scale: str, seed: int) -> tuple[Path, Path]:
    """``(<out>/<scale>-<seed>-directory.json, <out>/<scale>-<seed>-sharing.json)``."""
    stem = f"{scale}-{seed}"
    return out / f"{stem}-directory.json", out / f"{stem}-sharing.json"


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to ``app``."""

    @app.command("generate")
    def generate(
        scale: Annotated[ScaleName, typer.Option(
            help="preset size: beijing (published totals), medium (an eighth, for profiling) or small (CI)"
        )] = ScaleName.BEIJING,
        seed: Annotated[int, typer.Option(help="seed of the pseudo-random generator (same seed, same bytes)")] = 1,
        out: Annotated[Path, typer.Option(file_okay=False, help="directory to write the two files to")] = Path("."),
    ) -> None:
        """Write a generated directory file and its sharing file (<scale>-<seed>-directory.json and
        <scale>-<seed>-sharing.json in --out), shaped like the seed files, and print their counts."""
        from registry.generate import SCALES, dumps, generate_directory

        started = time.perf_counter()
        directory, sharing = generate_directory(SCALES[scale.value], seed)
        directory_bytes, sharing_bytes = dumps(directory), dumps(sharing)
        elapsed = time.perf_counter() - started
        out.mkdir(parents=True, exist_ok=True)
        directory_path, sharing_path = generated_paths(out, scale.value, seed)
        directory_path.write_bytes(directory_bytes)
        sharing_path.write_bytes(sharing_bytes)

        tiers = Counter(j["tier"] for j in directory["jurisdictions"])
        catalogs = directory["catalogs"]
        n = len(catalogs)
        items = sum(len(c["items"]) for c in catalogs)
        shares = Counter(c["share_type"] for c in catalogs)
        opens = Counter(c["open_type"] for c in catalogs)
        expects = Counter(r["expect"] for r in sharing["requests"])
        _console.print(f"generated scale {scale.value}, seed {seed} in {elapsed:.2f} s")
        _console.print(f"  jurisdictions: {tiers['city']} city, {tiers['district']} districts, "
                       f"{tiers['street']} streets; {len(directory['departments'])} departments; "
                       f"{len(directory['systems'])} systems")
        _console.print(f"  catalogs: {n} with {items} data items ({items / max(n, 1):.2f} per catalog); share "
                       + ", ".join(f"{t} {shares[t]}" for t in ("unconditional", "conditional", "not_shared"))
                       + f" ({(shares['unconditional'] + shares['conditional']) / max(n, 1):.1%} shareable); open "
                       + ", ".join(f"{t} {opens[t]}" for t in ("unconditional", "conditional", "none"))
                       + f" ({(n - opens['none']) / max(n, 1):.1%} open)")
        _console.print(f"  sharing requests: {len(sharing['requests'])} ("
                       + ", ".join(f"{k} {v}" for k, v in sorted(expects.items())) + ")")
        _console.print(f"  wrote {directory_path} ({len(directory_bytes):,} bytes) and {sharing_path} "
                       f"({len(sharing_bytes):,} bytes)")
