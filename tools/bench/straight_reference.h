// An independent, deliberately plain model of the schemes, used for the #wrong column: full
// sorts instead of radix select, per-coordinate integer votes, no wire formats. It shares no
// code with the library on purpose.
#pragma once

#include <cstdint>
#include <vector>

#include "signvote/signvote.h"

namespace bench {

struct StraightInput {
  svScheme_t scheme;
  svVote_t vote;
  float rho;
  float momentum;  // Signum's beta, topk_ef's and dgs's momentum
  uint64_t k;
  uint64_t downK;  // dgs: downlink K (0: off)
  uint64_t chunk;  // liec: owner chunk
  bool average;    // liec: an averaging exchange
  bool identity;   // liec over fp32: the identity compressor
  const std::vector<std::vector<float>>* grads;      // one per rank
  std::vector<std::vector<float>>* residuals;        // each rank's state: in, updated in place
  // dgs_async: the workers in the order the server served them (empty: 1 .. W-1).
  const std::vector<int>* order = nullptr;
};

// Each rank's output of the exchange (the same on every rank except for liec).
std::vector<std::vector<float>> straightExchange(const StraightInput& in);

}  // namespace bench
