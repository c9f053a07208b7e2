#include "controller/ca/command/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace certfleet::controller::ca {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kChunk = 64 * 1024;
// How often an exited-or-not check runs once the program has closed its outputs.
constexpr int kWaitSliceMs = 10;

std::string Errno(int err) {
  char buf[256];
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

absl::Status MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", Errno(errno)));
  }
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return absl::OkStatus();
}

void SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// posix_spawn's file actions and attributes, destroyed with the object.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  // 0 or an errno value.
  int Prepare(int stdin_fd, int stdout_fd, int stderr_fd) {
    int rc = 0;
    // dup2 clears close-on-exec on the copies; the originals (O_CLOEXEC) vanish at exec.
    if ((rc = posix_spawn_file_actions_adddup2(&actions_, stdin_fd, STDIN_FILENO)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions_, stdout_fd, STDOUT_FILENO)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions_, stderr_fd, STDERR_FILENO)) != 0 ||
        (rc = posix_spawn_file_actions_addclosefrom_np(&actions_, STDERR_FILENO + 1)) != 0) {
      return rc;
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigset_t all;
    sigfillset(&all);
    if ((rc = posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                   POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr_, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr_, &empty)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr_, &all)) != 0) {
      return rc;
    }
    return 0;
  }

  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// Blocks SIGPIPE in the calling thread while it lives, so that writing to a pipe the program
// closed fails with EPIPE instead of killing the controller; consumes the SIGPIPE such a write
// left pending before restoring the mask.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (raised_) {
      struct timespec zero {};
      while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

  void Raised() { raised_ = true; }

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool raised_ = false;
};

int RemainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

}  // namespace

absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("no program to run");
  }
  Fd in_read, in_write, out_read, out_write, err_read, err_write;
  if (absl::Status s = MakePipe(&in_read, &in_write); !s.ok()) return s;
  if (absl::Status s = MakePipe(&out_read, &out_write); !s.ok()) return s;
  if (absl::Status s = MakePipe(&err_read, &err_write); !s.ok()) return s;

  std::vector<char*> argv;
  for (const std::string& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : spec.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  {
    SpawnSetup setup;
    if (int rc = setup.Prepare(in_read.get(), out_write.get(), err_write.get()); rc != 0) {
      return absl::InternalError(
          absl::StrCat("preparing to start ", spec.argv[0], ": ", Errno(rc)));
    }
    int rc = ::posix_spawn(&pid, spec.argv[0].c_str(), setup.actions(), setup.attr(), argv.data(),
                           envp.data());
    if (rc != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot start ", spec.argv[0], ": ", Errno(rc)));
    }
  }
  in_read.Close();
  out_write.Close();
  err_write.Close();
  SetNonBlocking(in_write.get());
  SetNonBlocking(out_read.get());
  SetNonBlocking(err_read.get());

  SubprocessResult result;
  const auto deadline = SteadyClock::now() + absl::ToChronoNanoseconds(spec.timeout);
  bool killed = false;
  auto kill_group = [&](SubprocessResult::End why) {
    ::kill(-pid, SIGKILL);
    killed = true;
    result.end = why;
  };

  {
    SigpipeGuard sigpipe;
    size_t written = 0;
    if (spec.stdin_data.empty()) in_write.Close();
    char buf[kChunk];
    while (!killed && (out_read.open() || err_read.open())) {
      const int wait_ms = RemainingMs(deadline);
      if (wait_ms == 0) {
        kill_group(SubprocessResult::End::kTimedOut);
        break;
      }
      pollfd fds[3];
      nfds_t n = 0;
      int in_index = -1, out_index = -1, err_index = -1;
      if (in_write.open()) {
        in_index = static_cast<int>(n);
        fds[n++] = {in_write.get(), POLLOUT, 0};
      }
      if (out_read.open()) {
        out_index = static_cast<int>(n);
        fds[n++] = {out_read.get(), POLLIN, 0};
      }
      if (err_read.open()) {
        err_index = static_cast<int>(n);
        fds[n++] = {err_read.get(), POLLIN, 0};
      }
      int ready = ::poll(fds, n, wait_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        kill_group(SubprocessResult::End::kTimedOut);
        ::waitpid(pid, nullptr, 0);
        return absl::InternalError(absl::StrCat("poll: ", Errno(err)));
      }
      if (in_index >= 0 && fds[in_index].revents != 0) {
        if (fds[in_index].revents & (POLLERR | POLLHUP | POLLNVAL)) {
          in_write.Close();  // the program closed its stdin: it has what it wanted
        } else {
          size_t chunk = std::min(kChunk, spec.stdin_data.size() - written);
          ssize_t w = ::write(in_write.get(), spec.stdin_data.data() + written, chunk);
          if (w > 0) {
            written += static_cast<size_t>(w);
            if (written == spec.stdin_data.size()) in_write.Close();
          } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            if (errno == EPIPE) sigpipe.Raised();
            in_write.Close();
          }
        }
      }
      for (auto [index, fd, sink] : {std::tuple{out_index, &out_read, &result.out},
                                     std::tuple{err_index, &err_read, &result.err}}) {
        if (index < 0 || fds[index].revents == 0 || killed) continue;
        ssize_t r = ::read(fd->get(), buf, sizeof(buf));
        if (r > 0) {
          if (sink->size() + static_cast<size_t>(r) > spec.max_output_bytes) {
            sink->append(buf, spec.max_output_bytes - sink->size());
            kill_group(SubprocessResult::End::kOutputTooLarge);
          } else {
            sink->append(buf, static_cast<size_t>(r));
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          fd->Close();
        }
      }
    }
  }
  in_write.Close();
  out_read.Close();
  err_read.Close();

  // The outputs are closed; wait for the exit without reaping, so that the process group id
  // cannot be reused before its stragglers are killed.
  while (!killed) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (info.si_pid == pid) break;
    const int wait_ms = RemainingMs(deadline);
    if (wait_ms == 0) {
      kill_group(SubprocessResult::End::kTimedOut);
      break;
    }
    ::poll(nullptr, 0, std::min(wait_ms, kWaitSliceMs));
  }
  if (!killed) ::kill(-pid, SIGKILL);  // stray background processes of the program

  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited != pid) {
    return absl::InternalError(absl::StrCat("waiting for ", spec.argv[0], ": ", Errno(errno)));
  }
  if (killed) return result;
  if (WIFEXITED(status)) {
    result.end = SubprocessResult::End::kExited;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.end = SubprocessResult::End::kSignaled;
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace certfleet::controller::ca
