#include "common/process/signals.h"

#include <signal.h>

namespace certfleet::common {

std::thread HandleTerminationSignals(std::function<void(int signal)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return std::thread([set, on_signal = std::move(on_signal)] {
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    on_signal(sig);
  });
}

}  // namespace certfleet::common
