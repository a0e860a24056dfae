// Opt-in timing of a world's transport calls (svConfig_t.timing, svCommGetTimes): decorators
// that forward every call unchanged and add its duration to a TransportTimes the World keeps,
// so the counts outlive a transport that svCommAbort closes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "device.h"
#include "transport.h"

namespace signvote::detail {

struct TransportTimes {
  uint64_t calls = 0;
  double us = 0;
};

// Host transports: the wall time of each call.
std::unique_ptr<Transport> timedTransport(std::unique_ptr<Transport> inner,
                                          std::shared_ptr<TransportTimes> times);

// Device transports: CUDA events before and after each call on the first local stream, read
// back in settleTimes() or when the ring of pending event pairs is full (waiting at most
// timeoutMs for the oldest, then svTimeout). Calls on a capturing stream are not timed. Null
// with *why when the events cannot be created (on the current device).
std::unique_ptr<DeviceTransport> timedDeviceTransport(std::unique_ptr<DeviceTransport> inner,
                                                      std::shared_ptr<TransportTimes> times,
                                                      unsigned timeoutMs, std::string* why);

}  // namespace signvote::detail
