// The gloo transport with real processes and sockets: every scheme gives the loopback world's
// bits; mismatched calls and NaN input fail on every rank with no effect; a peer that is
// killed, stopped or aborts mid-exchange turns into svRemoteError / svTimeout on the others
// within twice the timeout, with their residuals untouched and their communicators broken.
#include <atomic>
#include <thread>

#include "dgs_async_model.h"
#include "ranks.h"
#include "script.h"

namespace {

using namespace svtest;

svConfig_t glooConfig(unsigned timeoutMs) {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  c.timeoutMs = timeoutMs;
  return c;
}

// A bucket of comm and, in *ws, the workspace its exchanges take.
svBucket_t createSized(svComm_t comm, const svBucketConfig_t& cfg,
                       std::vector<unsigned char>* ws) {
  svBucket_t b = nullptr;
  svBucketCreate(&b, comm, &cfg);
  size_t bytes = 0;
  svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
  ws->resize(bytes);
  return b;
}

TEST(Gloo, EverySchemeGivesTheLoopbackBits) {
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  for (int W : {1, 2, 3, 5}) {
    SCOPED_TRACE("W = " + std::to_string(W));
    std::vector<svComm_t> comms(W);
    ASSERT_EQ(svCommInitLoopback(comms.data(), W, nullptr), svSuccess);
    const std::vector<Report> expect = script(comms, seed);
    for (svComm_t c : comms) ASSERT_EQ(svCommDestroy(c), svSuccess);

    Ranks ranks(W, glooConfig(20000), [&](const Ranks::Child& ch) {
      return script({ch.comm}, seed)[0].bytes;
    });
    expectSameReports(ranks.join(120), expect);
  }
}

// dgs_async across processes: two buckets (two wire slots), each worker pushing to both in
// turn with small random pauses, the server serving whichever push arrives first. The
// server reports whom it served; replayed in that order, the model gives every reply and
// every total bit for bit.
TEST(Gloo, DgsAsyncServesPushesInArrivalOrder) {
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  const int W = 3, P = 6;
  const size_t n = 300;
  const svBucketConfig_t cfg[2] = {asyncConfig(n, 30, 0.9f, 40), asyncConfig(n, 60, 0.5f, 0)};
  auto gradient = [&](int bucket, int rank, int j) {
    std::mt19937_64 rng(seed + 1000 * bucket + 100 * rank + j);
    return normal(n, rng);
  };
  Ranks ranks(W, glooConfig(20000), [&](const Ranks::Child& ch) {
    Report rep;
    svBucket_t b[2] = {nullptr, nullptr};
    std::vector<unsigned char> ws[2];
    for (int i = 0; i < 2; ++i) {
      rep.put(static_cast<int>(svBucketCreate(&b[i], ch.comm, &cfg[i])));
      size_t bytes = 0;
      svExchange(b[i], nullptr, nullptr, nullptr, &bytes, nullptr);
      ws[i].resize(bytes);
    }
    std::mt19937_64 pause(seed + ch.rank);
    std::vector<float> out(n);
    const int pushes = ch.rank == 0 ? (W - 1) * P : P;
    for (int j = 0; j < pushes; ++j) {
      for (int i = 0; i < 2; ++i) {
        if (ch.rank != 0) usleep(static_cast<useconds_t>(pause() % 3000));
        const std::vector<float> g = gradient(i, ch.rank, j);
        size_t bytes = ws[i].size();
        const svResult_t r = svExchange(b[i], ch.rank == 0 ? nullptr : g.data(), out.data(),
                                        ws[i].data(), &bytes, nullptr);
        rep.put(static_cast<int>(r));
        svBucketInfo_t info{};
        svBucketGetInfo(b[i], &info);
        rep.put(info.lastPeer);
        rep.put(out);
      }
    }
    for (int i = 0; i < 2; ++i) {
      svBucketInfo_t info{};
      svBucketGetInfo(b[i], &info);
      std::vector<float> state(info.stateFloats);
      svBucketGetResidual(b[i], state.data());
      rep.put(state);
      svBucketDestroy(b[i]);
    }
    return rep.bytes;
  });
  const std::vector<Ranks::Result> res = ranks.join(120);
  std::vector<Reader> rd;
  for (const auto& r : res) {
    ASSERT_TRUE(r.exited && r.status == 0) << r.report;
    rd.push_back(Reader{r.report});
  }
  for (auto& r : rd)
    for (int i = 0; i < 2; ++i) ASSERT_EQ(r.get<int>(), svSuccess);
  struct Push {
    int code, peer;
    std::vector<float> out;
  };
  auto next = [](Reader& r) {
    Push p;
    p.code = r.get<int>();
    p.peer = r.get<int>();
    const auto len = r.get<uint64_t>();
    p.out.resize(len);
    for (float& x : p.out) x = r.get<float>();
    return p;
  };
  // Each process's pushes, in its own order: per bucket.
  std::vector<std::vector<std::vector<Push>>> pushes(W, std::vector<std::vector<Push>>(2));
  for (int rank = 0; rank < W; ++rank)
    for (int j = 0; j < (rank == 0 ? (W - 1) * P : P); ++j)
      for (int i = 0; i < 2; ++i) pushes[rank][i].push_back(next(rd[rank]));
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE("bucket " + std::to_string(i));
    AsyncModel model(W, n, cfg[i].k, cfg[i].momentum, cfg[i].downK);
    std::vector<int> done(W, 0);
    for (const Push& s : pushes[0][i]) {
      ASSERT_EQ(s.code, svSuccess);
      ASSERT_TRUE(s.peer >= 1 && s.peer < W);
      const int j = done[s.peer]++;
      ASSERT_LT(j, P);
      const Push& w = pushes[s.peer][i][j];
      ASSERT_EQ(w.code, svSuccess);
      expectSameBits(w.out, model.push(s.peer, gradient(i, s.peer, j)), "a reply");
      expectSameBits(s.out, model.T, "the server's total");
    }
    std::vector<float> state(rd[0].get<uint64_t>());
    for (float& x : state) x = rd[0].get<float>();
    expectSameBits(state, model.serverState(), "the server's state");
  }
}

