// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDirectoryRelay — one directory per jurisdiction, and relaying a child directory's records upward.
/// @notice Each jurisdiction has its own directory (a minimal clone, EIP-1167, made by `DirectoryFactory`),
///         bound to its `home` jurisdiction. The municipal chain integration job (the relayer of a child)
///         re-submits each of the child's signed submissions to the parent with its origin — chain id,
///         directory, transaction hash, block number and hash, log index. The parent verifies the original
///         signature under the child's EIP-712 domain (so the relayer cannot alter content, nor the origin
///         chain and directory the signature is bound to), accepts each origin event at most once (an on-chain
///         key), and accepts relays for a child only from the relayer authorised for that child.
interface IDirectoryRelay {
    /// @notice Where a relayed submission was first recorded.
    struct Origin {
        uint256 chainId;
        address directory;
        bytes32 txHash;
        uint64 blockNumber;
        bytes32 blockHash;
        uint32 logIndex;
    }

    /// @notice The directory was initialised for `home` (zero: a directory that serves every jurisdiction).
    event DirectoryInitialized(bytes32 indexed home, address administrator, address relayer);

    /// @notice `relayer` may relay the child directory (`chainId`, `directory`) serving `home` (zero relayer: none).
    event ChildSet(bytes32 indexed home, uint256 indexed chainId, address indexed directory, address relayer);

    /// @notice The events just before this one (same transaction) applied a submission relayed from `origin`.
    /// @param originKey keccak256(abi.encode(chainId, directory, txHash, logIndex)) — applied at most once
    /// @param selector the directory function the submission was relayed to
    event Relayed(
        bytes32 indexed originKey,
        uint256 indexed chainId,
        address indexed directory,
        bytes32 txHash,
        uint64 blockNumber,
        bytes32 blockHash,
        uint32 logIndex,
        bytes4 selector
    );

    /// @notice `sender` is not the relayer authorised for the child directory (`chainId`, `directory`).
    error RelayNotAuthorised(uint256 chainId, address directory, address sender);
    /// @notice This origin event was already relayed.
    error RelayDuplicate(bytes32 originKey);
    /// @notice The relayed call is not a single-submission call of a relayable function.
    error RelayCallInvalid(bytes4 selector);
    /// @notice A relayed record belongs to `jurisdiction`, outside the child's `home` subtree.
    error RelayOutsideChild(bytes32 home, bytes32 jurisdiction);
    /// @notice Origins and calls differ in length.
    error RelayLengthMismatch(uint256 origins, uint256 calls);
    /// @notice A child must be another directory serving a jurisdiction under this directory's home.
    error ChildInvalid(uint256 chainId, address directory, bytes32 home);
    /// @notice A local record of this directory must belong to its `home` jurisdiction.
    error DirectoryNotHome(bytes32 home, bytes32 jurisdiction);
}
