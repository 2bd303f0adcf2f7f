// examples/notification_service.cpp: per-user ordered notifications on weft::keyed.
//
// Several producer threads send notifications for many users. Each user's notifications
// are delivered one at a time, in the order they were sent; different users are delivered
// in parallel on the pool. Each user may have at most kPerUser notifications waiting: a
// producer that gets ahead of a slow user waits for room (full_policy::block), which is
// backpressure instead of an unbounded queue. Shutdown is graceful: everything sent is
// delivered, then the service stops and refuses late notifications.
//
// (discard_oldest would suit "latest wins" updates such as presence, where a newer state
// makes the queued ones pointless; caller_runs is refused for keys: it would jump the queue.)
#include <weft/keyed.hpp>
#include <weft/pool.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kProducers = 4;
constexpr int kUsers = 50;
constexpr int kPerProducer = 250;
constexpr std::size_t kPerUser = 8;

struct notification {
  std::string user;
  int producer;
  int seq;  // per producer and user: 0, 1, 2, ...
};

class notification_service {
 public:
  explicit notification_service(weft::pool& pool)
      : users_(pool, {.capacity = kPerUser, .when_full = weft::full_policy::block}) {
    for (int u = 0; u < kUsers; ++u) inbox_[user_name(u)];  // fixed before any delivery
  }

  static std::string user_name(int u) { return "user-" + std::to_string(u); }

  // Queues n behind the user's earlier notifications; waits while that user has kPerUser
  // waiting. Throws weft::pool_closed once the service is shut down.
  void send(notification n) {
    const std::string user = n.user;
    users_.post(user, [this, n = std::move(n)] { deliver(n); });
  }

  // Delivers everything already sent, then refuses new notifications.
  void shutdown() {
    users_.wait_idle();
    users_.stop();
  }

  // True when every user got each producer's notifications in the order it sent them.
  bool in_order() const {
    for (const auto& [user, got] : inbox_) {
      std::map<int, int> next;  // producer -> the seq expected next
      for (const auto& n : got) {
        if (n.seq != next[n.producer]++) return false;
      }
    }
    return true;
  }
  std::size_t delivered() const {
    std::size_t total = 0;
    for (const auto& [user, got] : inbox_) total += got.size();
    return total;
  }
  weft::keyed_stats stats() const { return users_.stats(); }

 private:
  void deliver(const notification& n) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));  // the push gateway's round trip
    // Only this user's jobs touch its inbox, and the serializer runs them one at a time.
    inbox_.find(n.user)->second.push_back(n);
  }

  std::map<std::string, std::vector<notification>> inbox_;
  weft::keyed<std::string> users_;  // last: its destructor waits for running deliveries
};

}  // namespace

int main() {
  weft::pool pool({.workers = 4, .pinning = weft::pin_policy::none});
  notification_service service(pool);
  {
    std::vector<std::jthread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&service, p] {
        std::vector<int> seq(kUsers, 0);
        for (int i = 0; i < kPerProducer; ++i) {
          const int u = (i * 7 + p * 13) % kUsers;
          service.send({notification_service::user_name(u), p, seq[u]++});
        }
      });
    }
  }  // the producers have joined
  service.shutdown();
  bool refused = false;
  try {
    service.send({notification_service::user_name(0), 0, 0});
  } catch (const weft::pool_closed&) {
    refused = true;
  }

  const std::size_t expected = std::size_t{kProducers} * kPerProducer;
  const weft::keyed_stats s = service.stats();
  const bool order = service.in_order();
  std::printf("delivered %zu notifications to %d users from %d producers, per-user order verified: %s\n",
              service.delivered(), kUsers, kProducers, order ? "yes" : "NO");
  std::printf("stats: submitted %llu, ran %llu, cancelled %llu, rejected %llu\n",
              static_cast<unsigned long long>(s.submitted), static_cast<unsigned long long>(s.ran),
              static_cast<unsigned long long>(s.cancelled), static_cast<unsigned long long>(s.rejected));
  std::printf("late notification after shutdown: %s\n", refused ? "refused" : "ACCEPTED");
  const bool ok = order && refused && service.delivered() == expected && s.submitted == expected &&
                  s.ran == expected && s.cancelled == 0 && s.rejected == 1;
  std::printf("%s\n", ok ? "notification service: ok" : "notification service: FAILED");
  return ok ? 0 : 1;
}
