// The floating-point environment the library computes in.
#pragma once

#include <cfenv>

namespace signvote::detail {

// For its lifetime, this thread computes in the default environment: IEEE round to nearest,
// subnormals kept (x86's FTZ and DAZ, aarch64's FZ, off), every exception masked. A trainer's
// thread may run in another: a shared library built with -ffast-math sets FTZ and DAZ for the
// whole process when it loads, torch.set_flush_denormal(True) does too, feenableexcept turns an
// invalid operation into SIGFPE. The contract's bits (DESIGN.md 1, the GPU's --ftz=false) must
// not depend on that, ranks in processes set up differently must agree (K from a density,
// adaptive K), and an inf - inf that the NaN policy handles must not trap. The caller's
// environment, exception flags included, is back on return: what the library's own arithmetic
// raised does not show in the caller's flags.
class FpEnvGuard {
 public:
  FpEnvGuard() noexcept : saved_(fegetenv(&env_) == 0) { fesetenv(FE_DFL_ENV); }
  ~FpEnvGuard() {
    if (saved_) fesetenv(&env_);
  }
  FpEnvGuard(const FpEnvGuard&) = delete;
  FpEnvGuard& operator=(const FpEnvGuard&) = delete;

 private:
  fenv_t env_;
  bool saved_;
};

}  // namespace signvote::detail
