// SIGNVOTE_* environment parameters, parsed once per process.
#pragma once

namespace signvote::detail {

enum class LogLevel { kNone = 0, kWarn = 1, kInfo = 2 };

// SIGNVOTE_DEBUG = NONE (default) | WARN (print every error text) | INFO (also trace frames).
LogLevel logLevel();

}  // namespace signvote::detail
