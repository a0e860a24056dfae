/*
 * signvote: compressed gradient exchange (sparse sign majority vote and friends) for
 * data-parallel training, built to replace a dense allreduce.
 *
 * This header is the stable C99 ABI. Conventions (NCCL's):
 *   - every call returns svResult_t; codes 0..8 have NCCL's numbering and meaning;
 *   - svGetLastError(comm) names the call, the field and the offending value;
 *   - an svInvalidArgument or svInvalidUsage return means the call had NO EFFECT: nothing was
 *     enqueued, no output was written, residual state and sequence numbers are unchanged and
 *     the communicator stays usable;
 *   - svNonFiniteInput and svMismatch are returned on EVERY rank of the exchange, also with no
 *     effect, so all ranks stay in step;
 *   - svUnhandledCudaError, svSystemError, svInternalError, svRemoteError and svTimeout make the
 *     communicator sticky-broken: later calls return the stored error and do nothing; destroy it.
 *     One exception: running out of host memory (svSystemError, "out of host memory") has no
 *     effect and leaves a loopback communicator usable; only communicators with ranks in other
 *     processes (gloo), whose peers may be waiting, are broken by it. Reporting an error never
 *     allocates.
 *
 * Objects:
 *   svComm_t    one rank of a communicator (a "world" of nranks ranks).
 *   svBucket_t  the per-rank state of one flat gradient buffer (a "bucket"): its scheme, sizes,
 *               residual (error accumulation) and sequence number. Created per rank, with the
 *               same configuration on every rank.
 *
 * Transports:
 *   loopback    nranks virtual ranks inside one process (svCommInitLoopback). All ranks are
 *               driven from one thread: wrap one call per rank in svGroupStart/svGroupEnd, as
 *               with ncclCommInitAll. This is how the library is tested without a cluster.
 *   gloo        one rank per process over TCP (gloo), host backend (svCommInitGloo): real
 *               processes and sockets, every operation bounded by a timeout. Also carries
 *               dgs_async's parameter server (point to point, served in arrival order).
 *   nccl        a borrowed ncclComm_t, one rank per process and GPU, SV_BACKEND_CUDA
 *               (svCommInitFromNccl). Written, compiled and host-checked; not yet run on a GPU.
 *
 * Backends:
 *   SV_BACKEND_HOST  buffers are host memory; calls complete before they return and the stream
 *                    argument is ignored. This is the golden model the GPU kernels must match
 *                    bit for bit, and what CI runs end to end.
 *   SV_BACKEND_CUDA  buffers (gradients, outputs, workspaces) are device memory of the
 *                    communicator's device, which must be current (or managed memory); host
 *                    memory or another device's, or a stream of another device, is
 *                    svInvalidArgument (the kernels run on the communicator's device). The
 *                    exchange is enqueued on each rank's stream with no host
 *                    synchronisation and no allocation, so it can be captured in a CUDA graph.
 *                    What only the device can see (a NaN under SV_NONFINITE_ERROR, a corrupt or
 *                    mismatched message) cannot be returned by the call: the exchange then has
 *                    no effect (outputs and residuals untouched), the communicator's device
 *                    verdict is set, and every later exchange of that communicator has no effect
 *                    either; svCommGetAsyncError reports it once the streams are done. Use
 *                    SV_NONFINITE_PROPAGATE or SV_NONFINITE_IGNORE where NaN must be survivable
 *                    (mixed precision). Argument errors are still returned by the call, with no
 *                    effect. Every scheme; adaptive K is the one exception to the first
 *                    sentence: each of its exchanges waits on the host for the gradient norm
 *                    (see SV_ADAPTIVE_K_NORM_RATIO). Not yet verified on a GPU in this version
 *                    (docs/status.md).
 *
 * Determinism: the same inputs give the same output bits run to run, and every rank of an
 * exchange receives bit-identical output (liec adds each rank's own error; dgs_async's
 * exchanges are point to point, see its entry). Vote counts are integers; every
 * floating-point step is spelled out with its rounding (one float32 fma for
 * s3gd_mv's residual, Signum's and dgs's momentum, fixed-order sums for the dense mean,
 * ef_sign's and liec's scales and means), so the host and the GPU give the same bits
 * (docs/schemes.md).
 *
 * Floating-point environment: svBucketCreate, svExchange and svGroupEnd compute in IEEE round
 * to nearest with subnormals kept and every exception masked, whatever the calling thread has
 * set (fesetround, x86's FTZ and DAZ or aarch64's FZ, as -ffast-math code and
 * torch.set_flush_denormal set them, traps from feenableexcept), and hand the thread its
 * environment back on return, exception flags included: the library's own arithmetic (an
 * overflowing sum, an inf - inf that the NaN policy handles) neither traps nor shows in
 * fetestexcept. The GPU kernels are compiled for the same arithmetic (no fma contraction, no
 * flush to zero, IEEE division).
 *
 * Thread safety: one thread at a time per communicator. Different communicators may be used
 * from different threads. A communicator belongs to the thread whose svExchange queued work
 * on it until that thread's svGroupEnd (or the end of an ungrouped call); an svExchange from
 * another thread meanwhile returns svInvalidUsage with no effect, its text in
 * svGetLastError(NULL). svBucketDestroy, svBucketGetResidual and svBucketSetResidual hold the
 * communicator the same way for their duration and are refused likewise. svCommAbort,
 * svCommGetAsyncError, svCommGetSequence, svCommCount, svCommUserRank and svGetLastError may
 * be called from any thread until the communicator is destroyed, also while another thread
 * drives it: a watchdog thread may poll and abort it, as with ncclCommGetAsyncError and
 * ncclCommAbort (an exchange already under way completes, or on a gloo world fails at once;
 * the later ones fail with no effect). So may svBucketGetInfo until the bucket is destroyed;
 * its last-exchange fields then describe one exchange, the last that had completed.
 */
#ifndef SIGNVOTE_H_
#define SIGNVOTE_H_

