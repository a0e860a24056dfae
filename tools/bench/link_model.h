// The link model of signvote-bench --mode kernels (issue 5): what one training step's exchange
// would cost on a given link, from the measured per-rank GPU pipeline and the bytes each rank
// sends. Modeled, not measured: it leaves out latency, overlap and the transport's own kernels.
#pragma once

#include <string>
#include <vector>

namespace bench {

struct Link {
  std::string name;
  double bytesPerSec;  // bus bandwidth one rank's traffic gets (nccl-tests' busbw)
};

// "nvlink8" (8xH100 NVLink ring, ~360 GB/s busbw), "ndr" (NDR InfiniBand, ~46 GB/s per NIC),
// "100gbe" (~12 GB/s), or "<x>gbps" (x Gbit/s); comma-separated. Throws std::invalid_argument
// naming a bad entry.
std::vector<Link> parseLinks(const std::string& list);

struct Modeled {
  double compressedMs;  // the per-rank pipeline, then its wire bytes at the link rate
  double denseMs;       // an fp32 ring allreduce's wire bytes at the link rate
  double breakEvenGBs;  // link bandwidth above which dense is faster (GB/s; 0: never faster)
};

// pipelineMs: measured per-rank compute of the compressed exchange; wireBytes and
// denseWireBytes: what one rank sends with ring algorithms (svBucketInfo_t's convention).
inline Modeled modelStep(double pipelineMs, double wireBytes, double denseWireBytes,
                         double bytesPerSec) {
  Modeled m;
  m.compressedMs = pipelineMs + 1e3 * wireBytes / bytesPerSec;
  m.denseMs = 1e3 * denseWireBytes / bytesPerSec;
  // pipeline + wire / B < dense / B  <=>  B < (dense - wire) / pipeline
  m.breakEvenGBs = denseWireBytes > wireBytes && pipelineMs > 0
                       ? (denseWireBytes - wireBytes) / (pipelineMs * 1e-3) / 1e9
                       : 0.0;
  return m;
}

}  // namespace bench
