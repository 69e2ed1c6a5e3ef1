"""The transaction sender on a real anvil: local nonces under concurrency, journal before broadcast,
reconciliation by hash after a crash, bounded receipt waits, typed reverts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chain.errors import ContractRevert, TransactionTimeout
from chain.journal import FileJournal, JournalEntry, MemoryJournal
from chain.node import AnvilNode
from chain.rpc import Rpc, RpcError
from chain.sender import TxSender
from tests.integration.conftest import CHAIN_ID, Chain, funded_account

TRANSFER_GAS = 21_000


def _sender(rpc: Rpc, journal: FileJournal | MemoryJournal) -> TxSender:
    return TxSender(rpc, funded_account(rpc), journal, CHAIN_ID, receipt_timeout_s=20, poll_s=0.01)


def test_concurrent_sends_get_consecutive_nonces_and_all_mine(rpc: Rpc) -> None:
    sender = _sender(rpc, MemoryJournal())
    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = list(pool.map(lambda _: sender.send(sender.address, b"", TRANSFER_GAS), range(24)))
    receipts = [sender.wait(h) for h in hashes]
    nonces = sorted(int(rpc.call("eth_getTransactionByHash", [h])["nonce"], 16) for h in hashes)
    assert nonces == list(range(24))
    assert all(r.status == 1 for r in receipts)
    assert sender.journal.unsettled() == []


def test_a_refused_broadcast_leaves_no_gap_behind_it(rpc: Rpc) -> None:
    """One transaction the node refuses (more gas than a block holds) among 15 sent at once: it raises and is
    settled ``rejected``, and its nonce is not consumed: the 14 others all mine with consecutive nonces from 0 and
    nothing stays unsettled."""
    sender = _sender(rpc, MemoryJournal())
    too_much = sender.block_gas_limit + 1
    with ThreadPoolExecutor(max_workers=15) as pool:
        futures = [pool.submit(sender.send, sender.address, b"", too_much if n == 3 else TRANSFER_GAS)
                   for n in range(15)]
        outcomes = [f.exception() or f.result() for f in futures]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    hashes = [o for o in outcomes if isinstance(o, str)]
    assert len(refused) == 1 and isinstance(refused[0], RpcError) and len(hashes) == 14
    assert all(sender.wait(h).status == 1 for h in hashes)
    assert sorted(int(rpc.call("eth_getTransactionByHash", [h])["nonce"], 16) for h in hashes) == list(range(14))
    assert sender.journal.unsettled() == []


def test_every_transaction_is_journaled_before_broadcast(rpc: Rpc, tmp_path: Path) -> None:
    journal = FileJournal(tmp_path / "journal.jsonl")
    sender = _sender(rpc, journal)
    tx_hash = sender.send(sender.address, b"", TRANSFER_GAS, label="transfer")
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert any(tx_hash in line and '"raw"' in line for line in lines)
    sender.wait(tx_hash)
    assert FileJournal(tmp_path / "journal.jsonl").unsettled() == []


def test_reconcile_rebroadcasts_a_journaled_transaction_the_node_never_saw(rpc: Rpc, tmp_path: Path) -> None:
    """A crash between journaling and broadcasting: the next sender finds it and sends it exactly once."""
    path = tmp_path / "journal.jsonl"
    account = funded_account(rpc)
    nonce = int(rpc.call("eth_getTransactionCount", [account.address, "pending"]), 16)
    gas_price = int(rpc.call("eth_gasPrice", []), 16)
    signed = account.sign_transaction(
        {
            "nonce": nonce,
            "gasPrice": gas_price,
            "gas": TRANSFER_GAS,
            "to": account.address,
            "value": 0,
            "data": b"",
            "chainId": CHAIN_ID,
        }
    )
    tx_hash = "0x" + bytes(signed.hash).hex()
    FileJournal(path).record(
        JournalEntry(
            tx_hash, account.address, nonce, "0x" + bytes(signed.raw_transaction).hex(), "crashed before broadcast"
        )
    )
    assert rpc.call("eth_getTransactionByHash", [tx_hash]) is None

    sender = TxSender(rpc, account, FileJournal(path), CHAIN_ID, receipt_timeout_s=20, poll_s=0.01)
    assert sender.reconcile() == {tx_hash: "rebroadcast"}
    assert sender.wait(tx_hash).status == 1
    # the next transaction takes the next nonce, and a second reconcile has nothing to do
    after = sender.send(account.address, b"", TRANSFER_GAS)
    assert int(rpc.call("eth_getTransactionByHash", [after])["nonce"], 16) == nonce + 1
    sender.wait(after)
    assert TxSender(rpc, account, FileJournal(path), CHAIN_ID).reconcile() == {}


def test_reconcile_settles_a_mined_transaction_and_drops_a_replaced_one(rpc: Rpc, tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    sender = _sender(rpc, FileJournal(path))
    mined = sender.send(sender.address, b"", TRANSFER_GAS)
    rpc.call("evm_mine", [])
    # a journaled transaction whose nonce was consumed by another one can never be mined
    stale = JournalEntry("0x" + "ab" * 32, sender.address, 0, "0x00", "superseded")
    journal = FileJournal(path)
    journal.record(stale)
    outcomes = TxSender(rpc, sender.account, journal, CHAIN_ID).reconcile()
    assert outcomes == {mined: "mined", stale.tx_hash: "dropped"}
    assert FileJournal(path).unsettled() == []


def test_receipt_wait_is_bounded(tmp_path: Path) -> None:
    """With mining switched off, waiting gives up after the timeout with TransactionTimeout."""
    with AnvilNode(chain_id=CHAIN_ID, extra_args=["--no-mining"]) as node:
        rpc = Rpc(node.rpc_url)
        sender = _sender(rpc, MemoryJournal())
        tx_hash = sender.send(sender.address, b"", TRANSFER_GAS)
        with pytest.raises(TransactionTimeout) as exc:
            sender.wait(tx_hash, timeout_s=0.3)
        assert exc.value.tx_hash == tx_hash and exc.value.waited_s >= 0.3
        assert sender.reconcile() == {tx_hash: "pending"}


def test_reverts_surface_as_typed_contract_errors(chain: Chain) -> None:
    with pytest.raises(ContractRevert) as exc:
        chain.client.submit("Catalog", [])
    assert exc.value.name == "DirectoryBatchEmpty" and exc.value.args_by_name == {}