#include <stddef.h>
#include <stdint.h>

#include "signvote/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cudaStream_t without requiring the CUDA headers in host-only code. */
typedef struct CUstream_st* svStream_t;

/* Opaque handles (see "Objects" above). */
typedef struct svComm* svComm_t;
typedef struct svBucket* svBucket_t;

/* ------------------------------------------------------------------------------------------ */
/* Results                                                                                    */
/* ------------------------------------------------------------------------------------------ */
typedef enum {
  svSuccess = 0,
  svUnhandledCudaError = 1, /* a CUDA call failed; the communicator is broken */
  svSystemError = 2,        /* an OS call or an allocation failed (allocation: no effect) */
  svInternalError = 3,      /* a bug in signvote; please report it */
  svInvalidArgument = 4,    /* a bad pointer, size or configuration value; no effect */
  svInvalidUsage = 5,       /* a valid call at the wrong time (e.g. ungrouped loopback); no effect */
  svRemoteError = 6,        /* a peer failed; the communicator is broken */
  svInProgress = 7,         /* a non-blocking operation has not completed yet (NCCL semantics) */
  svTimeout = 8,            /* an operation did not complete within the configured timeout */
  svNonFiniteInput = 9,     /* a rank had NaN input under SV_NONFINITE_ERROR; on every rank */
  svMismatch = 10,          /* ranks called with different arguments; on every rank */
  svCorruptInput = 11,      /* a peer's message failed validation; nothing out of bounds written */
  svNumResults = 12
} svResult_t;

/* A static string naming the code, e.g. "invalid argument". Never NULL. */
const char* svGetErrorString(svResult_t result);

/* The text of the last error on this communicator ("svBucketCreate: config->k = 200 exceeds
 * count = 100 ..."), made by whichever thread called it, or the calling thread's last error
 * when comm is NULL or invalid. The pointer is the calling thread's copy, valid until that
 * thread's next signvote call (as ncclGetLastError's). Never NULL; "" when none. */
const char* svGetLastError(svComm_t comm);

/* SIGNVOTE_VERSION_CODE of the library actually loaded (compare with the header's). */
svResult_t svGetVersion(int* version);

/* ------------------------------------------------------------------------------------------ */
/* Enumerations                                                                               */
/* ------------------------------------------------------------------------------------------ */
typedef enum { svFloat32 = 0, svNumDataTypes = 1 } svDataType_t;

typedef enum {
  SV_BACKEND_HOST = 0,
  SV_BACKEND_CUDA = 1, /* svInvalidArgument when no CUDA device is usable */
  SV_NUM_BACKENDS = 2
} svBackend_t;

/* What happens when the value a rank would compress is NaN. The check covers the value after
 * the state update (s3gd_mv's a = fma(rho, a, g), Signum's momentum m, ef_sign's p = g + e) and
 * the gradient g otherwise, so a NaN that appears through inf - inf in the state is caught too.
 * +-inf is a valid (largest) magnitude and votes with its sign. */
typedef enum {
  SV_NONFINITE_ERROR = 0,     /* default: svNonFiniteInput on every rank, no effect */
  SV_NONFINITE_IGNORE = 1,    /* NaN is replaced by +0.0 (in the vote and in the residual) */
  SV_NONFINITE_PROPAGATE = 2, /* success, every rank's whole output is NaN, state untouched,
                                 so a loss scaler sees it and skips the step */
  SV_NUM_NONFINITE = 3
} svNonFinitePolicy_t;

