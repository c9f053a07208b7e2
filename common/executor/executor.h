#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace certfleet::common {

// A fixed pool of threads for blocking work (SQLite, signing, key generation) that must not run
// on gRPC callback threads (STYLE.md rule 7).
//
// Thread-safe. Destruction stops accepting work, runs every task already posted, and joins.
class Executor {
 public:
  // Starts `threads` worker threads (at least 1).
  explicit Executor(int threads);
  ~Executor();

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. Tasks may run in any order across threads. Returns false (and drops the
  // task) once shutdown has begun.
  bool Post(std::function<void()> task);

  // Stops accepting work, waits for queued tasks to finish, and joins the threads. Idempotent.
  void Shutdown();

 private:
  void WorkerLoop();

  absl::Mutex mu_;
  std::vector<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  size_t head_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace certfleet::common
