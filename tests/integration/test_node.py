"""The embedded anvil node with and without state roots (chain/node.py): the same chain either way, but for the
``stateRoot`` of its blocks, and a genesis node that lives and dies with it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from chain.node import AnvilNode
from chain.rpc import Rpc

ZERO_ROOT = "0x" + "00" * 32


def _transfer(rpc: Rpc) -> dict[str, str]:
    """Send 1 wei from a new funded account (anvil_setBalance) and return its receipt once mined."""
    sender = Account.create()
    rpc.call("anvil_setBalance", [sender.address, hex(10**18)])
    tx = sender.sign_transaction({"to": "0x" + "11" * 20, "value": 1, "gas": 21_000, "gasPrice": 10**10,
                                  "nonce": 0, "chainId": int(rpc.call("eth_chainId", []), 16)})
    tx_hash = rpc.call("eth_sendRawTransaction", ["0x" + tx.raw_transaction.hex()])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # automine mines right after the send returns, not before
        receipt: dict[str, str] | None = rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return receipt
        time.sleep(0.02)
    raise AssertionError(f"no receipt for {tx_hash} within 10 s")


@pytest.mark.parametrize("state_roots", [False, True])
def test_blocks_carry_a_state_root_only_when_asked(state_roots: bool) -> None:
    with AnvilNode(chain_id=4321, state_roots=state_roots) as node:
        rpc = Rpc(node.rpc_url)
        assert int(rpc.call("eth_chainId", []), 16) == 4321
        receipt = _transfer(rpc)
        assert receipt["status"] == "0x1"
        block = rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
        assert block["transactions"] == [receipt["transactionHash"]]
        assert (block["stateRoot"] != ZERO_ROOT) is state_roots
        parent = rpc.call("eth_getBlockByNumber", [hex(int(block["number"], 16) - 1), False])
        assert block["parentHash"] == parent["hash"]
        assert (node.genesis is not None) is not state_roots
        genesis = node.genesis
        rpc.close()
    assert node.process is not None and node.process.poll() is not None
    if genesis is not None:  # stopped with its node
        assert genesis.poll() is not None


def test_a_node_without_state_roots_reloads_its_chain_on_a_new_genesis_node(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with AnvilNode(chain_id=4321, state_path=state) as node:
        rpc = Rpc(node.rpc_url)
        receipt = _transfer(rpc)
        block = rpc.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
        rpc.close()
    with AnvilNode(chain_id=4321, state_path=state) as node:
        rpc = Rpc(node.rpc_url)
        assert node.genesis_port is not None and node.process is not None
        assert int(rpc.call("eth_blockNumber", []), 16) == int(block["number"], 16)
        assert rpc.call("eth_getBlockByNumber", [block["number"], False])["hash"] == block["hash"]
        again = rpc.call("eth_getTransactionReceipt", [receipt["transactionHash"]])
        assert again["logsBloom"] == receipt["logsBloom"] and again["blockHash"] == receipt["blockHash"]
        assert _transfer(rpc)["status"] == "0x1"  # and it goes on mining
        rpc.close()


def test_a_forked_node_stamps_blocks_with_the_wall_clock_second() -> None:
    """The genesis node started late in a second, the node itself in the next: its clock would start a second behind
    (a fork's clock starts at its block 0's timestamp), so a request signed to start "now" would land in a block
    stamped before its start. After start() its blocks carry the wall clock's second."""
    time.sleep((0.95 - time.time() % 1.0) % 1.0)
    with AnvilNode(chain_id=4321) as node:
        rpc = Rpc(node.rpc_url)
        for _ in range(3):
            if time.time() % 1.0 < 0.05:  # clear of a second's first moments, where a clock set to whole seconds
                time.sleep(0.06)          # could still read the second before
            before = int(time.time())
            block = _transfer(rpc)["blockNumber"]
            stamp = int(rpc.call("eth_getBlockByNumber", [block, False])["timestamp"], 16)
            assert before <= stamp <= int(time.time())
            time.sleep(0.3)
        rpc.close()
