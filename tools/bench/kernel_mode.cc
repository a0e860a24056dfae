#include "kernel_mode.h"

#include <cuda_runtime.h>
#include <curand.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "kernels.h"
#include "reference/schemes.h"
#include "reference/sparse_record.h"
#include "reference/topk.h"
#include "reference/wire.h"

namespace bench {
namespace {

namespace k = signvote::kernels;
namespace ref = signvote::ref;

#define BENCH_CUDA(call)                                                                 \
  do {                                                                                   \
    const cudaError_t bench_e_ = (call);                                                 \
    if (bench_e_ != cudaSuccess)                                                         \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +  \
                               ": " #call ": " + cudaGetErrorString(bench_e_));          \
  } while (0)
#define BENCH_CURAND(call)                                                               \
  do {                                                                                   \
    const curandStatus_t bench_s_ = (call);                                              \
    if (bench_s_ != CURAND_STATUS_SUCCESS)                                               \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +  \
                               ": " #call ": curand status " + std::to_string(bench_s_)); \
  } while (0)

template <class T>
class Dev {
 public:
  explicit Dev(size_t n) : n_(n) { BENCH_CUDA(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T))); }
  ~Dev() { cudaFree(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() const { return p_; }
  std::vector<T> download(size_t count) const {
    std::vector<T> v(count);
    if (count) BENCH_CUDA(cudaMemcpy(v.data(), p_, count * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<T> download() const { return download(n_); }

 private:
  T* p_ = nullptr;
  size_t n_;
};

class Timer {
 public:
  Timer(cudaStream_t s, int warmup, int iters) : s_(s), warmup_(warmup), iters_(iters) {
    BENCH_CUDA(cudaEventCreate(&a_));
    BENCH_CUDA(cudaEventCreate(&b_));
  }
  ~Timer() {
    cudaEventDestroy(a_);
    cudaEventDestroy(b_);
  }
  // Median device time of f(i) over the timed iterations (i counts warm-up ones too, so the
  // caller can rotate inputs).
  template <class F>
  double medianMs(F&& f) {
    std::vector<float> ms;
    for (int i = 0; i < warmup_ + iters_; ++i) {
      BENCH_CUDA(cudaEventRecord(a_, s_));
      f(i);
      BENCH_CUDA(cudaEventRecord(b_, s_));
      BENCH_CUDA(cudaEventSynchronize(b_));
      float m = 0;
      BENCH_CUDA(cudaEventElapsedTime(&m, a_, b_));
      if (i >= warmup_) ms.push_back(m);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  cudaStream_t s_;
  int warmup_, iters_;
  cudaEvent_t a_, b_;
};

uint64_t differentBits(const void* a, const void* b, size_t count, size_t elemBytes) {
  uint64_t wrong = 0;
  const char *pa = static_cast<const char*>(a), *pb = static_cast<const char*>(b);
  for (size_t i = 0; i < count; ++i)
    wrong += std::memcmp(pa + i * elemBytes, pb + i * elemBytes, elemBytes) != 0;
  return wrong;
}

// Under SV_NONFINITE_ERROR with finite normal data no NaN occurs; the comparison is exact.
uint64_t differentFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return differentBits(a.data(), b.data(), a.size(), 4);
}

ref::WireHeader headerTemplate(uint64_t n, uint64_t kk, int rank) {
  ref::WireHeader h{};
  h.magic = ref::kWireMagic;
  h.version = SIGNVOTE_WIRE_VERSION;
  h.rank = static_cast<uint32_t>(rank);
  h.scheme = SV_SCHEME_S3GD_MV;
  h.format = SV_FORMAT_SPARSE;
  h.vote = SV_VOTE_TERNARY;
  h.count = n;
  h.k = kk;
  return h;
}

class SizeRun {
 public:
  SizeRun(const Options& o, uint64_t n, curandGenerator_t gen, cudaStream_t s)
      : o_(o), n_(n), even_(n + (n & 1)), gen_(gen), s_(s), timer_(s, o.warmup, o.iters),
        g0_(even_), g1_(even_), g2_(even_), residual_(even_), acc_(even_), scratch_(even_) {
    for (Dev<float>* d : {&g0_, &g1_, &g2_}) normal(d->get(), 1.0f);
    normal(residual_.get(), 0.3f);
    // The yardstick: a device-to-device copy of the bucket's 4N bytes.
    const double ms = timer_.medianMs([&](int) {
      BENCH_CUDA(cudaMemcpyAsync(acc_.get(), g(0), 4 * n_, cudaMemcpyDeviceToDevice, s_));
    });
    copyGBs_ = 8.0 * n_ / (ms * 1e6);
  }

  KernelRow row(const char* name, uint64_t kk, int ranks, double ms, double bytes) const {
    KernelRow r;
    r.kernel = name;
    r.n = n_;
    r.k = kk;
    r.ranks = ranks;
    r.ms = ms;
    r.bytes = bytes;
    r.gbps = bytes / (ms * 1e6);
    r.copyGBs = copyGBs_;
    r.reads = ms / (4.0 * n_ / (copyGBs_ * 1e6));
    return r;
  }

  void signKernels(std::vector<KernelRow>* rows) {
    const int W = o_.ranks;
    const unsigned planes = o_.vote == SV_VOTE_BINARY ? 1 : 2;
    const uint64_t words = (n_ + 63) / 64;
    Dev<uint64_t> packed(planes * words), recv(uint64_t(W) * planes * words),
        result(planes * words);
    Dev<unsigned long long> nans(1);
    Dev<uint32_t> flags(1);
    BENCH_CUDA(cudaMemsetAsync(nans.get(), 0, 8, s_));
    double ms = timer_.medianMs([&](int i) {
      BENCH_CUDA(k::packSigns(g(i), n_, o_.vote, words, 1, SV_NONFINITE_ERROR, packed.get(),
                              nans.get(), s_));
    });
    KernelRow r = row("pack_signs", 0, 1, ms, 4.0 * n_ + planes * words * 8.0);
    if (o_.checkIters > 0) {
      const std::vector<float> host = g0Host();
      std::vector<uint64_t> expect(planes * words);
      ref::packSigns(host.data(), n_, o_.vote, words, 1, SV_NONFINITE_ERROR, expect.data());
      BENCH_CUDA(k::packSigns(g0_.get(), n_, o_.vote, words, 1, SV_NONFINITE_ERROR,
                              packed.get(), nans.get(), s_));
      BENCH_CUDA(cudaStreamSynchronize(s_));
      r.checked = expect.size();
      r.wrong = differentBits(packed.download().data(), expect.data(), expect.size(), 8);
    }
    rows->push_back(r);

    // W ranks' packed signs of W different gradients (one owner voting over the whole bucket).
    for (int s = 0; s < W; ++s) {
      normal(scratch_.get(), 1.0f);
      BENCH_CUDA(k::packSigns(scratch_.get(), n_, o_.vote, words, 1, SV_NONFINITE_ERROR,
                              recv.get() + uint64_t(s) * planes * words, nans.get(), s_));
    }
    BENCH_CUDA(cudaMemsetAsync(flags.get(), 0, 4, s_));
    ms = timer_.medianMs([&](int) {
      BENCH_CUDA(k::voteSignPlanes(recv.get(), o_.vote, words, W, result.get(), flags.get(), s_));
    });
    r = row("vote_planes", 0, W, ms, (W + 1.0) * planes * words * 8.0);
    if (o_.checkIters > 0) {
      const std::vector<uint64_t> in = recv.download();
      std::vector<uint64_t> expect(planes * words);
      ref::voteSignPlanes(in.data(), o_.vote, words, W, expect.data());
      r.checked = expect.size();
      r.wrong = differentBits(result.download().data(), expect.data(), expect.size(), 8) +
                (flags.download()[0] != 0);
    }
    rows->push_back(r);

    // ef_sign's compression: p = g + e, both planes and the tree-summed scale.
    Dev<uint64_t> efPlanes(2 * words);
    Dev<k::RecordInfo> info(1);
    size_t tb = 0;
    BENCH_CUDA(k::efSignCompress(nullptr, &tb, nullptr, nullptr, n_, SV_NONFINITE_ERROR, nullptr,
                                 nullptr, nullptr, nullptr, s_));
    Dev<char> temp(tb);
    auto compress = [&](const float* gin) {
      BENCH_CUDA(k::efSignCompress(temp.get(), &tb, gin, residual_.get(), n_, SV_NONFINITE_ERROR,
                                   acc_.get(), efPlanes.get(), info.get(), nans.get(), s_));
    };
    ms = timer_.medianMs([&](int i) { compress(g(i)); });
    r = row("ef_sign_compress", 0, 1, ms, 12.0 * n_ + 2.0 * words * 8);
    if (o_.checkIters > 0) {
      const std::vector<float> gHost = g0Host(), eHost = residual_.download(n_);
      std::vector<float> pRef(n_);
      std::vector<uint64_t> planesRef(2 * words);
      float scale = 0.0f;
      ref::efSignCompress(gHost.data(), eHost.data(), n_, SV_NONFINITE_ERROR, pRef.data(),
                          planesRef.data(), &scale);
      compress(g0_.get());
      BENCH_CUDA(cudaStreamSynchronize(s_));
      uint32_t scaleBits;
      std::memcpy(&scaleBits, &scale, 4);
      r.checked = n_ + 2 * words + 1;
      r.wrong = differentFloats(acc_.download(n_), pRef) +
                differentBits(efPlanes.download().data(), planesRef.data(), 2 * words, 8) +
                (static_cast<uint32_t>(info.download()[0].aux) != scaleBits);
    }
    rows->push_back(r);
  }

  void sparseKernels(double density, std::vector<KernelRow>* rows) {
    const int W = o_.ranks;
    const uint64_t kk = static_cast<uint64_t>(std::ceil(density * static_cast<double>(n_)));
    const ref::SparseLayout L = ref::sparseLayout(n_, kk);
    const size_t recWords = 8 + L.payloadWords();
    Dev<uint32_t> sel(kk), entries(kk), flags(W);
    Dev<uint64_t> records(W * recWords);
    Dev<k::TopKStatus> status(1);
    Dev<k::RecordInfo> info(1);
    Dev<int32_t> votes(n_);
    Dev<float> out(n_), committed(n_);
    size_t topkBytes = 0, encBytes = 0, decBytes = 0;
    BENCH_CUDA(k::accumulateTopK(nullptr, &topkBytes, nullptr, nullptr, 1.0f, n_, kk,
                                 SV_NONFINITE_ERROR, nullptr, nullptr, nullptr, s_));
    BENCH_CUDA(k::encodeSparse(nullptr, &encBytes, L, nullptr, nullptr, nullptr, nullptr,
                               nullptr, s_));
    BENCH_CUDA(k::addSparseVotes(nullptr, &decBytes, L, nullptr, recWords * 8, W, nullptr,
                                 nullptr, s_));
    Dev<char> temp(std::max({topkBytes, encBytes, decBytes}));
    size_t tb = std::max({topkBytes, encBytes, decBytes});
    auto topk = [&](const float* gin, const float* res, float* accOut) {
      BENCH_CUDA(k::accumulateTopK(temp.get(), &tb, gin, res, 1.0f, n_, kk, SV_NONFINITE_ERROR,
                                   accOut, sel.get(), status.get(), s_));
    };
    auto encode = [&](const float* accIn, int rank) {
      uint64_t* rec = records.get() + rank * recWords;
      BENCH_CUDA(k::encodeSparse(temp.get(), &tb, L, accIn, sel.get(), entries.get(), rec + 8,
                                 info.get(), s_));
      BENCH_CUDA(k::writeHeader(headerTemplate(n_, kk, rank), info.get(), L.payloadWords(),
                                &status.get()->nanCount, rec, s_));
    };
    auto decode = [&]() {
      BENCH_CUDA(cudaMemsetAsync(votes.get(), 0, 4 * n_, s_));
      BENCH_CUDA(cudaMemsetAsync(flags.get(), 0, 4 * W, s_));
      BENCH_CUDA(k::addSparseVotes(temp.get(), &tb, L, records.get(), recWords * 8, W,
                                   votes.get(), flags.get(), s_));
    };

    // Ranks 1..W-1: records of fresh gradients, kept for the decode and pipeline rows.
    for (int s = 1; s < W; ++s) {
      normal(scratch_.get(), 1.0f);
      topk(scratch_.get(), nullptr, scratch_.get());
      encode(scratch_.get(), s);
    }

    // Plain selection in place (acc = g, nothing written): the top-K yardstick (4N bytes).
    double ms = timer_.medianMs([&](int i) { topk(g(i), nullptr, g(i)); });
    KernelRow r = row("topk", kk, 1, ms, 4.0 * n_);
    if (o_.checkIters > 0) {
      const std::vector<float> host = g0Host();
      std::vector<uint32_t> expect(kk);
      ref::selectTopKByMagnitude(host.data(), n_, kk, expect.data());
      topk(g0_.get(), nullptr, g0_.get());
      BENCH_CUDA(cudaStreamSynchronize(s_));
      r.checked = n_ + kk;
      r.wrong = differentBits(sel.download().data(), expect.data(), kk, 4) +
                differentFloats(g0_.download(n_), host);  // in place must not change g
    }
    rows->push_back(r);

    // The s3gd step: acc = fma(1, residual, g) fused into the selection (12N bytes at least).
    ms = timer_.medianMs([&](int i) { topk(g(i), residual_.get(), acc_.get()); });
    r = row("acc_topk", kk, 1, ms, 12.0 * n_);
    std::vector<float> gHost, resHost, accRef;
    std::vector<uint32_t> selRef;
    if (o_.checkIters > 0) {
      gHost = g0Host();
      resHost = residual_.download(n_);
      accRef.resize(n_);
      selRef.resize(kk);
      ref::s3gdAccumulateSelect(gHost.data(), resHost.data(), 1.0f, n_, kk, SV_NONFINITE_ERROR,
                                accRef.data(), selRef.data());
      topk(g0_.get(), residual_.get(), acc_.get());
      BENCH_CUDA(cudaStreamSynchronize(s_));
      r.checked = n_ + kk;
      r.wrong = differentFloats(acc_.download(n_), accRef) +
                differentBits(sel.download().data(), selRef.data(), kk, 4);
    }
    rows->push_back(r);

    ms = timer_.medianMs([&](int) { encode(acc_.get(), 0); });
    r = row("encode", kk, 1, ms, 8.0 * kk + 8.0 * recWords);
    std::vector<uint64_t> ownRef;
    if (o_.checkIters > 0) {  // acc_ and sel hold g0's selection from the check above
      ownRef.assign(recWords, 0);
      std::vector<uint32_t> ent(kk);
      std::vector<uint8_t> neg(kk);
      ref::WireHeader h = headerTemplate(n_, kk, 0);
      h.entries = ref::s3gdEncodeSparse(L, accRef.data(), selRef.data(), ent.data(), neg.data(),
                                        ownRef.data() + 8);
      ref::sealRecord(h, ownRef.data(), L.payloadWords());
      r.checked = recWords;
      r.wrong = differentBits(records.download(recWords).data(), ownRef.data(), recWords, 8);
    }
    rows->push_back(r);

    ms = timer_.medianMs([&](int) { decode(); });
    r = row("decode_votes", kk, W, ms, W * recWords * 8.0 + 4.0 * n_);
    std::vector<int32_t> votesRef;
    if (o_.checkIters > 0) {
      const std::vector<uint64_t> all = records.download();
      votesRef.assign(n_, 0);
      for (int s = 0; s < W; ++s) {
        const auto* h = reinterpret_cast<const ref::WireHeader*>(&all[s * recWords]);
        ref::addSparseVotes(L, &all[s * recWords + 8], h->entries, votesRef.data());
      }
      r.checked = n_;
      r.wrong = differentBits(votes.download().data(), votesRef.data(), n_, 4);
      for (uint32_t f : flags.download()) r.wrong += f != 0;
    }
    rows->push_back(r);

    // One rank's whole step: accumulate + select, encode, decode W records (its own and the
    // W-1 others), vote, output, residual commit.
    ms = timer_.medianMs([&](int i) {
      topk(g(i), residual_.get(), acc_.get());
      encode(acc_.get(), 0);
      decode();
      BENCH_CUDA(k::votesToOutput(votes.get(), n_, out.get(), nullptr, s_));
      BENCH_CUDA(k::s3gdCommit(acc_.get(), sel.get(), kk, n_, committed.get(), nullptr, s_));
    });
    r = row("pipeline", kk, W, ms, 4.0 * n_);
    r.wireBytes = (W - 1) * recWords * 8.0;
    r.denseWireBytes = 2.0 * (W - 1) / W * 4.0 * n_;
    for (const Link& link : o_.links)
      r.models.emplace_back(link.name, modelStep(ms, r.wireBytes, r.denseWireBytes,
                                                 link.bytesPerSec));
    if (o_.checkIters > 0) {
      topk(g0_.get(), residual_.get(), acc_.get());
      encode(acc_.get(), 0);
      decode();
      BENCH_CUDA(k::votesToOutput(votes.get(), n_, out.get(), nullptr, s_));
      BENCH_CUDA(k::s3gdCommit(acc_.get(), sel.get(), kk, n_, committed.get(), nullptr, s_));
      BENCH_CUDA(cudaStreamSynchronize(s_));
      std::vector<float> outRef(n_), resRef(n_);
      ref::votesToOutput(votesRef.data(), n_, outRef.data());  // votesRef used g0's record
      ref::s3gdCommit(accRef.data(), selRef.data(), kk, n_, resRef.data());
      r.checked = 2 * n_;
      r.wrong = differentFloats(out.download(n_), outRef) +
                differentFloats(committed.download(n_), resRef);
    }
    rows->push_back(r);

    // topk_ef's step without momentum: v + g into acc, then the top-K in place on it.
    auto topkEf = [&](const float* gin) {
      BENCH_CUDA(k::topkEfAccumulate(gin, nullptr, residual_.get(), 0.0f, n_, SV_NONFINITE_ERROR,
                                     nullptr, acc_.get(), s_));
      topk(acc_.get(), nullptr, acc_.get());
    };
    ms = timer_.medianMs([&](int i) { topkEf(g(i)); });
    r = row("topk_ef_step", kk, 1, ms, 12.0 * n_);
    if (o_.checkIters > 0) {
      std::vector<float> vRef(n_);
      std::vector<uint32_t> sRef(kk);
      ref::topkEfAccumulateSelect(gHost.data(), nullptr, resHost.data(), 0.0f, n_, kk,
                                  SV_NONFINITE_ERROR, nullptr, vRef.data(), sRef.data());
      topkEf(g0_.get());
      BENCH_CUDA(cudaStreamSynchronize(s_));
      r.checked = n_ + kk;
      r.wrong = differentFloats(acc_.download(n_), vRef) +
                differentBits(sel.download().data(), sRef.data(), kk, 4);
    }
    rows->push_back(r);
  }

 private:
  float* g(int i) const { return i % 3 == 0 ? g0_.get() : i % 3 == 1 ? g1_.get() : g2_.get(); }
  void normal(float* p, float sigma) {
    BENCH_CURAND(curandGenerateNormal(gen_, p, even_, 0.0f, sigma));
  }
  std::vector<float> g0Host() const { return g0_.download(n_); }

  const Options& o_;
  uint64_t n_, even_;
  curandGenerator_t gen_;
  cudaStream_t s_;
  Timer timer_;
  Dev<float> g0_, g1_, g2_, residual_, acc_, scratch_;
  double copyGBs_ = 0;
};

}  // namespace

bool cudaDevicePresent(std::string* why) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    *why = std::string("no CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    return false;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  *why = std::string("CUDA device 0: ") + prop.name;
  return true;
}

std::vector<KernelRow> runKernelMode(const Options& o) {
  cudaStream_t s;
  BENCH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  curandGenerator_t gen;
  BENCH_CURAND(curandCreateGenerator(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10));
  BENCH_CURAND(curandSetPseudoRandomGeneratorSeed(gen, o.seed));
  BENCH_CURAND(curandSetStream(gen, s));
  std::vector<KernelRow> rows;
  for (uint64_t n : o.counts) {
    // Inputs, residual, acc, scratch, votes, outputs and records: about 12 arrays of N words.
    size_t freeBytes = 0, total = 0;
    BENCH_CUDA(cudaMemGetInfo(&freeBytes, &total));
    if (12.5 * 4.0 * static_cast<double>(n) > static_cast<double>(freeBytes)) {
      std::printf("# N = %llu skipped: needs about %.1f GiB, %.1f GiB free\n",
                  static_cast<unsigned long long>(n), 50.0 * n / (1 << 30),
                  static_cast<double>(freeBytes) / (1 << 30));
      continue;
    }
    SizeRun run(o, n, gen, s);
    std::vector<KernelRow> sizeRows;
    run.signKernels(&sizeRows);
    for (double d : o.densities) run.sparseKernels(d, &sizeRows);
    for (const KernelRow& r : sizeRows) printKernelRow(r);
    rows.insert(rows.end(), sizeRows.begin(), sizeRows.end());
  }
  curandDestroyGenerator(gen);
  cudaStreamDestroy(s);
  return rows;
}

void printKernelHeader(const Options& o, const std::string& backendLine) {
  std::printf("# signvote-bench --mode kernels: ranks %d (vote and decode inputs), vote %s, "
              "iters %d, warmup %d, check %d, seed %llu\n",
              o.ranks, voteName(o.vote), o.iters, o.warmup, o.checkIters,
              static_cast<unsigned long long>(o.seed));
  std::printf("# %s\n", backendLine.c_str());
  std::printf("# time: median device time (CUDA events), inputs rotated over 3 buffers;\n"
              "# GB/s: least bytes the kernel must move / time; copy GB/s: a D2D copy of the\n"
              "# same 4N bytes in this run (read + written); reads: time / (4N bytes at the\n"
              "# copy rate); #wrong: of #checked words, those differing from lib/reference.\n");
  std::printf("#%13s %12s %10s %5s %10s %9s %9s %7s %10s %7s\n", "kernel", "N", "K", "W",
              "time(ms)", "GB/s", "copyGB/s", "reads", "#checked", "#wrong");
}

void printKernelRow(const KernelRow& r) {
  std::printf(" %13s %12llu %10llu %5d %10.4f %9.1f %9.1f %7.2f %10llu %7llu\n",
              r.kernel.c_str(), static_cast<unsigned long long>(r.n),
              static_cast<unsigned long long>(r.k), r.ranks, r.ms, r.gbps, r.copyGBs, r.reads,
              static_cast<unsigned long long>(r.checked), static_cast<unsigned long long>(r.wrong));
  for (const auto& [link, m] : r.models)
    std::printf("#   modeled step on %s: compressed %.3f ms (pipeline + %.0f B sent), dense "
                "%.3f ms (%.0f B sent), %.2fx; dense is faster above %.1f GB/s\n",
                link.c_str(), m.compressedMs, r.wireBytes, m.denseMs, r.denseWireBytes,
                m.denseMs / m.compressedMs, m.breakEvenGBs);
  std::fflush(stdout);
}

nlohmann::json kernelRecords(const std::vector<KernelRow>& rows) {
  nlohmann::json records = nlohmann::json::array();
  for (const KernelRow& r : rows) {
    nlohmann::json j = {{"kernel", r.kernel}, {"n", r.n}, {"k", r.k}, {"ranks", r.ranks},
                        {"ms", r.ms}, {"bytes", r.bytes}, {"gbps", r.gbps},
                        {"copy_gbps", r.copyGBs}, {"reads", r.reads},
                        {"checked", r.checked}, {"wrong", r.wrong}};
    if (!r.models.empty()) {
      j["wire_bytes"] = r.wireBytes;
      j["dense_wire_bytes"] = r.denseWireBytes;
      for (const auto& [link, m] : r.models)
        j["modeled"].push_back({{"link", link}, {"compressed_ms", m.compressedMs},
                                {"dense_ms", m.denseMs}, {"break_even_gbps", m.breakEvenGBs}});
    }
    records.push_back(j);
  }
  return records;
}

}  // namespace bench
