// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDirectorySharing — schema of data sharing on a directory: requests, decisions, grants.
/// @notice A requesting department signs a request for some data items (信息项) of a catalog's current
///         version, for a purpose, on a legal basis, for a period. The catalog's share type decides:
///         unconditional (无条件共享) — granted at once; conditional (有条件共享) — the owning department
///         approves or rejects by its own signature; not_shared (不予共享) — refused (recorded, no grant).
///         The owner may revoke a grant; a grant ends at the end of its period (expiry). Events are the
///         schema indexers read: every transition emits `SharingStatusChanged`.
interface IDirectorySharing {
    /// @notice Sharing request / grant lifecycle.
    /// Requested → Granted | Rejected; (request) → Granted (unconditional) | Refused (not_shared);
    /// Granted → Revoked (owner, before the end) | Expired (after the end).
    enum SharingStatus {
        None,
        Requested,
        Granted,
        Rejected,
        Refused,
        Revoked,
        Expired
    }

    /// @notice A request signed by a key of the `requester` department.
    /// @dev `items` is a bitmask over the catalog version's data items, bit i = the i-th item of the
    ///      record's `data_items`. `start`/`end` are unix seconds; the grant holds for start ≤ t < end.
    struct SharingRequestSubmission {
        string catalog;
        uint32 version;
        bytes32 requester;
        uint256 items;
        string purpose;
        string basis;
        uint64 start;
        uint64 end;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice The owner's decision on a conditional request, signed by a key of the owning department.
    struct SharingDecisionSubmission {
        bytes32 request;
        bool approve;
        string reason;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice The owner's revocation of a grant, signed by a key of the owning department.
    struct SharingRevocationSubmission {
        bytes32 request;
        string reason;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice A request was recorded. `id` = keccak256(abi.encode(signer, nonce)).
    event SharingRequested(
        bytes32 indexed id,
        bytes32 indexed catalogHash,
        bytes32 indexed requester,
        string catalog,
        uint32 version,
        bytes32 owner,
        uint256 items,
        uint64 start,
        uint64 end,
        string purpose,
        string basis,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature
    );

    /// @notice A request or grant moved from `from` to `to`. `signer` is zero for automatic transitions
    ///         (unconditional grant, not-shared refusal, expiry); then nonce, deadline and signature are zero/empty.
    event SharingStatusChanged(
        bytes32 indexed id,
        bytes32 indexed catalogHash,
        SharingStatus from,
        SharingStatus to,
        string reason,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature
    );

    /// @notice The request is in state `current`; the action needs `expected`.
    error SharingStatusInvalid(bytes32 id, SharingStatus current, SharingStatus expected);
    /// @notice The request names version `got` but the catalog's current version is `current`.
    error SharingVersionStale(string catalog, uint32 current, uint32 got);
    /// @notice The item mask is empty or names items beyond the catalog version's `itemCount`.
    error SharingItemsUnknown(string catalog, uint256 items, uint16 itemCount);
    /// @notice A department cannot request its own catalog.
    error SharingSelfRequest(string catalog, bytes32 department);
    /// @notice The period is empty (start ≥ end) or already over (end ≤ now), unix seconds.
    error SharingPeriodInvalid(uint64 start, uint64 end, uint256 timestamp);
    /// @notice The request's period ended at `end` (unix seconds): it can no longer be decided or revoked.
    error SharingPeriodOver(bytes32 id, uint64 end, uint256 timestamp);
    /// @notice The grant's period has not ended yet (it cannot expire before `end`).
    error SharingPeriodNotOver(bytes32 id, uint64 end, uint256 timestamp);
    /// @notice The catalog changed since the request: it is no longer active at the requested version, or it
    ///         is now not shared, so the request cannot be approved (it can still be rejected).
    error SharingCatalogChanged(bytes32 id, uint32 requested, uint32 current, uint8 shareType);
    /// @notice Only a key of the owning department `owner` may decide or revoke; `signer` is not one.
    error SharingNotOwner(bytes32 id, bytes32 owner, address signer);
}
