// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDirectory — the schema of a directory-chain directory: types, events and errors.
/// @notice Events are the schema the off-chain indexer reads: changing a field or which fields are
///         `indexed` breaks every indexer. Each event carries everything storage does not, so the
///         index (and a parent tier's relay) never needs an `eth_call`.
/// @dev Vocabulary from DESIGN §2: jurisdiction (tier city/district/street), department, catalog
///      (data resource, 数据资源目录), information system (信息系统), digest = keccak-256 of the RFC 8785
///      canonical JSON of a record. Every submission is EIP-712 typed data signed by the authority.
interface IDirectory {
    // ------------------------------------------------------------------ types

    /// @notice Administrative tier of a jurisdiction (市 / 区 / 街道). `None` marks an unknown id.
    enum Tier {
        None,
        City,
        District,
        Street
    }

    /// @notice Which registry a record belongs to.
    enum RecordKind {
        Catalog,
        System
    }

    /// @notice Lifecycle of a catalog or system: None → Active (register) → Active (update) → Retired.
    enum RecordStatus {
        None,
        Active,
        Retired
    }

    /// @notice What a record submission does: 1 register (version 1), 2 update (next version), 3 retire.
    enum RecordAction {
        None,
        Register,
        Update,
        Retire
    }

    /// @notice Role an `AccountSubmission` grants or revokes.
    enum AccountRole {
        None,
        Administrator, // directory administrator of a jurisdiction (scope = jurisdiction id)
        Department // signing key of a department (scope = department id)
    }

    /// @notice Adds a jurisdiction under `parent` (zero for the city). Signed by an administrator of
    ///         the parent (or an ancestor), or by a holder of DEFAULT_ADMIN_ROLE. The id is keccak256(code).
    struct JurisdictionSubmission {
        string code; // GB/T 2260 code for city and districts, "<district code>/<name>" for streets
        string name;
        Tier tier;
        bytes32 parent;
        uint256 nonce;
        uint256 deadline; // unix seconds
        bytes signature; // 65 bytes r‖s‖v, low s (EIP-2)
    }

    /// @notice Registers a department (委办局, 街道办事处) in a jurisdiction. Id is keccak256(code).
    struct DepartmentSubmission {
        string code; // provider code (提供方代码)
        string name;
        bytes32 jurisdiction;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice Grants (`active`) or revokes a role to `account` within `scope`.
    struct AccountSubmission {
        AccountRole role;
        bytes32 scope;
        address account;
        bool active;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice A catalog or system version signed by the owning department.
    /// @dev `record` is the RFC 8785 canonical JSON of the record; the contract commits keccak256(record)
    ///      as the version digest. Retire carries an empty record and signs a zero digest. `shareType` and
    ///      `itemCount` restate what the record says, so sharing rules can be enforced on chain; the indexer
    ///      marks a version whose record disagrees with them invalid.
    ///      `sourceSystem` is keccak256 of the producing system's code (zero if none); systems leave it zero.
    ///      `nonce` is a signed salt and is not spent: the version sequence (each version applies once, as the
    ///      record's next version in the status its action needs) is what refuses a replay.
    struct RecordSubmission {
        RecordAction action;
        string code;
        bytes32 jurisdiction;
        bytes32 department;
        uint32 version;
        bytes32 sourceSystem;
        uint8 shareType; // catalogs: 1 unconditional, 2 conditional, 3 not_shared; systems and retirements: 0
        uint16 itemCount; // catalogs: number of data items (信息项) in the record; systems and retirements: 0
        bytes record;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    // ------------------------------------------------------------------ events

    /// @notice A jurisdiction was added to the tree.
    event JurisdictionAdded(
        bytes32 indexed id, bytes32 indexed parent, Tier tier, string code, string name, address signer, uint256 nonce
    );

    /// @notice `account` became (active) or stopped being a directory administrator of `jurisdiction`.
    event AdministratorSet(
        bytes32 indexed jurisdiction, address indexed account, bool active, address signer, uint256 nonce
    );

    /// @notice A department was registered in `jurisdiction`.
    event DepartmentRegistered(
        bytes32 indexed id, bytes32 indexed jurisdiction, string code, string name, address signer, uint256 nonce
    );

    /// @notice `account` became (active) or stopped being a signing key of `department`.
    event DepartmentAccountSet(
        bytes32 indexed department,
        address indexed account,
        bytes32 indexed jurisdiction,
        bool active,
        address signer,
        uint256 nonce
    );

