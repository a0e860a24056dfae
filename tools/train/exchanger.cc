#include "exchanger.h"

namespace train {

namespace {

// Bytes a rank puts on the wire per step as its own message (uplink), by format.
uint64_t uplinkBytes(const svBucketInfo_t& info, uint64_t n, int ranks, svVote_t vote,
                     bool average) {
  const uint64_t words = (n + 63) / 64;
  switch (info.format) {
    case SV_FORMAT_SPARSE:
    case SV_FORMAT_SCALED_SIGNS:
    case SV_FORMAT_SPARSE_VALUES: return info.lastRecordBytes;  // follows K under adaptive K
    case SV_FORMAT_SIGNS: return 64 + (vote == SV_VOTE_BINARY ? 1 : 2) * words * 8;
    case SV_FORMAT_COUNTS: return 64 + words * 64 * (ranks <= 127 ? 1 : 2);
    case SV_FORMAT_CHUNK_SIGNS:  // its messages to the W owners; fp32 on averaging exchanges
      return average ? 64 + 4 * n : 64 + ranks * (2 * info.chunk / 64 + 1) * 8;
    default: return 64 + 4 * n;
  }
}

}  // namespace

void settle(svComm_t comm) {
  TRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  svResult_t verdict = svSuccess;
  signvote::check(svCommGetAsyncError(comm, &verdict), comm);
  if (verdict != svSuccess) throw signvote::Error(verdict, svGetLastError(comm));
}

Exchanger::Exchanger(const std::vector<signvote::Comm>& comms, svBucketConfig_t cfg,
                     const Segments& segments, const std::vector<cudaStream_t>& streams)
    : segments_(segments), W_(comms.size()), streams_(streams), comm0_(comms[0].get()) {
  for (const auto& segment : segments_) {
    n_ += segment.second;
    cfg.count = segment.second;
    for (const auto& c : comms) buckets_.emplace_back(c, cfg);
  }
  for (size_t b = 0; !streams_.empty() && b < buckets_.size(); ++b) {
    wsBytes_.push_back(std::max<size_t>(buckets_[b].workspaceBytes(), 1));
    ws_.push_back(std::make_unique<DeviceArray<char>>(wsBytes_.back()));
  }
}

void Exchanger::lastTotals(svVote_t vote, bool average, uint64_t* up, uint64_t* wire,
                           uint64_t* k) const {
  for (size_t s = 0; s < segments_.size(); ++s) {
    const svBucketInfo_t info = buckets_[s * W_].info();
    *up += uplinkBytes(info, segments_[s].second, static_cast<int>(W_), vote, average);
    *wire += info.lastWireBytes;
    *k += info.lastK;
  }
}

void Exchanger::enqueue(const float* in, float* out) {
  signvote::group([&] {
    for (size_t s = 0; s < segments_.size(); ++s)
      for (size_t r = 0; r < W_; ++r) {
        const size_t b = s * W_ + r;
        const size_t at = r * n_ + segments_[s].first;
        buckets_[b].exchange(in + at, out + at, ws_[b]->p, wsBytes_[b], streams_[r]);
      }
  });
}

void Exchanger::exchange(const std::vector<std::vector<float>>& in,
                         std::vector<std::vector<float>>& out) {
  if (streams_.empty()) {
    signvote::group([&] {
      for (size_t s = 0; s < segments_.size(); ++s)
        for (size_t r = 0; r < W_; ++r)
          buckets_[s * W_ + r].exchange(in[r].data() + segments_[s].first,
                                        out[r].data() + segments_[s].first);
    });
    return;
  }
  if (!staging_) staging_ = std::make_unique<DeviceArray<float>>(2 * W_ * n_);
  float *dIn = staging_->p, *dOut = staging_->p + W_ * n_;
  for (size_t r = 0; r < W_; ++r) {
    // On the rank's stream: a pageable cudaMemcpy may return before its DMA lands, and the
    // non-blocking streams would not wait for it.
    TRAIN_CUDA_CHECK(cudaMemcpyAsync(dIn + r * n_, in[r].data(), n_ * 4,
                                     cudaMemcpyHostToDevice, streams_[r]));
  }
  enqueue(dIn, dOut);
  settle(comm0_);
  for (size_t r = 0; r < W_; ++r)
    TRAIN_CUDA_CHECK(cudaMemcpy(out[r].data(), dOut + r * n_, n_ * 4, cudaMemcpyDeviceToHost));
}

}  // namespace train
