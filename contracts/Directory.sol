// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {IDirectory} from "./interfaces/IDirectory.sol";
import {IDirectorySharing} from "./interfaces/IDirectorySharing.sol";
import {IDirectoryRelay} from "./interfaces/IDirectoryRelay.sol";
import {DirectoryTypes} from "./libraries/DirectoryTypes.sol";

/// @title Directory — one directory of the directory chain (目录链): jurisdictions, departments,
///        catalogs (数据资源目录) and information systems (信息系统), each change signed by its authority.
/// @notice Every state change arrives as an EIP-712 submission signed by the department or administrator
///         that owns it, relayed (and paid for) by an account holding RELAYER_ROLE. The relayer cannot forge
///         a record: the contract recovers the signer (OpenZeppelin ECDSA, low-s only, EIP-2) and checks
///         its role. Batches are atomic: one invalid submission reverts the whole transaction.
/// @dev Roles: DEFAULT_ADMIN_ROLE (the bureau; administers every jurisdiction and grants RELAYER_ROLE),
///      per-jurisdiction administrators (also administer the jurisdiction's descendants), department
///      signing keys bound to (jurisdiction, department), RELAYER_ROLE (submits transactions, pays gas).
///      Nonces are unordered (a bitmap per signer), so submissions signed concurrently can land in any order.
///      Catalog and system versions spend no nonce: their version sequence already makes each one applicable
///      once (see `_submitRecords`); their nonce is a signed salt, carried in the event.
contract Directory is IDirectory, IDirectorySharing, IDirectoryRelay, AccessControl, EIP712, Initializable {
    /// @notice Role allowed to submit signed batches (the service account that pays gas).
    bytes32 public constant RELAYER_ROLE = keccak256("RELAYER_ROLE");

    /// @notice EIP-712 domain name and version (EIP-712 `name`, `version`).
    string public constant DOMAIN_NAME = "DirectoryChain";
    string public constant DOMAIN_VERSION = "1";

    /// @dev Maximum length in bytes of any code (jurisdiction, department, catalog, system).
    uint256 private constant MAX_CODE_BYTES = 64;

    struct JurisdictionState {
        bytes32 parent;
        Tier tier;
    }

    /// @notice Current state of a catalog or system, as the `record` view returns it.
    struct RecordState {
        bytes32 department; // owning department id
        uint32 version; // latest version, 0 if never registered
        RecordStatus status;
        uint8 shareType; // catalogs: share type of the latest version (1 unconditional, 2 conditional, 3 not_shared)
        uint16 itemCount; // catalogs: data items of the latest version
    }

    /// @dev How a RecordState is stored: one storage slot (12 bytes), the owner as its department index.
    struct RecordSlot {
        uint32 department; // owning department's index (`_departments.index`), 0 if never registered
        uint32 version; // latest version, 0 if never registered
        RecordStatus status;
        uint8 shareType; // catalogs: share type of the latest version
        uint16 itemCount; // catalogs: data items of the latest version
    }

    /// @dev Registered departments: each one's jurisdiction, and its index 1, 2, … in order of registration
    ///      (0: not registered) with the way back — a bijection between registered ids and 1..count, so a record
    ///      stores its owner in 4 bytes (RecordSlot) and still yields the full id.
    struct Departments {
        mapping(bytes32 id => bytes32 jurisdiction) jurisdiction;
        mapping(bytes32 id => uint32 index) index;
        mapping(uint32 index => bytes32 id) id;
        uint32 count;
    }

    /// @notice A sharing request and, once granted, its grant.
    struct SharingState {
        bytes32 catalogHash; // keccak256(catalog code)
        bytes32 requester; // requesting department id
        bytes32 owner; // owning department id at request time
        uint256 items; // bitmask over the catalog version's data items
        uint64 start; // unix seconds
        uint64 end; // unix seconds (exclusive)
        uint32 version; // catalog version requested
        SharingStatus status;
    }

    /// @dev Share type codes in RecordSubmission.shareType.
    uint8 private constant SHARE_UNCONDITIONAL = 1;
    uint8 private constant SHARE_CONDITIONAL = 2;
    uint8 private constant SHARE_NOT_SHARED = 3;
    /// @dev Most data items a catalog may have: a sharing request names items with a 256-bit mask.
    uint16 private constant MAX_ITEMS = 256;

    mapping(bytes32 id => JurisdictionState) private _jurisdictions;
    mapping(bytes32 jurisdiction => mapping(address account => bool)) private _administrators;
    Departments private _departments;
    mapping(address account => bytes32 department) private _accountDepartment;
    mapping(RecordKind => mapping(bytes32 codeHash => RecordSlot)) private _records;
    mapping(RecordKind => mapping(bytes32 codeHash => mapping(uint32 version => bytes32 digest))) private _digests;
    mapping(address signer => mapping(uint256 word => uint256 bits)) private _nonceBitmap;
    mapping(bytes32 id => SharingState) private _sharing;

    /// @notice A child directory this one accepts relays from.
    struct Child {
        bytes32 home; // the child's home jurisdiction
        address relayer; // the only account that may relay it
    }

    bytes32 private _home;
    mapping(bytes32 childKey => Child) private _children;
    mapping(bytes32 originKey => bool) private _relayedOrigins;
    mapping(bytes32 domain => mapping(address signer => mapping(uint256 word => uint256 bits))) private _relayNonces;

    /// @dev Set only while `relay` runs a relayed submission: the child's chain id, directory and home.
    uint256 private transient _relayChainId;
    address private transient _relayDirectory;
    bytes32 private transient _relayHome;

    bytes32 private constant EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    /// @dev The implementation behind clones is never initialised itself.
    constructor() EIP712(DOMAIN_NAME, DOMAIN_VERSION) {
        _disableInitializers();
    }

    /// @notice Initialise a directory (a clone made by DirectoryFactory) for jurisdiction `home`.
    /// @param administrator receives DEFAULT_ADMIN_ROLE (administers every jurisdiction)
    /// @param relayer receives RELAYER_ROLE (may submit signed batches)
    /// @param homeId keccak256 of the jurisdiction code this directory serves; zero serves every jurisdiction
    /// @dev Reverts InvalidInitialization if already initialised. Emits RoleGranted ×2, DirectoryInitialized.
    function initialize(address administrator, address relayer, bytes32 homeId) external initializer {
        _grantRole(DEFAULT_ADMIN_ROLE, administrator);
        _grantRole(RELAYER_ROLE, relayer);
        _home = homeId;
        emit DirectoryInitialized(homeId, administrator, relayer);
    }

    // ================================================================ submissions (RELAYER_ROLE)

    /// @notice Adds jurisdictions, in order (a parent before its children).
    /// @dev Reverts AccessControlUnauthorizedAccount (caller lacks RELAYER_ROLE), DirectoryBatchEmpty,
    ///      SubmissionExpired, SubmissionNonceUsed, ECDSAInvalidSignature*, DirectoryCodeInvalid,
    ///      JurisdictionAlreadyAdded, JurisdictionUnknown (parent), JurisdictionParentInvalid,
    ///      JurisdictionNotAdministrator. Emits JurisdictionAdded per submission.
    function addJurisdictions(JurisdictionSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _addJurisdictions(batch);
    }

    /// @dev `addJurisdictions`'s body; `_applyRelayed` runs it for a relayed call.
    function _addJurisdictions(JurisdictionSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            JurisdictionSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            _requireCode(s.code);
            bytes32 id = keccak256(bytes(s.code));
            if (id != _relayHome) _requireRelayScope(s.parent);
            if (_jurisdictions[id].tier != Tier.None) revert JurisdictionAlreadyAdded(id);
            Tier parentTier = Tier.None;
            if (s.parent != bytes32(0)) {
                parentTier = _requireJurisdiction(s.parent).tier;
                _requireAdministrator(s.parent, signer);
            } else if (!hasRole(DEFAULT_ADMIN_ROLE, signer)) {
                revert JurisdictionNotAdministrator(bytes32(0), signer);
            }
            if (s.tier == Tier.None || uint8(parentTier) + 1 != uint8(s.tier)) {
                revert JurisdictionParentInvalid(s.parent, parentTier, s.tier);
            }
            _addJurisdiction(id, s, signer);
        }
    }

    /// @notice Registers departments in their jurisdictions.
    /// @dev Signed by an administrator of the jurisdiction or an ancestor. Reverts as addJurisdictions,
    ///      plus DepartmentAlreadyRegistered. Emits DepartmentRegistered per submission.
    function registerDepartments(DepartmentSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _registerDepartments(batch);
    }

    /// @dev `registerDepartments`'s body; `_applyRelayed` runs it for a relayed call.
    function _registerDepartments(DepartmentSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            DepartmentSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            _requireCode(s.code);
            _requireJurisdiction(s.jurisdiction);
            _requireRelayScope(s.jurisdiction);
            _requireAdministrator(s.jurisdiction, signer);
            bytes32 id = keccak256(bytes(s.code));
            if (_departments.jurisdiction[id] != bytes32(0)) revert DepartmentAlreadyRegistered(id);
            _registerDepartment(id, s, signer);
        }
    }

    /// @notice Grants or revokes jurisdiction administrators and department signing keys.
    /// @dev An administrator is appointed by an administrator of a strict ancestor (or DEFAULT_ADMIN_ROLE);
    ///      a department key by an administrator of the department's jurisdiction or an ancestor.
    ///      Reverts AccountRoleUnknown, JurisdictionUnknown, DepartmentUnknown, JurisdictionNotAdministrator,
    ///      DepartmentAccountTaken (key already bound), DepartmentAccountNotBound (revoking an unbound key),
    ///      plus the signature checks. Emits AdministratorSet or DepartmentAccountSet.
    function setAccounts(AccountSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _setAccounts(batch);
    }

    /// @dev `setAccounts`'s body; `_applyRelayed` runs it for a relayed call.
    function _setAccounts(AccountSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            AccountSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            if (s.role == AccountRole.Administrator) {
                bytes32 parent = _requireJurisdiction(s.scope).parent;
                _requireRelayScope(s.scope);
                if (parent == bytes32(0)) {
                    if (!hasRole(DEFAULT_ADMIN_ROLE, signer)) revert JurisdictionNotAdministrator(s.scope, signer);
                } else {
                    _requireAdministrator(parent, signer);
                }
                _setAdministrator(s.scope, s.account, s.active, signer, s.nonce);
            } else if (s.role == AccountRole.Department) {
                bytes32 deptHome = _departments.jurisdiction[s.scope];
                if (deptHome == bytes32(0)) revert DepartmentUnknown(s.scope);
                _requireRelayScope(deptHome);
                _requireAdministrator(deptHome, signer);
                bytes32 bound = _accountDepartment[s.account];
                if (s.active && bound != bytes32(0)) revert DepartmentAccountTaken(s.account, bound);
                if (!s.active && bound != s.scope) revert DepartmentAccountNotBound(s.account, s.scope);
                _setDepartmentAccount(s.scope, deptHome, s.account, s.active, signer, s.nonce);
            } else {
                revert AccountRoleUnknown(s.role);
            }
        }
    }

    /// @notice Registers, updates or retires catalogs (数据资源目录), each signed by its owning department.
    /// @dev Spends no nonce (a replay meets RecordStatusInvalid or RecordVersionMismatch; see `_submitRecords`).
    ///      Reverts, besides SubmissionExpired and the ECDSA checks: DepartmentAccountNotBound (signer is not a key of the
    ///      submission's department), RecordJurisdictionMismatch, RecordStatusInvalid, RecordVersionMismatch,
    ///      RecordNotOwner, RecordContentInvalid, RecordActionUnknown, CatalogSourceSystemUnknown.
    ///      Emits CatalogVersionRecorded or CatalogRetired per submission.
    function submitCatalogs(RecordSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _submitRecords(RecordKind.Catalog, batch);
    }

    /// @notice Registers, updates or retires information systems (信息系统), each signed by its owner.
    /// @dev Reverts as submitCatalogs (a system, like any retirement, must leave sourceSystem zero: RecordContentInvalid).
    ///      Emits SystemVersionRecorded or SystemRetired per submission.
    function submitSystems(RecordSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _submitRecords(RecordKind.System, batch);
    }

    // ================================================================ sharing (RELAYER_ROLE)

    /// @notice Records sharing requests, each signed by a key of the requesting department, and applies
    ///         the catalog's share type: unconditional → Granted, conditional → Requested, not_shared → Refused.
    /// @dev Reverts, besides the signature checks: DepartmentAccountNotBound (signer not a key of `requester`),
    ///      RecordStatusInvalid (catalog not active), SharingVersionStale, SharingItemsUnknown,
    ///      SharingSelfRequest, SharingPeriodInvalid. Emits SharingRequested, then SharingStatusChanged
    ///      for the automatic grant or refusal. Request id = keccak256(abi.encode(signer, nonce)).
    function requestSharing(SharingRequestSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _requestSharing(batch);
    }

    /// @dev `requestSharing`'s body; `_applyRelayed` runs it for a relayed call.
    function _requestSharing(SharingRequestSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            SharingRequestSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            if (_accountDepartment[signer] != s.requester || s.requester == bytes32(0)) {
                revert DepartmentAccountNotBound(signer, s.requester);
            }
            bytes32 catalogHash = keccak256(bytes(s.catalog));
            RecordSlot memory catalog = _records[RecordKind.Catalog][catalogHash];
            _requireStatus(RecordKind.Catalog, s.catalog, catalog.status, RecordStatus.Active);
            if (s.version != catalog.version) revert SharingVersionStale(s.catalog, catalog.version, s.version);
            if (s.items == 0 || (catalog.itemCount < 256 && s.items >> catalog.itemCount != 0)) {
                revert SharingItemsUnknown(s.catalog, s.items, catalog.itemCount);
            }
            bytes32 owner = _departments.id[catalog.department];
            if (s.requester == owner) revert SharingSelfRequest(s.catalog, s.requester);
            _requireRelayScope(_departments.jurisdiction[owner]);
            // A relayed request was checked against the clock at its origin; its period may be over by now.
            bool relaying = _relayDirectory != address(0);
            if (s.start >= s.end || (!relaying && s.end <= block.timestamp)) {
                revert SharingPeriodInvalid(s.start, s.end, block.timestamp);
            }
            bytes32 id = keccak256(abi.encode(signer, s.nonce));
            if (_sharing[id].status != SharingStatus.None) {
                revert SharingStatusInvalid(id, _sharing[id].status, SharingStatus.None);
            }
            _recordRequest(id, catalogHash, owner, s, signer);
            if (catalog.shareType == SHARE_UNCONDITIONAL) {
                _setSharingStatus(id, SharingStatus.Granted, "unconditional", address(0), 0, 0, "");
            } else if (catalog.shareType == SHARE_NOT_SHARED) {
                _setSharingStatus(id, SharingStatus.Refused, "not_shared", address(0), 0, 0, "");
            }
        }
    }

    /// @notice Approves or rejects conditional requests, each signed by a key of the owning department.
    /// @dev Reverts SharingStatusInvalid (not Requested), SharingPeriodOver (the period ended),
    ///      SharingNotOwner, SharingCatalogChanged (approval of a catalog retired, updated or made not
    ///      shared since the request), plus the signature checks. Emits SharingStatusChanged (→ Granted or Rejected).
    function decideSharing(SharingDecisionSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _decideSharing(batch);
    }

    /// @dev `decideSharing`'s body; `_applyRelayed` runs it for a relayed call.
    function _decideSharing(SharingDecisionSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            SharingDecisionSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            SharingState storage r = _sharing[s.request];
            _requireSharingStatus(s.request, r.status, SharingStatus.Requested);
            _requireOpenPeriod(s.request, r);
            if (_accountDepartment[signer] != r.owner) revert SharingNotOwner(s.request, r.owner, signer);
            if (s.approve) _requireCatalogUnchanged(s.request, r);
            SharingStatus to = s.approve ? SharingStatus.Granted : SharingStatus.Rejected;
            _setSharingStatus(s.request, to, s.reason, signer, s.nonce, s.deadline, s.signature);
        }
    }

    /// @notice Revokes grants, each signed by a key of the owning department, before their period ends.
    /// @dev Reverts SharingStatusInvalid (not Granted), SharingPeriodOver (already expired), SharingNotOwner
    ///      (e.g. the requester), plus the signature checks. Emits SharingStatusChanged (→ Revoked).
    function revokeSharing(SharingRevocationSubmission[] calldata batch) external onlyRole(RELAYER_ROLE) {
        _revokeSharing(batch);
    }

    /// @dev `revokeSharing`'s body; `_applyRelayed` runs it for a relayed call.
    function _revokeSharing(SharingRevocationSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        for (uint256 i; i < batch.length; ++i) {
            SharingRevocationSubmission calldata s = batch[i];
            address signer = _authenticate(DirectoryTypes.hash(s), s.nonce, s.deadline, s.signature);
            SharingState storage r = _sharing[s.request];
            _requireSharingStatus(s.request, r.status, SharingStatus.Granted);
            _requireOpenPeriod(s.request, r);
            if (_accountDepartment[signer] != r.owner) revert SharingNotOwner(s.request, r.owner, signer);
            _setSharingStatus(s.request, SharingStatus.Revoked, s.reason, signer, s.nonce, s.deadline, s.signature);
        }
    }

    /// @notice Marks grants whose period has ended as Expired (no signature: the clock decides).
    /// @dev Reverts SharingStatusInvalid (not Granted) or SharingPeriodNotOver. Emits SharingStatusChanged.
    function expireSharing(bytes32[] calldata ids) external onlyRole(RELAYER_ROLE) {
        _requireNonEmpty(ids.length);
        for (uint256 i; i < ids.length; ++i) {
            SharingState storage r = _sharing[ids[i]];
            _requireSharingStatus(ids[i], r.status, SharingStatus.Granted);
            if (block.timestamp < r.end) revert SharingPeriodNotOver(ids[i], r.end, block.timestamp);
            _setSharingStatus(ids[i], SharingStatus.Expired, "period ended", address(0), 0, 0, "");
        }
    }

    // ================================================================ tiers: children and relays

    /// @notice Authorise `relayer` to relay the child directory (`chainId`, `directory`) serving `childHome`
    ///         (a zero relayer withdraws it). Only DEFAULT_ADMIN_ROLE.
    /// @dev Reverts AccessControlUnauthorizedAccount, JurisdictionUnknown (childHome), ChildInvalid (this directory
    ///      itself, or a home not strictly below this directory's home). Emits ChildSet.
    function setChild(bytes32 childHome, uint256 chainId, address directory, address relayer)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _requireJurisdiction(childHome);
        bool under = _home == bytes32(0);
        for (bytes32 c = _jurisdictions[childHome].parent; c != bytes32(0) && !under; c = _jurisdictions[c].parent) {
            under = c == _home;
        }
        if (!under || (chainId == block.chainid && directory == address(this))) {
            revert ChildInvalid(chainId, directory, childHome);
        }
        _children[keccak256(abi.encode(chainId, directory))] = Child({home: childHome, relayer: relayer});
        emit ChildSet(childHome, chainId, directory, relayer);
    }

    /// @notice Apply submissions first recorded in a child directory, each with its origin.
    /// @param origins where each submission was recorded (the log of its event in the child)
    /// @param calls ABI-encoded single-submission calls of addJurisdictions, registerDepartments, setAccounts,
    ///        submitCatalogs, submitSystems, requestSharing, decideSharing or revokeSharing, exactly as the
    ///        child received them (same signature)
    /// @dev Reverts RelayLengthMismatch, RelayNotAuthorised, RelayDuplicate, RelayCallInvalid, RelayOutsideChild,
    ///      and whatever the relayed call reverts with (its signature is checked under the child's domain; its
    ///      deadline is not). Emits the relayed call's events, then Relayed.
    function relay(Origin[] calldata origins, bytes[] calldata calls) external {
        if (origins.length != calls.length) revert RelayLengthMismatch(origins.length, calls.length);
        _requireNonEmpty(calls.length);
        for (uint256 i; i < calls.length; ++i) {
            _relayOne(origins[i], calls[i]);
        }
    }

    function _relayOne(Origin calldata origin, bytes calldata call) private {
        Child storage registered = _children[keccak256(abi.encode(origin.chainId, origin.directory))];
        if (registered.relayer != msg.sender || msg.sender == address(0)) {
            revert RelayNotAuthorised(origin.chainId, origin.directory, msg.sender);
        }
        bytes4 selector = call.length >= 4 ? bytes4(call[:4]) : bytes4(0);
        if (!_relayable(selector)) revert RelayCallInvalid(selector);
        bytes32 originKey = keccak256(abi.encode(origin.chainId, origin.directory, origin.txHash, origin.logIndex));
        if (_relayedOrigins[originKey]) revert RelayDuplicate(originKey);
        _relayedOrigins[originKey] = true;
        _relayChainId = origin.chainId;
        _relayDirectory = origin.directory;
        _relayHome = registered.home;
        _applyRelayed(selector, call);
        _relayDirectory = address(0);
        _relayChainId = 0;
        _relayHome = bytes32(0);
        emit Relayed(
            originKey,
            origin.chainId,
            origin.directory,
            origin.txHash,
            origin.blockNumber,
            origin.blockHash,
            origin.logIndex,
            selector
        );
    }

    /// @dev Applies relayed call `call` (of relayable function `selector`) as that function would, in relay mode, in
    ///      this call frame: no call of its own, so a relayed submission costs no call, no copy of itself to memory
    ///      and no frame in the node's call trace. Its array argument is read where it lies in this transaction's
    ///      calldata (`_relayedArray`); what the function reverts with reverts the relay unchanged.
    function _applyRelayed(bytes4 selector, bytes calldata call) private {
        (uint256 offset, uint256 length) = _relayedArray(selector, call);
        if (selector == this.submitCatalogs.selector) {
            _submitRecords(RecordKind.Catalog, _recordSubmissions(offset, length));
        } else if (selector == this.submitSystems.selector) {
            _submitRecords(RecordKind.System, _recordSubmissions(offset, length));
        } else if (selector == this.requestSharing.selector) {
            _requestSharing(_sharingRequests(offset, length));
        } else if (selector == this.decideSharing.selector) {
            _decideSharing(_sharingDecisions(offset, length));
        } else if (selector == this.revokeSharing.selector) {
            _revokeSharing(_sharingRevocations(offset, length));
        } else if (selector == this.addJurisdictions.selector) {
            _addJurisdictions(_jurisdictionSubmissions(offset, length));
        } else if (selector == this.registerDepartments.selector) {
            _registerDepartments(_departmentSubmissions(offset, length));
        } else {
            _setAccounts(_accountSubmissions(offset, length));
        }
    }

    /// @dev (calldata position of the element heads, element count) of the one argument of `call`: its 4-byte
    ///      selector, then the ABI encoding of a dynamic array (the array's offset, then at that offset its length
    ///      and an element head per element). A relayed call carries one submission (one origin, one submission):
    ///      reverts RelayCallInvalid(selector) for more, or unless the offset, the length and the element heads lie
    ///      inside `call`; none is left to the function (DirectoryBatchEmpty). The elements' own bytes are checked
    ///      on access as an external call's are (inside the calldata, each value in its type's range); an element
    ///      head may point past `call` into the rest of `relay`'s calldata, which gives its caller nothing it could
    ///      not have put in `call` itself: the submission read is checked and signed like any other.
    function _relayedArray(bytes4 selector, bytes calldata call)
        private
        pure
        returns (uint256 offset, uint256 length)
    {
        if (call.length < 36) revert RelayCallInvalid(selector);
        uint256 head = uint256(bytes32(call[4:36]));
        if (head > call.length - 36) revert RelayCallInvalid(selector);
        uint256 at = 4 + head;
        length = uint256(bytes32(call[at:at + 32]));
        if (length > 1 || length > (call.length - at - 32) / 32) revert RelayCallInvalid(selector);
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            offset := add(call.offset, add(at, 32))
        }
    }

    // The typed views of a relayed array argument (`_relayedArray`'s position and count), one per argument type.
    // solhint-disable no-inline-assembly

    function _recordSubmissions(uint256 offset, uint256 length)
        private
        pure
        returns (RecordSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _sharingRequests(uint256 offset, uint256 length)
        private
        pure
        returns (SharingRequestSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _sharingDecisions(uint256 offset, uint256 length)
        private
        pure
        returns (SharingDecisionSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _sharingRevocations(uint256 offset, uint256 length)
        private
        pure
        returns (SharingRevocationSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _jurisdictionSubmissions(uint256 offset, uint256 length)
        private
        pure
        returns (JurisdictionSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _departmentSubmissions(uint256 offset, uint256 length)
        private
        pure
        returns (DepartmentSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    function _accountSubmissions(uint256 offset, uint256 length)
        private
        pure
        returns (AccountSubmission[] calldata batch)
    {
        assembly ("memory-safe") {
            batch.offset := offset
            batch.length := length
        }
    }

    // solhint-enable no-inline-assembly

    function _relayable(bytes4 selector) private pure returns (bool) {
        return selector == this.addJurisdictions.selector || selector == this.registerDepartments.selector
            || selector == this.setAccounts.selector || selector == this.submitCatalogs.selector
            || selector == this.submitSystems.selector || selector == this.requestSharing.selector
            || selector == this.decideSharing.selector || selector == this.revokeSharing.selector;
    }

    // ================================================================ views

    /// @notice The jurisdiction this directory serves (zero: every jurisdiction).
    function homeJurisdiction() external view returns (bytes32) {
        return _home;
    }

    /// @notice The child directory (`chainId`, `directory`): its home and authorised relayer (zero if none).
    function child(uint256 chainId, address directory) external view returns (bytes32 childHome, address relayer) {
        Child storage c = _children[keccak256(abi.encode(chainId, directory))];
        return (c.home, c.relayer);
    }

    /// @notice Whether the origin event with this key has been relayed here.
    function originRelayed(bytes32 originKey) external view returns (bool) {
        return _relayedOrigins[originKey];
    }

    /// @notice Parent and tier of a jurisdiction (tier None if unknown).
    function jurisdiction(bytes32 id) external view returns (bytes32 parent, Tier tier) {
        JurisdictionState storage j = _jurisdictions[id];
        return (j.parent, j.tier);
    }

    /// @notice Whether `account` administers `id` directly (ancestors not consulted).
    function isAdministrator(bytes32 id, address account) external view returns (bool) {
        return _administrators[id][account];
    }

    /// @notice Jurisdiction of a department (zero if the department is unknown).
    function departmentJurisdiction(bytes32 department) external view returns (bytes32) {
        return _departments.jurisdiction[department];
    }

    /// @notice Department `account` signs for (zero if none).
    function accountDepartment(address account) external view returns (bytes32) {
        return _accountDepartment[account];
    }

    /// @notice Current state of a catalog or system by code (all zero if never registered).
    function record(RecordKind kind, string calldata code) external view returns (RecordState memory) {
        RecordSlot memory r = _records[kind][keccak256(bytes(code))];
        return RecordState({
            department: _departments.id[r.department],
            version: r.version,
            status: r.status,
            shareType: r.shareType,
            itemCount: r.itemCount
        });
    }

    /// @notice Digest committed for `version` of a catalog or system (zero if none; zero for a retire version).
    function recordDigest(RecordKind kind, string calldata code, uint32 version) external view returns (bytes32) {
        return _digests[kind][keccak256(bytes(code))][version];
    }

    /// @notice Whether `signer` has used `nonce` on a jurisdiction, department, account or sharing submission
    ///         (catalog and system versions spend no nonce: their version sequence stops replays).
    function nonceUsed(address signer, uint256 nonce) external view returns (bool) {
        return _nonceBitmap[signer][nonce >> 8] & (uint256(1) << (nonce & 0xff)) != 0;
    }

    /// @notice The EIP-712 type strings of the eight submission types, in the order Jurisdiction,
    ///         Department, Account, Catalog, System, SharingRequest, SharingDecision, SharingRevocation.
    ///         Off-chain signers read them from here.
    function eip712Types() external pure returns (string[8] memory) {
        return [
            DirectoryTypes.JURISDICTION_TYPE,
            DirectoryTypes.DEPARTMENT_TYPE,
            DirectoryTypes.ACCOUNT_TYPE,
            DirectoryTypes.CATALOG_TYPE,
            DirectoryTypes.SYSTEM_TYPE,
            DirectoryTypes.SHARING_REQUEST_TYPE,
            DirectoryTypes.SHARING_DECISION_TYPE,
            DirectoryTypes.SHARING_REVOCATION_TYPE
        ];
    }

    /// @notice A sharing request / grant by id (status None if unknown).
    function sharing(bytes32 id) external view returns (SharingState memory) {
        return _sharing[id];
    }

    // ================================================================ internal: checks

    /// @dev A batch holds at least one submission (a relayed call at most one besides: `_relayedArray`).
    function _requireNonEmpty(uint256 length) private pure {
        if (length == 0) revert DirectoryBatchEmpty();
    }

    /// @dev In relay mode, `jurisdictionId` must be the child's home or below it (no-op for local submissions).
    function _requireRelayScope(bytes32 jurisdictionId) private view {
        if (_relayDirectory == address(0)) return;
        bytes32 cursor = jurisdictionId;
        while (cursor != _relayHome) {
            if (cursor == bytes32(0)) revert RelayOutsideChild(_relayHome, jurisdictionId);
            cursor = _jurisdictions[cursor].parent;
        }
    }

    function _requireCode(string calldata code) private pure {
        uint256 n = bytes(code).length;
        if (n == 0 || n > MAX_CODE_BYTES) revert DirectoryCodeInvalid(code);
    }

    function _requireJurisdiction(bytes32 id) private view returns (JurisdictionState storage j) {
        j = _jurisdictions[id];
        if (j.tier == Tier.None) revert JurisdictionUnknown(id);
    }

    /// @dev Passes if `signer` holds DEFAULT_ADMIN_ROLE or administers `id` or an ancestor (≤ 3 levels).
    function _requireAdministrator(bytes32 id, address signer) private view {
        if (hasRole(DEFAULT_ADMIN_ROLE, signer)) return;
        bytes32 cursor = id;
        while (cursor != bytes32(0)) {
            if (_administrators[cursor][signer]) return;
            cursor = _jurisdictions[cursor].parent;
        }
        revert JurisdictionNotAdministrator(id, signer);
    }

    /// @dev `_recover`, then spends the nonce: in the signer's bitmap, or when relayed in the child's nonce space
    ///      here (keyed by the child's EIP-712 domain separator).
    function _authenticate(bytes32 structHash, uint256 nonce, uint256 deadline, bytes calldata signature)
        private
        returns (address signer)
    {
        bytes32 relayDomain;
        (signer, relayDomain) = _recover(structHash, deadline, signature);
        if (relayDomain != bytes32(0)) {
            _useNonce(_relayNonces[relayDomain], signer, nonce);
        } else {
            _useNonce(_nonceBitmap, signer, nonce);
        }
    }

    /// @dev Checks the deadline and recovers the EIP-712 signer (OpenZeppelin ECDSA: 65 bytes, low s); spends no nonce.
    ///      Relayed: the signature is checked under the child's EIP-712 domain (its chain id and address), returned
    ///      as `relayDomain` (zero for a local submission), and the deadline is not (it was met at the origin).
    function _recover(bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
        returns (address signer, bytes32 relayDomain)
    {
        if (_relayDirectory != address(0)) {
            relayDomain = keccak256(
                abi.encode(
                    EIP712_DOMAIN_TYPEHASH,
                    keccak256(bytes(DOMAIN_NAME)),
                    keccak256(bytes(DOMAIN_VERSION)),
                    _relayChainId,
                    _relayDirectory
                )
            );
            signer = ECDSA.recover(MessageHashUtils.toTypedDataHash(relayDomain, structHash), signature);
            return (signer, relayDomain);
        }
        if (deadline < block.timestamp) revert SubmissionExpired(deadline, block.timestamp);
        signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
    }

    /// @dev The one validator of the record state machine: reverts with the current and the expected status.
    function _requireStatus(RecordKind kind, string calldata code, RecordStatus current, RecordStatus expected)
        private
        pure
    {
        if (current != expected) revert RecordStatusInvalid(kind, code, current, expected);
    }

    /// @dev A decision or revocation needs the period still open (relayed ones were checked at their origin)
    ///      and, when relayed, a request of a catalog the child serves.
    function _requireOpenPeriod(bytes32 id, SharingState storage r) private view {
        if (_relayDirectory != address(0)) {
            _requireRelayScope(_departments.jurisdiction[r.owner]);
        } else if (block.timestamp >= r.end) {
            revert SharingPeriodOver(id, r.end, block.timestamp);
        }
    }

    /// @dev An approval needs the catalog still active at the requested version and still shareable.
    function _requireCatalogUnchanged(bytes32 id, SharingState storage r) private view {
        RecordSlot storage catalog = _records[RecordKind.Catalog][r.catalogHash];
        if (catalog.status != RecordStatus.Active || catalog.version != r.version || catalog.shareType == SHARE_NOT_SHARED)
        {
            revert SharingCatalogChanged(id, r.version, catalog.version, catalog.shareType);
        }
    }

    /// @dev The one validator of the sharing state machine: reverts with the current and the expected status.
    function _requireSharingStatus(bytes32 id, SharingStatus current, SharingStatus expected) private pure {
        if (current != expected) revert SharingStatusInvalid(id, current, expected);
    }

    // ================================================================ internal: records

    /// @dev No nonce is spent (`_recover`, not `_authenticate`): a signed version applies at most once without one.
    ///      It signs its action, code, department and version under this directory's EIP-712 domain (a relayed
    ///      one under its child's), and applies only if `version` is the record's current version + 1 with the
    ///      status its action needs (register: None; update, retire: Active); applying it makes `version` the
    ///      current version, versions never go down and a retirement is final. So a replay — in a later
    ///      transaction, later in the same batch, or relayed again under another origin key — reverts with
    ///      RecordStatusInvalid (register, retire) or RecordVersionMismatch (update), and writes nothing.
    ///      Two different signed versions with the same number (say two v2) race: the first applied wins, as it
    ///      did with nonces. The nonce stays in the signed struct and the event as a salt.
    function _submitRecords(RecordKind kind, RecordSubmission[] calldata batch) private {
        _requireNonEmpty(batch.length);
        uint256 memoryStart = _freeMemoryPointer();
        for (uint256 i; i < batch.length; ++i) {
            RecordSubmission calldata s = batch[i];
            bool retire = s.action == RecordAction.Retire;
            bytes32 digest = retire ? bytes32(0) : keccak256(s.record);
            bytes32 codeHash = keccak256(bytes(s.code));
            (address signer,) = _recover(DirectoryTypes.hash(s, kind, codeHash, digest), s.deadline, s.signature);
            _requireCode(s.code);
            _requireSigner(s, signer);
            // Nonzero: the signer is a key bound to s.department, and only registered departments get keys.
            uint32 department = _departments.index[s.department];
            RecordSlot memory state = _records[kind][codeHash];
            if (s.action == RecordAction.Register) {
                _requireStatus(kind, s.code, state.status, RecordStatus.None);
            } else if (s.action == RecordAction.Update || retire) {
                _requireStatus(kind, s.code, state.status, RecordStatus.Active);
                // Indexes and ids of registered departments correspond 1:1: this is the id comparison.
                if (state.department != department) {
                    revert RecordNotOwner(kind, s.code, _departments.id[state.department], s.department);
                }
            } else {
                revert RecordActionUnknown(s.action);
            }
            if (s.version != state.version + 1) revert RecordVersionMismatch(kind, s.code, state.version + 1, s.version);
            _requireContent(kind, s, retire);
            if (kind == RecordKind.Catalog && s.sourceSystem != bytes32(0)) {
                if (_records[RecordKind.System][s.sourceSystem].status != RecordStatus.Active) {
                    revert CatalogSourceSystemUnknown(s.code, s.sourceSystem);
                }
            }
            if (retire) {
                _retireRecord(kind, codeHash, state, s, signer);
            } else {
                _recordVersion(kind, codeHash, department, s, digest, signer);
            }
            _setFreeMemoryPointer(memoryStart);
        }
    }

    /// @dev Register/update carry a record (a catalog also a share type 1–3 and 1–256 items);
    ///      retirements and systems carry no source system, share type or item count.
    function _requireContent(RecordKind kind, RecordSubmission calldata s, bool retire) private pure {
        bool catalogVersion = kind == RecordKind.Catalog && !retire;
        bool ok = retire == (s.record.length == 0);
        if (catalogVersion) {
            ok = ok && s.shareType >= SHARE_UNCONDITIONAL && s.shareType <= SHARE_NOT_SHARED && s.itemCount != 0
                && s.itemCount <= MAX_ITEMS;
        } else {
            ok = ok && s.sourceSystem == bytes32(0) && s.shareType == 0 && s.itemCount == 0;
        }
        if (!ok) revert RecordContentInvalid(kind, s.code);
    }

    /// @dev The signer must be a bound key of the submission's department, in the submission's jurisdiction.
    function _requireSigner(RecordSubmission calldata s, address signer) private view {
        if (_accountDepartment[signer] != s.department || s.department == bytes32(0)) {
            revert DepartmentAccountNotBound(signer, s.department);
        }
        bytes32 deptHome = _departments.jurisdiction[s.department];
        if (deptHome != s.jurisdiction) revert RecordJurisdictionMismatch(deptHome, s.jurisdiction);
        _requireServed(s.jurisdiction);
    }

    /// @dev A local record belongs to this directory's home (unless home is zero); a relayed one to the child's
    ///      home or a jurisdiction below it.
    function _requireServed(bytes32 jurisdictionId) private view {
        if (_relayDirectory != address(0)) {
            _requireRelayScope(jurisdictionId);
        } else if (_home != bytes32(0) && jurisdictionId != _home) {
            revert DirectoryNotHome(_home, jurisdictionId);
        }
    }

    // ================================================================ internal: memory

    /// @dev The free memory pointer (bytes). `_submitRecords` reads it before its first item and sets it back
    ///      after each item — nothing an item allocates (its state copy, struct hash, event data) is used after
    ///      it — so the batch's memory, and its expansion gas, stays that of its largest item instead of growing
    ///      with (and its cost quadratic in) the batch size: ~900 gas per item in a batch of 100.
    function _freeMemoryPointer() private pure returns (uint256 pointer) {
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            pointer := mload(0x40)
        }
    }

    function _setFreeMemoryPointer(uint256 pointer) private pure {
        // solhint-disable-next-line no-inline-assembly
        assembly ("memory-safe") {
            mstore(0x40, pointer)
        }
    }

    // ================================================================ internal setters (write, then emit)

    function _useNonce(
        mapping(address => mapping(uint256 => uint256)) storage bitmap,
        address signer,
        uint256 nonce
    ) private {
        uint256 bit = uint256(1) << (nonce & 0xff);
        uint256 bits = bitmap[signer][nonce >> 8];
        if (bits & bit != 0) revert SubmissionNonceUsed(signer, nonce);
        bitmap[signer][nonce >> 8] = bits | bit;
    }

    function _addJurisdiction(bytes32 id, JurisdictionSubmission calldata s, address signer) private {
        _jurisdictions[id] = JurisdictionState({parent: s.parent, tier: s.tier});
        emit JurisdictionAdded(id, s.parent, s.tier, s.code, s.name, signer, s.nonce);
    }

    /// @dev Also gives the department the next index (1, 2, …; a uint32, so checked arithmetic stops at 2^32 − 1).
    function _registerDepartment(bytes32 id, DepartmentSubmission calldata s, address signer) private {
        uint32 index = ++_departments.count;
        _departments.jurisdiction[id] = s.jurisdiction;
        _departments.index[id] = index;
        _departments.id[index] = id;
        emit DepartmentRegistered(id, s.jurisdiction, s.code, s.name, signer, s.nonce);
    }

    function _setAdministrator(bytes32 id, address account, bool active, address signer, uint256 nonce) private {
        _administrators[id][account] = active;
        emit AdministratorSet(id, account, active, signer, nonce);
    }

    function _setDepartmentAccount(
        bytes32 department,
        bytes32 home,
        address account,
        bool active,
        address signer,
        uint256 nonce
    ) private {
        _accountDepartment[account] = active ? department : bytes32(0);
        emit DepartmentAccountSet(department, account, home, active, signer, nonce);
    }

    /// @param department the index of `s.department` (`_departments.index`)
    function _recordVersion(
        RecordKind kind,
        bytes32 codeHash,
        uint32 department,
        RecordSubmission calldata s,
        bytes32 digest,
        address signer
    ) private {
        _records[kind][codeHash] = RecordSlot({
            department: department,
            version: s.version,
            status: RecordStatus.Active,
            shareType: s.shareType,
            itemCount: s.itemCount
        });
        _digests[kind][codeHash][s.version] = digest;
        if (kind == RecordKind.Catalog) {
            emit CatalogVersionRecorded(
                codeHash,
                s.jurisdiction,
                s.department,
                s.code,
                s.version,
                digest,
                s.sourceSystem,
                s.shareType,
                s.itemCount,
                signer,
                s.nonce,
                s.deadline,
                s.signature,
                s.record
            );
        } else {
            emit SystemVersionRecorded(
                codeHash,
                s.jurisdiction,
                s.department,
                s.code,
                s.version,
                digest,
                signer,
                s.nonce,
                s.deadline,
                s.signature,
                s.record
            );
        }
    }

    /// @param state the record's current slot (its owner, share type and item count stay)
    function _retireRecord(
        RecordKind kind,
        bytes32 codeHash,
        RecordSlot memory state,
        RecordSubmission calldata s,
        address signer
    ) private {
        state.version = s.version;
        state.status = RecordStatus.Retired;
        _records[kind][codeHash] = state;
        if (kind == RecordKind.Catalog) {
            emit CatalogRetired(
                codeHash, s.jurisdiction, s.department, s.code, s.version, signer, s.nonce, s.deadline, s.signature
            );
        } else {
            emit SystemRetired(
                codeHash, s.jurisdiction, s.department, s.code, s.version, signer, s.nonce, s.deadline, s.signature
            );
        }
    }

    /// @param owner the id of the catalog's owning department
    function _recordRequest(
        bytes32 id,
        bytes32 catalogHash,
        bytes32 owner,
        SharingRequestSubmission calldata s,
        address signer
    ) private {
        _sharing[id] = SharingState({
            catalogHash: catalogHash,
            requester: s.requester,
            owner: owner,
            items: s.items,
            start: s.start,
            end: s.end,
            version: s.version,
            status: SharingStatus.Requested
        });
        emit SharingRequested(
            id,
            catalogHash,
            s.requester,
            s.catalog,
            s.version,
            owner,
            s.items,
            s.start,
            s.end,
            s.purpose,
            s.basis,
            signer,
            s.nonce,
            s.deadline,
            s.signature
        );
    }

    function _setSharingStatus(
        bytes32 id,
        SharingStatus to,
        string memory reason,
        address signer,
        uint256 nonce,
        uint256 deadline,
        bytes memory signature
    ) private {
        SharingState storage r = _sharing[id];
        SharingStatus from = r.status;
        r.status = to;
        emit SharingStatusChanged(id, r.catalogHash, from, to, reason, signer, nonce, deadline, signature);
    }
}
