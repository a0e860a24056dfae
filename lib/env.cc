#include "env.h"

#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace signvote::detail {

LogLevel logLevel() {
  static const LogLevel level = [] {
    const char* v = std::getenv("SIGNVOTE_DEBUG");
    if (v == nullptr) return LogLevel::kNone;
    if (strcasecmp(v, "INFO") == 0) return LogLevel::kInfo;
    if (strcasecmp(v, "WARN") == 0) return LogLevel::kWarn;
    return LogLevel::kNone;
  }();
  return level;
}

}  // namespace signvote::detail
