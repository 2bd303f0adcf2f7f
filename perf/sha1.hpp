// perf/sha1.hpp: SHA-1 (FIPS 180-4), just enough for UTS's splittable random numbers.
//
// Written for weft-perf from the standard's description; not for security (SHA-1 is
// broken for that). UTS (Olivier et al., "UTS: An Unbalanced Tree Search Benchmark",
// LCPC 2006) derives each node's 20-byte state as SHA-1(parent state || child index),
// so the tree, and its node count, is fixed by the hash: a wrong hash cannot give the
// published counts, which is how this file is tested (uts.cpp checks T1's 4,130,071).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace weft_perf {

using sha1_digest = std::array<std::uint8_t, 20>;

// The SHA-1 digest of the `len` bytes at `data`.
sha1_digest sha1(const std::uint8_t* data, std::size_t len) noexcept;

}  // namespace weft_perf
