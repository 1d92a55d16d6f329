// The cryptographic primitives secure aggregation builds on, from well-kept libraries:
// X25519 key agreement and BLAKE2b key derivation (libsodium), the AES-128-CTR keystream that
// expands a pairwise seed into a mask (OpenSSL, AES-NI where the CPU has it). Secret material
// lives in libsodium's guarded, locked (where the system allows) memory and is wiped on release.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace fedsilo::secagg {

inline constexpr size_t kKeyBytes = 32;
using PublicKey = std::array<uint8_t, kKeyBytes>;

/// kKeyBytes of secret bytes in sodium_malloc'd memory: guard pages, mlock where permitted,
/// wiped (sodium_free) on destruction. Move-only.
class Secret {
 public:
  /// kInternal when libsodium cannot allocate (or fails to initialise).
  static Result<Secret> allocate();
  Secret(Secret&& o) noexcept : bytes_(o.bytes_) { o.bytes_ = nullptr; }
  Secret& operator=(Secret&& o) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();
  [[nodiscard]] uint8_t* data() { return bytes_; }
  [[nodiscard]] const uint8_t* data() const { return bytes_; }

 private:
  explicit Secret(uint8_t* bytes) : bytes_(bytes) {}
  uint8_t* bytes_;
};

/// An X25519 key pair: the secret scalar and its public point.
struct KeyPair {
  Secret secret;
  PublicKey public_key;
};

/// A fresh key pair from the operating system's randomness.
[[nodiscard]] Result<KeyPair> generate_keypair();
/// The key pair of a given secret scalar (for known-answer tests).
[[nodiscard]] Result<KeyPair> keypair_from_secret(std::span<const uint8_t, kKeyBytes> secret);

/// Tests only (it voids every guarantee): the key pair of `silo` derived from `text`, the secret
/// scalar BLAKE2b-256 of ("fstestk1", text, silo), so a test can recompute every key and search
/// outputs for them.
[[nodiscard]] Result<KeyPair> test_keypair(std::string_view text, int silo);

/// X25519(secret, peer): the shared secret. kInvalidArgument naming `peer_name` for a peer key
/// that is malformed or of low order (the result would be all zeros: libsodium refuses it).
[[nodiscard]] Result<Secret> shared_secret(const Secret& secret, const PublicKey& peer,
                                           const std::string& peer_name);

/// The seed of one pair's masks for one round: a run key BLAKE2b(shared secret; run id), then
/// libsodium's key derivation (crypto_kdf, context "fsmasks1") with the round as the subkey id.
/// Both ends derive the same seed; seeds of different rounds or runs are independent.
[[nodiscard]] Result<Secret> round_seed(const Secret& shared, std::span<const uint8_t> run_id,
                                        uint64_t round);

/// The key of one silo's stochastic-rounding words in one round: BLAKE2b-128 of ("fsround1",
/// seed, round, silo). Public (the run seed is in config.toml), deterministic, and different
/// for every (seed, round, silo).
[[nodiscard]] std::array<uint8_t, 16> rounding_key(uint64_t seed, uint32_t round, uint32_t silo);

/// AES-128-CTR keystream words: `out` gets the keystream's bytes as host-order 32-bit words,
/// for key `key` (16 bytes) with the 128-bit big-endian counter starting at `first_block` (a
/// block is 16 bytes, 4 words): so a mask can be generated block by block, in any order, with
/// the same words. `out.size()` must be a multiple of 4.
class Keystream {
 public:
  /// kInternal naming the OpenSSL call that failed.
  static Result<Keystream> create(std::span<const uint8_t> key16);
  Keystream(Keystream&&) noexcept;
  Keystream& operator=(Keystream&&) noexcept;
  ~Keystream();
  [[nodiscard]] Status fill(uint64_t first_block, std::span<uint32_t> out);
  /// data ^= the keystream from the 128-bit big-endian counter block `counter` (AES-128-CTR
  /// encryption or decryption in place; what the known-answer tests check).
  [[nodiscard]] Status apply(const std::array<uint8_t, 16>& counter, std::span<uint8_t> data);

 private:
  struct Impl;
  explicit Keystream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// `n` bytes from the operating system's randomness (libsodium's randombytes).
[[nodiscard]] Result<std::vector<uint8_t>> random_bytes(size_t n);

/// Hex text of bytes (tests and messages; never called on secrets).
std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace fedsilo::secagg
