// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IDirectory} from "../interfaces/IDirectory.sol";
import {IDirectorySharing} from "../interfaces/IDirectorySharing.sol";

/// @title DirectoryTypes — EIP-712 struct hashes of directory submissions.
/// @notice The type strings below are the single definition the off-chain signer reads
///         (chain/eip712.py parses them out of this file's ABI twin, `typeStrings()`): keep them in step.
/// @dev EIP-712 `hashStruct`: keccak256(typeHash ‖ encodeData); `string` and `bytes` members are
///      hashed, enums are encoded as uint8.
library DirectoryTypes {
    string internal constant JURISDICTION_TYPE =
        "Jurisdiction(string code,string name,uint8 tier,bytes32 parent,uint256 nonce,uint256 deadline)";
    string internal constant DEPARTMENT_TYPE =
        "Department(string code,string name,bytes32 jurisdiction,uint256 nonce,uint256 deadline)";
    string internal constant ACCOUNT_TYPE =
        "Account(uint8 role,bytes32 scope,address account,bool active,uint256 nonce,uint256 deadline)";
    string internal constant CATALOG_TYPE =
        "Catalog(uint8 action,string code,bytes32 jurisdiction,bytes32 department,uint32 version,bytes32 sourceSystem,uint8 shareType,uint16 itemCount,bytes32 digest,uint256 nonce,uint256 deadline)";
    string internal constant SYSTEM_TYPE =
        "System(uint8 action,string code,bytes32 jurisdiction,bytes32 department,uint32 version,bytes32 digest,uint256 nonce,uint256 deadline)";

    string internal constant SHARING_REQUEST_TYPE =
        "SharingRequest(string catalog,uint32 version,bytes32 requester,uint256 items,string purpose,string basis,uint64 start,uint64 end,uint256 nonce,uint256 deadline)";
    string internal constant SHARING_DECISION_TYPE =
        "SharingDecision(bytes32 request,bool approve,string reason,uint256 nonce,uint256 deadline)";
    string internal constant SHARING_REVOCATION_TYPE =
        "SharingRevocation(bytes32 request,string reason,uint256 nonce,uint256 deadline)";

    bytes32 internal constant JURISDICTION_TYPEHASH = keccak256(bytes(JURISDICTION_TYPE));
    bytes32 internal constant DEPARTMENT_TYPEHASH = keccak256(bytes(DEPARTMENT_TYPE));
    bytes32 internal constant ACCOUNT_TYPEHASH = keccak256(bytes(ACCOUNT_TYPE));
    bytes32 internal constant CATALOG_TYPEHASH = keccak256(bytes(CATALOG_TYPE));
    bytes32 internal constant SYSTEM_TYPEHASH = keccak256(bytes(SYSTEM_TYPE));
    bytes32 internal constant SHARING_REQUEST_TYPEHASH = keccak256(bytes(SHARING_REQUEST_TYPE));
    bytes32 internal constant SHARING_DECISION_TYPEHASH = keccak256(bytes(SHARING_DECISION_TYPE));
    bytes32 internal constant SHARING_REVOCATION_TYPEHASH = keccak256(bytes(SHARING_REVOCATION_TYPE));

    /// @notice EIP-712 struct hash of a jurisdiction submission.
    function hash(IDirectory.JurisdictionSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                JURISDICTION_TYPEHASH,
                keccak256(bytes(s.code)),
                keccak256(bytes(s.name)),
                uint8(s.tier),
                s.parent,
                s.nonce,
                s.deadline
            )
        );
    }

    /// @notice EIP-712 struct hash of a department submission.
    function hash(IDirectory.DepartmentSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DEPARTMENT_TYPEHASH,
                keccak256(bytes(s.code)),
                keccak256(bytes(s.name)),
                s.jurisdiction,
                s.nonce,
                s.deadline
            )
        );
    }

    /// @notice EIP-712 struct hash of an account-role submission.
    function hash(IDirectory.AccountSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(ACCOUNT_TYPEHASH, uint8(s.role), s.scope, s.account, s.active, s.nonce, s.deadline)
        );
    }

    /// @notice EIP-712 struct hash of a catalog or system submission.
    /// @param kind selects the `Catalog` or the `System` type (systems have no `sourceSystem` member)
    /// @param codeHash keccak256(s.code), which the caller has already
    /// @param digest keccak256 of the record for register/update, zero for retire
    function hash(IDirectory.RecordSubmission calldata s, IDirectory.RecordKind kind, bytes32 codeHash, bytes32 digest)
        internal
        pure
        returns (bytes32)
    {
        if (kind == IDirectory.RecordKind.Catalog) {
            return keccak256(
                abi.encode(
                    CATALOG_TYPEHASH,
                    uint8(s.action),
                    codeHash,
                    s.jurisdiction,
                    s.department,
                    s.version,
                    s.sourceSystem,
                    s.shareType,
                    s.itemCount,
                    digest,
                    s.nonce,
                    s.deadline
                )
            );
        }
        return keccak256(
            abi.encode(
                SYSTEM_TYPEHASH,
                uint8(s.action),
                codeHash,
                s.jurisdiction,
                s.department,
                s.version,
                digest,
                s.nonce,
                s.deadline
            )
        );
    }

    /// @notice EIP-712 struct hash of a sharing request.
    function hash(IDirectorySharing.SharingRequestSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                SHARING_REQUEST_TYPEHASH,
                keccak256(bytes(s.catalog)),
                s.version,
                s.requester,
                s.items,
                keccak256(bytes(s.purpose)),
                keccak256(bytes(s.basis)),
                s.start,
                s.end,
                s.nonce,
                s.deadline
            )
        );
    }

    /// @notice EIP-712 struct hash of a sharing decision.
    function hash(IDirectorySharing.SharingDecisionSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(SHARING_DECISION_TYPEHASH, s.request, s.approve, keccak256(bytes(s.reason)), s.nonce, s.deadline)
        );
    }

    /// @notice EIP-712 struct hash of a sharing revocation.
    function hash(IDirectorySharing.SharingRevocationSubmission calldata s) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(SHARING_REVOCATION_TYPEHASH, s.request, keccak256(bytes(s.reason)), s.nonce, s.deadline)
        );
    }
}
