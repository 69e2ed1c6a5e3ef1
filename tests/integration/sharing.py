"""Helpers for the sharing tests: signed request / decision / revocation bodies, catalogs made for a
test, and the chain's clock (anvil-only time travel on a test's own node)."""

from __future__ import annotations

import secrets
from typing import Any

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from httpx import Response

from chain import eip712
from chain.rpc import Rpc
from registry.canonical import record_json
from registry.keystore import Keystore
from registry.messages import (
    Message,
    items_mask,
    record_message,
    sharing_decision_message,
    sharing_revocation_message,
)
from registry.messages import sharing_request_message as request_message
from registry.models import CatalogRecord, DataItem, DataType
from tests.integration.service import wait_indexed

#: A deadline far ahead of any clock the tests move to (unix seconds, year 2096).
FAR_DEADLINE = 4_000_000_000


def fresh_nonce() -> int:
    """A random unused nonce (nonces are unordered)."""
    return secrets.randbits(64)


class Sharing:
    """Signs and posts sharing submissions through ``client`` with department keys from ``keys``."""

    def __init__(self, client: TestClient, keys: Keystore) -> None:
        self.client = client
        self.keys = keys
        self._meta: dict[str, Any] | None = None

    def sign(self, account: LocalAccount, msg: Message) -> str:
        """0x-hex EIP-712 signature of ``msg`` by ``account`` (domain and types from ``/eip712``)."""
        if self._meta is None:
            self._meta = self.client.get("/eip712").json()
        typed = eip712.typed_data(self._meta["types"], msg.primary, self._meta["domain"], msg.message)
        return "0x" + eip712.sign(account, typed).hex()

    def catalog(self, code: str) -> dict[str, Any]:
        """The indexed catalog ``code`` (asserts it exists)."""
        reply = self.client.get(f"/catalogs/{code}")
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    def request_body(
        self,
        requester: str,
        catalog: str,
        items: list[str],
        start: int,
        end: int,
        *,
        purpose: str = "测试用途",
        basis: str = "测试依据",
        signer: str | None = None,
        nonce: int | None = None,
        deadline: int = FAR_DEADLINE,
        version: int | None = None,
        mask: int | None = None,
    ) -> dict[str, Any]:
        """A signed ``POST /sharing-requests`` body of department ``requester`` (signed by the key of
        department ``signer``, default the requester's) for ``items`` of ``catalog``'s current version."""
        indexed = self.catalog(catalog)
        version = version or int(indexed["latest_version"])
        if mask is None:
            mask = items_mask(CatalogRecord.model_validate(indexed["record"]), items)
        nonce = fresh_nonce() if nonce is None else nonce
        msg = request_message(catalog, version, requester, mask, purpose, basis, start, end, nonce, deadline)
        return {
            "catalog": catalog, "version": version, "requester": requester, "items": items, "purpose": purpose,
            "basis": basis, "start": start, "end": end, "nonce": nonce, "deadline": deadline,
            "signature": self.sign(self.keys.account(signer or requester), msg),
        }

    def request(self, requester: str, catalog: str, items: list[str], start: int, end: int, **kw: Any) -> Response:
        """POST a signed request (see :meth:`request_body`)."""
        body = self.request_body(requester, catalog, items, start, end, **kw)
        return self.client.post("/sharing-requests", json=body)

    def decision_body(
        self, request_id: str, approve: bool, signer: str, *, reason: str = "测试决定", nonce: int | None = None,
        deadline: int = FAR_DEADLINE,
    ) -> dict[str, Any]:
        """A signed decision body, signed by the key of department ``signer``."""
        nonce = fresh_nonce() if nonce is None else nonce
        msg = sharing_decision_message(bytes.fromhex(request_id[2:]), approve, reason, nonce, deadline)
        return {"approve": approve, "reason": reason, "nonce": nonce, "deadline": deadline,
                "signature": self.sign(self.keys.account(signer), msg)}

    def decide(self, request_id: str, approve: bool, signer: str, **kw: Any) -> Response:
        """POST a signed decision on ``request_id``."""
        body = self.decision_body(request_id, approve, signer, **kw)
        return self.client.post(f"/sharing-requests/{request_id}/decision", json=body)

    def revocation_body(
        self, request_id: str, signer: str, *, reason: str = "测试撤销", nonce: int | None = None,
        deadline: int = FAR_DEADLINE,
    ) -> dict[str, Any]:
        """A signed revocation body, signed by the key of department ``signer``."""
        nonce = fresh_nonce() if nonce is None else nonce
        msg = sharing_revocation_message(bytes.fromhex(request_id[2:]), reason, nonce, deadline)
        return {"reason": reason, "nonce": nonce, "deadline": deadline,
                "signature": self.sign(self.keys.account(signer), msg)}

    def revoke(self, request_id: str, signer: str, **kw: Any) -> Response:
        """POST a signed revocation of ``request_id``."""
        return self.client.post(f"/grants/{request_id}/revocation", json=self.revocation_body(request_id, signer, **kw))

    def register_catalog(self, record: CatalogRecord) -> None:
        """Register ``record`` (version 1), signed by its provider's key, and wait until indexed."""
        msg = record_message(record, "register", 1, fresh_nonce(), FAR_DEADLINE)
        body = {"action": "register", "version": 1, "record": record_json(record), "nonce": msg.message["nonce"],
                "deadline": FAR_DEADLINE, "signature": self.sign(self.keys.account(record.provider_code), msg)}
        reply = self.client.post("/catalogs", json=body)
        assert reply.status_code == 202, reply.text
        wait_indexed(self.client, reply.json()["tx_hash"])

    def access(self, catalog: str, at: int | str) -> dict[str, set[str]]:
        """``GET /catalogs/{catalog}/access?at=`` as {department code: set of item names}."""
        reply = self.client.get(f"/catalogs/{catalog}/access", params={"at": str(at)})
        assert reply.status_code == 200, reply.text
        return {h["department"]: set(h["items"]) for h in reply.json()["holders"]}

    def accepted(self, reply: Response) -> dict[str, Any]:
        """Assert a 202, wait until its transaction is indexed; the accepted body plus ``block_timestamp``
        (unix seconds) of the block that holds it."""
        assert reply.status_code == 202, reply.text
        body: dict[str, Any] = reply.json()
        wait_indexed(self.client, body["tx_hash"])
        block = self.client.get(f"/submissions/{body['tx_hash']}").json()["block_number"]
        body["block_number"] = block
        return body


def block_timestamp(rpc: Rpc, number: int | str = "latest") -> int:
    """Timestamp (unix seconds) of block ``number`` (or a tag)."""
    tag = hex(number) if isinstance(number, int) else number
    return int(rpc.call("eth_getBlockByNumber", [tag, False])["timestamp"], 16)


def mine_at(rpc: Rpc, timestamp: int) -> None:
    """Mine an empty block stamped ``timestamp`` (anvil ``evm_mine``; later blocks follow on from it)."""
    rpc.call("evm_mine", [timestamp])


def variant(base: CatalogRecord, code: str, share_type: str, items: list[str] | None = None) -> CatalogRecord:
    """``base`` re-coded as ``code`` with ``share_type`` (conditions filled in as the model requires) and,
    when given, data items named ``items`` (strings)."""
    update: dict[str, Any] = {
        "code": code,
        "share_type": share_type,
        "share_conditions": None if share_type == "unconditional" else "测试条件",
        "source_system": None,
    }
    if items is not None:
        update["data_items"] = [DataItem(name=n, data_type=DataType.STRING) for n in items]
    return CatalogRecord.model_validate({**base.model_dump(), **update})
