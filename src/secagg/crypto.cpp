// libsodium (X25519, BLAKE2b, crypto_kdf, guarded memory) and OpenSSL (AES-128-CTR).
#include "secagg/crypto.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace fedsilo::secagg {

namespace {
Status init_sodium() {
  static const int rc = sodium_init();  // 0: initialised now, 1: already; -1: failure
  if (rc < 0) return internal_error("libsodium: sodium_init failed");
  return {};
}
}  // namespace

Result<Secret> Secret::allocate() {
  FEDSILO_CHECK(init_sodium());
  auto* p = static_cast<uint8_t*>(sodium_malloc(kKeyBytes));
  if (p == nullptr) return internal_error("libsodium: sodium_malloc of a key failed");
  return Secret(p);
}

Secret& Secret::operator=(Secret&& o) noexcept {
  if (this != &o) {
    if (bytes_ != nullptr) sodium_free(bytes_);
    bytes_ = o.bytes_;
    o.bytes_ = nullptr;
  }
  return *this;
}

Secret::~Secret() {
  if (bytes_ != nullptr) sodium_free(bytes_);  // zeroes the memory before releasing it
}

Result<KeyPair> keypair_from_secret(std::span<const uint8_t, kKeyBytes> secret) {
  FEDSILO_ASSIGN_OR_RETURN(Secret s, Secret::allocate());
  std::memcpy(s.data(), secret.data(), kKeyBytes);
  KeyPair kp{std::move(s), {}};
  if (crypto_scalarmult_base(kp.public_key.data(), kp.secret.data()) != 0) {
    return internal_error("libsodium: crypto_scalarmult_base failed");
  }
  return kp;
}

Result<KeyPair> generate_keypair() {
  FEDSILO_ASSIGN_OR_RETURN(Secret s, Secret::allocate());
  randombytes_buf(s.data(), kKeyBytes);
  KeyPair kp{std::move(s), {}};
  if (crypto_scalarmult_base(kp.public_key.data(), kp.secret.data()) != 0) {
    return internal_error("libsodium: crypto_scalarmult_base failed");
  }
  return kp;
}

Result<KeyPair> test_keypair(std::string_view text, int silo) {
  FEDSILO_CHECK(init_sodium());
  std::string in = "fstestk1";
  in += text;
  for (int b = 0; b < 4; ++b) in += static_cast<char>((static_cast<uint32_t>(silo) >> (8 * b)) & 0xff);
  std::array<uint8_t, kKeyBytes> secret{};
  crypto_generichash(secret.data(), secret.size(), reinterpret_cast<const uint8_t*>(in.data()),
                     in.size(), nullptr, 0);
  auto kp = keypair_from_secret(secret);
  sodium_memzero(secret.data(), secret.size());
  return kp;
}

Result<Secret> shared_secret(const Secret& secret, const PublicKey& peer, const std::string& peer_name) {
  FEDSILO_ASSIGN_OR_RETURN(Secret out, Secret::allocate());
  if (crypto_scalarmult(out.data(), secret.data(), peer.data()) != 0) {
    return invalid_argument(peer_name + "'s public key " + to_hex(peer) +
                            " is malformed or of low order (X25519 gives no shared secret)");
  }
  return out;
}

Result<Secret> round_seed(const Secret& shared, std::span<const uint8_t> run_id, uint64_t round) {
  static_assert(crypto_kdf_KEYBYTES == kKeyBytes && crypto_generichash_KEYBYTES == kKeyBytes);
  FEDSILO_ASSIGN_OR_RETURN(Secret run_key, Secret::allocate());
  if (crypto_generichash(run_key.data(), kKeyBytes, run_id.data(), run_id.size(), shared.data(),
                         kKeyBytes) != 0) {
    return internal_error("libsodium: crypto_generichash failed");
  }
  FEDSILO_ASSIGN_OR_RETURN(Secret seed, Secret::allocate());
  if (crypto_kdf_derive_from_key(seed.data(), kKeyBytes, round, "fsmasks1", run_key.data()) != 0) {
    return internal_error("libsodium: crypto_kdf_derive_from_key failed");
  }
  return seed;
}

