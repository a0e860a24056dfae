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
  float momentum;  // signsgd_mv: Signum's beta
  uint64_t k;
  const std::vector<std::vector<float>>* grads;      // one per rank
  std::vector<std::vector<float>>* residuals;        // state (s3gd_mv, ef_sign, Signum): in, updated in place
};

// The common output of the exchange.
std::vector<float> straightExchange(const StraightInput& in);

}  // namespace bench
