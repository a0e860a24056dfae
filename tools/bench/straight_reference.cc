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
}  // namespace

std::vector<float> straightExchange(const StraightInput& in) {
  const auto& grads = *in.grads;
  const size_t W = grads.size(), n = grads[0].size();
  std::vector<float> out(n);
  if (in.scheme == SV_SCHEME_DENSE) {
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

}  // namespace bench