std::array<uint8_t, 16> rounding_key(uint64_t seed, uint32_t round, uint32_t silo) {
  uint8_t in[8 + 8 + 4 + 4] = {'f', 's', 'r', 'o', 'u', 'n', 'd', '1'};
  for (int b = 0; b < 8; ++b) in[8 + b] = static_cast<uint8_t>(seed >> (8 * b));
  for (int b = 0; b < 4; ++b) in[16 + b] = static_cast<uint8_t>(round >> (8 * b));
  for (int b = 0; b < 4; ++b) in[20 + b] = static_cast<uint8_t>(silo >> (8 * b));
  std::array<uint8_t, 16> key{};
  (void)init_sodium();  // BLAKE2b works without it (the portable code), only slower
  crypto_generichash(key.data(), key.size(), in, sizeof in, nullptr, 0);  // cannot fail at 16 bytes
  return key;
}

struct Keystream::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<uint8_t, 16> key{};
  ~Impl() {
    if (ctx != nullptr) EVP_CIPHER_CTX_free(ctx);
    sodium_memzero(key.data(), key.size());
  }
};

Keystream::Keystream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystream::Keystream(Keystream&&) noexcept = default;
Keystream& Keystream::operator=(Keystream&&) noexcept = default;
Keystream::~Keystream() = default;

Result<Keystream> Keystream::create(std::span<const uint8_t> key16) {
  if (key16.size() != 16) {
    return invalid_argument("keystream: an AES-128 key has 16 bytes, got " + std::to_string(key16.size()));
  }
  auto impl = std::make_unique<Impl>();
  std::copy(key16.begin(), key16.end(), impl->key.begin());
  impl->ctx = EVP_CIPHER_CTX_new();
  if (impl->ctx == nullptr) return internal_error("OpenSSL: EVP_CIPHER_CTX_new failed");
  // The key schedule once; each fill only sets the counter.
  if (EVP_EncryptInit_ex(impl->ctx, EVP_aes_128_ctr(), nullptr, impl->key.data(), nullptr) != 1) {
    return internal_error("OpenSSL: EVP_EncryptInit_ex(aes-128-ctr) failed");
  }
  return Keystream(std::move(impl));
}

Status Keystream::fill(uint64_t first_block, std::span<uint32_t> out) {
  if (out.size() % 4 != 0) {
    return invalid_argument("keystream: " + std::to_string(out.size()) + " words is not whole 16-byte blocks");
  }
  std::array<uint8_t, 16> counter{};  // the 128-bit big-endian counter of the first block
  for (int b = 0; b < 8; ++b) counter[15 - b] = static_cast<uint8_t>(first_block >> (8 * b));
  // The keystream is the encryption of zeros.
  std::fill(out.begin(), out.end(), 0u);
  return apply(counter, std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size_bytes()));
}

Status Keystream::apply(const std::array<uint8_t, 16>& counter, std::span<uint8_t> data) {
  if (EVP_EncryptInit_ex(impl_->ctx, nullptr, nullptr, nullptr, counter.data()) != 1) {
    return internal_error("OpenSSL: EVP_EncryptInit_ex(aes-128-ctr) failed");
  }
  // In place, in chunks an int can count.
  unsigned char* bytes = data.data();
  size_t left = data.size();
  while (left > 0) {
    const int chunk = static_cast<int>(std::min<size_t>(left, size_t{1} << 30));
    int written = 0;
    if (EVP_EncryptUpdate(impl_->ctx, bytes, &written, bytes, chunk) != 1 || written != chunk) {
      return internal_error("OpenSSL: EVP_EncryptUpdate(aes-128-ctr) failed");
    }
    bytes += chunk;
    left -= static_cast<size_t>(chunk);
  }
  return {};
}

Result<std::vector<uint8_t>> random_bytes(size_t n) {
  FEDSILO_CHECK(init_sodium());
  std::vector<uint8_t> out(n);
  randombytes_buf(out.data(), n);
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* const kDigits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * bytes.size());
  for (uint8_t b : bytes) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

}  // namespace fedsilo::secagg
