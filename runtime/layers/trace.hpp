// runtime/layers/trace.hpp: the built-in tracer (weft/observer.hpp documents the output).
//
// Recording: each worker appends fixed-size records to its own ring (a preallocated array
// and an index only that worker writes: no lock, no allocation, no shared line written on
// the task path); when the ring is full the oldest records are overwritten. Submissions
// from threads outside the pool go to one shared ring under a mutex (they already pay the
// injection queue's RMWs).
// Writing: only after the workers were joined (scheduler_hooks::closed), so the rings are
// quiescent; the join orders every record before the write.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace weft::detail {

class tracer {
 public:
  static constexpr std::size_t kRing = std::size_t{1} << 16;  // records per worker (2 MiB)

  enum class kind : std::uint32_t { begin, end, submit, park, unpark, search_on, search_off };
  struct record {
    std::uint64_t ns;
    const void* id;       // the task (begin, submit), or null
    kind what;
    std::uint32_t extra;  // begin: wait in us (saturated), else 0
  };

  tracer(std::string path, unsigned workers);

  // Worker `w` only (its ring has one writer).
  void add(unsigned w, kind what, const void* id, std::uint32_t extra = 0) noexcept;
  // Any thread outside the pool.
  void add_external(const void* id) noexcept;
  void set_pu(unsigned w, int pu) noexcept { rings_[w].pu = pu; }

  // Writes the JSON file; reports (through `log`) and returns false when it cannot.
  bool write(std::string* error) const;

 private:
  struct ring {
    std::vector<record> events = std::vector<record>(kRing);
    std::uint64_t next = 0;  // records ever added; the ring holds the last min(next, kRing)
    int pu = -1;
  };
  std::string path_;
  std::vector<ring> rings_;
  mutable std::mutex external_mu_;
  ring external_;  // guarded by external_mu_
};

}  // namespace weft::detail
