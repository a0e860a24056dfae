#include "wire_mode.h"

#include <cstdio>

#include "signvote/signvote.hpp"

namespace bench {
namespace {

constexpr svScheme_t kSchemes[] = {SV_SCHEME_DENSE,  SV_SCHEME_SIGNSGD_MV, SV_SCHEME_S3GD_MV,
                                   SV_SCHEME_EF_SIGN, SV_SCHEME_TOPK_EF,   SV_SCHEME_DGS,
                                   SV_SCHEME_LIEC};

void printHeader(const Options& o) {
  std::printf("# signvote-bench --mode wire: ranks %d, density %g, vote %s; no device, no "
              "exchange\n# wire(B): what one rank sends per exchange as planned "
              "(svBucketInfo_t.wireBytes: an allgather of R bytes sends (W-1)R, an allreduce "
              "of B bytes 2(W-1)B/W); dense(B): an fp32 ring allreduce of the bucket.\n# Per "
              "link: wire and dense time at its busbw; budget: dense - wire, the per-rank "
              "kernel time under which the compressed step is still faster (negative: never); "
              "bound: dense / wire, the speedup with free kernels. Latency is left out.\n",
              o.ranks, o.density, voteName(o.vote));
  std::printf("#%11s %7s %11s %10s %4s %13s %13s", "scheme", "format", "N", "K", "W", "wire(B)",
              "dense(B)");
  for (const Link& l : o.links)
    std::printf(" | %-8s %9s %9s %10s %7s", l.name.c_str(), "wire(ms)", "dense(ms)",
                "budget(ms)", "bound");
  std::printf("\n");
}

void printRow(const WireRow& r) {
  std::printf(" %11s %7s %11llu %10llu %4d %13llu %13llu", schemeName(r.scheme),
              formatName(r.format), static_cast<unsigned long long>(r.n),
              static_cast<unsigned long long>(r.k), r.ranks,
              static_cast<unsigned long long>(r.wireBytes),
              static_cast<unsigned long long>(r.denseWireBytes));
  for (const auto& [link, m] : r.models)
    std::printf(" | %-8s %9.3f %9.3f %10.3f %7.1f", link.c_str(), m.compressedMs, m.denseMs,
                m.denseMs - m.compressedMs, m.denseMs / m.compressedMs);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

std::vector<WireRow> runWireMode(const Options& o) {
  printHeader(o);
  const std::vector<signvote::Comm> comms = signvote::Comm::loopback(o.ranks);
  std::vector<WireRow> rows;
  for (uint64_t n : o.counts) {
    for (svScheme_t scheme : kSchemes) {
      Options so = o;
      so.scheme = scheme;
      if (scheme == SV_SCHEME_DGS && so.momentum == 0.0f) so.momentum = 0.9f;
      // One rank's bucket: the plan (and so the bytes) is the same on every rank.
      const signvote::Bucket bucket(comms[0], bucketConfig(so, n));
      const svBucketInfo_t info = bucket.info();
      WireRow r{scheme, info.format, n, info.k, o.ranks, info.wireBytes, info.denseWireBytes, {}};
      for (const Link& l : o.links)
        r.models.emplace_back(l.name, modelStep(0.0, static_cast<double>(r.wireBytes),
                                                static_cast<double>(r.denseWireBytes),
                                                l.bytesPerSec));
      printRow(r);
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

nlohmann::json wireRecords(const std::vector<WireRow>& rows) {
  nlohmann::json records = nlohmann::json::array();
  for (const WireRow& r : rows) {
    nlohmann::json j = {{"scheme", schemeName(r.scheme)}, {"format", formatName(r.format)},
                        {"n", r.n}, {"k", r.k}, {"ranks", r.ranks},
                        {"wire_bytes", r.wireBytes}, {"dense_wire_bytes", r.denseWireBytes}};
    for (const auto& [link, m] : r.models)
      j["modeled"].push_back({{"link", link}, {"wire_ms", m.compressedMs},
                              {"dense_ms", m.denseMs},
                              {"budget_ms", m.denseMs - m.compressedMs}});
    records.push_back(j);
  }
  return records;
}

}  // namespace bench