typedef enum {
  /* Mean of the ranks' gradients: sum in rank order, then divided by nranks (fp32). */
  SV_SCHEME_DENSE = 0,
  /* signSGD with majority vote (Bernstein et al. 2019): each rank sends sign(g) of every
   * coordinate; the output is the majority sign. See svVote_t for the sign and tie rules.
   * Signum: with svBucketConfig_t.momentum = beta != 0 each rank keeps a momentum
   * m = fma(beta, m, (1 - beta) * g) (float32, (1 - beta) and the product rounded first) and
   * sends sign(m); m is the bucket's state (svBucketGetResidual), committed after success. */
  SV_SCHEME_SIGNSGD_MV = 1,
  /* Sparse-signSGD with majority vote (S3GD-MV, Park & Lee 2023): a = fma(rho, a, g); S = the
   * exact top-K of |a| (see svBucketConfig_t.k); send sign(a) on S; a[S] = 0 after success.
   * The output is the ternary majority vote over the union of the ranks' supports. */
  SV_SCHEME_S3GD_MV = 2,
  /* Error-feedback sign (Karimireddy et al. 2019): p = g + e (float32); the rank sends
   * c = scale * sign(p) with scale = sum(|p|) / count, the sum taken by the fixed pairwise tree
   * of docs/schemes.md; e = p - c (float32) is the bucket's state, committed after success.
   * The output is the mean of the ranks' c: summed in rank order, then divided by nranks.
   * Because e = p - c is rounded, c + e equals p exactly only where the subtraction is exact
   * (for example wherever sign(p) = 0, or scale/2 <= |p| <= 2 scale); elsewhere within half
   * an ulp of p. sign(0) = 0: a zero coordinate sends nothing and keeps e = p. */
  SV_SCHEME_EF_SIGN = 3,
  /* Top-K values with error feedback, DGC-style (Lin et al. 2018): u = fma(momentum, u, g)
   * (momentum correction; u = g when momentum = 0), v = v + u, S = the exact top-K of |v| (the
   * rules of s3gd_mv), send the values v[S]; then v[S] = +0.0 and, with momentum, u[S] = +0.0
   * (momentum factor masking). The output is the mean of the sent values: per coordinate the
   * values of the ranks that sent it, added in rank order starting from +0.0, divided by
   * nranks (0 where nobody sent). The state is v, then u when momentum != 0. DGC's density
   * warm-up is a schedule of K: create a bucket per phase. */
  SV_SCHEME_TOPK_EF = 4,
  /* DGS, synchronous (Yan et al. 2020): SAMomentum on each rank, u = fma(momentum, u, g) with
   * momentum m in (0, 1) (pass the learning-rate-scaled gradient lr * g as sendbuff; the output
   * is the model update to subtract); S = the exact top-K of |u| (the rules of s3gd_mv); send
   * the values u[S]; after success the sent coordinates keep u and every other coordinate
   * becomes u / m (float32 division), so a coordinate held back T - 1 steps carries
   * m * u_c + (its T gradients summed) when it is sent. The aggregate G is the mean of the sent
   * values (as topk_ef). Downlink secondary compression (downK / downDensity != 0): every rank
   * keeps the same downlink residual D; A = D + G (float32), the output is A on the exact
   * top-downK of |A| and +0.0 elsewhere, D = A with those coordinates set to +0.0. With the
   * collective formats every rank computes this itself (it adds no wire bytes; it is the
   * parameter server's downlink in SV_SCHEME_DGS_ASYNC). The state is u, then D when downlink
   * compression is on. */
  SV_SCHEME_DGS = 5,
  /* LIEC-SGD (Cheng et al. 2024), local immediate error compensation. The bucket is cut into
   * nranks owner chunks (svBucketInfo_t.chunk elements, a multiple of 64; the last ones may be
   * short or empty). Each rank compresses c_i = s_i,d * sign(g) per chunk d, with
   * s_i,d = sum(|g|) / len(d) (the fixed tree of ef_sign) and sign(0) = 0; the owner of chunk d
   * forms a = mean_i(c_i) + e (the mean summed in rank order, divided by nranks, then one
   * float32 add), c_hat = C(a) the same way, e = a - c_hat (its state: this rank's chunk);
   * every rank gets c_hat. The output differs per rank: rank i gets c_hat + (g_i - c_i), its
   * own compression error applied in the same step and not kept. Every period-th exchange
   * (config period = tau; 0 = never) is an averaging exchange instead: the output is
   * mean_i(g_i) + e on every rank (identical), then e = -0.0 (IEEE's additive identity, as
   * at creation, so mean + e is exactly the mean). The trainer must then average its model
   * exactly, e.g. with a dense bucket over the parameters; svBucketInfo_t.averageNext says
   * in advance whether the next exchange is an averaging one. A CUDA graph replays the kind
   * of exchange it captured, and replays do not advance the bucket's count: with a period,
   * capture a compressing and an averaging exchange as two graphs and replay each every time
   * its turn comes. With SV_FORMAT_FP32 the compressor is the identity: no error exists and
   * every exchange is the dense mean. */
  SV_SCHEME_LIEC = 6,
  /* DGS, asynchronous (Yan et al. 2020, Algorithms 2 and 3): a parameter server. Rank 0 is the
   * server, ranks 1 .. nranks-1 are workers (nranks >= 2). Host backend only: NCCL cannot
   * receive from whichever peer comes first (SV_BACKEND_CUDA: svInvalidArgument at creation).
   * The configuration is dgs's (k or density, momentum in (0, 1), downK or downDensity; no
   * adaptive K, no dense fallback), equal on every rank. An exchange is one push: one
   * worker's call and one server's call, paired.
   *   Worker k: SAMomentum as dgs, u' = fma(m, u, g) and S = the exact top-K of |u'|; the
   *     record of the values u'[S] goes to the server, the worker waits for the reply and
   *     writes it to recvbuff: the model difference to subtract (theta_k -= recvbuff). After
   *     success u commits as dgs's. The worker's sendbuff is its lr-scaled gradient.
   *   Server: sendbuff is unused (may be NULL). It receives the next push (gloo: the first of
   *     any worker's to arrive; loopback: see below) and, with T its total update and v_k what
   *     worker k has received so far, forms T' = T + (the push's values, added in index order,
   *     float32), A = T' - v_k (float32), the reply D = A (downK = 0) or A on the exact
   *     top-downK of |A| (the rules of s3gd_mv) and +0.0 elsewhere, and v_k' = v_k + D
   *     (float32). It writes T' to recvbuff (its model is theta_0 - T') and commits T' and
   *     v_k' once the reply is sent. svBucketInfo_t.lastPeer names the worker served.
   * Without downlink compression a worker's model after its reply is theta_0 - T' (exactly
   * when no rounding occurs): asynchronous SGD with SAMomentum. With it, T - v_k is what
   * worker k has not received yet; it goes out in later replies. The server's state is T,
   * then v_1 .. v_{nranks-1} (nranks x count floats); a worker's is u (count floats).
   * Non-finite input: a worker's NaN in u' under SV_NONFINITE_ERROR still sends a record,
   * flagged and empty, and both calls return svNonFiniteInput with no effect; under
   * SV_NONFINITE_PROPAGATE both succeed, the worker's output is all NaN and no state changes
   * (the server writes T). A push that fails validation makes both calls return
   * svCorruptInput with no effect; a reply that fails it breaks the worker's communicator
   * (svRemoteError: the server has committed what the worker did not apply).
   * Calls: a loopback world runs a push as a group of exactly two calls, the server's and
   * one worker's (any other group holding a dgs_async exchange is svInvalidUsage, no
   * effect); the script of groups is the order of service. A gloo world calls svExchange
   * outside groups; the server's call waits up to config->timeoutMs for a push (svTimeout
   * breaks the communicator, as for every gloo operation), so a server loop serves exactly
   * as many pushes as the workers make; a worker that dies leaves the server serving the
   * others until no push comes for timeoutMs. Several dgs_async buckets of one world are told
   * apart by their order of creation, which must be the same on every rank. The push's
   * header carries what the server must agree on (scheme, count, K, downK and the worker's
   * count of pushes, which the server counts too): a push that differs is refused with
   * svMismatch, no effect. SV_CHECK_GLOBAL's fingerprints are not exchanged, and pushes do
   * not advance svCommGetSequence, so collective buckets of the same world keep working. */
  SV_SCHEME_DGS_ASYNC = 7,
  SV_NUM_SCHEMES = 8
} svScheme_t;