// A worker that dies does not stop the server while another pushes; once no push comes for
// the timeout, the server's call returns svTimeout and its communicator is broken.
TEST(Gloo, DgsAsyncServerOutlivesADeadWorker) {
  const int W = 3, pushes = 20;
  const unsigned timeoutMs = 2000;
  Ranks ranks(W, glooConfig(timeoutMs), [&](const Ranks::Child& ch) {
    const size_t n = 1000;
    const svBucketConfig_t cfg = asyncConfig(n, 10, 0.9f, 0);
    std::vector<unsigned char> ws;
    svBucket_t b = createSized(ch.comm, cfg, &ws);
    std::vector<float> g(n, 1.0f), out(n);
    Report rep;
    int done = 0;
    svResult_t r = svSuccess;
    int64_t lastNs = monotonicNs();
    for (; done < (ch.rank == 0 ? 1000 : pushes); ++done) {
      if (ch.rank == 2 && done == 2) _exit(0);  // dies with its sockets open
      if (ch.rank == 1) usleep(20000);
      size_t wb = ws.size();
      if ((r = svExchange(b, g.data(), out.data(), ws.data(), &wb, nullptr)) != svSuccess) break;
      lastNs = monotonicNs();
    }
    rep.put(done);
    rep.put(static_cast<int>(r));
    rep.put(monotonicNs() - lastNs);
    if (ch.rank == 0) {  // the next call on the broken communicator
      size_t wb = ws.size();
      rep.put(static_cast<int>(svExchange(b, g.data(), out.data(), ws.data(), &wb, nullptr)));
    }
    svBucketDestroy(b);
    return rep.bytes;
  });
  const std::vector<Ranks::Result> res = ranks.join(60);
  ASSERT_TRUE(res[1].exited && res[1].status == 0) << res[1].report;
  Reader worker{res[1].report};
  EXPECT_EQ(worker.get<int>(), pushes);
  EXPECT_EQ(worker.get<int>(), svSuccess);
  ASSERT_TRUE(res[0].exited && res[0].status == 0) << res[0].report;
  Reader server{res[0].report};
  EXPECT_EQ(server.get<int>(), pushes + 2) << "served both workers' pushes";
  EXPECT_EQ(server.get<int>(), svTimeout);
  const int64_t waitedNs = server.get<int64_t>();
  EXPECT_GE(waitedNs, int64_t{timeoutMs} * 1000000 * 9 / 10);
  EXPECT_LE(waitedNs, int64_t{timeoutMs} * 2 * 1000000);
  EXPECT_EQ(server.get<int>(), svTimeout) << "the communicator stays broken";
}

