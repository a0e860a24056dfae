#include "straight_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bench {

namespace {
int signOf(float x) { return x < 0.0f ? -1 : x > 0.0f ? 1 : 0; }

// sum |x| over [lo, lo + len) of x zero-padded, len a power of two: halves, recursively.
float halvingSum(const std::vector<float>& x, size_t lo, size_t len) {
  if (len == 1) return lo < x.size() ? std::fabs(x[lo]) : 0.0f;
  return halvingSum(x, lo, len / 2) + halvingSum(x, lo + len / 2, len / 2);
}

// Indices of the k largest |x|, lowest index first among equals, then sorted by index.
std::vector<size_t> topK(const std::vector<float>& x, size_t k) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

// (sum |x| / len) sign(x) over x[lo, lo + len), +0.0 where x is zero.
std::vector<float> scaledSign(const std::vector<float>& x, size_t lo, size_t len) {
  const std::vector<float> part(x.begin() + lo, x.begin() + lo + len);
  size_t width = 1;
  while (width < len) width *= 2;
  const float s = len ? halvingSum(part, 0, width) / static_cast<float>(len) : 0.0f;
  std::vector<float> c(len);
  for (size_t i = 0; i < len; ++i) c[i] = part[i] > 0.0f ? s : part[i] < 0.0f ? -s : 0.0f;
  return c;
}

std::vector<float> commonOutput(const StraightInput& in);

// dgs's SAMomentum on one rank: u' = fma(m, u, g), then u = u' on its top-K and u' / m
// elsewhere; adds the sent non-zeros of u' into sum.
void samomentum(const StraightInput& in, float* u, const std::vector<float>& g, float* sum) {
  const size_t n = g.size();
  std::vector<float> un(n);
  for (size_t i = 0; i < n; ++i) un[i] = std::fma(in.momentum, u[i], g[i]);
  for (size_t i = 0; i < n; ++i) u[i] = un[i] / in.momentum;
  for (size_t i : topK(un, in.k)) {
    if (un[i] != 0.0f) sum[i] += un[i];
    u[i] = un[i];
  }
}

// dgs_async: rank 0 keeps T, then v_1 .. v_{W-1}; a worker keeps u. One round: each worker's
// push, in the order served; rank 0's output is T after the round, a worker's its reply.
std::vector<std::vector<float>> dgsAsync(const StraightInput& in) {
  const auto& grads = *in.grads;
  const size_t W = grads.size(), n = grads[0].size();
  std::vector<std::vector<float>> outs(W, std::vector<float>(n, 0.0f));
  float* T = (*in.residuals)[0].data();
  std::vector<int> order(W - 1);
  std::iota(order.begin(), order.end(), 1);
  if (in.order != nullptr && !in.order->empty()) order = *in.order;
  for (const int w : order) {
    samomentum(in, (*in.residuals)[w].data(), grads[w], T);
    float* v = T + w * n;
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = T[i] - v[i];
    if (in.downK == 0) {
      outs[w] = a;
      for (size_t i = 0; i < n; ++i) v[i] += a[i];
    } else {
      for (size_t i : topK(a, in.downK))
        if (a[i] != 0.0f) {
          outs[w][i] = a[i];
          v[i] += a[i];
        }
    }
  }
  outs[0].assign(T, T + n);
  return outs;
}

std::vector<std::vector<float>> liec(const StraightInput& in) {
  const auto& g = *in.grads;
  const size_t W = g.size(), n = g[0].size();
  std::vector<std::vector<float>> out(W, std::vector<float>(n));
  for (size_t d = 0; d < W; ++d) {
    const size_t lo = std::min(n, d * in.chunk), len = std::min(n - lo, in.chunk);
    std::vector<float>& e = (*in.residuals)[d];
    if (in.average) {
      for (size_t x = 0; x < len; ++x) {
        float s = g[0][lo + x];
        for (size_t r = 1; r < W; ++r) s += g[r][lo + x];
        for (size_t r = 0; r < W; ++r) out[r][lo + x] = s / static_cast<float>(W) + e[x];
      }
      e.assign(e.size(), -0.0f);
      continue;
    }
    std::vector<std::vector<float>> c(W);
    std::vector<float> a(len);
    for (size_t r = 0; r < W; ++r) c[r] = scaledSign(g[r], lo, len);
    for (size_t x = 0; x < len; ++x) {
      float s = c[0][x];
      for (size_t r = 1; r < W; ++r) s += c[r][x];
      a[x] = s / static_cast<float>(W) + e[x];
    }
    const std::vector<float> chat = scaledSign(a, 0, len);
    for (size_t x = 0; x < len; ++x) {
      e[x] = a[x] - chat[x];
      for (size_t r = 0; r < W; ++r) out[r][lo + x] = chat[x] + (g[r][lo + x] - c[r][x]);
    }
  }
  return out;
}

}  // namespace

std::vector<std::vector<float>> straightExchange(const StraightInput& in) {
  if (in.scheme == SV_SCHEME_LIEC && !in.identity) return liec(in);
  if (in.scheme == SV_SCHEME_DGS_ASYNC) return dgsAsync(in);
  return std::vector<std::vector<float>>(in.grads->size(), commonOutput(in));
}

