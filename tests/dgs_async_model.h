// dgs_async's brute-force model (the server's T and v_k, the workers' u_k), written from
// signvote.h's prose, for the loopback and the gloo tests.
#pragma once

#include <cmath>
#include <vector>

#include "world.h"

namespace svtest {

struct AsyncModel {
  float m;
  size_t n, k, downK;
  svNonFinitePolicy_t policy = SV_NONFINITE_ERROR;
  std::vector<std::vector<float>> u, v;
  std::vector<float> T;
  AsyncModel(int W, size_t n_, size_t k_, float m_, size_t downK_)
      : m(m_), n(n_), k(k_), downK(downK_), u(W, std::vector<float>(n_, 0.0f)),
        v(W, std::vector<float>(n_, 0.0f)), T(n_, 0.0f) {}
  // Worker w's push of gradient g; returns the reply D.
  std::vector<float> push(int w, const std::vector<float>& g) {
    std::vector<float> un(n);
    for (size_t i = 0; i < n; ++i) {
      un[i] = std::fma(m, u[w][i], g[i]);
      if (std::isnan(un[i]) && policy == SV_NONFINITE_IGNORE) un[i] = 0.0f;
    }
    std::vector<bool> sent(n, false);
    for (uint32_t i : bruteTopK(un, k)) sent[i] = true;
    for (size_t i = 0; i < n; ++i) {
      if (sent[i] && un[i] != 0.0f) T[i] = T[i] + un[i];
      u[w][i] = sent[i] ? un[i] : un[i] / m;
    }
    std::vector<float> a(n), d(n, 0.0f);
    for (size_t i = 0; i < n; ++i) a[i] = T[i] - v[w][i];
    if (downK == 0) {
      d = a;
    } else {
      for (uint32_t i : bruteTopK(a, downK))
        if (a[i] != 0.0f) d[i] = a[i];
    }
    for (size_t i = 0; i < n; ++i)
      if (downK == 0 || d[i] != 0.0f) v[w][i] = v[w][i] + a[i];
    return d;
  }
  std::vector<float> serverState() const {
    std::vector<float> s = T;
    for (size_t w = 1; w < v.size(); ++w) s.insert(s.end(), v[w].begin(), v[w].end());
    return s;
  }
};

inline svBucketConfig_t asyncConfig(size_t n, size_t k, float m, size_t downK) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_DGS_ASYNC, n);
  c.k = k;
  c.momentum = m;
  c.downK = downK;
  return c;
}

}  // namespace svtest