// dgs_async's server waits for any worker's push (a receive from any peer, not a collective).
// A watchdog's abort on the server ends that wait at once, with svRemoteError and the output
// untouched, instead of at its 6 s timeout, and the worker that pushes late fails too.
TEST(Gloo, WatchdogAbortEndsTheDgsAsyncServersWait) {
  const unsigned timeoutMs = 6000;
  Ranks ranks(2, glooConfig(timeoutMs), [&](const Ranks::Child& ch) {
    const size_t n = 1000;
    const svBucketConfig_t cfg = asyncConfig(n, 10, 0.9f, 0);
    std::vector<unsigned char> ws;
    svBucket_t b = createSized(ch.comm, cfg, &ws);
    std::vector<float> g(n, 1.0f), out(n, 7.0f);
    Report rep;
    int64_t abortNs = 0;
    std::thread watchdog;
    if (ch.rank == 0)
      watchdog = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server waits now
        abortNs = monotonicNs();
        svCommAbort(ch.comm);
      });
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    size_t wb = ws.size();
    const svResult_t r = svExchange(b, g.data(), out.data(), ws.data(), &wb, nullptr);
    const int64_t endNs = monotonicNs();
    if (watchdog.joinable()) watchdog.join();
    rep.put(static_cast<int>(r));
    rep.put(std::string(svGetLastError(ch.comm)));
    rep.put(endNs - abortNs);
    rep.put(out == std::vector<float>(n, 7.0f));
    svBucketDestroy(b);
    return rep.bytes;
  });
  const std::vector<Ranks::Result> res = ranks.join(30);
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(res[r].exited && res[r].status == 0) << res[r].report;
    Reader rd{res[r].report};
    EXPECT_EQ(rd.get<int>(), svRemoteError);
    const std::string text = rd.text();
    const int64_t afterAbortNs = rd.get<int64_t>();
    if (r == 0) {
      EXPECT_TRUE(mentions(text, "svCommAbort")) << text;
      EXPECT_LT(afterAbortNs / 1e6, 1500.0) << text;  // not the 6 s timeout
    }
    EXPECT_TRUE(rd.get<bool>()) << "the output was written to";
  }
}

// One exchange of a bucket of n floats on every rank with rank-specific edits; reports the
// code, the text, whether the output, the residual and the sequence number were left alone,
// then whether a correct exchange afterwards succeeds.
struct Outcome {
  int code = -1;
  std::string text;
  bool untouched = false;
  int after = -1;
};

std::vector<Outcome> oneExchange(int W, const std::function<void(int, svBucketConfig_t&,
                                                                   std::vector<float>&, int&)>&
                                            edit) {
  const uint64_t seed = testSeed();
  Ranks ranks(W, glooConfig(20000), [&](const Ranks::Child& ch) {
    std::mt19937_64 rng(seed + ch.rank);
    const size_t n = 500;
    svBucketConfig_t good = bucketConfig(SV_SCHEME_S3GD_MV, n);
    good.k = 50;
    svBucketConfig_t cfg = good;
    std::vector<float> g = normal(n, rng);
    int calls = 1;
    edit(ch.rank, cfg, g, calls);
    svBucket_t b = nullptr, ok = nullptr;
    svBucketCreate(&b, ch.comm, &cfg);
    svBucketCreate(&ok, ch.comm, &good);
    const std::vector<float> seedResidual = normal(n, rng);
    svBucketSetResidual(b, seedResidual.data());
    size_t bytes = 0;
    svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
    std::vector<unsigned char> ws(calls * bytes + 64);
    std::vector<float> out(calls * n, 7.0f);
    svGroupStart();
    for (int j = 0; j < calls; ++j) {
      size_t wsb = bytes;
      svExchange(b, g.data(), out.data() + j * n, ws.data() + j * bytes, &wsb, nullptr);
    }
    Report rep;
    rep.put(static_cast<int>(svGroupEnd()));
    rep.put(std::string(svGetLastError(ch.comm)));
    std::vector<float> residual(n);
    svBucketGetResidual(b, residual.data());
    uint64_t seq = 99;
    svCommGetSequence(ch.comm, &seq);
    const bool untouched = std::all_of(out.begin(), out.end(), [](float x) { return x == 7.0f; }) &&
                           std::memcmp(residual.data(), seedResidual.data(), n * 4) == 0 &&
                           seq == 0;
    rep.put(untouched);
    std::vector<float> clean = normal(n, rng);
    size_t wsb = ws.size();
    rep.put(static_cast<int>(svExchange(ok, clean.data(), out.data(), ws.data(), &wsb, nullptr)));
    svBucketDestroy(b);
    svBucketDestroy(ok);
    return rep.bytes;
  });
  std::vector<Outcome> v;
  for (const auto& res : ranks.join(60)) {
    EXPECT_TRUE(res.exited && res.status == 0) << res.report;
    Reader rd{res.report};
    Outcome o;
    o.code = rd.get<int>();
    o.text = rd.text();
    o.untouched = rd.get<bool>();
    o.after = rd.get<int>();
    v.push_back(o);
  }
  return v;
}

