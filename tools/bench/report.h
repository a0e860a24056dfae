// Table and JSON output of signvote-bench.
#pragma once

#include <cstdint>
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
};

void printHeader(const Options& o, const std::string& backendLine);
void printRow(const Row& r);
// Writes every row and the run's settings; false when the file cannot be written.
bool writeJson(const std::string& path, const Options& o, const std::string& backend,
               const std::vector<Row>& rows);

}  // namespace bench
