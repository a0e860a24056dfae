// signvote-bench --mode kernels: per-kernel device times of the GPU path (kernels/), each
// checked bit for bit against lib/reference, with a device-to-device copy of the same bytes
// timed in the same run as the yardstick.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "link_model.h"
#include "options.h"

namespace bench {

struct KernelRow {
  std::string kernel;
  uint64_t n = 0, k = 0;
  int ranks = 1;
  double ms = 0;         // median over the timed iterations (CUDA events)
  double bytes = 0;      // bytes the kernel must move at least (the GB/s numerator)
  double gbps = 0;       // bytes / ms
  double copyGBs = 0;    // measured D2D copy of 4N bytes, read + written bytes / time
  double reads = 0;      // ms / (time to read 4N bytes at the copy rate)
  uint64_t checked = 0;  // elements or words compared with the host reference
  uint64_t wrong = 0;    // of those, how many differ
  // pipeline rows: bytes one rank sends (ring allgather of its record; fp32 ring allreduce)
  // and the step model on each link of --links
  double wireBytes = 0, denseWireBytes = 0;
  std::vector<std::pair<std::string, Modeled>> models;
};

// True when a CUDA device is usable; *why says which (or why not).
bool cudaDevicePresent(std::string* why);

// Runs the kernel sweep. Throws std::runtime_error on a CUDA failure.
std::vector<KernelRow> runKernelMode(const Options& o);

void printKernelHeader(const Options& o, const std::string& backendLine);
void printKernelRow(const KernelRow& r);
// One JSON record per row (report.h: finishRun writes them).
nlohmann::json kernelRecords(const std::vector<KernelRow>& rows);

}  // namespace bench
