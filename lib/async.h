// dgs_async: the parameter server of DGS (see SV_SCHEME_DGS_ASYNC in signvote.h). Its
// exchanges are pairs (one worker's push, the server's reply), not collectives, so they run
// here instead of through the group matching of exchange.cc.
#pragma once

#include <vector>

#include "signvote/signvote.h"

namespace signvote::detail {

struct AsyncCall {
  svBucket_t bucket;
  const void* send;
  void* recv;
  void* ws;  // aligned
};

// Runs a group that holds a dgs_async exchange: exactly the server's and one worker's calls
// of one loopback world, or one call of a rank of a multi-process world. Any other group is
// svInvalidUsage with no effect. Sets the calls' error texts.
svResult_t runAsyncGroup(const std::vector<AsyncCall>& calls);

}  // namespace signvote::detail