typedef enum {
  /* sign(x) = -1 if x < 0, +1 if x > 0, 0 if x == 0 (so -0.0 and +0.0 cast no vote); the
   * output is sign(sum of votes): a tied vote, or a coordinate nobody voted for, gives 0. */
  SV_VOTE_TERNARY = 0,
  /* The reference signSGD-MV code: sign(x) = -1 if x < 0 else +1 (so +-0.0 vote +1); the output
   * is -1 if more ranks voted -1 than +1, else +1 (a tie gives +1). signsgd_mv only. */
  SV_VOTE_BINARY = 1,
  SV_NUM_VOTES = 2
} svVote_t;

/* Adaptive per-step K for the top-K schemes (s3gd_mv, topk_ef, dgs). */
typedef enum {
  SV_ADAPTIVE_K_NONE = 0, /* K is fixed (svBucketConfig_t.k / density) */
  /* A STAND-IN for Ruan et al.'s rule (arXiv 2210.13532), whose closed form we have not read:
   * spend more of the budget when the gradient is large. Each exchange first sums the ranks'
   * squared gradient norms (G; a fixed-order float32 sum per rank, then in rank order across
   * ranks, so every rank has the same G), then
   *   K_t = clamp(llround(Kbar * G / E), kMin, count), Kbar = the configured K,
   * E = the running mean of G (E = G on the first exchange, then E = fma(0.9, E, 0.1 G) after
   * each successful one with a finite G; K_t = clamp(Kbar) when G / E is not finite), capped so
   * that the K_t of a window of kWindow exchanges sum to at most kBudget while every later
   * exchange of the window can still take kMin. The ledger counts every exchange that returns
   * svSuccess, one whose output is NaN under SV_NONFINITE_PROPAGATE included (its K_t went on
   * the wire); a failed one moves neither. The format is fixed at creation; the workspace is
   * sized for every K the rule can pick. svBucketInfo_t.lastK reports the K of the last
   * exchange. SV_BACKEND_CUDA: the norms are computed on the device and read back, so each
   * exchange waits on the host for its streams up to its start (across processes, also for a
   * one-float allgather); it cannot be captured in a CUDA graph (svInvalidUsage, no effect).
   * In exchange, a NaN input under SV_NONFINITE_ERROR is refused by the call itself
   * (svNonFiniteInput, no effect, the communicator usable), as on the host backend. */
  SV_ADAPTIVE_K_NORM_RATIO = 1,
  SV_NUM_ADAPTIVE_K = 2
} svAdaptiveK_t;

/* Wire formats. Every message starts with a 64-byte header (magic, wire version, rank, flags, scheme,
 * sequence number, count, K, entries, checksums) that receivers validate. Sizes are exact and documented
 * in docs/formats.md; svBucketGetInfo reports the chosen format and its modeled bytes. */
typedef enum {
  SV_FORMAT_AUTO = 0,   /* the planner picks the fewest modeled wire bytes (same on all ranks) */
  SV_FORMAT_SPARSE = 1, /* s3gd_mv: allgather of fixed-size records: Elias-Fano coded sorted
                           indices plus one sign bit per kept coordinate */
  SV_FORMAT_COUNTS = 2, /* s3gd_mv: reduce-scatter of dense int8/int16 ternary vote counts,
                           then allgather of the 2-bit packed result (never cheaper than
                           SV_FORMAT_SIGNS; AUTO does not pick it) */
  SV_FORMAT_SIGNS = 3,  /* signsgd_mv, s3gd_mv: all-to-all of packed sign bit-planes (1 plane
                           binary, 2 planes ternary: nonzero, negative; s3gd_mv sets bits at its
                           selection only), the chunk owner votes with bit-sliced counters,
                           allgather of the result. For s3gd_mv AUTO picks it over
                           SV_FORMAT_SPARSE when W*K is comparable to N. Every s3gd_mv format
                           gives the same bits. */
  SV_FORMAT_FP32 = 4,   /* dense: allreduce of float32 sums */
  SV_FORMAT_SCALED_SIGNS = 5, /* ef_sign: allgather of each rank's ternary sign planes and its
                                 float32 scale; every rank forms the mean itself */
  SV_FORMAT_SPARSE_VALUES = 6, /* topk_ef, dgs: allgather of fixed-size records: the sparse
                                  record's Elias-Fano indices and signs, then the float32 values */
  SV_FORMAT_CHUNK_SIGNS = 7,   /* liec: all-to-all of each chunk's ternary sign planes and
                                  float32 scale to the chunk's owner, allgather of the owners'
                                  compressed result (planes and scale); averaging exchanges
                                  move float32 (reduce-scatter, then allgather) */
  SV_NUM_FORMATS = 8
} svFormat_t;

/* Whether the ranks' calls are matched before each exchange. A loopback world sees every
 * rank's call and always matches them (svMismatch, see svGroupStart). Ranks in different
 * processes cannot see each other's arguments: with SV_CHECK_GLOBAL a group first allgathers
 * a fixed-size fingerprint of every rank's call (its position in the group and the
 * group's number of calls, sequence number, scheme, datatype, count, K, format, vote, rho,
 * momentum, adaptive-K settings and state, downK, period, the bucket's exchange count,
 * nonFinite policy) and every rank returns svMismatch, with no effect, naming the first rank
 * that differs from rank 0 and the first differing field: one allgather for the group's first
 * call, one for all its others. SV_CHECK_NONE skips that (two small allgathers fewer per
 * group); calls that differ then are undefined: message headers still catch a differing
 * sequence number, scheme, count or K when the message sizes agree, otherwise the exchange
 * fails (svRemoteError) or waits until svTimeout. */
