#include "error.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "env.h"
#include "handles.h"

namespace signvote::detail {

namespace {
thread_local ErrorText tlsLastError;
thread_local ErrorText tlsCommText;  // svGetLastError(comm)'s copy for this thread
}

void ErrorText::set(const char* text) noexcept {
  if (text == text_) return;
  std::strncpy(text_, text, sizeof(text_) - 1);
  text_[sizeof(text_) - 1] = '\0';
}

const char* threadLastError() noexcept { return tlsLastError.c_str(); }

void setLastError(svComm_t comm, const char* text) noexcept {
  tlsLastError.set(text);
  if (comm != nullptr && isLiveComm(comm)) comm->lastError.set(text);
  if (logLevel() >= LogLevel::kWarn) std::fprintf(stderr, "signvote WARN %s\n", text);
}

svResult_t fail(svComm_t comm, svResult_t code, const char* fmt, ...) noexcept {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n >= 0 && static_cast<size_t>(n) < sizeof(buf))
    std::snprintf(buf + n, sizeof(buf) - n, " [%s]", svGetErrorString(code));
  setLastError(comm, buf);
  return code;
}

void traceFrame(const char* file, int line, svResult_t code) {
  if (logLevel() >= LogLevel::kInfo)
    std::fprintf(stderr, "signvote INFO %s:%d -> %d (%s)\n", file, line, static_cast<int>(code),
                 svGetErrorString(code));
}

}  // namespace signvote::detail

extern "C" const char* svGetErrorString(svResult_t result) {
  switch (result) {
    case svSuccess: return "no error";
    case svUnhandledCudaError: return "unhandled cuda error (run with SIGNVOTE_DEBUG=INFO for details)";
    case svSystemError: return "unhandled system error (allocation, OS call)";
    case svInternalError: return "internal error - please report this issue";
    case svInvalidArgument: return "invalid argument (run with SIGNVOTE_DEBUG=WARN for details)";
    case svInvalidUsage: return "invalid usage (run with SIGNVOTE_DEBUG=WARN for details)";
    case svRemoteError: return "remote process exited or there was a network error";
    case svInProgress: return "operation in progress";
    case svTimeout: return "operation timed out";
    case svNonFiniteInput: return "non-finite input on a rank (see svGetLastError for the rank)";
    case svMismatch: return "ranks made mismatched calls (see svGetLastError for rank and field)";
    case svCorruptInput: return "a peer's message failed validation";
    default: return "unknown result code";
  }
}

extern "C" const char* svGetLastError(svComm_t comm) {
  using namespace signvote::detail;
  if (comm == nullptr || !isLiveComm(comm)) return tlsLastError.c_str();
  comm->lastError.copyTo(&tlsCommText);
  return tlsCommText.c_str();
}
