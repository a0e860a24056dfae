// Table and JSON output of signvote-bench.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "options.h"

namespace bench {

struct Row {
  uint64_t bytes, count, k;
  svFormat_t format;
  uint64_t wireBytes, denseWireBytes;
  double bitsPerKept;
  double timeUs, algbwGBs;
  uint64_t wrong;
  double denseUs = 0;  // the dense scheme (fp32 allreduce) on the same world and data
  double commUs = -1;  // of timeUs, inside the transport's calls (svCommGetTimes); < 0: unknown
  int nranks = 1;
  // --fallback-link: the library's link model (svBucketInfo_t), and whether the bucket went dense.
  bool denseFallback = false;
  double modeledUs = 0, modeledDenseUs = 0;
  // nccl-tests' bus bandwidth of an allreduce of the bucket's uncompressed bytes.
  double busbwGBs() const { return algbwGBs * 2.0 * (nranks - 1) / nranks; }
  double kernelUs() const { return timeUs - commUs; }
};

void printHeader(const Options& o, const std::string& backendLine);
void printRow(const Row& r);
// One JSON record per row.
nlohmann::json jsonRecords(const std::vector<Row>& rows);

// The end of every run: writes the run's settings and `records` to o.json when it is set,
// prints the "# wrong elements" line and returns the exit status (0; 1 when an element is
// wrong; 3 when the JSON file cannot be written).
int finishRun(const Options& o, const char* mode, const std::string& backend,
              nlohmann::json records, uint64_t wrong);

}  // namespace bench
