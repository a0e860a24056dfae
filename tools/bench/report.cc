#include "report.h"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace bench {

namespace {
double ratio(const Row& r) {
  return r.wireBytes == 0 ? 0.0 : static_cast<double>(r.denseWireBytes) / r.wireBytes;
}
}  // namespace

void printHeader(const Options& o, const std::string& backendLine) {
  std::printf("# signvote-bench: scheme %s, vote %s, format %s, ranks %d, ", schemeName(o.scheme),
              voteName(o.vote), formatName(o.format), o.ranks);
  if (o.scheme == SV_SCHEME_S3GD_MV || o.scheme == SV_SCHEME_TOPK_EF) {
    if (o.density != 0.0) std::printf("density %g, ", o.density);
    else std::printf("k %llu, ", static_cast<unsigned long long>(o.k));
    if (o.scheme == SV_SCHEME_S3GD_MV) std::printf("rho %g, ", static_cast<double>(o.rho));
  }
  if (o.momentum != 0.0f)
    std::printf("momentum %g, ", static_cast<double>(o.momentum));
  if (o.adaptive)
    std::printf("adaptive K (K column: Kbar; kmin %llu, budget %llu per %u exchanges), ",
                static_cast<unsigned long long>(o.kMin),
                static_cast<unsigned long long>(o.kBudget), o.kWindow);
  if (o.graphLaunches > 0)
    std::printf("cuda graph of the iters launched %d times, ", o.graphLaunches);
  if (o.fallbackBusBW > 0)
    std::printf("dense fallback at %g GB/s busbw and %g us of kernels, ", o.fallbackBusBW,
                o.fallbackKernelUs);
  std::printf("iters %d, warmup %d, check %d, seed %llu\n", o.iters, o.warmup, o.checkIters,
              static_cast<unsigned long long>(o.seed));
  std::printf("# %s\n", backendLine.c_str());
  std::printf("# wire B/rank: modeled bytes each rank sends (ring algorithms, headers included);\n"
              "# ratio: fp32 ring allreduce bytes / wire bytes; time: one exchange of all ranks;\n"
              "# algbw: bucket bytes / time; busbw: algbw * 2(W-1)/W (nccl-tests' allreduce bus\n"
              "# bandwidth, on the uncompressed bytes); dense: an fp32 allreduce of the same\n"
              "# bucket on the same world in this run (the line above says which); speedup:\n"
              "# dense / time; comm: of time, inside the transport's calls (svCommGetTimes:\n"
              "# collectives, barriers, waits for peers; --split 0 or a graph: '-'); kernel: the\n"
              "# rest (the scheme's kernels, or host code on the host backend);\n"
              "# #wrong: output and residual elements that differ from a straightforward\n"
              "# reference (bit for bit).\n");
  std::printf("#%12s %12s %10s %7s %13s %8s %9s %12s %11s %11s %11s %11s %12s %8s %7s\n",
              "size(B)", "count", "K", "format", "wire B/rank", "ratio", "bits/K", "time(us)",
              "kernel(us)", "comm(us)", "algbw(GB/s)", "busbw(GB/s)", "dense(us)", "speedup",
              "#wrong");
}

void printRow(const Row& r) {
  char ratioText[32] = "n/a";
  if (r.wireBytes != 0) std::snprintf(ratioText, sizeof(ratioText), "%.1f", ratio(r));
  char bits[32] = "-";
  if (r.bitsPerKept > 0) std::snprintf(bits, sizeof(bits), "%.2f", r.bitsPerKept);
  char kernel[32] = "-", comm[32] = "-";
  if (r.commUs >= 0) {
    std::snprintf(kernel, sizeof(kernel), "%.1f", r.kernelUs());
    std::snprintf(comm, sizeof(comm), "%.1f", r.commUs);
  }
  std::printf(" %12llu %12llu %10llu %7s %13llu %8s %9s %12.1f %11s %11s %11.3f %11.3f %12.1f "
              "%8.2f %7llu\n",
              static_cast<unsigned long long>(r.bytes), static_cast<unsigned long long>(r.count),
              static_cast<unsigned long long>(r.k), formatName(r.format),
              static_cast<unsigned long long>(r.wireBytes), ratioText, bits, r.timeUs, kernel,
              comm, r.algbwGBs, r.busbwGBs(), r.denseUs, r.denseUs / r.timeUs,
              static_cast<unsigned long long>(r.wrong));
  if (r.modeledUs > 0 || r.modeledDenseUs > 0)
    std::printf("#   link model: compressed %.1f us, dense %.1f us: %s\n", r.modeledUs,
                r.modeledDenseUs, r.denseFallback ? "dense fallback, the bucket ran dense"
                                                  : "compression kept");
  std::fflush(stdout);
}

nlohmann::json jsonRecords(const std::vector<Row>& rows) {
  nlohmann::json records = nlohmann::json::array();
  for (const Row& r : rows) {
    records.push_back({{"bytes", r.bytes}, {"count", r.count}, {"k", r.k},
                       {"format", formatName(r.format)}, {"wire_bytes", r.wireBytes},
                       {"dense_wire_bytes", r.denseWireBytes}, {"ratio", ratio(r)},
                       {"bits_per_kept", r.bitsPerKept}, {"time_us", r.timeUs},
                       {"algbw_gbps", r.algbwGBs}, {"busbw_gbps", r.busbwGBs()},
                       {"dense_time_us", r.denseUs},
                       {"speedup", r.denseUs / r.timeUs}, {"wrong", r.wrong}});
    if (r.commUs >= 0) {
      records.back()["comm_us"] = r.commUs;
      records.back()["kernel_us"] = r.kernelUs();
    }
    if (r.modeledUs > 0 || r.modeledDenseUs > 0) {
      records.back()["dense_fallback"] = r.denseFallback;
      records.back()["modeled_us"] = r.modeledUs;
      records.back()["modeled_dense_us"] = r.modeledDenseUs;
    }
  }
  return records;
}

int finishRun(const Options& o, const char* mode, const std::string& backend,
              nlohmann::json records, uint64_t wrong) {
  if (!o.json.empty()) {
    nlohmann::json j;
    j["tool"] = "signvote-bench";
    j["mode"] = mode;
    j["backend"] = backend;
    j["scheme"] = schemeName(o.scheme);
    j["vote"] = voteName(o.vote);
    j["ranks"] = o.ranks;
    j["density"] = o.density;
    j["k"] = o.k;
    j["rho"] = o.rho;
    j["momentum"] = o.momentum;
    if (o.adaptive)
      j["adaptive_k"] = {{"kmin", o.kMin}, {"kbudget", o.kBudget}, {"kwindow", o.kWindow}};
    if (o.fallbackBusBW > 0)
      j["fallback"] = {{"link_busbw_gbps", o.fallbackBusBW}, {"kernel_us", o.fallbackKernelUs}};
    j["iters"] = o.iters;
    j["cudagraph"] = o.graphLaunches;
    j["split"] = o.split;
    j["warmup"] = o.warmup;
    j["check"] = o.checkIters;
    j["seed"] = o.seed;
    j["version"] = SIGNVOTE_VERSION_CODE;
    j["records"] = std::move(records);
    std::ofstream f(o.json);
    f << j.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "signvote-bench: cannot write %s\n", o.json.c_str());
      return 3;
    }
  }
  std::printf("# wrong elements: %llu %s\n", static_cast<unsigned long long>(wrong),
              wrong == 0 ? "OK" : "FAILED");
  return wrong == 0 ? 0 : 1;
}

}  // namespace bench
