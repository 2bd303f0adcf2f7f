// runtime/core/latency.hpp: a log-linear histogram of nanosecond latencies, written by one
// thread (its owner) and read by any (metrics snapshots).
//
// Buckets: values below 8 have their own bucket; above, each power of two is split into
// 8 linear sub-buckets (relative error <= 12.5%). 61 * 8 buckets cover all of uint64.
// A quantile is reported as the lower bound of the bucket that holds it (capped at the
// maximum), so it can be below every sample in that bucket; the sum of the samples is kept
// exactly, for the mean (what weft/metrics.hpp documents for users).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

#include "weft/metrics.hpp"

namespace weft::detail {

class latency_histogram {
 public:
  static constexpr unsigned kSubBits = 3;
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) << kSubBits;
  using counts = std::array<std::uint64_t, kBuckets>;

  static unsigned bucket_of(std::uint64_t v) noexcept {
    if (v < (1u << kSubBits)) return static_cast<unsigned>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;  // e >= kSubBits
    const unsigned sub = static_cast<unsigned>(v >> (e - kSubBits)) & ((1u << kSubBits) - 1);
    return ((e - kSubBits + 1) << kSubBits) + sub;
  }
  static std::uint64_t lower_bound_of(unsigned b) noexcept {
    if (b < (1u << kSubBits)) return b;
    const unsigned e = (b >> kSubBits) + kSubBits - 1;
    const std::uint64_t sub = b & ((1u << kSubBits) - 1);
    return (std::uint64_t{1} << e) | (sub << (e - kSubBits));
  }

  // Owner thread only. relaxed load+store (no locked RMW): one writer; readers tolerate
  // a torn-in-time view, each counter is itself atomic.
  void record(std::uint64_t ns) noexcept {
    auto& c = counts_[bucket_of(ns)];
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
    // Same single-writer argument. Wraps only after 2^64 ns (584 years) of sampled time.
    sum_.store(sum_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  }

  void add_to(counts& into, std::uint64_t& max, std::uint64_t& sum) const noexcept {
    for (unsigned i = 0; i < kBuckets; ++i) into[i] += counts_[i].load(std::memory_order_relaxed);  // relaxed: snapshot
    max = std::max(max, max_.load(std::memory_order_relaxed));  // relaxed: snapshot
    sum += sum_.load(std::memory_order_relaxed);                // relaxed: snapshot
  }

  static metrics::distribution summarize(const counts& c, std::uint64_t max, std::uint64_t sum) noexcept {
    metrics::distribution d;
    for (std::uint64_t n : c) d.samples += n;
    d.max = max;
    if (d.samples == 0) return d;
    // While tasks run, the counts and the sum are read at different instants (one sample
    // may be in one and not yet in the other): clamp into [0, max] so the mean never lies
    // outside the samples' range. Exact once the pool is quiescent.
    d.mean = std::min(sum / d.samples, max);
    auto quantile = [&](double q) {
      const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(d.samples - 1));
      std::uint64_t seen = 0;
      for (unsigned b = 0; b < kBuckets; ++b) {
        seen += c[b];
        if (seen > rank) return std::min(lower_bound_of(b), max);
      }
      return max;
    };
    d.p50 = quantile(0.50);
    d.p99 = quantile(0.99);
    return d;
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> max_{0};
  std::atomic<std::uint64_t> sum_{0};  // of every recorded value (the mean)
};

}  // namespace weft::detail
