"""On-demand block production (chain/producer.py) on a real anvil started with ``--no-mining``."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.node import AnvilNode
from chain.producer import BlockProducer
from chain.rpc import Rpc

pytestmark = pytest.mark.integration

CHAIN_ID = 31337


def _transfer(rpc: Rpc, account: LocalAccount, nonce: int) -> str:
    """A signed 1-wei self-transfer of ``account`` with ``nonce`` (raw, 0x-hex)."""
    gas_price = int(rpc.call("eth_gasPrice", []), 16) * 2
    tx = {"to": account.address, "value": 1, "gas": 21_000, "gasPrice": gas_price, "nonce": nonce,
          "chainId": CHAIN_ID, "data": b""}
    return "0x" + account.sign_transaction(tx).raw_transaction.hex()


def _receipt(rpc: Rpc, tx_hash: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The receipt of ``tx_hash`` once mined; fails the test after ``timeout_s`` seconds without one."""
    deadline = time.monotonic() + timeout_s
    while (receipt := rpc.call("eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined within {timeout_s} s"
        time.sleep(0.01)
    return dict(receipt)


def _funded(rpc: Rpc, count: int) -> list[LocalAccount]:
    accounts = [Account.create() for _ in range(count)]
    for a in accounts:
        rpc.call("anvil_setBalance", [a.address, hex(10**21)])
    return accounts


def test_transactions_sent_together_share_blocks_and_no_block_is_empty() -> None:
    """50 transactions in one JSON-RPC batch: automine mines 50 blocks; on demand, every one is mined, in fewer
    blocks, each holding at least one transaction."""
    with AnvilNode(on_demand=True, chain_id=CHAIN_ID) as node:
        rpc = Rpc(node.rpc_url)
        (account,) = _funded(rpc, 1)
        head = int(rpc.call("eth_blockNumber", []), 16)
        hashes = rpc.batch([("eth_sendRawTransaction", [_transfer(rpc, account, n)]) for n in range(50)])
        receipts = [_receipt(rpc, str(h)) for h in hashes]
        assert all(int(r["status"], 16) == 1 for r in receipts)
        mined = sorted({int(r["blockNumber"], 16) for r in receipts})
        assert len(mined) < 50, mined
        new_head = int(rpc.call("eth_blockNumber", []), 16)
        assert mined == list(range(head + 1, new_head + 1))  # every block since holds one of them: none is empty
        assert node.producer is not None and node.producer.poll() is None  # the producer process runs
        time.sleep(0.3)
        assert int(rpc.call("eth_blockNumber", []), 16) == new_head  # idle: nothing mined without a transaction


def test_concurrent_senders_waiting_for_receipts_are_all_mined() -> None:
    """Ten senders, each sending a transaction and waiting for its receipt before the next (as the service's
    batchers do): every transaction is mined, in order per sender, and blocks are shared."""
    with AnvilNode(on_demand=True, chain_id=CHAIN_ID) as node:
        rpc = Rpc(node.rpc_url)
        accounts = _funded(rpc, 10)
        blocks: dict[str, list[int]] = {}

        def send(account: LocalAccount) -> None:
            own = Rpc(node.rpc_url)
            mined = blocks.setdefault(account.address, [])
            for n in range(10):
                tx_hash = own.call("eth_sendRawTransaction", [_transfer(own, account, n)])
                mined.append(int(_receipt(own, tx_hash)["blockNumber"], 16))

        threads = [threading.Thread(target=send, args=(a,)) for a in accounts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert all(len(mined) == 10 and mined == sorted(set(mined)) for mined in blocks.values()), blocks
        distinct = {b for mined in blocks.values() for b in mined}
        assert len(distinct) < 100
        assert int(rpc.call("eth_getTransactionCount", [accounts[0].address, "latest"]), 16) == 10


def test_a_transaction_sent_before_the_producer_starts_is_mined() -> None:
    """What is pending when the producer subscribes is mined too (it checks the pool first)."""
    node = AnvilNode(chain_id=CHAIN_ID, extra_args=["--no-mining"])
    node.start()
    try:
        rpc = Rpc(node.rpc_url)
        (account,) = _funded(rpc, 1)
        tx_hash = rpc.call("eth_sendRawTransaction", [_transfer(rpc, account, 0)])
        assert rpc.call("eth_getTransactionReceipt", [tx_hash]) is None
        producer = BlockProducer(node.rpc_url)
        producer.start()
        try:
            assert int(_receipt(rpc, tx_hash)["status"], 16) == 1
        finally:
            producer.stop()
        assert producer.blocks == 1
    finally:
        node.stop()


def test_on_demand_mining_excludes_a_block_time() -> None:
    with pytest.raises(ValueError, match="either a block time or on-demand mining"):
        AnvilNode(on_demand=True, block_time_s=1.0)


def test_the_producer_process_stops_with_its_node() -> None:
    node = AnvilNode(on_demand=True, chain_id=CHAIN_ID)
    node.start()
    producer = node.producer
    assert producer is not None and producer.poll() is None
    node.stop()
    assert producer.poll() is not None and node.producer is None
