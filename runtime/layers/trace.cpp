// runtime/layers/trace.cpp: the tracer's rings and its Chrome trace-event JSON writer
// (schema in weft/observer.hpp).
#include "layers/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "core/worker.hpp"

namespace weft::detail {

tracer::tracer(std::string path, unsigned workers) : path_(std::move(path)), rings_(workers) {}

void tracer::add(unsigned w, kind what, const void* id, std::uint32_t extra) noexcept {
  ring& r = rings_[w];
  r.events[r.next % kRing] = record{now_ns(), id, what, extra};
  ++r.next;
}

void tracer::add_external(const void* id) noexcept {
  std::lock_guard lock(external_mu_);
  external_.events[external_.next % kRing] = record{now_ns(), id, kind::submit, 0};
  ++external_.next;
}

namespace {

// The records of a ring, oldest first.
std::vector<tracer::record> in_order(const std::vector<tracer::record>& events, std::uint64_t next) {
  const std::uint64_t n = std::min<std::uint64_t>(next, tracer::kRing);
  std::vector<tracer::record> out;
  out.reserve(n);
  for (std::uint64_t i = next - n; i < next; ++i) out.push_back(events[i % tracer::kRing]);
  return out;
}

struct json_out {
  std::FILE* f;
  bool first = true;
  std::uint64_t t0;
  void event(const char* fmt_body) {
    std::fputs(first ? "\n  " : ",\n  ", f);
    first = false;
    std::fputs(fmt_body, f);
  }
  double us(std::uint64_t ns) const { return static_cast<double>(ns - t0) / 1000.0; }
};

}  // namespace

bool tracer::write(std::string* error) const {
  const unsigned workers = static_cast<unsigned>(rings_.size());
  const unsigned external_tid = workers;  // the submitters' track
  std::vector<std::vector<record>> per(workers + 1);
  for (unsigned w = 0; w < workers; ++w) per[w] = in_order(rings_[w].events, rings_[w].next);
  {
    std::lock_guard lock(external_mu_);
    per[workers] = in_order(external_.events, external_.next);
  }
  std::uint64_t t0 = UINT64_MAX;
  for (const auto& v : per) {
    if (!v.empty()) t0 = std::min(t0, v.front().ns);
  }
  if (t0 == UINT64_MAX) t0 = 0;

  // Slices: per thread, keep only properly nested begin/end pairs (a ring that wrapped may
  // have lost a begin; a worker stopped by the join has no open slice).
  struct slice {
    std::uint64_t b, e;
    const void* id;
    std::uint32_t wait_us;
  };
  std::vector<std::vector<slice>> slices(workers);
  for (unsigned w = 0; w < workers; ++w) {
    std::vector<slice> open;
    for (const record& r : per[w]) {
      if (r.what == kind::begin) open.push_back({r.ns, 0, r.id, r.extra});
      if (r.what == kind::end && !open.empty()) {
        slice s = open.back();
        open.pop_back();
        s.e = r.ns;
        slices[w].push_back(s);
      }
    }
  }
  // Flows: each submission (by task address, in time order) binds to the next begin of the
  // same address on another thread. Addresses are reused after a task is freed, so a
  // submission only binds to a begin that follows it.
  struct point {
    std::uint64_t ns;
    unsigned tid;
  };
  std::map<const void*, std::vector<point>> submits;
  for (unsigned t = 0; t <= workers; ++t) {
    for (const record& r : per[t]) {
      if (r.what == kind::submit) submits[r.id].push_back({r.ns, t});
    }
  }
  std::vector<std::pair<point, point>> flows;
  // "queued tasks": +1 at every submission, -1 at the start of a run bound to one.
  std::vector<std::pair<std::uint64_t, int>> queue_deltas;
  for (unsigned t = 0; t <= workers; ++t) {
    for (const record& r : per[t]) {
      if (r.what == kind::submit) queue_deltas.push_back({r.ns, +1});
    }
  }
  for (unsigned w = 0; w < workers; ++w) {
    for (const slice& s : slices[w]) {
      auto it = submits.find(s.id);
      if (it == submits.end()) continue;
      // The latest submission of this address before the run began.
      const point* best = nullptr;
      for (const point& p : it->second) {
        if (p.ns <= s.b && (best == nullptr || p.ns > best->ns)) best = &p;
      }
      if (best == nullptr) continue;
      queue_deltas.push_back({s.b, -1});
      if (best->tid != w) flows.push_back({*best, {s.b, w}});
    }
  }

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path_.c_str(), "w"), &std::fclose);
  if (!f) {
    if (error != nullptr) *error = "weft: cannot write the trace to '" + path_ + "'";
    return false;
  }
  json_out out{f.get(), true, t0};
  std::fputs("{\"weft_trace_version\": 1, \"displayTimeUnit\": \"ns\", \"traceEvents\": [", f.get());
  char buf[256];
  for (unsigned w = 0; w < workers; ++w) {
    if (rings_[w].pu >= 0) {
      std::snprintf(buf, sizeof buf,
                    R"j({"ph":"M","name":"thread_name","pid":1,"tid":%u,"args":{"name":"weft:%u (PU %d)"}})j", w, w,
                    rings_[w].pu);
    } else {
      std::snprintf(buf, sizeof buf,
                    R"j({"ph":"M","name":"thread_name","pid":1,"tid":%u,"args":{"name":"weft:%u (unpinned)"}})j", w, w);
    }
    out.event(buf);
  }
  std::snprintf(buf, sizeof buf, R"j({"ph":"M","name":"thread_name","pid":1,"tid":%u,"args":{"name":"submitters"}})j",
                external_tid);
  out.event(buf);
  for (unsigned w = 0; w < workers; ++w) {
    for (const slice& s : slices[w]) {
      std::snprintf(buf, sizeof buf, R"j({"ph":"X","name":"task","pid":1,"tid":%u,"ts":%.3f,"dur":%.3f,"args":{"wait_us":%u}})j",
                    w, out.us(s.b), static_cast<double>(s.e - s.b) / 1000.0, s.wait_us);
      out.event(buf);
    }
  }
  std::uint64_t flow_id = 0;
  for (const auto& [from, to] : flows) {
    ++flow_id;
    // A task a worker submitted that another worker ran was stolen (a worker's submissions
    // go to its own deque); one from the submitters' track came through the injection queue.
    const char* name = from.tid < workers ? "steal" : "run";
    std::snprintf(buf, sizeof buf, R"j({"ph":"s","name":"%s","cat":"flow","id":%llu,"pid":1,"tid":%u,"ts":%.3f})j",
                  name, static_cast<unsigned long long>(flow_id), from.tid, out.us(from.ns));
    out.event(buf);
    std::snprintf(buf, sizeof buf,
                  R"j({"ph":"f","bp":"e","name":"%s","cat":"flow","id":%llu,"pid":1,"tid":%u,"ts":%.3f})j", name,
                  static_cast<unsigned long long>(flow_id), to.tid, out.us(to.ns));
    out.event(buf);
  }
  // "parked workers" and "searching workers": counters over the merged records.
  const auto counter = [&](kind up, kind down, const char* name, const char* arg) {
    std::vector<std::pair<std::uint64_t, int>> steps;
    for (unsigned w = 0; w < workers; ++w) {
      for (const record& r : per[w]) {
        if (r.what == up) steps.push_back({r.ns, +1});
        if (r.what == down) steps.push_back({r.ns, -1});
      }
    }
    std::sort(steps.begin(), steps.end());
    int value = 0;
    for (const auto& [ns, d] : steps) {
      value = std::min(static_cast<int>(workers), std::max(0, value + d));  // a wrapped ring may start inside one
      std::snprintf(buf, sizeof buf, R"j({"ph":"C","name":"%s","pid":1,"ts":%.3f,"args":{"%s":%d}})j", name,
                    out.us(ns), arg, value);
      out.event(buf);
    }
  };
  counter(kind::park, kind::unpark, "parked workers", "parked");
  counter(kind::search_on, kind::search_off, "searching workers", "searching");
  // "queued tasks": submitted and not yet started, sampled at most once per 10 us of trace
  // time (the value at the end of each 10 us with a change), so a fine-grained run does
  // not write a counter event per task.
  std::sort(queue_deltas.begin(), queue_deltas.end());
  constexpr std::uint64_t kQueueSampleNs = 10'000;
  long queued = 0;
  for (std::size_t i = 0; i < queue_deltas.size(); ++i) {
    queued = std::max(0L, queued + queue_deltas[i].second);  // a wrapped ring may lose submissions
    const std::uint64_t bucket = queue_deltas[i].first / kQueueSampleNs;
    const bool last_in_bucket = i + 1 == queue_deltas.size() || queue_deltas[i + 1].first / kQueueSampleNs != bucket;
    if (!last_in_bucket) continue;
    std::snprintf(buf, sizeof buf, R"j({"ph":"C","name":"queued tasks","pid":1,"ts":%.3f,"args":{"queued":%ld}})j",
                  out.us(queue_deltas[i].first), queued);
    out.event(buf);
  }
  std::fputs("\n]}\n", f.get());
  if (std::ferror(f.get()) != 0) {
    if (error != nullptr) *error = "weft: writing the trace to '" + path_ + "' failed";
    return false;
  }
  return true;
}

}  // namespace weft::detail
