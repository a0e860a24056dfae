#include "straight_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace bench {

namespace {
int signOf(float x) { return x < 0.0f ? -1 : x > 0.0f ? 1 : 0; }
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
  std::vector<long> votes(n, 0);
  if (in.scheme == SV_SCHEME_SIGNSGD_MV) {
    for (size_t i = 0; i < n; ++i) {
      if (in.vote == SV_VOTE_BINARY) {
        long neg = 0;
        for (size_t r = 0; r < W; ++r) neg += grads[r][i] < 0.0f;
        out[i] = neg > static_cast<long>(W) - neg ? -1.0f : 1.0f;
      } else {
        long v = 0;
        for (size_t r = 0; r < W; ++r) v += signOf(grads[r][i]);
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
