// tests/watchdog.hpp: run a scenario that may hang or crash in a child process, so that a
// defect fails the test instead of hanging CI or killing the whole test binary.
//
//   const auto r = weft_test::run_in_child([] { ... WEFT_CHILD_CHECK(x == 42); ... }, 30s);
//   EXPECT_TRUE(r.passed()) << "the escape hatch livelocks: " << r.describe();
//
// The child runs the scenario and leaves with _exit(0); a failed WEFT_CHILD_CHECK or an
// exception leaves with a non-zero status after a line on stderr. The parent polls with
// waitpid(WNOHANG) until `limit`, then SIGKILLs the child and reports a hang. A crash (a
// stack overflow's SIGSEGV, an abort) is reported with its signal; AddressSanitizer's
// stack-overflow report ends the child with exit status 1.
//
// Rules for scenarios:
//   - Create pools inside the scenario only: a pool created before fork() is unusable in
//     the child by design (runtime/platform/fork.hpp), and a parent that never starts a thread is
//     what lets ThreadSanitizer start threads in the child at all.
//   - Report failures with WEFT_CHILD_CHECK, not gtest's EXPECT_*: the child's gtest state
//     dies with it. The child leaves with _exit(): no atexit handlers or static
//     destructors of the parent's state run there, nor LeakSanitizer.
// As a backstop the child also arms alarm() a little after `limit` and asks the kernel to
// kill it if the parent dies (a ctest timeout), so no orphan spins on a shared machine.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace weft_test {

struct child_outcome {
  enum class ending { exited, signalled, hung, not_started };
  ending how = ending::not_started;
  int code = 0;  // exit status (exited), signal number (signalled), errno (not_started)
  std::chrono::milliseconds elapsed{0};

  bool passed() const noexcept { return how == ending::exited && code == 0; }
  std::string describe() const {
    const std::string after = " after " + std::to_string(elapsed.count()) + " ms";
    switch (how) {
      case ending::exited:
        return (code == 0 ? std::string("passed") : "failed (exit status " + std::to_string(code) + ")") + after;
      case ending::signalled:
        return std::string("crashed (") + strsignal(code) + ")" + after;
      case ending::hung:
        return "hung (killed by the watchdog)" + after;
      case ending::not_started:
        break;
    }
    return std::string("could not fork: ") + std::strerror(code);
  }
};

// Exit statuses of a failing child (0 is success).
inline constexpr int kChildCheckFailed = 3;
inline constexpr int kChildThrew = 4;

[[noreturn]] inline void child_fail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: child: check failed: %s\n", file, line, what);
  std::fflush(stderr);
  _exit(kChildCheckFailed);
}

#define WEFT_CHILD_CHECK(cond)                                              \
  do {                                                                      \
    if (!(cond)) ::weft_test::child_fail(__FILE__, __LINE__, #cond);        \
  } while (0)

inline child_outcome run_in_child(const std::function<void()>& scenario, std::chrono::seconds limit) {
  using clock = std::chrono::steady_clock;
  child_outcome out;
  std::fflush(nullptr);  // nothing buffered is written twice
  const auto start = clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    out.code = errno;
    return out;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(static_cast<unsigned>(limit.count()) + 10);
    int code = 0;
    try {
      scenario();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: unexpected exception: %s\n", e.what());
      code = kChildThrew;
    } catch (...) {
      std::fprintf(stderr, "child: unexpected exception\n");
      code = kChildThrew;
    }
    std::fflush(nullptr);
    _exit(code);
  }
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      out.code = errno;
      return out;
    }
    if (clock::now() - start >= limit) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      out.how = child_outcome::ending::hung;
      out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
      return out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  if (WIFEXITED(status)) {
    out.how = child_outcome::ending::exited;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.how = child_outcome::ending::signalled;
    out.code = WTERMSIG(status);
  }
  return out;
}

}  // namespace weft_test