TEST(Gloo, MismatchedCallsFailOnEveryRankNamingTheRankAndField) {
  // Rank 1 asks for another K: the sizes of the messages would differ.
  for (const Outcome& o : oneExchange(3, [](int r, svBucketConfig_t& c, auto&, int&) {
         if (r == 1) c.k = 51;
       })) {
    EXPECT_EQ(o.code, svMismatch) << o.text;
    EXPECT_TRUE(mentions(o.text, "rank 1 differs from rank 0's in field k (51 vs 50)"));
    EXPECT_TRUE(o.untouched);
    EXPECT_EQ(o.after, svSuccess);  // the communicator stays usable
  }
  // Rank 2 makes two calls in its group.
  for (const Outcome& o : oneExchange(3, [](int r, svBucketConfig_t&, auto&, int& calls) {
         if (r == 2) calls = 2;
       })) {
    EXPECT_EQ(o.code, svMismatch) << o.text;
    EXPECT_TRUE(mentions(o.text, "rank 2 differs from rank 0's in field the group's number of "
                                 "svExchange calls (2 vs 1)"));
    EXPECT_TRUE(o.untouched);
    EXPECT_EQ(o.after, svSuccess);
  }
}

// SV_CHECK_GLOBAL checks a group with one allgather for its first exchange and one for the
// rest: a difference in the third of four buckets is still named, on every rank, and none of
// the four has any effect.
TEST(Gloo, MismatchLateInAGroupIsNamedAndNothingRuns) {
  const uint64_t seed = testSeed();
  Ranks ranks(3, glooConfig(20000), [&](const Ranks::Child& ch) {
    std::mt19937_64 rng(seed + ch.rank);
    const size_t n = 300;
    std::vector<svBucket_t> b(4);
    std::vector<std::vector<float>> before(4), out(4, std::vector<float>(n, 7.0f));
    std::vector<std::vector<unsigned char>> ws(4);
    const std::vector<float> g = normal(n, rng);
    for (int j = 0; j < 4; ++j) {
      svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
      cfg.k = (ch.rank == 1 && j == 2) ? 31 : 30;
      svBucketCreate(&b[j], ch.comm, &cfg);
      before[j] = normal(n, rng);
      svBucketSetResidual(b[j], before[j].data());
      size_t bytes = 0;
      svExchange(b[j], nullptr, nullptr, nullptr, &bytes, nullptr);
      ws[j].resize(bytes);
    }
    svGroupStart();
    for (int j = 0; j < 4; ++j) {
      size_t bytes = ws[j].size();
      svExchange(b[j], g.data(), out[j].data(), ws[j].data(), &bytes, nullptr);
    }
    Report rep;
    rep.put(static_cast<int>(svGroupEnd()));
    rep.put(std::string(svGetLastError(ch.comm)));
    bool untouched = true;
    for (int j = 0; j < 4; ++j) {
      std::vector<float> residual(n);
      svBucketGetResidual(b[j], residual.data());
      untouched = untouched && residual == before[j] &&
                  std::all_of(out[j].begin(), out[j].end(), [](float x) { return x == 7.0f; });
      svBucketDestroy(b[j]);
    }
    uint64_t seq = 99;
    svCommGetSequence(ch.comm, &seq);
    rep.put(untouched && seq == 0);
    return rep.bytes;
  });
  for (const auto& res : ranks.join(60)) {
    ASSERT_TRUE(res.exited && res.status == 0) << res.report;
    Reader rd{res.report};
    EXPECT_EQ(rd.get<int>(), svMismatch);
    const std::string text = rd.text();
    EXPECT_TRUE(
        mentions(text, "exchange #2 of rank 1 differs from rank 0's in field k (31 vs 30)"));
    EXPECT_TRUE(rd.get<bool>()) << "an exchange of the group had an effect";
  }
}

TEST(Gloo, NaNOnOneRankFailsOnEveryRankWithNoEffect) {
  for (const Outcome& o : oneExchange(4, [](int r, svBucketConfig_t&, std::vector<float>& g,
                                            int&) {
         if (r == 2) g[123] = std::nanf("");
       })) {
    EXPECT_EQ(o.code, svNonFiniteInput) << o.text;
    EXPECT_TRUE(mentions(o.text, "rank 2 had NaN input"));
    EXPECT_TRUE(o.untouched);
    EXPECT_EQ(o.after, svSuccess);
  }
}

// Survivors of a faulty peer: exchanges in a loop until one fails, then report.
struct Survivor {
  int code = -1;
  int64_t failedAtNs = 0;
  std::string text;
  bool residualKept = false, seqKept = false;
  int again = -1;          // the next call on the broken communicator
  int64_t againNs = 0;     // how long it took
  uint64_t seq = 0;        // exchanges that had succeeded before
};

