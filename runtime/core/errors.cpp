// runtime/core/errors.cpp: names of statuses.
#include "weft/errors.hpp"

namespace weft {

const char* to_string(submit_status s) noexcept {
  switch (s) {
    case submit_status::accepted:
      return "accepted";
    case submit_status::closed:
      return "closed";
    case submit_status::full:
      return "full";
  }
  return "unknown";
}

}  // namespace weft
