// dgs_async across processes with faults injected into what one process receives from gloo:
// a corrupt or mismatched push is refused by the server and by the worker that sent it, with
// no effect on either; a corrupt reply breaks that worker's communicator only (the server has
// committed the push) and the server goes on serving the others. Every other push is replayed
// by the model bit for bit.
#include <map>

#include "dgs_async_model.h"
#include "fault_transport.h"
#include "ranks.h"
#include "reference/schemes.h"
#include "reference/wire.h"

namespace {

using namespace svtest;
namespace ref = signvote::ref;

constexpr float kUntouched = 7.0f;
constexpr int W = 3;
constexpr size_t n = 300;
constexpr int P = 6;  // pushes per worker

std::vector<float> gradient(uint64_t seed, int rank, int j) {
  std::mt19937_64 rng(seed + 100 * rank + j);
  return normal(n, rng);
}

struct Call {
  int code = -1, peer = -1;
  std::vector<float> out;
  std::string text;
};

struct Served {
  std::vector<std::vector<Call>> calls;  // per rank, in its order
  std::vector<std::vector<float>> state;  // per rank, its bucket's state at the end
};

// Rank r makes calls(r) dgs_async exchanges (a worker stops after one that breaks its
// communicator, plus one more call), with faults(r) wrapped around its transport (if any).
// Each call reports its code, the peer (the server: lastPeer, or what *refusedFrom says for a
// refused push), the output and the error text.
Served pushes(const svBucketConfig_t& cfg, uint64_t seed, const std::function<int(int)>& calls,
              const std::function<FaultTransport::Tamper(int, std::vector<int>*)>& faults) {
  svConfig_t config = SV_CONFIG_INITIALIZER;
  config.timeoutMs = 20000;
  Ranks ranks(W, config, [&](const Ranks::Child& ch) {
    std::vector<int> refusedFrom;  // the server's tamper: the sender of each push it received
    if (FaultTransport::Tamper t = faults(ch.rank, &refusedFrom)) injectFaults(ch.comm, t);
    svBucket_t b = nullptr;
    svBucketCreate(&b, ch.comm, &cfg);
    size_t bytes = 0;
    svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
    std::vector<unsigned char> ws(bytes);
    Report rep;
    std::vector<Call> done;
    for (int j = 0; j < calls(ch.rank); ++j) {
      const std::vector<float> g = gradient(seed, ch.rank, j);
      Call c;
      c.out.assign(n, kUntouched);
      size_t wb = bytes;
      c.code = svExchange(b, ch.rank == 0 ? nullptr : g.data(), c.out.data(), ws.data(), &wb,
                          nullptr);
      c.text = svGetLastError(ch.comm);
      svBucketInfo_t info{};
      svBucketGetInfo(b, &info);
      c.peer = c.code == svSuccess || ch.rank != 0 ? info.lastPeer : refusedFrom.at(j);
      const bool broken = c.code == svRemoteError && ch.rank != 0;
      done.push_back(c);
      if (broken && j + 1 < calls(ch.rank)) {  // one more call on the broken communicator
        c.out.assign(n, kUntouched);
        c.code = svExchange(b, g.data(), c.out.data(), ws.data(), &wb, nullptr);
        c.text = svGetLastError(ch.comm);
        done.push_back(c);
        break;
      }
    }
    rep.put(static_cast<uint64_t>(done.size()));
    for (const Call& c : done) {
      rep.put(c.code);
      rep.put(c.peer);
      rep.put(c.out);
      rep.put(c.text);
    }
    svBucketInfo_t info{};
    svBucketGetInfo(b, &info);
    std::vector<float> state(info.stateFloats);
    rep.put(static_cast<int>(svBucketGetResidual(b, state.data())));
    rep.put(state);
    svBucketDestroy(b);
    return rep.bytes;
  });
  Served run;
  for (const Ranks::Result& res : ranks.join(120)) {
    EXPECT_TRUE(res.exited && res.status == 0) << res.report;
    Reader rd{res.report};
    run.calls.emplace_back(rd.get<uint64_t>());
    for (Call& c : run.calls.back()) {
      c.code = rd.get<int>();
      c.peer = rd.get<int>();
      c.out.resize(rd.get<uint64_t>());
      for (float& x : c.out) x = rd.get<float>();
      c.text = rd.text();
    }
    EXPECT_EQ(rd.get<int>(), svSuccess) << "svBucketGetResidual";
    run.state.emplace_back(rd.get<uint64_t>());
    for (float& x : run.state.back()) x = rd.get<float>();
  }
  return run;
}

bool untouched(const std::vector<float>& out) {
  return std::all_of(out.begin(), out.end(), [](float x) { return x == kUntouched; });
}

// The header of a message received into recv[0], and its payload words.
ref::WireHeader* headerOf(const Transport::Recvs& recv) {
  return static_cast<ref::WireHeader*>(recv[0]);
}
uint64_t* payloadOf(const Transport::Recvs& recv) { return static_cast<uint64_t*>(recv[0]) + 8; }

TEST(GlooFault, CorruptOrMismatchedPushIsRefusedByServerAndWorkerWithNoEffect) {
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  for (size_t downK : {size_t{0}, size_t{40}}) {
    SCOPED_TRACE("downK = " + std::to_string(downK));
    const svBucketConfig_t cfg = asyncConfig(n, 30, 0.9f, downK);
    const ref::SparseLayout layout = ref::sparseLayout(n, cfg.k);
    // The server's 3rd push: a payload bit flipped (checksum). Its 6th: the first value's sign
    // flipped against its entry, the record resealed (the sparse checks). Its 8th: another
    // downlink K in the header, resealed (a worker configured differently).
    const std::map<int, svResult_t> refused = {
        {2, svCorruptInput}, {5, svCorruptInput}, {7, svMismatch}};
    const Served run = pushes(
        cfg, seed, [&](int rank) { return rank == 0 ? (W - 1) * P : P; },
        [&](int rank, std::vector<int>* from) -> FaultTransport::Tamper {
          if (rank != 0) return {};
          return [&, from](int call, const char*, const Transport::Recvs& recv, size_t bytes) {
            ref::WireHeader* h = headerOf(recv);
            from->push_back(static_cast<int>(h->rank));
            uint64_t* payload = payloadOf(recv);
            const size_t words = bytes / 8 - 8;
            if (call == 2) payload[0] ^= uint64_t{1} << 3;
            if (call == 5) payload[layout.payloadWords()] ^= uint64_t{1} << 31;
            if (call == 7) ++h->aux;
            if (call == 5 || call == 7) ref::sealRecord(*h, payload - 8, words);
            return svSuccess;
          };
        });
    ASSERT_EQ(run.calls[0].size(), size_t{(W - 1) * P});
    AsyncModel model(W, n, cfg.k, cfg.momentum, downK);
    std::vector<int> next(W, 0);
    for (size_t i = 0; i < run.calls[0].size(); ++i) {
      SCOPED_TRACE("the server's call " + std::to_string(i));
      const Call& s = run.calls[0][i];
      ASSERT_TRUE(s.peer >= 1 && s.peer < W) << s.peer;
      const int j = next[s.peer]++;
      ASSERT_LT(j, static_cast<int>(run.calls[s.peer].size()));
      const Call& w = run.calls[s.peer][j];
      const auto bad = refused.find(static_cast<int>(i));
      if (bad != refused.end()) {
        EXPECT_EQ(s.code, bad->second);
        EXPECT_EQ(w.code, bad->second);
        EXPECT_TRUE(mentions(s.text, "the push of rank " + std::to_string(s.peer) +
                                         " failed validation"));
        EXPECT_TRUE(mentions(w.text, "the server refused this rank's push"));
        EXPECT_TRUE(untouched(s.out));
        EXPECT_TRUE(untouched(w.out));
        continue;  // no effect: the model skips the push, and later bits must still match
      }
      ASSERT_EQ(s.code, svSuccess) << s.text;
      ASSERT_EQ(w.code, svSuccess) << w.text;
      expectSameBits(w.out, model.push(s.peer, gradient(seed, s.peer, j)), "a reply");
      expectSameBits(s.out, model.T, "the server's total");
    }
    for (int r = 1; r < W; ++r) {
      EXPECT_EQ(next[r], P) << "every push of worker " << r << " was served once";
      expectSameBits(run.state[r], model.u[r], "a worker's u");
    }
    expectSameBits(run.state[0], model.serverState(), "the server's state");
  }
}

TEST(GlooFault, CorruptReplyBreaksThatWorkerAndTheServerServesTheOthers) {
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  for (size_t downK : {size_t{0}, size_t{40}}) {
    SCOPED_TRACE("downK = " + std::to_string(downK));
    const svBucketConfig_t cfg = asyncConfig(n, 30, 0.9f, downK);
    // Worker 1's second reply has a payload bit flipped; it pushes no more after the break.
    const Served run = pushes(
        cfg, seed, [&](int rank) { return rank == 0 ? P + 2 : rank == 1 ? 2 + 1 : P; },
        [&](int rank, std::vector<int>*) -> FaultTransport::Tamper {
          if (rank != 1) return {};
          return [](int call, const char*, const Transport::Recvs& recv, size_t) {
            if (call == 1) payloadOf(recv)[0] ^= uint64_t{1} << 5;
            return svSuccess;
          };
        });
    ASSERT_EQ(run.calls[0].size(), size_t{P + 2});
    ASSERT_EQ(run.calls[1].size(), size_t{3});
    AsyncModel model(W, n, cfg.k, cfg.momentum, downK);
    std::vector<float> uBeforeBreak;
    std::vector<int> next(W, 0);
    for (size_t i = 0; i < run.calls[0].size(); ++i) {
      SCOPED_TRACE("the server's call " + std::to_string(i));
      const Call& s = run.calls[0][i];
      ASSERT_EQ(s.code, svSuccess) << s.text;
      ASSERT_TRUE(s.peer >= 1 && s.peer < W) << s.peer;
      const int j = next[s.peer]++;
      const Call& w = run.calls[s.peer][j];
      if (s.peer == 1 && j == 1) uBeforeBreak = model.u[1];
      const std::vector<float> reply = model.push(s.peer, gradient(seed, s.peer, j));
      expectSameBits(s.out, model.T, "the server's total (it committed every push)");
      if (s.peer == 1 && j == 1) {
        EXPECT_EQ(w.code, svRemoteError);
        EXPECT_TRUE(mentions(w.text, "the server's reply is malformed"));
        EXPECT_TRUE(mentions(w.text, "the communicator is broken"));
        EXPECT_TRUE(untouched(w.out));
      } else {
        ASSERT_EQ(w.code, svSuccess) << w.text;
        expectSameBits(w.out, reply, "a reply");
      }
    }
    EXPECT_EQ(run.calls[1][2].code, svRemoteError) << "worker 1 stays broken";
    EXPECT_TRUE(untouched(run.calls[1][2].out));
    expectSameBits(run.state[1], uBeforeBreak, "the broken worker's u (untouched)");
    expectSameBits(run.state[2], model.u[2], "the other worker's u");
    expectSameBits(run.state[0], model.serverState(), "the server's state");
  }
}

}  // namespace
