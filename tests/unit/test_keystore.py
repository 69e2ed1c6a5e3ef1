"""Keystore: keys created on first use, encrypted keyfiles, permissions, no disclosure."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address, keccak

from registry.keystore import DEFAULT_ITERATIONS, Keystore, KeystoreError

LABEL = "D29BD7E9575"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_created_on_first_use(tmp_path: Path) -> None:
    folder = tmp_path / "home" / "keys"
    store = Keystore(folder)
    assert store.labels() == []
    assert not folder.exists()  # nothing is written before a key is needed
    account = store.account(LABEL)
    assert is_checksum_address(account.address)
    assert store.address(LABEL) == account.address
    assert store.account(LABEL) is account  # cached
    assert store.labels() == [LABEL]
    assert store.path(LABEL) == folder / f"{keccak(text=LABEL).hex()[:16]}.json"
    assert [p.name for p in folder.iterdir()] == [store.path(LABEL).name]  # no temporary file left


def test_reload_gives_same_address_and_key(tmp_path: Path) -> None:
    first = Keystore(tmp_path, "s3cret")
    address = first.address("relayer")
    second = Keystore(tmp_path, "s3cret")
    assert second.address("relayer") == address
    message = encode_defunct(text="目录链")
    signature = second.account("relayer").sign_message(message).signature
    assert Account.recover_message(message, signature=signature) == address


def test_labels_are_distinct_keys(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    labels = ["administrator", "relayer", "D5F0590809B", "大栅栏街道办事处"]
    addresses = {store.address(label) for label in labels}
    assert len(addresses) == len(labels)
    assert store.labels() == sorted(labels)
    assert Keystore(tmp_path).labels() == sorted(labels)


def test_file_and_folder_modes(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    store = Keystore(folder)
    store.account("administrator")
    assert mode(folder) == 0o700
    assert mode(store.path("administrator")) == 0o600


def test_loose_existing_folder_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    Keystore(folder).account("administrator")
    assert mode(folder) == 0o700


def test_keyfile_is_v3_pbkdf2_with_label(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    account = store.account(LABEL)
    keyfile = json.loads(store.path(LABEL).read_text(encoding="utf-8"))
    assert keyfile["version"] == 3 and keyfile["label"] == LABEL
    assert keyfile["crypto"]["kdf"] == "pbkdf2"
    assert keyfile["crypto"]["kdfparams"]["c"] == DEFAULT_ITERATIONS
    assert keyfile["address"].lower() == account.address.lower()[2:]
    assert account.key.hex() not in store.path(LABEL).read_text(encoding="utf-8")
    assert Account.decrypt(keyfile, "") == account.key  # a standard keyfile despite the extra field


def test_wrong_password_fails(tmp_path: Path) -> None:
    Keystore(tmp_path, "right").account(LABEL)
    with pytest.raises(KeystoreError, match="cannot decrypt"):
        Keystore(tmp_path, "wrong").account(LABEL)
    with pytest.raises(KeystoreError):
        Keystore(tmp_path).address(LABEL)


def test_repr_reveals_no_key_or_password(tmp_path: Path) -> None:
    store = Keystore(tmp_path, "hunter2-password")
    account = store.account(LABEL)
    text = repr(store) + str(store)
    assert "hunter2" not in text
    assert account.key.hex() not in text and account.key.hex().upper() not in text
    assert "Keystore(" in text and str(tmp_path) in text


def test_decrypting_is_fast_enough(tmp_path: Path) -> None:
    Keystore(tmp_path).account(LABEL)
    started = time.perf_counter()
    Keystore(tmp_path).account(LABEL)
    assert time.perf_counter() - started < 0.5  # ~20 ms on the development machine; generous bound


def test_mismatched_label_is_refused(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.account("relayer")
    # a keyfile moved or copied under another label's name must not be used for that label
    store.path("relayer").rename(store.path("administrator"))
    with pytest.raises(KeystoreError, match="holds the key of label 'relayer'"):
        Keystore(tmp_path).account("administrator")


def test_corrupt_keyfile_is_reported(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.account(LABEL)
    store.path(LABEL).write_text("{", encoding="utf-8")
    with pytest.raises(KeystoreError, match="not JSON"):
        Keystore(tmp_path).account(LABEL)
    with pytest.raises(KeystoreError):
        Keystore(tmp_path).labels()


def test_other_files_are_ignored_by_labels(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.account(LABEL)
    (tmp_path / "README.txt").write_text("keys", encoding="utf-8")
    (tmp_path / ".tmp-abc.part").write_text("{}", encoding="utf-8")
    assert store.labels() == [LABEL]


def test_empty_label_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Keystore(tmp_path).account("")


def test_concurrent_first_use_yields_one_key(tmp_path: Path) -> None:
    stores = [Keystore(tmp_path) for _ in range(4)]  # separate caches, as separate processes would have
    addresses: list[str] = []

    def use(store: Keystore) -> None:
        addresses.append(store.address("relayer"))

    threads = [threading.Thread(target=use, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(addresses)) == 1
    assert Keystore(tmp_path).address("relayer") == addresses[0]


def test_one_store_shared_by_threads_makes_each_label_once(tmp_path: Path) -> None:
    """Per-label locking: threads asking one store for the same new label get one key; other labels their own."""
    store = Keystore(tmp_path, iterations=2)
    labels = [f"DEPT{i % 3}" for i in range(12)]
    got: list[tuple[str, str]] = []
    lock = threading.Lock()

    def use(label: str) -> None:
        address = store.address(label)
        with lock:
            got.append((label, address))

    threads = [threading.Thread(target=use, args=(label,)) for label in labels]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_label = {label: {a for lbl, a in got if lbl == label} for label in set(labels)}
    assert all(len(addresses) == 1 for addresses in by_label.values()), by_label
    assert len({next(iter(a)) for a in by_label.values()}) == 3
    assert sorted(store.labels()) == ["DEPT0", "DEPT1", "DEPT2"]
    fresh = Keystore(tmp_path, iterations=2)
    assert all(fresh.address(label) == next(iter(a)) for label, a in by_label.items())
