// weft/stream_options.hpp: how weft::stream and weft::stream_to (weft/stream.hpp) run.
#pragma once

#include <cstddef>
#include <stop_token>

#include "weft/batch.hpp"  // error_policy

namespace weft {

enum class stream_order {
  completion,  // as soon as each result is there
  input,       // in the order the items were received, within a reorder window of max_in_flight
};

struct stream_options {
  std::size_t max_in_flight = 0;  // items taken and not yet consumed; 0: 2 * pool.size()
  stream_order order = stream_order::completion;
  error_policy policy = error_policy::collect_all;
  std::stop_token stop_token{};  // cancels the stream
};

}  // namespace weft
