// runtime/core/producers.cpp: producer slots (protocol P1-P4 in producers.hpp).
#include "core/producers.hpp"

#include <algorithm>
#include <new>
#include <utility>

namespace weft::detail {

constinit thread_local std::uint64_t tls_producer_serial = 0;
constinit thread_local producer_slot* tls_producer_slot = nullptr;

namespace {

// relaxed: only uniqueness matters (P4).
std::atomic<std::uint64_t> next_serial{1};

// Set when this thread's held_slots was destroyed: a submission from a later thread_local
// destructor then takes a transient slot, given back as it leaves the gate (P4).
constinit thread_local bool tls_slots_gone = false;

// The slots this thread holds, one per pool it submitted to; given back at thread exit (P1).
struct held_slots {
  std::vector<std::pair<std::uint64_t, std::shared_ptr<producer_slot>>> slots;
  ~held_slots() {
    tls_slots_gone = true;
    tls_producer_serial = 0;
    tls_producer_slot = nullptr;
    // release: P1, pairs with take_slot's acquire CAS; only `owned` is touched (P3).
    for (auto& held : slots) held.second->owned.store(false, std::memory_order_release);
  }
};
thread_local held_slots tls_held;

}  // namespace

producer_registry::producer_registry(injection_queue& queue)
    : queue_(queue), serial_(next_serial.fetch_add(1, std::memory_order_relaxed)) {}  // relaxed: see next_serial

producer_registry::~producer_registry() {
  // P3. No lock: nobody submits to a pool being destroyed; in a forked child the mutex may be
  // held by a thread the child does not have.
  for (const auto& s : owned_) {
    s->token.reset();
    s->retired.store(true, std::memory_order_release);  // release: pairs with mine_slow's acquire
  }
}

std::size_t producer_registry::slots() const {
  std::lock_guard lock(mu_);
  return owned_.size();
}

producer_slot& producer_registry::mine_slow() {
  if (!tls_slots_gone) {
    auto& held = tls_held.slots;
    // P3: forget the slots of pools that are gone. acquire: pairs with the destructor's
    // release, which follows its reset of the token (we may free the slot, token included).
    std::erase_if(held, [](const auto& h) { return h.second->retired.load(std::memory_order_acquire); });
    for (const auto& [serial, slot] : held) {
      if (serial == serial_) {
        tls_producer_serial = serial_;
        tls_producer_slot = slot.get();
        return *slot;
      }
    }
  }
  std::shared_ptr<producer_slot> slot = take_slot();
  if (tls_slots_gone) {  // P4: for this submission only; nothing caches it
    slot->transient = true;
    return *slot;  // the registry keeps it alive
  }
  try {
    tls_held.slots.emplace_back(serial_, slot);
  } catch (...) {
    slot->owned.store(false, std::memory_order_release);  // release: P1, as in ~held_slots
    throw;
  }
  tls_producer_serial = serial_;
  tls_producer_slot = slot.get();
  return *slot;
}

std::shared_ptr<producer_slot> producer_registry::take_slot() {
  std::lock_guard lock(mu_);
  for (const auto& s : owned_) {
    bool free = false;
    // acquire: P1, pairs with the release store of the slot's previous holder.
    if (s->owned.compare_exchange_strong(free, true, std::memory_order_acquire, std::memory_order_relaxed)) return s;
  }
  auto s = std::make_shared<producer_slot>();
  s->token.emplace(queue_);
  if (!s->token->valid()) throw std::bad_alloc();  // moodycamel could not allocate its producer
  owned_.push_back(s);  // may throw: nothing is linked yet
  s->next = head_.load(std::memory_order_relaxed);  // relaxed: head_ is written only under mu_
  head_.store(s.get(), std::memory_order_seq_cst);  // seq_cst: P2
  return s;
}

}  // namespace weft::detail
