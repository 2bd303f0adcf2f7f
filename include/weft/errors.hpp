// weft/errors.hpp: the exceptions and statuses weft reports.
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

// Thrown by post/submit/run on a pool that has been closed (close(), the destructor).
class pool_closed : public std::runtime_error {
 public:
  pool_closed() : std::runtime_error("weft: the pool is closed and accepts no new tasks") {}
};

// hwloc reported an error the pool cannot work around (rare: most topology problems fall
// back to an unpinned pool and a logged line instead).
class topology_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Result of the non-throwing try_ variants.
enum class submit_status {
  accepted,  // the task will run
  closed,    // the pool is closed; the callable was destroyed without running
};

const char* to_string(submit_status s) noexcept;

}  // namespace weft
