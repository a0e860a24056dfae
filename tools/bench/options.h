// signvote-bench command line (nccl-tests' flags where they exist).
#pragma once

#include <cstdint>
#include <string>

#include "signvote/signvote.h"

namespace bench {

struct Options {
  uint64_t minBytes = 4096;
  uint64_t maxBytes = 4u << 20;
  double stepFactor = 4;
  int iters = 10;
  int warmup = 2;
  int checkIters = 1;
  int ranks = 4;
  svScheme_t scheme = SV_SCHEME_S3GD_MV;
  svVote_t vote = SV_VOTE_TERNARY;
  svFormat_t format = SV_FORMAT_AUTO;
  uint64_t k = 0;
  double density = 0.01;
  float rho = 1.0f;
  uint64_t seed = 1;
  std::string json;
};

// Parses argv. Returns 0 to run, 1 after printing help, 2 on a bad command line (message
// printed to stderr).
int parseOptions(int argc, char** argv, Options* out);

const char* schemeName(svScheme_t s);
const char* formatName(svFormat_t f);
const char* voteName(svVote_t v);

}  // namespace bench