typedef enum {
  SV_CHECK_DEFAULT = 0, /* SIGNVOTE_CHECK from the environment ("global" or "none"), else global */
  SV_CHECK_NONE = 1,
  SV_CHECK_GLOBAL = 2,
  SV_NUM_CHECKS = 3
} svCheck_t;

/* Whether the communicator times its transport calls, for svCommGetTimes. Off by default: on
 * SV_BACKEND_CUDA it records two CUDA events around every transport call. */
typedef enum {
  SV_TIMING_DEFAULT = 0, /* SIGNVOTE_TIMING from the environment ("1" or "0"), else off */
  SV_TIMING_OFF = 1,
  SV_TIMING_ON = 2,
  SV_NUM_TIMINGS = 3
} svTiming_t;

/* ------------------------------------------------------------------------------------------ */
/* Communicators                                                                              */
/* ------------------------------------------------------------------------------------------ */
#define SV_CONFIG_MAGIC 0x53564346u /* "SVCF" */

/* Communicator configuration. Always start from SV_CONFIG_INITIALIZER: size/magic/version let
 * the structure grow without breaking the ABI. Must be equal on every rank. */
typedef struct {
  size_t size;      /* sizeof(svConfig_t) */
  unsigned int magic;   /* SV_CONFIG_MAGIC */
  unsigned int version; /* SIGNVOTE_VERSION_CODE */
  svBackend_t backend;
  svNonFinitePolicy_t nonFinite;
  /* gloo transport: the limit, in milliseconds, of the rendezvous and of every network
   * operation inside an exchange; a peer that stops answering makes the exchange return
   * svTimeout. nccl: the limit of the host waits (creation handshake, SV_CHECK_GLOBAL's
   * fingerprint allgather, settling ncclInProgress); stream-ordered NCCL work itself has no
   * limit here (NCCL's own). 0 means SIGNVOTE_TIMEOUT_MS from the environment, else 300000
   * (5 minutes). Ignored by the loopback transport, which never waits. */
  unsigned int timeoutMs;
  svCheck_t check;
  svTiming_t timing; /* per rank; need not match across ranks */
} svConfig_t;

#define SV_CONFIG_INITIALIZER                                                          \
  { sizeof(svConfig_t), SV_CONFIG_MAGIC, SIGNVOTE_VERSION_CODE, SV_BACKEND_HOST,        \
    SV_NONFINITE_ERROR, 0, SV_CHECK_DEFAULT, SV_TIMING_DEFAULT }

/* Creates nranks communicators of one loopback world; comms[r] is rank r. config may be NULL
 * (defaults). Limits: 1 <= nranks <= SV_MAX_RANKS. On error nothing is created. */
#define SV_MAX_RANKS 4096
svResult_t svCommInitLoopback(svComm_t* comms, int nranks, const svConfig_t* config);

/* Creates rank `rank` of an nranks-rank world whose ranks live in different processes (or
 * hosts), connected over TCP by gloo. Collective: every rank calls it with the same nranks,
 * store and an equal config; it returns once all ranks are connected, or svTimeout after
 * config->timeoutMs (plus up to a second: gloo's file store looks for peers once a second).
 * store is a directory every rank can reach (a shared file system across hosts), empty or
 * absent at the start (then it is made) and used by one world only (the file-store rendezvous
 * of gloo and of torch's file:// init); it may be removed once every rank returned. Sockets
 * bind to the interface named by SIGNVOTE_SOCKET_IFNAME (e.g. "lo", "eth0"), else to the
 * address of this host's name. Host backend only. One rank per communicator: svExchange needs
 * no group (groups still batch several buckets all-or-nothing). A peer that dies makes the
 * exchanges of the others return svRemoteError when they see its closed sockets (at once), or
 * svTimeout when gloo leaves a send waiting; one that stops answering, svTimeout within
 * timeoutMs of the operation that waits for it. Either breaks the communicator, and a broken
 * communicator closes its connections, so peers waiting to receive from it fail at once.
 * Ranks whose library or wire version, nonFinite policy or check mode differ all fail here
 * with svMismatch (a handshake after connecting). On error nothing is created and the text is in
 * svGetLastError(NULL). Process state: when SIGPIPE has its default action (terminate), this
 * call sets it to ignored, as Python does at startup, because gloo's socket writes to a dead
 * peer raise it; a handler the application installed is left alone and must not exit. */
svResult_t svCommInitGloo(svComm_t* comm, int nranks, int rank, const char* store,
                          const svConfig_t* config);