    /// @notice A catalog version was committed (register: version 1; update: the next version).
    /// @param codeHash keccak256(code)
    /// @param digest keccak256(record), the digest of the canonical JSON
    /// @param deadline, signature the department's EIP-712 submission, so a parent tier can re-verify it
    event CatalogVersionRecorded(
        bytes32 indexed codeHash,
        bytes32 indexed jurisdiction,
        bytes32 indexed department,
        string code,
        uint32 version,
        bytes32 digest,
        bytes32 sourceSystem,
        uint8 shareType,
        uint16 itemCount,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature,
        bytes record
    );

    /// @notice A catalog was retired at `version`; it accepts no further versions.
    event CatalogRetired(
        bytes32 indexed codeHash,
        bytes32 indexed jurisdiction,
        bytes32 indexed department,
        string code,
        uint32 version,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature
    );

    /// @notice An information system version was committed.
    event SystemVersionRecorded(
        bytes32 indexed codeHash,
        bytes32 indexed jurisdiction,
        bytes32 indexed department,
        string code,
        uint32 version,
        bytes32 digest,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature,
        bytes record
    );

    /// @notice An information system was retired at `version`.
    event SystemRetired(
        bytes32 indexed codeHash,
        bytes32 indexed jurisdiction,
        bytes32 indexed department,
        string code,
        uint32 version,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes signature
    );

    // ------------------------------------------------------------------ errors

    /// @notice The batch holds no submission.
    error DirectoryBatchEmpty();
    /// @notice A code is empty or longer than 64 bytes.
    error DirectoryCodeInvalid(string code);
    /// @notice The submission's deadline (unix seconds) is before the block timestamp.
    error SubmissionExpired(uint256 deadline, uint256 timestamp);
    /// @notice `signer` already used `nonce`: a replayed or duplicated submission (jurisdiction, department,
    ///         account or sharing; catalog and system versions spend no nonce).
    error SubmissionNonceUsed(address signer, uint256 nonce);

    /// @notice No jurisdiction has this id.
    error JurisdictionUnknown(bytes32 id);
    /// @notice A jurisdiction with this id already exists.
    error JurisdictionAlreadyAdded(bytes32 id);
    /// @notice `tier` cannot sit under a parent of `parentTier` (city has no parent; district under city; street under district).
    error JurisdictionParentInvalid(bytes32 parent, Tier parentTier, Tier tier);
    /// @notice `signer` administers neither `jurisdiction` nor any of its ancestors.
    error JurisdictionNotAdministrator(bytes32 jurisdiction, address signer);

    /// @notice No department has this id.
    error DepartmentUnknown(bytes32 id);
    /// @notice A department with this id already exists.
    error DepartmentAlreadyRegistered(bytes32 id);
    /// @notice `account` is already a signing key of `department` (another department, or the same one again).
    error DepartmentAccountTaken(address account, bytes32 department);
    /// @notice `account` is not a signing key of `department`.
    error DepartmentAccountNotBound(address account, bytes32 department);
    /// @notice The role code of an account submission is not a known `AccountRole`.
    error AccountRoleUnknown(AccountRole role);

    /// @notice The record names `got` as its jurisdiction but its department belongs to `expected`.
    error RecordJurisdictionMismatch(bytes32 expected, bytes32 got);
    /// @notice The record is in state `current`; the action needs `expected`.
    error RecordStatusInvalid(RecordKind kind, string code, RecordStatus current, RecordStatus expected);
    /// @notice The submission's version is not the next one.
    error RecordVersionMismatch(RecordKind kind, string code, uint32 expected, uint32 got);
    /// @notice The record belongs to department `owner`; the submission names another one.
    error RecordNotOwner(RecordKind kind, string code, bytes32 owner, bytes32 department);
    /// @notice Register/update with an empty record, or a catalog without a share type (1–3) or with 0 or > 256 items;
    ///         retire with a non-empty record, a source system, share type or items; a system naming any of them.
    error RecordContentInvalid(RecordKind kind, string code);
    /// @notice The action code is not a known `RecordAction`.
    error RecordActionUnknown(RecordAction action);
    /// @notice The catalog names a source system that is not registered and active.
    error CatalogSourceSystemUnknown(string code, bytes32 sourceSystem);
}
