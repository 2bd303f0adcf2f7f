// runtime/capi/c_errors.cpp: the C API's status codes, weft_last_error, weft_task_fail and
// the mapping of C++ exceptions to statuses (the one place that knows it).
//
// | exception (most derived first)      | status                 |
// |-------------------------------------|------------------------|
// | capi::c_failure (a user callback)   | WEFT_TASK_FAILED       |
// | std::bad_alloc                      | WEFT_NO_MEMORY         |
// | weft::pool_closed                   | WEFT_SHUT_DOWN         |
// | weft::queue_full                    | WEFT_QUEUE_FULL        |
// | weft::task_cancelled                | WEFT_CANCELLED         |
// | std::logic_error (invalid_argument) | WEFT_INVALID_ARGUMENT  |
// | anything else                       | WEFT_SYSTEM_ERROR      |
// The message of the exception is kept for weft_last_error. Nothing here allocates.
#include <cstdio>
#include <new>
#include <stdexcept>
#include <system_error>

#include "capi/capi.hpp"
#include "weft/errors.hpp"

namespace weft::capi {
namespace {
// The last failure's message on this thread; plain bytes, so storing one never allocates.
constinit thread_local char tls_last_error[512] = {};
}  // namespace

constinit thread_local task_frame* tls_frame = nullptr;

c_failure::c_failure(const char* prefix, const char* text) noexcept {
  std::snprintf(message_, sizeof message_, "%s%s", prefix, text);
}

weft_status fail(weft_status status, const char* fn, const char* message) noexcept {
  std::snprintf(tls_last_error, sizeof tls_last_error, "%s: %s", fn, message);
  return status;
}

weft_status map_current_exception(const char* fn) noexcept {
  try {
    throw;
  } catch (const c_failure& e) {
    return fail(WEFT_TASK_FAILED, fn, e.what());
  } catch (const std::bad_alloc&) {
    return fail(WEFT_NO_MEMORY, fn, "out of memory");
  } catch (const pool_closed& e) {
    return fail(WEFT_SHUT_DOWN, fn, e.what());
  } catch (const queue_full& e) {
    return fail(WEFT_QUEUE_FULL, fn, e.what());
  } catch (const task_cancelled& e) {
    return fail(WEFT_CANCELLED, fn, e.what());
  } catch (const std::logic_error& e) {
    return fail(WEFT_INVALID_ARGUMENT, fn, e.what());
  } catch (const std::exception& e) {
    return fail(WEFT_SYSTEM_ERROR, fn, e.what());
  } catch (...) {
    return fail(WEFT_SYSTEM_ERROR, fn, "an exception not derived from std::exception");
  }
}

}  // namespace weft::capi

extern "C" {

const char* weft_status_string(weft_status status) {
  switch (status) {
    case WEFT_OK: return "ok";
    case WEFT_INVALID_ARGUMENT: return "invalid argument";
    case WEFT_NO_MEMORY: return "no memory";
    case WEFT_QUEUE_FULL: return "queue full";
    case WEFT_SHUT_DOWN: return "shut down";
    case WEFT_CANCELLED: return "cancelled";
    case WEFT_TIMED_OUT: return "timed out";
    case WEFT_TASK_FAILED: return "task failed";
    case WEFT_SYSTEM_ERROR: return "system error";
  }
  return "unknown status";
}

const char* weft_last_error(void) { return weft::capi::tls_last_error; }

weft_status weft_task_fail(const char* message) {
  using namespace weft::capi;
  task_frame* f = tls_frame;
  if (f == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_task_fail", "not called from inside a weft callback");
  if (!f->failed) {
    f->failed = true;
    std::snprintf(f->message, sizeof f->message, "%s", message != nullptr ? message : "task failed");
  }
  return WEFT_OK;
}

}  // extern "C"