/* Creates this process's rank of a world over the caller's NCCL communicator (ncclComm_t),
 * which it borrows: signvote never destroys or aborts it, and it must outlive the svComm.
 * The size and rank are NCCL's; the current CUDA device must be NCCL's (svInvalidUsage
 * otherwise). config may be NULL (defaults with SV_BACKEND_CUDA); its backend must be
 * SV_BACKEND_CUDA. Collective over the NCCL communicator: every rank calls it, and a creation
 * handshake (one small ncclAllGather on the legacy default stream, waited for on the host up to
 * config->timeoutMs) makes ranks whose library or wire version, nonFinite policy or check mode
 * differ all fail with svMismatch; nothing is created on error.
 * Exchanges enqueue NCCL calls on their stream: ncclAllGather for records, headers and result
 * planes, grouped ncclSend/ncclRecv for all-to-alls. Every sum (vote counts, the dense mean) is
 * formed by the chunk's owner from an all-to-all in rank order, then allgathered, so a world
 * over NCCL gives the bits of a loopback world and of the host backend; the bytes on the wire
 * are those of NCCL's reduce-scatter plus allgather. Non-blocking NCCL communicators work once
 * their initialisation has completed (ncclCommGetAsyncError gives ncclSuccess; before that
 * NCCL cannot report its size and this call returns svInvalidArgument): ncclInProgress from
 * an exchange's NCCL calls is waited out (up to timeoutMs) before the next one. A blocking
 * communicator's calls block inside NCCL: with NCCL's default lazy connection
 * (NCCL_RUNTIME_CONNECT=1) the first collective, this call's handshake, waits there for every
 * peer without a timeout; NCCL_RUNTIME_CONNECT=0 or a non-blocking communicator keeps a missing
 * peer within timeoutMs (svTimeout).
 * Checks: SV_CHECK_GLOBAL (the default) allgathers the group's fingerprints and waits for
 * them on the host before anything of the group is enqueued: two host round trips per group
 * at most (one when it holds one exchange), and
 * refused (svInvalidUsage) while the stream is being captured. SV_CHECK_NONE keeps the
 * exchange fully stream-ordered and capturable; calls that differ then behave as NCCL
 * collectives that differ (the device still checks every message header).
 * Failures: an NCCL call that fails breaks the communicator with NCCL's code (svSystemError,
 * svRemoteError, svUnhandledCudaError; svInternalError for arguments NCCL refused), and so
 * does NCCL's asynchronous error (ncclCommGetAsyncError) seen by any host wait, which
 * svCommGetAsyncError also reports; an exchange enqueued without a host wait (SV_CHECK_NONE)
 * returns svSuccess and its peers' failure shows there. Once NCCL holds an asynchronous
 * error, NCCL's own calls return it, so the next exchange fails at its first NCCL call with
 * that code (svRemoteError for a peer's abort), no effect, and the communicator broken.
 * svCommAbort marks the world broken but cannot stop NCCL kernels already waiting for a dead
 * peer: call ncclCommAbort on the NCCL communicator for that, then destroy the svComm (freeing
 * device memory waits for those kernels, since cudaFree synchronizes the device). After a
 * timeout or NCCL error, signvote's own staging buffers (nranks x 184 bytes of device and of
 * pinned memory) are freed only if the work they served has ended by the time the svComm is
 * destroyed, or this call fails; otherwise they are left allocated rather than wait. */
struct ncclComm;
svResult_t svCommInitFromNccl(svComm_t* comm, struct ncclComm* nccl, const svConfig_t* config);

/* Frees one rank. Its buckets must be destroyed first (svInvalidUsage otherwise). Destroying a
 * NULL comm is a no-op. A loopback world is freed when its last rank is destroyed. */
svResult_t svCommDestroy(svComm_t comm);

svResult_t svCommUserRank(svComm_t comm, int* rank);
svResult_t svCommCount(svComm_t comm, int* nranks);
/* Number of exchanges this rank completed successfully; failed calls do not count, nor do
 * dgs_async's pushes (the ranks' counts of those differ by role). */
svResult_t svCommGetSequence(svComm_t comm, uint64_t* seq);
/* The communicator's stored sticky error (svSuccess while healthy). SV_BACKEND_CUDA: also the
 * first failure the device detected in an exchange (see "Backends"), and NCCL's asynchronous
 * error; read it after the exchange's stream work completed. Does not block. When it reports
 * a failure, svGetLastError(comm) names it: what broke the communicator, the device's
 * verdict, or NCCL's own text. */
svResult_t svCommGetAsyncError(svComm_t comm, svResult_t* asyncError);

/* The time this rank spent in its transport's calls (the communication half of an exchange;
 * the rest is the scheme's own work), counted since creation when the communicator was created
 * with timing on (svConfig_t.timing); svInvalidUsage, no effect, when it was not. A call is
 * one collective of the wire format (allgather, all-to-all, reduce-scatter, allreduce), a
 * barrier of a loopback world's streams, or one of SV_CHECK_GLOBAL's or adaptive K's small
 * host allgathers; its time includes waiting for peers that arrive later.
 *   SV_BACKEND_HOST  wall time of each call (the loopback transport: memory copies and sums).
 *   SV_BACKEND_CUDA  device time between CUDA events recorded before and after each call on
 *                    the stream of the first rank the process drives (for loopback worlds,
 *                    rank 0's view; waits for the other ranks' streams are part of it). This
 *                    call waits on the host until the timed calls completed. Calls enqueued
 *                    while their stream is being captured are not timed (neither are graph
 *                    replays). The exchange itself never waits for the events, except that
 *                    once 256 timed calls are still incomplete the next one waits for the oldest.
 * The ranks of a loopback world share one transport, so each reports the whole world's calls.
 * Holds the communicator like svBucketGetResidual (svInvalidUsage while another thread's
 * exchange uses it). On a broken communicator it still reports what was timed. When waiting
 * for the events fails (svUnhandledCudaError), or a timed call has not completed within
 * config->timeoutMs (svTimeout: a peer that never arrives), the communicator is broken. */
typedef struct {
  uint64_t calls;     /* transport calls timed */
  double transportUs; /* their summed duration in microseconds */
} svCommTimes_t;
svResult_t svCommGetTimes(svComm_t comm, svCommTimes_t* times);

/* Stops the communicator for good, as ncclCommAbort does for a fault the trainer cannot
 * recover from: this rank and every other live rank of its world become sticky-broken with
 * svRemoteError ("aborted by rank r"), so peers fail their next call instead of waiting for
 * this rank. Gloo worlds: this rank closes its connections, so peers waiting on it in an
 * exchange return svRemoteError at once. That holds while another thread is inside an
 * exchange on this communicator too (a watchdog's call, see Thread safety); that exchange's
 * waits end at once and it fails with svRemoteError and no effect, as a collective stuck in
 * NCCL ends at ncclCommAbort, and the later calls return svRemoteError ("aborted"). Never
 * blocks and is safe on a broken communicator. The first cause of a broken communicator is
 * the one later calls report, except that an abort of this rank replaces it. Residuals stay
 * readable (svBucketGetResidual); destroy the buckets, then the communicator. */
svResult_t svCommAbort(svComm_t comm);

/* ------------------------------------------------------------------------------------------ */
/* Buckets                                                                                    */
/* ------------------------------------------------------------------------------------------ */
#define SV_BUCKET_CONFIG_MAGIC 0x53564243u /* "SVBC" */
/* Largest count per bucket: indices on the wire and in the kernels are 32-bit. */
#define SV_MAX_COUNT 4294967295ull