std::string survive(const Ranks::Child& ch, int readyAfter) {
  const size_t n = 1 << 15;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.density = 0.01;
  std::vector<unsigned char> ws;
  svBucket_t b = createSized(ch.comm, cfg, &ws);
  std::mt19937_64 rng(testSeed() + ch.rank);
  std::vector<float> out(n), before(n), after(n);
  Report rep;
  const int64_t stop = monotonicNs() + int64_t{60} * 1000000000;
  for (int it = 0; monotonicNs() < stop; ++it) {
    if (it == readyAfter) ch.ready();
    const std::vector<float> g = normal(n, rng);
    svBucketGetResidual(b, before.data());
    uint64_t seq0 = 0, seq1 = 0;
    svCommGetSequence(ch.comm, &seq0);
    size_t wsb = ws.size();
    const svResult_t r = svExchange(b, g.data(), out.data(), ws.data(), &wsb, nullptr);
    if (r == svSuccess) continue;
    rep.put(static_cast<int>(r));
    rep.put(monotonicNs());
    rep.put(std::string(svGetLastError(ch.comm)));
    svBucketGetResidual(b, after.data());
    svCommGetSequence(ch.comm, &seq1);
    rep.put(std::memcmp(before.data(), after.data(), n * 4) == 0);
    rep.put(seq0 == seq1);
    const int64_t t0 = monotonicNs();
    rep.put(static_cast<int>(svExchange(b, g.data(), out.data(), ws.data(), &wsb, nullptr)));
    rep.put(monotonicNs() - t0);
    rep.put(seq0);
    break;
  }
  svBucketDestroy(b);
  return rep.bytes;
}

Survivor readSurvivor(Reader& rd) {
  Survivor s;
  s.code = rd.get<int>();
  s.failedAtNs = rd.get<int64_t>();
  s.text = rd.text();
  s.residualKept = rd.get<bool>();
  s.seqKept = rd.get<bool>();
  s.again = rd.get<int>();
  s.againNs = rd.get<int64_t>();
  s.seq = rd.get<uint64_t>();
  return s;
}
Survivor readSurvivor(const Ranks::Result& res) {
  Reader rd{res.report};
  return readSurvivor(rd);
}

// The last rank is SIGKILLed or SIGSTOPped while every rank is exchanging.
void faultyPeer(int sig) {
  const int W = 3;
  const unsigned timeoutMs = 1500;
  Ranks ranks(W, glooConfig(timeoutMs), [](const Ranks::Child& ch) { return survive(ch, 3); });
  for (int r = 0; r < W; ++r) ASSERT_TRUE(ranks.waitReady(r, 60)) << "rank " << r;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int64_t faultNs = monotonicNs();
  ASSERT_EQ(kill(ranks.pid(W - 1), sig), 0);
  const auto results = ranks.join(30, W - 1);  // then SIGKILLs the faulty rank
  int remote = 0;
  for (int r = 0; r < W - 1; ++r) {
    SCOPED_TRACE("survivor rank " + std::to_string(r));
    ASSERT_TRUE(results[r].exited && results[r].status == 0)
        << "status " << results[r].status << ", signal " << results[r].signal << ": "
        << results[r].report;
    const Survivor s = readSurvivor(results[r]);
    EXPECT_TRUE(s.code == svRemoteError || s.code == svTimeout) << s.code << " " << s.text;
    remote += s.code == svRemoteError;
    const double afterMs = (s.failedAtNs - faultNs) / 1e6;
    EXPECT_LT(afterMs, 2.0 * timeoutMs) << s.text;
    EXPECT_TRUE(mentions(s.text, "svExchange"));
    EXPECT_TRUE(mentions(s.text, "the communicator is broken"));
    EXPECT_TRUE(s.residualKept);
    EXPECT_TRUE(s.seqKept);
    EXPECT_EQ(s.again, s.code);  // sticky, and it does not wait
    EXPECT_LT(s.againNs / 1e6, 100.0);
    std::printf("survivor rank %d: %s %.0f ms after the fault (timeout %u ms)\n", r,
                svGetErrorString(static_cast<svResult_t>(s.code)), afterMs, timeoutMs);
  }
  // A dead peer's closed sockets reach at least one survivor as svRemoteError. Not always
  // every one: gloo may leave a send that was waiting on a peer to its timeout.
  if (sig == SIGKILL) {
    EXPECT_GE(remote, 1);
  }
}

TEST(Gloo, KilledPeerGivesRemoteErrorOnTheSurvivors) { faultyPeer(SIGKILL); }
TEST(Gloo, StoppedPeerGivesAnErrorWithinTwiceTheTimeout) { faultyPeer(SIGSTOP); }

