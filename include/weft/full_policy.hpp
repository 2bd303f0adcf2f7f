// weft/full_policy.hpp: what a submission does when the queue it goes to is at capacity.
//
// One enum for every bound in weft: the pool's injection queue (pool_options::capacity),
// a priority lane (lane_config::capacity, weft/lanes.hpp) and a key of the keyed serializer
// (keyed_options::capacity, weft/keyed_options.hpp). Each of those headers says which
// values it accepts and what "oldest" and "room" mean for its queue.
#pragma once

namespace weft {

// What a submission from outside does when the queue is at capacity.
enum class full_policy {
  reject,          // post/submit throw weft::queue_full (lane_full, for a lane); the callable is destroyed unrun
  block,           // wait for room; close()/stop_now() wake the caller with pool_closed. On a
                   // worker of another pool the wait runs that pool's tasks meanwhile.
  caller_runs,     // run the task on the calling thread, before post/submit returns
  discard_oldest,  // the oldest queued external task completes as cancelled (its future gets
                   // task_cancelled; counted in metrics::discarded), and this one is queued
};

}  // namespace weft