/* Bucket configuration; start from SV_BUCKET_CONFIG_INITIALIZER. Every field must be equal on
 * every rank (the loopback transport checks this and returns svMismatch). */
typedef struct {
  size_t size;          /* sizeof(svBucketConfig_t) */
  unsigned int magic;   /* SV_BUCKET_CONFIG_MAGIC */
  unsigned int version; /* SIGNVOTE_VERSION_CODE */
  svScheme_t scheme;
  svDataType_t datatype; /* input gradient and output update type; svFloat32 only for now */
  size_t count;          /* N, elements in the bucket, 0 <= N <= SV_MAX_COUNT */
  /* s3gd_mv, topk_ef, dgs: K, the number of coordinates each rank keeps. Exactly K are kept
   * (never a silent clamp): K > count is svInvalidArgument. K == 0 sends nothing: the output
   * is all +0.0 and the residual keeps accumulating. Ignored when density != 0. */
  size_t k;
  /* s3gd_mv, topk_ef, dgs: when non-zero, K = ceil(density * count) evaluated in IEEE
   * double; must be in (0, 1]. 0 means "use k". */
  double density;
  /* s3gd_mv: residual decay, a = fma(rho, a, g) in float32. 1 = full error accumulation (the
   * paper's default), 0 = none (a = g, exactly, whenever the stored residual is finite). */
  float rho;
  svVote_t vote;
  svFormat_t format;
  /* Momentum in [0, 1): Signum's beta for signsgd_mv (0: plain signSGD, no state), DGC's
   * momentum correction for topk_ef; in (0, 1) for dgs (SAMomentum divides by it). Must be 0
   * for the other schemes. */
  float momentum;
  /* s3gd_mv, topk_ef, dgs: adaptive per-step K (see svAdaptiveK_t). kMin >= 1 when adaptive;
   * kBudget = 0 means no budget, else kBudget >= kMin * kWindow and kWindow >= 1. */
  svAdaptiveK_t adaptiveK;
  size_t kMin;
  size_t kBudget;
  unsigned int kWindow;
  /* dgs: downlink secondary compression, the number of coordinates of the aggregate each
   * exchange outputs (downK <= count), or downDensity in (0, 1] as for k; both 0: off. */
  size_t downK;
  double downDensity;
  /* liec: tau, every period-th exchange of the bucket averages (see SV_SCHEME_LIEC); 0: never. */
  unsigned int period;
  /* Opt-in fallback to dense, decided once at creation by the link model of signvote-bench.
   * With linkBusBW > 0 the planner models one exchange of this rank as
   *   compressed = kernelUs + wireBytes / linkBusBW,   dense = denseWireBytes / linkBusBW
   * (wireBytes, denseWireBytes: svBucketInfo_t's, for this scheme and world size; liec with a
   * period: the mean over a period, its averaging exchange included; adaptive K: at the
   * configured K). When dense <= compressed the bucket is created as a dense bucket of the
   * same count instead: SV_SCHEME_DENSE, the output is the mean gradient, it keeps no state.
   * svBucketInfo_t.scheme and denseFallback say so, and the trainer must then step with a
   * gradient, not a sign: the fallback changes the update's meaning, which is why it is never
   * taken unasked. The choice depends only on this config and the world size, so ranks with
   * equal configs choose alike (ranks that choose differently get svMismatch on the scheme).
   * Latency, overlap and the transport's own kernels are not modeled (docs/formats.md).
   * linkBusBW: the bus bandwidth one rank's traffic gets, GB/s (1e9 bytes/s, nccl-tests'
   * busbw); finite and >= 0; 0: off. kernelUs: microseconds by which this bucket's compressed
   * exchange computes longer per rank than a dense one (measure it on the target GPU: an
   * exchange's time less its transport time, svCommGetTimes, for both schemes); finite,
   * >= 0, and 0 when linkBusBW is 0. */
  double linkBusBW;
  double kernelUs;
} svBucketConfig_t;

#define SV_BUCKET_CONFIG_INITIALIZER                                                     \
  { sizeof(svBucketConfig_t), SV_BUCKET_CONFIG_MAGIC, SIGNVOTE_VERSION_CODE, SV_SCHEME_S3GD_MV, \
    svFloat32, 0, 0, 0.0, 1.0f, SV_VOTE_TERNARY, SV_FORMAT_AUTO, 0.0f, SV_ADAPTIVE_K_NONE, 0, \
    0, 0, 0, 0.0, 0, 0.0, 0.0 }

/* Creates this rank's state for one bucket: validates the config, resolves K, plans the wire
 * format and allocates the state vector ("residual", zero-filled, count floats: s3gd_mv's
 * residual, ef_sign's error, Signum's momentum; topk_ef's v then, with momentum, u: 2 x count;
 * dgs's u then, with downlink compression, D; liec's e over this rank's chunk, filled with
 * -0.0; none for dense, plain signsgd_mv and liec over fp32; svBucketInfo_t.stateFloats has
 * the size).
 * Not collective; every rank creates its own with an equal config. On error nothing is
 * created. SV_BACKEND_CUDA: the state is device memory of comm's device, which must be current
 * (else svInvalidUsage). */
svResult_t svBucketCreate(svBucket_t* bucket, svComm_t comm, const svBucketConfig_t* config);
/* Frees the bucket. NULL is a no-op. Work in flight keeps its bucket: svInvalidUsage, with no
 * effect, while this thread's open group has an exchange of the bucket queued (call
 * svGroupEnd first) or another thread's exchange or group holds its communicator. With
 * SV_BACKEND_CUDA, exchanges already enqueued on a stream finish first (cudaFree waits). */
svResult_t svBucketDestroy(svBucket_t bucket);