TEST(Gloo, AbortReachesPeersWaitingInAnExchange) {
  const int W = 3;
  const unsigned timeoutMs = 30000;  // far longer than the test allows: only the abort ends it
  Ranks ranks(W, glooConfig(timeoutMs), [](const Ranks::Child& ch) {
    if (ch.rank != 0) return survive(ch, 0);
    ch.ready();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the peers wait for rank 0
    Report rep;
    rep.put(monotonicNs());
    rep.put(static_cast<int>(svCommAbort(ch.comm)));
    svResult_t async = svSuccess;
    svCommGetAsyncError(ch.comm, &async);
    rep.put(static_cast<int>(async));
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // still alive meanwhile
    return rep.bytes;
  });
  for (int r = 0; r < W; ++r) ASSERT_TRUE(ranks.waitReady(r, 60));
  const auto results = ranks.join(20);
  ASSERT_TRUE(results[0].exited && results[0].status == 0) << results[0].report;
  Reader rd{results[0].report};
  const int64_t abortNs = rd.get<int64_t>();
  EXPECT_EQ(rd.get<int>(), svSuccess);
  EXPECT_EQ(rd.get<int>(), svRemoteError);
  for (int r = 1; r < W; ++r) {
    ASSERT_TRUE(results[r].exited && results[r].status == 0)
        << "status " << results[r].status << ", signal " << results[r].signal << ": "
        << results[r].report;
    const Survivor s = readSurvivor(results[r]);
    EXPECT_EQ(s.code, svRemoteError) << s.text;
    EXPECT_LT((s.failedAtNs - abortNs) / 1e6, 1500.0) << s.text;  // not the 30 s timeout
    EXPECT_TRUE(s.residualKept);
  }
}

// The same abort from a watchdog thread while rank 0's own thread waits inside an exchange
// for rank 1, which comes 3 s late: rank 0's connections are closed all the same, so rank 1's
// first exchange fails when it comes instead of completing with rank 0's, and rank 0's own
// wait ends at once (as ncclCommAbort ends a stuck NCCL collective), not at its 6 s timeout.
TEST(Gloo, WatchdogAbortReachesAPeerWhileTheRankWaitsInAnExchange) {
  const unsigned timeoutMs = 6000;
  Ranks ranks(2, glooConfig(timeoutMs), [](const Ranks::Child& ch) {
    if (ch.rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3000));
      return survive(ch, 0);
    }
    int64_t abortNs = 0;
    int aborted = -1;
    std::thread watchdog([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // rank 0 is waiting now
      abortNs = monotonicNs();
      aborted = static_cast<int>(svCommAbort(ch.comm));
    });
    const std::string survivor = survive(ch, 0);
    watchdog.join();
    Report rep;
    rep.put(abortNs);
    rep.put(aborted);
    return rep.bytes + survivor;
  });
  const auto results = ranks.join(30);
  for (int r = 0; r < 2; ++r)
    ASSERT_TRUE(results[r].exited && results[r].status == 0)
        << "rank " << r << ": status " << results[r].status << ", signal " << results[r].signal
        << ": " << results[r].report;
  Reader rd{results[0].report};
  const int64_t abortNs = rd.get<int64_t>();
  EXPECT_EQ(rd.get<int>(), svSuccess);
  const Survivor own = readSurvivor(rd);
  EXPECT_EQ(own.code, svRemoteError) << own.text;
  EXPECT_TRUE(mentions(own.text, "svCommAbort")) << own.text;
  EXPECT_EQ(own.seq, 0u);
  EXPECT_LT((own.failedAtNs - abortNs) / 1e6, 1500.0) << own.text;
  EXPECT_TRUE(own.residualKept);
  const Survivor late = readSurvivor(results[1]);
  EXPECT_EQ(late.code, svRemoteError) << late.text;
  EXPECT_EQ(late.seq, 0u) << "rank 1's first exchange completed with the aborted rank's";
  EXPECT_LT((late.failedAtNs - abortNs) / 1e6, 2700.0 + 1500.0) << late.text;
  EXPECT_TRUE(late.residualKept);
}

