// signvote-bench --mode wire: what each scheme's planned exchange puts on the wire
// (svBucketInfo_t.wireBytes, the ring convention) and what those bytes cost on each link of
// --links, against an fp32 ring allreduce of the same bucket. It needs no device and runs no
// exchange: this is the communication term of the link model alone. The compressed step also
// pays its kernels, so "budget" is the per-rank kernel time under which it still beats dense.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "link_model.h"
#include "options.h"

namespace bench {

struct WireRow {
  svScheme_t scheme;
  svFormat_t format;
  uint64_t n = 0, k = 0;
  int ranks = 1;
  uint64_t wireBytes = 0, denseWireBytes = 0;
  std::vector<std::pair<std::string, Modeled>> models;  // modelStep with no kernel time
};

// Every scheme at every --counts entry over o.ranks ranks (its bucket planned on the host
// backend, then destroyed), printed as it goes. Throws signvote::Error when the library refuses
// a bucket.
std::vector<WireRow> runWireMode(const Options& o);
// One JSON record per row (report.h: finishRun writes them).
nlohmann::json wireRecords(const std::vector<WireRow>& rows);

}  // namespace bench
