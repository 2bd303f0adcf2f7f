// weft/errors.hpp: the exceptions and statuses weft reports.
#pragma once

#include <stdexcept>
#include <string>

namespace weft {

// Thrown by post/submit/run on a pool that has been closed (close(), the destructor), and
// in a child process on a pool created before fork() (its workers exist only in the parent).
class pool_closed : public std::runtime_error {
 public:
  pool_closed() : std::runtime_error("weft: the pool is closed and accepts no new tasks") {}
  explicit pool_closed(const std::string& why) : std::runtime_error(why) {}
};

// The outcome of a task that was cancelled before it started: its stop token (the
// submission's, its group's, its batch's, or the pool's) fired, its deadline passed while it
// was queued, or the pool was stopped (stop_now, close with a deadline). Distinct from any
// exception a task throws itself.
class task_cancelled : public std::runtime_error {
 public:
  task_cancelled() : std::runtime_error("weft: the task was cancelled before it started") {}
  explicit task_cancelled(const std::string& why) : std::runtime_error(why) {}
};

// Thrown by post/submit from outside the pool when it is at capacity
// (pool_options::capacity) and its policy is full_policy::reject. The callable was
// destroyed without running.
class queue_full : public std::runtime_error {
 public:
  queue_full() : std::runtime_error("weft: the pool's queue is at capacity (pool_options::capacity)") {}
  explicit queue_full(const std::string& why) : std::runtime_error(why) {}
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
  full,      // the queue it was meant for is at capacity; the callable was destroyed without running
};

const char* to_string(submit_status s) noexcept;

}  // namespace weft
