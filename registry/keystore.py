"""Signing keys of departments and of the service (administrator, relayer), kept under one folder.

Layout: ``<folder>/<16 hex of keccak256(utf8(label))>.json``, one Ethereum keyfile (v3, as written by
:meth:`eth_account.Account.encrypt`) per label, with one extra top-level field ``"label"`` holding the
label in clear so that :meth:`Keystore.labels` can list them without decrypting. The folder
(normally ``DIRCHAIN_HOME/keys``) is created with mode 0700 on first write, each file with mode 0600.
A key is created on first use of its label, written atomically (temporary file in the same folder,
fsync, then a no-clobber hard link — or ``os.replace`` where the file system has no hard links), so
two processes asking for the same new label at once end up with the same key. Keys are never logged
or printed; :class:`Keystore`'s ``repr`` shows the folder only.

KDF trade-off: keys are encrypted with PBKDF2-HMAC-SHA256 at :data:`DEFAULT_ITERATIONS` (2**16)
iterations, about 20 ms to decrypt on the development machine. That is far below the 600,000 OWASP
suggests for user passwords, on purpose: a municipal deployment loads hundreds of department keys at
start-up (and the benchmark thousands), and a password-guessing attacker already holding the files
is only slowed linearly. The protection that matters is (1) the folder's permissions and (2) a long
random password from a secret store, for which the iteration count is irrelevant. With the default
empty password the encryption is only a guard against accidental disclosure (the file alone does
not reveal the key to a casual reader, backups, grep); treat the folder as the secret. Existing
files keep the iteration count they were written with, so changing the default needs no migration.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

__all__ = ["DEFAULT_ITERATIONS", "Keystore", "KeystoreError"]

#: PBKDF2 iterations of new keyfiles (see the module docstring for the trade-off).
DEFAULT_ITERATIONS = 65_536

_KEYFILE_NAME = re.compile(r"^[0-9a-f]{16}\.json$")


class KeystoreError(ValueError):
    """A keyfile cannot be used: wrong password, corrupt or foreign file, or a label mismatch."""


class Keystore:
    """Department and service keys under ``folder``, one encrypted keyfile per label.

    ``password`` encrypts every keyfile of this store (default empty). ``iterations`` is the PBKDF2
    work factor of keyfiles created from now on. Decrypted accounts are cached in memory for the life
    of the object; the object is safe to share between threads.
    """

    def __init__(self, folder: Path, password: str = "", *, iterations: int = DEFAULT_ITERATIONS) -> None:
        if iterations < 1:
            raise ValueError("iterations must be positive")
        self._folder = Path(folder)
        self._password = password
        self._iterations = iterations
        self._cache: dict[str, LocalAccount] = {}
        self._lock = threading.Lock()  # guards _label_locks
        self._label_locks: dict[str, threading.Lock] = {}  # one per label: keys are made or decrypted in parallel

    def __repr__(self) -> str:
        return f"Keystore(folder={str(self._folder)!r})"

    @property
    def folder(self) -> Path:
        """The folder holding the keyfiles."""
        return self._folder

    def path(self, label: str) -> Path:
        """The keyfile path of ``label`` (which may not exist yet)."""
        _check_label(label)
        return self._folder / f"{keccak(text=label).hex()[:16]}.json"

    def account(self, label: str) -> LocalAccount:
        """The account (private key) of ``label``, loading it, or creating and saving a new random key
        on first use.

        Raises :class:`KeystoreError` if the existing keyfile cannot be decrypted with this store's
        password, is malformed, or belongs to another label; ``OSError`` if the folder is unusable.
        """
        _check_label(label)
        cached = self._cache.get(label)
        if cached is not None:
            return cached
        with self._lock:
            label_lock = self._label_locks.setdefault(label, threading.Lock())
        # One label at a time, different labels at once: the key derivation (PBKDF2, which releases the GIL) and the
        # fsync of a new keyfile take tens of milliseconds each, and a loader asks for hundreds of keys at once.
        with label_lock:
            cached = self._cache.get(label)
            if cached is not None:
                return cached
            path = self.path(label)
            account = self._load(label, path) if path.exists() else self._create(label, path)
            self._cache[label] = account
            return account

    def address(self, label: str) -> str:
        """The checksummed address of ``label``'s key (created on first use, see :meth:`account`)."""
        return str(self.account(label).address)

    def labels(self) -> list[str]:
        """The labels that have a keyfile in the folder, sorted. Decrypts nothing.

        Raises :class:`KeystoreError` if a keyfile of the folder is malformed or has no label.
        """
        if not self._folder.is_dir():
            return []
        labels = []
        for path in sorted(self._folder.iterdir()):
            if _KEYFILE_NAME.match(path.name):
                labels.append(_label_of(_read_keyfile(path), path))
        return sorted(labels)

    # --------------------------------------------------------------------------------- internals

    def _load(self, label: str, path: Path) -> LocalAccount:
        keyfile = _read_keyfile(path)
        stored = _label_of(keyfile, path)
        if stored != label:
            raise KeystoreError(f"keyfile {path.name} holds the key of label {stored!r}, not {label!r}")
        try:
            key = Account.decrypt(keyfile, self._password)
        except ValueError as exc:  # eth-keyfile: "MAC mismatch" (wrong password) or bad parameters
            raise KeystoreError(f"cannot decrypt the key of label {label!r} ({path.name}): {exc}") from None
        account: LocalAccount = Account.from_key(key)
        address = str(keyfile.get("address", "")).lower().removeprefix("0x")
        if address and address != account.address.lower().removeprefix("0x"):
            raise KeystoreError(f"keyfile {path.name} of label {label!r}: address does not match its key")
        return account

    def _create(self, label: str, path: Path) -> LocalAccount:
        account: LocalAccount = Account.create()
        keyfile = Account.encrypt(account.key, self._password, kdf="pbkdf2", iterations=self._iterations)
        keyfile["label"] = label
        data = json.dumps(keyfile, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        self._ensure_folder()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=self._folder)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if another process created the label meanwhile
            except FileExistsError:
                return self._load(label, path)  # theirs wins; ours was never visible
            except OSError:
                os.replace(tmp, path)  # no hard links on this file system
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(self._folder)
        return account

    def _ensure_folder(self) -> None:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._folder.stat().st_mode & 0o777 != 0o700:
            # mkdir's mode is filtered by the umask; a pre-existing folder may be looser.
            with contextlib.suppress(PermissionError):
                os.chmod(self._folder, 0o700)


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not label:
        raise ValueError("a key label must be a non-empty string")


def _read_keyfile(path: Path) -> dict[str, Any]:
    try:
        keyfile = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"keyfile {path.name} is not JSON: {exc}") from None
    if not isinstance(keyfile, dict) or keyfile.get("version") != 3 or "crypto" not in keyfile:
        raise KeystoreError(f"keyfile {path.name} is not an Ethereum v3 keyfile")
    return keyfile


def _label_of(keyfile: dict[str, Any], path: Path) -> str:
    label = keyfile.get("label")
    if not isinstance(label, str) or not label:
        raise KeystoreError(f"keyfile {path.name} has no label")
    return label


def _fsync_dir(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
