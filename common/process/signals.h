#pragma once

#include <functional>
#include <thread>

namespace certfleet::common {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it first in main(), before any
// thread starts, so every thread inherits the mask) and starts a thread that waits for one of
// them and then calls `on_signal` once. The returned thread ends after that call; join it.
std::thread HandleTerminationSignals(std::function<void(int signal)> on_signal);

}  // namespace certfleet::common