// A watchdog thread in rank 0 polls its communicator and aborts it while rank 0's own thread
// keeps exchanging (NCCL's ncclCommGetAsyncError / ncclCommAbort pattern). Rank 0's exchanges
// end with svRemoteError (one under way too: the abort ends its waits), its communicator then
// says "aborted", and its residual can be read at once (never "in use by another thread");
// its peers' end with svRemoteError or svTimeout; every
// exchange that succeeded on every rank gave them all the same bits.
TEST(Gloo, WatchdogAbortsWhileTheRankKeepsExchanging) {
  const int W = 3;
  const size_t n = 2000;
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.density = 0.02;
  Ranks ranks(W, glooConfig(2000), [&](const Ranks::Child& ch) {
    svBucket_t b = nullptr;
    Report rep;
    rep.put(static_cast<int>(svBucketCreate(&b, ch.comm, &cfg)));
    size_t wsBytes = 0;
    svExchange(b, nullptr, nullptr, nullptr, &wsBytes, nullptr);
    std::vector<unsigned char> ws(wsBytes);
    std::atomic<bool> done{false};
    std::atomic<int> badPolls{0};  // a failed poll, or an error seen before the abort
    std::thread watchdog;
    if (ch.rank == 0)
      watchdog = std::thread([&] {
        bool aborted = false;
        while (!done.load()) {
          svResult_t async = svInternalError;
          uint64_t seq = 0;
          if (svCommGetAsyncError(ch.comm, &async) != svSuccess ||
              svCommGetSequence(ch.comm, &seq) != svSuccess || (!aborted && async != svSuccess))
            ++badPolls;
          if (!aborted && seq >= 5) {
            badPolls += svCommAbort(ch.comm) != svSuccess;
            aborted = true;
          }
          std::this_thread::yield();
        }
      });
    std::vector<std::vector<float>> outs;
    svResult_t r = svSuccess;
    for (int step = 0; step < 100000 && r == svSuccess; ++step) {
      std::mt19937_64 rng(seed + 1000 * ch.rank + step);
      const std::vector<float> g = normal(n, rng);
      std::vector<float> out(n);
      size_t bytes = ws.size();
      r = svExchange(b, g.data(), out.data(), ws.data(), &bytes, nullptr);
      if (r == svSuccess) outs.push_back(out);
    }
    const std::string text = svGetLastError(ch.comm);
    svResult_t async = svSuccess;
    svCommGetAsyncError(ch.comm, &async);
    const std::string asyncText = svGetLastError(ch.comm);
    // Residuals stay readable for a checkpoint, also while the watchdog's abort is closing
    // the connections.
    std::vector<float> residual(n);
    const svResult_t read = svBucketGetResidual(b, residual.data());
    done.store(true);
    if (watchdog.joinable()) watchdog.join();
    rep.put(static_cast<int>(r));
    rep.put(text);
    rep.put(static_cast<int>(async));
    rep.put(asyncText);
    rep.put(static_cast<int>(read));
    rep.put(badPolls.load());
    rep.put(static_cast<uint64_t>(outs.size()));
    for (const auto& o : outs) rep.put(o);
    svBucketDestroy(b);
    return rep.bytes;
  });
  const auto results = ranks.join(60);
  std::vector<std::vector<std::vector<float>>> outs(W);
  for (int r = 0; r < W; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(results[r].exited && results[r].status == 0) << results[r].report;
    Reader rd{results[r].report};
    ASSERT_EQ(rd.get<int>(), svSuccess);
    const int code = rd.get<int>();
    const std::string text = rd.text();
    const int async = rd.get<int>();
    const std::string asyncText = rd.text();
    EXPECT_EQ(rd.get<int>(), svSuccess) << "reading the residual after the failure";
    EXPECT_EQ(rd.get<int>(), 0) << "watchdog polls that failed or saw an error before the abort";
    EXPECT_TRUE(code == svRemoteError || code == svTimeout) << code << " " << text;
    if (r == 0) {
      EXPECT_EQ(code, svRemoteError) << text;  // an exchange under way is ended, not timed out
      EXPECT_EQ(async, svRemoteError) << asyncText;
      EXPECT_TRUE(mentions(asyncText, "aborted by rank 0"));
    }
    outs[r].resize(rd.get<uint64_t>());
    for (auto& o : outs[r]) {
      o.resize(rd.get<uint64_t>());
      for (float& x : o) x = rd.get<float>();
    }
    EXPECT_GE(outs[r].size(), 5u);
  }
  for (int r = 1; r < W; ++r)
    for (size_t s = 0; s < std::min(outs[0].size(), outs[r].size()); ++s)
      ASSERT_TRUE(sameBits(outs[r][s], outs[0][s])) << "rank " << r << ", step " << s;
}

TEST(Gloo, RendezvousTimesOutWhenAPeerNeverComes) {
  char dir[] = "/tmp/signvote-gloo-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  setenv("SIGNVOTE_SOCKET_IFNAME", "lo", 1);
  svComm_t c = nullptr;
  const svConfig_t cfg = glooConfig(500);
  const int64_t t0 = monotonicNs();
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, dir, &cfg), svTimeout);
  // gloo's file store looks for its peers' keys about once a second.
  EXPECT_LT((monotonicNs() - t0) / 1e6, 500.0 + 1500.0);
  EXPECT_EQ(c, nullptr);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "rank 0 of 2"));
  EXPECT_TRUE(mentions(svGetLastError(nullptr), dir));
  (void)!system((std::string("rm -rf ") + dir).c_str());
}

