// Idiomatic calls must compile without warnings under -Wall -Wextra -Werror: designated
// initializers of the option aggregates name only the fields they set (g++ 12 warns,
// -Wmissing-field-initializers, for a field without a default member initializer).
#include <chrono>
#include <weft/weft.hpp>

using namespace std::chrono_literals;

int main() {
  weft::pool p({.workers = 1, .capacity = 4, .when_full = weft::full_policy::block, .drain_timeout = 1s});
  p.post([] {}, {.timeout = 50ms});
  auto f = p.submit([] { return 1; }, {.stop_token = {}});
  weft::task_options o{.deadline = std::chrono::steady_clock::now() + 1s};
  p.post([] {}, o);
  return f.get() == 1 ? 0 : 1;
}
