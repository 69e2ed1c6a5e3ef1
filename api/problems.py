"""The one place that maps errors to HTTP: RFC 9457 problem details (``application/problem+json``).

Every 4xx/5xx the API sends has ``type``, ``title``, ``status`` and ``detail``; validation errors
add ``errors`` (field path and message each), contract reverts add ``error`` (the Solidity custom
error's name and arguments).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain.errors import ChainError, ContractRevert, SignatureError, UnknownRevert

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Custom error name → (HTTP status, problem slug, title).
REVERTS: dict[str, tuple[int, str, str]] = {
    "SubmissionExpired": (422, "submission-expired", "The submission's deadline has passed"),
    "SubmissionNonceUsed": (409, "nonce-used", "The signer already used this nonce (replayed submission)"),
    "ECDSAInvalidSignature": (400, "invalid-signature", "The signature does not recover a signer"),
    "ECDSAInvalidSignatureS": (400, "invalid-signature", "The signature has a high s value (EIP-2)"),
    "ECDSAInvalidSignatureLength": (400, "invalid-signature", "The signature is not 65 bytes"),
    "DepartmentAccountNotBound": (403, "signer-not-authorised", "The signer is not a key of the named department"),
    "JurisdictionNotAdministrator": (403, "signer-not-authorised", "The signer does not administer the jurisdiction"),
    "RecordNotOwner": (403, "not-owner", "Only the owning department may change this record"),
    "RecordJurisdictionMismatch": (403, "wrong-jurisdiction", "The department does not belong to that jurisdiction"),
    "RecordStatusInvalid": (409, "record-state", "The record is not in the state this action needs"),
    "RecordVersionMismatch": (409, "version-conflict", "The version is not the record's next version"),
    "JurisdictionAlreadyAdded": (409, "already-exists", "The jurisdiction already exists"),
    "DepartmentAlreadyRegistered": (409, "already-exists", "The department is already registered"),
    "DepartmentAccountTaken": (409, "account-taken", "The account is already a key of a department"),
    "JurisdictionUnknown": (422, "unknown-reference", "The jurisdiction is not in the directory"),
    "DepartmentUnknown": (422, "unknown-reference", "The department is not in the directory"),
    "CatalogSourceSystemUnknown": (422, "unknown-reference", "The source system is not registered and active"),
    "JurisdictionParentInvalid": (422, "invalid-parent", "That tier cannot sit under that parent"),
    "DirectoryCodeInvalid": (422, "invalid-code", "A code must be 1 to 64 bytes"),
    "RecordContentInvalid": (422, "invalid-content", "The record content does not fit the action"),
    "RecordActionUnknown": (422, "invalid-action", "Unknown record action"),
    "AccountRoleUnknown": (422, "invalid-role", "Unknown account role"),
    "DirectoryBatchEmpty": (422, "empty-batch", "Nothing to submit"),
    "AccessControlUnauthorizedAccount": (503, "relayer-not-authorised", "The service's relayer lacks RELAYER_ROLE"),
    # data sharing
    "SharingNotOwner": (403, "not-owner", "Only a key of the owning department may decide or revoke"),
    "SharingStatusInvalid": (409, "sharing-state", "The request is not in the state this action needs"),
    "SharingPeriodOver": (409, "sharing-period-over", "The request's period has ended"),
    "SharingVersionStale": (409, "version-conflict", "The requested version is not the catalog's current one"),
    "SharingPeriodNotOver": (409, "sharing-period-not-over", "The grant's period has not ended yet"),
    "SharingCatalogChanged": (409, "catalog-changed", "The catalog changed since the request; it cannot be approved"),
    "SharingItemsUnknown": (422, "unknown-items", "The request names data items the catalog version does not have"),
    "SharingSelfRequest": (422, "self-request", "A department cannot request its own catalog"),
    "SharingPeriodInvalid": (422, "invalid-period", "The period is empty or already over"),
}


class ApiProblem(Exception):
    """An error the API answers with a problem document."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document (RFC 9457) this problem is answered with."""
        return problem_body(self.status, self.slug, self.title, self.detail, instance, **self.extra)


def problem_body(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A problem document (RFC 9457): ``type`` ``/problems/{slug}``, ``title``, ``status``, ``detail``, ``instance``
    when given, and the extension members ``extra``."""
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    """A problem+json response (RFC 9457)."""
    body = problem_body(status, slug, title, detail, instance, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def read_only(method: str, path: str) -> ApiProblem:
    """The 503 answer of a read-only replica to a request that needs a chain or the relay (submissions, what to
    sign, checks against the chain, the chains' health): the replica only reads the index."""
    return ApiProblem(503, "read-only-replica", "Read-only replica",
                      f"{method} {path} needs the directory service (chains and relay); this read-only replica only "
                      "serves reads of the index — send it to the service's API")


def chain_problem(exc: BaseException) -> ApiProblem:
    """503 ``chain-unavailable``: the chain could not be reached or refused a request (a :class:`ChainError`, or what
    a JSON-RPC client raised while talking to the node), ``exc`` named in the detail."""
    return ApiProblem(503, "chain-unavailable", "The chain could not be reached or refused the request",
                      f"{type(exc).__name__}: {exc}")


def revert_problem(exc: ContractRevert | UnknownRevert) -> ApiProblem:
    """The problem for a simulated revert: status by error name, the error and its arguments attached."""
    if isinstance(exc, UnknownRevert):
        return ApiProblem(422, "rejected-by-contract", "The contract rejected the submission", str(exc))
    status, slug, title = REVERTS.get(exc.name, (422, "rejected-by-contract", "The contract rejected the submission"))
    args = {k: ("0x" + v.hex() if isinstance(v, bytes) else v if not isinstance(v, int) else str(v))
            for k, v in exc.args_by_name.items()}
    return ApiProblem(status, slug, title, f"{title}: {exc}", error={"name": exc.name, "args": args})


def problem_of(exc: BaseException, where: str = "") -> ApiProblem | None:
    """The problem a request failing with ``exc`` is answered with — an :class:`ApiProblem` as it is, a
    :class:`SignatureError` 400, a :class:`ChainError` 503 (logged, with ``where`` it happened) — both by the
    handlers of :func:`install` and for each submission of a batch; None for anything else (a defect: the caller
    re-raises it)."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, SignatureError):
        return ApiProblem(400, "invalid-signature", "The signature is not acceptable", exc.reason)
    if isinstance(exc, ChainError):
        log.error("chain error on %s: %s", where or "a request", exc)
        return chain_problem(exc)
    return None


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.slug, exc.title, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        return problem_response(422, "invalid-body", "The request is not valid", detail, request.url.path,
                                errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(SignatureError)
    @app.exception_handler(ChainError)
    async def _mapped(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_of(exc, request.url.path)
        assert problem is not None  # registered for the errors problem_of maps
        return problem_response(problem.status, problem.slug, problem.title, problem.detail, request.url.path,
                                **problem.extra)


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413 problem+json, before parsing."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(seen)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge as exc:
            await self._refuse(scope, receive, send, exc.size)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any, size: int) -> None:
        response = problem_response(
            413, "body-too-large", "The request body is too large",
            f"expected at most {self.max_bytes} bytes, got {size}", scope.get("path"),
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size
