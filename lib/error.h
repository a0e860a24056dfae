// Error reporting inside the library: one check-macro family (NCCL's habit). SVCHECK returns
// early and, under SIGNVOTE_DEBUG=INFO, logs one "file:line -> code" line per frame.
#pragma once

#include <mutex>

#include "signvote/signvote.h"

namespace signvote::detail {

// An error text in a fixed buffer (longer texts are cut): storing one never allocates, so an
// error, out of memory included, can always be reported.
class ErrorText {
 public:
  void set(const char* text) noexcept;
  const char* c_str() const noexcept { return text_; }

 private:
  char text_[1024] = "";
};

// An ErrorText that several threads may set and read: a communicator's texts, since
// svCommGetAsyncError and svCommAbort may come from a watchdog thread while another thread
// drives the communicator. Readers take a copy.
class SharedText {
 public:
  void set(const char* text) noexcept {
    std::lock_guard<std::mutex> g(m_);
    text_.set(text);
  }
  void copyTo(ErrorText* out) const noexcept {
    std::lock_guard<std::mutex> g(m_);
    out->set(text_.c_str());
  }

 private:
  mutable std::mutex m_;
  ErrorText text_;
};

// Formats the text, stores it as the thread's last error (and the comm's, when comm is live)
// and returns code. The text must name the call, the field and the value. Never allocates.
svResult_t fail(svComm_t comm, svResult_t code, const char* fmt, ...) noexcept
    __attribute__((format(printf, 3, 4)));

// Stores text as the last error of the thread and of comm (may be null), without formatting.
void setLastError(svComm_t comm, const char* text) noexcept;
const char* threadLastError() noexcept;

void traceFrame(const char* file, int line, svResult_t code);

}  // namespace signvote::detail

#define SVCHECK(call)                                                       \
  do {                                                                      \
    svResult_t sv_check_res_ = (call);                                      \
    if (sv_check_res_ != svSuccess) {                                       \
      ::signvote::detail::traceFrame(__FILE__, __LINE__, sv_check_res_);    \
      return sv_check_res_;                                                 \
    }                                                                       \
  } while (0)