TEST(Gloo, RanksConfiguredDifferentlyFailAtCreation) {
  Ranks ranks(3, glooConfig(20000), [](const Ranks::Child&) { return std::string("created"); },
              [](int r, svConfig_t& c) {
                if (r == 1) c.nonFinite = SV_NONFINITE_IGNORE;
              });
  for (const auto& res : ranks.join(60)) {
    EXPECT_TRUE(res.exited);
    EXPECT_EQ(res.status, 3);  // svCommInitGloo failed
    EXPECT_TRUE(mentions(res.report, "rank 1 differs from rank 0 in config->nonFinite (1 vs 0); "
                                     "nothing was created"));
  }
}

// Timing is per rank (it need not match): the timed ranks count the same calls, those of
// SV_CHECK_GLOBAL's fingerprints included, and their time is within the exchanges' wall time.
TEST(Gloo, TimingIsPerRankAndCountsEveryCall) {
  const uint64_t seed = testSeed();
  const int W = 3, steps = 5;
  Ranks ranks(W, glooConfig(20000), [&](const Ranks::Child& ch) {
    std::mt19937_64 rng(seed + ch.rank);
    const size_t n = 1000;
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
    cfg.k = 10;
    cfg.format = SV_FORMAT_SPARSE;
    std::vector<unsigned char> ws;
    svBucket_t b = createSized(ch.comm, cfg, &ws);
    std::vector<float> out(n);
    Report rep;
    const int64_t t0 = monotonicNs();
    for (int step = 0; step < steps; ++step) {
      const std::vector<float> g = normal(n, rng);
      size_t wsb = ws.size();
      rep.put(static_cast<int>(svExchange(b, g.data(), out.data(), ws.data(), &wsb, nullptr)));
    }
    const double wallUs = (monotonicNs() - t0) / 1e3;
    svCommTimes_t t{};
    rep.put(static_cast<int>(svCommGetTimes(ch.comm, &t)));
    rep.put(t.calls);
    rep.put(t.transportUs);
    rep.put(wallUs);
    svBucketDestroy(b);
    return rep.bytes;
  }, [](int r, svConfig_t& c) { c.timing = r == 1 ? SV_TIMING_OFF : SV_TIMING_ON; });
  const auto results = ranks.join(120);
  for (int r = 0; r < W; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(results[r].exited);
    ASSERT_EQ(results[r].status, 0) << results[r].report;
    Reader in{results[r].report};
    for (int step = 0; step < steps; ++step) EXPECT_EQ(in.get<int>(), svSuccess);
    const int code = in.get<int>();
    const auto calls = in.get<uint64_t>();
    const double us = in.get<double>(), wallUs = in.get<double>();
    if (r == 1) {
      EXPECT_EQ(code, svInvalidUsage);
      continue;
    }
    EXPECT_EQ(code, svSuccess);
    EXPECT_EQ(calls, 2u * steps);  // the fingerprints' allgather, the records' allgather
    EXPECT_GT(us, 0.0);
    EXPECT_LE(us, wallUs);
  }
}

TEST(Gloo, BadArgumentsCreateNothing) {
  svComm_t c = nullptr;
  svConfig_t cfg = glooConfig(1000);
  EXPECT_EQ(svCommInitGloo(nullptr, 2, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "comm = NULL"));
  EXPECT_EQ(svCommInitGloo(&c, 0, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "nranks = 0"));
  EXPECT_EQ(svCommInitGloo(&c, 2, 2, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "rank = 2 is outside [0, nranks = 2)"));
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, nullptr, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "store = NULL"));
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, "", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "store = \"\""));
  cfg.backend = SV_BACKEND_CUDA;
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->backend"));
  cfg = glooConfig(1000);
  const int badCheck = 7;
  std::memcpy(&cfg.check, &badCheck, sizeof(int));
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->check = 7"));
  cfg = glooConfig(0);
  setenv("SIGNVOTE_TIMEOUT_MS", "soon", 1);
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "SIGNVOTE_TIMEOUT_MS = \"soon\""));
  unsetenv("SIGNVOTE_TIMEOUT_MS");
  setenv("SIGNVOTE_CHECK", "local", 1);
  EXPECT_EQ(svCommInitGloo(&c, 2, 0, "/tmp/x", &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "SIGNVOTE_CHECK = \"local\""));
  unsetenv("SIGNVOTE_CHECK");
  EXPECT_EQ(c, nullptr);
}

}  // namespace
