// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Directory} from "./Directory.sol";

/// @title DirectoryFactory — makes one directory per jurisdiction as a minimal clone (EIP-1167) of `IMPLEMENTATION`.
contract DirectoryFactory {
    /// @notice The Directory whose code every clone runs.
    address public immutable IMPLEMENTATION;

    /// @notice A directory was created for `home` by `creator`.
    event DirectoryCreated(bytes32 indexed home, address indexed directory, address indexed creator);

    /// @param implementation_ a deployed Directory (its constructor disables its own initialiser)
    constructor(address implementation_) {
        IMPLEMENTATION = implementation_;
    }

    /// @notice Clone and initialise a directory for jurisdiction `home` (keccak256 of its code; zero = all).
    /// @dev Address = CREATE2(salt keccak256(abi.encode(msg.sender, home))): one directory per creator and home.
    ///      Reverts (FailedDeployment) if that creator already made one for `home`.
    function createDirectory(bytes32 home, address administrator, address relayer) external returns (address directory) {
        directory = Clones.cloneDeterministic(IMPLEMENTATION, keccak256(abi.encode(msg.sender, home)));
        Directory(directory).initialize(administrator, relayer, home);
        emit DirectoryCreated(home, directory, msg.sender);
    }

    /// @notice Address `createDirectory` gives (or gave) `creator` for `home`.
    function predictDirectory(address creator, bytes32 home) external view returns (address) {
        return Clones.predictDeterministicAddress(IMPLEMENTATION, keccak256(abi.encode(creator, home)));
    }
}