/* What the planner decided, for reporting. Byte counts are per rank, per exchange, and count
 * what this rank SENDS with ring algorithms (the nccl-tests convention): allgather of R bytes
 * sends (W-1)*R; reduce-scatter/all-to-all of B bytes sends (W-1)*B/W; allreduce 2*(W-1)*B/W. */
typedef struct {
  size_t k;                  /* resolved K (s3gd_mv, topk_ef, dgs), else count */
  svFormat_t format;         /* the chosen format (never SV_FORMAT_AUTO) */
  size_t recordBytes;        /* sparse: one record, header included; else 0 */
  uint64_t wireBytes;        /* modeled bytes this rank sends per exchange, headers included
                                (dgs_async: a push's record plus its reply, both directions
                                of the pair) */
  uint64_t denseWireBytes;   /* the same for an fp32 ring allreduce of the bucket */
  double bitsPerKept;        /* sparse: record bits / K (index + sign + header share); else 0 */
  size_t workspaceBytes;     /* what svExchange needs (also returned by its size query) */
  size_t stateFloats;        /* floats of state svBucketGetResidual copies (0: none) */
  size_t lastK;              /* K of the last successful exchange (adaptive K), else k */
  size_t lastRecordBytes;    /* recordBytes of that exchange (they follow K under adaptive K) */
  uint64_t lastWireBytes;    /* wireBytes of that exchange */
  size_t downK;              /* dgs: resolved downlink K (0: no secondary compression) */
  size_t chunk;              /* elements per owner chunk (counts, signs, chunk signs formats) */
  int averageNext;           /* liec: 1 when the next exchange is an averaging exchange */
  svScheme_t scheme;         /* the scheme the bucket runs: config->scheme, or SV_SCHEME_DENSE
                                after a dense fallback (the fields above then describe it) */
  int denseFallback;         /* 1 when the link model made the bucket dense (see linkBusBW) */
  double modeledUs;          /* with config->linkBusBW: the modeled exchange of config->scheme
                                (the compressed side of the choice), else 0 */
  double modeledDenseUs;     /* with config->linkBusBW: the modeled dense exchange, else 0 */
  int lastPeer;              /* dgs_async: on the server, the worker its last successful
                                exchange served; on a worker, 0 (the server); else -1 */
} svBucketInfo_t;
svResult_t svBucketGetInfo(svBucket_t bucket, svBucketInfo_t* info);

/* Copies the state vector (stateFloats floats; see svBucketCreate) out of / into the bucket, e.g. for
 * checkpoints. Buckets without state: svInvalidUsage. Host memory for the host
 * backend; any memory for SV_BACKEND_CUDA (cudaMemcpyDefault; the copy is complete on return,
 * and must not overlap an exchange still running on a stream). Setting is svInvalidUsage
 * while this thread's open group has an exchange of the bucket queued; both are while another
 * thread holds the communicator (see Thread safety). Part of a state may be shared: dgs's
 * downlink residual D is the same on every rank, so load it equal everywhere, or the ranks'
 * outputs diverge. */
svResult_t svBucketGetResidual(svBucket_t bucket, void* dst);
svResult_t svBucketSetResidual(svBucket_t bucket, const void* src);

/* ------------------------------------------------------------------------------------------ */
/* The exchange                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Runs the bucket's scheme on this rank's gradient sendbuff (count elements) and writes the
 * common result to recvbuff (count elements), identical on every rank (liec: see its entry).
 *
 * Workspace (CUB-style two-phase): with workspace == NULL, only *workspaceBytes is written and
 * nothing else happens. Otherwise *workspaceBytes must be at least that size; the call uses
 * the workspace as scratch and allocates nothing. Each call in one group needs its own
 * workspace. It may start at any address (the size includes the slack to align it).
 *
 * Buffers: sendbuff and recvbuff must be aligned to their element type (4 bytes), else
 * svInvalidArgument; sendbuff == recvbuff (in place) is allowed; any other overlap between
 * sendbuff, recvbuff and workspace is svInvalidArgument. count == 0 needs no buffers.
 *
 * Order of effects: the residual is committed and the output written only after the exchange
 * succeeded on every rank; on any error both are untouched. SV_BACKEND_CUDA: the call enqueues
 * on `stream` and returns; see "Backends" for errors found on the device.
 *
 * Loopback worlds of more than one rank: call once per rank between svGroupStart and
 * svGroupEnd; the exchanges run at svGroupEnd (svInvalidUsage outside a group). dgs_async
 * pairs two calls instead (see SV_SCHEME_DGS_ASYNC). With SV_BACKEND_CUDA an exchange orders
 * its ranks' streams with events, so to capture it in a CUDA graph every rank's stream must be
 * in the same capture: one stream for all ranks, or the others forked into the capture
 * (cudaEventRecord on the capturing stream, cudaStreamWaitEvent on each other one, and joined
 * back before cudaStreamEndCapture). Streams partly captured, or in different captures, which
 * CUDA would reject mid-enqueue, are refused at svGroupEnd with svInvalidUsage and no effect. */
svResult_t svExchange(svBucket_t bucket, const void* sendbuff, void* recvbuff, void* workspace,
                      size_t* workspaceBytes, svStream_t stream);

/* Groups (NCCL semantics): calls between svGroupStart and the matching svGroupEnd are checked
 * when made (an invalid call returns its error at once and is not queued) and run together at
 * the outermost svGroupEnd, in order per rank. The group is all-or-nothing: if any call made in
 * it failed, or the ranks' calls do not match (svMismatch: count, K, scheme, ... naming the
 * first differing rank and field), or any exchange fails, svGroupEnd returns that error and
 * nothing of the group takes effect. Since the calls run together, one call may not read or
 * write another's recvbuff or workspace (a chain such as "exchange A, then send A's output in
 * B" takes two groups): svGroupEnd refuses such a group with svInvalidArgument, naming the two
 * calls. Groups nest; only the outermost end runs them. */
svResult_t svGroupStart(void);
svResult_t svGroupEnd(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIGNVOTE_H_ */