namespace {

std::vector<float> commonOutput(const StraightInput& in) {
  const auto& grads = *in.grads;
  const size_t W = grads.size(), n = grads[0].size();
  std::vector<float> out(n);
  if (in.scheme == SV_SCHEME_DENSE || in.scheme == SV_SCHEME_LIEC) {  // liec: identity
    for (size_t i = 0; i < n; ++i) {
      float s = grads[0][i];
      for (size_t r = 1; r < W; ++r) s += grads[r][i];
      out[i] = s / static_cast<float>(W);
    }
    return out;
  }
  if (in.scheme == SV_SCHEME_EF_SIGN) {
    std::vector<std::vector<float>> c(W, std::vector<float>(n));
    for (size_t r = 0; r < W; ++r) {
      std::vector<float>& e = (*in.residuals)[r];
      std::vector<float> p(n);
      for (size_t i = 0; i < n; ++i) p[i] = grads[r][i] + e[i];
      size_t len = 1;
      while (len < n) len *= 2;
      const float scale = n ? halvingSum(p, 0, len) / static_cast<float>(n) : 0.0f;
      for (size_t i = 0; i < n; ++i) {
        c[r][i] = static_cast<float>(signOf(p[i])) * scale;
        if (p[i] == 0.0f) c[r][i] = 0.0f;  // +0.0, never -0.0
        e[i] = p[i] - c[r][i];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      float s = c[0][i];
      for (size_t r = 1; r < W; ++r) s += c[r][i];
      out[i] = s / static_cast<float>(W);
    }
    return out;
  }
  if (in.scheme == SV_SCHEME_DGS) {  // state: u, then D with downlink compression
    std::vector<float> sum(n, 0.0f);
    for (size_t r = 0; r < W; ++r) samomentum(in, (*in.residuals)[r].data(), grads[r], sum.data());
    for (size_t i = 0; i < n; ++i) out[i] = sum[i] / static_cast<float>(W);
    if (in.downK == 0) return out;
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = (*in.residuals)[0][n + i] + out[i];
    const std::vector<size_t> sel = topK(a, in.downK);
    std::vector<float> d = a;
    std::fill(out.begin(), out.end(), 0.0f);
    for (size_t i : sel) {
      out[i] = a[i];
      d[i] = 0.0f;
    }
    for (size_t r = 0; r < W; ++r) std::copy(d.begin(), d.end(), (*in.residuals)[r].begin() + n);
    return out;
  }
  if (in.scheme == SV_SCHEME_TOPK_EF) {  // state: v, then u with momentum
    std::vector<float> sum(n, 0.0f);
    for (size_t r = 0; r < W; ++r) {
      std::vector<float>& st = (*in.residuals)[r];
      float* v = st.data();
      float* u = in.momentum != 0.0f ? st.data() + n : nullptr;
      for (size_t i = 0; i < n; ++i) {
        const float ui = u ? (u[i] = std::fma(in.momentum, u[i], grads[r][i])) : grads[r][i];
        v[i] = v[i] + ui;
      }
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t x, size_t y) { return std::fabs(v[x]) > std::fabs(v[y]); });
      std::sort(order.begin(), order.begin() + in.k);  // rank order adds per coordinate
      for (size_t j = 0; j < in.k; ++j) {
        const size_t i = order[j];
        if (v[i] != 0.0f) sum[i] += v[i];
        v[i] = 0.0f;
        if (u) u[i] = 0.0f;
      }
    }
    for (size_t i = 0; i < n; ++i) out[i] = sum[i] / static_cast<float>(W);
    return out;
  }
  std::vector<long> votes(n, 0);
  if (in.scheme == SV_SCHEME_SIGNSGD_MV) {
    std::vector<std::vector<float>> m = grads;  // what each rank signs
    if (in.momentum != 0.0f)
      for (size_t r = 0; r < W; ++r)
        for (size_t i = 0; i < n; ++i) {
          const float scaled = (1.0f - in.momentum) * grads[r][i];
          m[r][i] = (*in.residuals)[r][i] = std::fma(in.momentum, (*in.residuals)[r][i], scaled);
        }
    for (size_t i = 0; i < n; ++i) {
      if (in.vote == SV_VOTE_BINARY) {
        long neg = 0;
        for (size_t r = 0; r < W; ++r) neg += m[r][i] < 0.0f;
        out[i] = neg > static_cast<long>(W) - neg ? -1.0f : 1.0f;
      } else {
        long v = 0;
        for (size_t r = 0; r < W; ++r) v += signOf(m[r][i]);
        out[i] = static_cast<float>((v > 0) - (v < 0));
      }
    }
    return out;
  }
  for (size_t r = 0; r < W; ++r) {
    std::vector<float>& res = (*in.residuals)[r];
    std::vector<float> a(n);
    for (size_t i = 0; i < n; ++i) a[i] = std::fma(in.rho, res[i], grads[r][i]);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return std::fabs(a[x]) > std::fabs(a[y]); });
    res = a;
    for (size_t j = 0; j < in.k; ++j) {
      votes[order[j]] += signOf(a[order[j]]);
      res[order[j]] = 0.0f;
    }
  }
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>((votes[i] > 0) - (votes[i] < 0));
  return out;
}

}  // namespace
}  // namespace bench
