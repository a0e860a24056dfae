// signvote-bench on the emulated device (emu.h): its collective mode runs SV_BACKEND_CUDA on
// the host twins, but kernel mode times the CUDA kernels themselves, which the emulated device
// does not have, so this stands in for tools/bench/kernel_mode.cc and refuses it.
#include <stdexcept>

#include "kernel_mode.h"

namespace bench {

bool cudaDevicePresent(std::string* why) {
  *why = "the emulated device of tests/emu (host twins of the kernels, no GPU)";
  return true;
}

std::vector<KernelRow> runKernelMode(const Options&) {
  throw std::runtime_error("kernel mode times real CUDA kernels; the emulated device has none");
}

void printKernelHeader(const Options&, const std::string&) {}
void printKernelRow(const KernelRow&) {}
nlohmann::json kernelRecords(const std::vector<KernelRow>&) { return nlohmann::json::array(); }

}  // namespace bench
