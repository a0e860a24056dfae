// The W ranks' models of signvote-train and their training step, on the CPU or on the GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "data.h"
#include "exchanger.h"

namespace train {

// The W ranks' models and their step: on the CPU (HostModels) or the GPU (DeviceModels).
// liec's ranks keep their own models; the other schemes' outputs are equal on every rank, so
// one model stands for all of them (on the GPU, W replicas that must stay bit-identical).
class Models {
 public:
  virtual ~Models() = default;
  // Rank r's gradient on the samples `index` of the training set (times lr for dgs, whose
  // SAMomentum takes lr inside the momentum); its loss joins takeLoss's mean.
  virtual void gradient(int r, const std::vector<uint32_t>& index) = 0;
  // Exchanges the ranks' gradients and steps every model by its rank's output:
  // params -= lr * u, u the output or, with mu != 0, the heavy-ball buffer mu * u + output.
  virtual void exchangeAndStep(Exchanger& buckets, float lr, float mu) = 0;
  // Every rank's model becomes the exact mean of them (liec's averaging exchange).
  virtual void average(Exchanger& averagers) = 0;
  // The mean loss of the gradients since the last call.
  virtual double takeLoss() = 0;
  // Test accuracy of the model, or (liec) of the mean of the ranks' models summed in rank order.
  virtual double accuracy() = 0;
};

// What both kinds are made of; the pointers must outlive the models.
struct ModelSetup {
  int hidden, ranks, batch;
  float lr;
  bool perRank;  // liec: every rank keeps its own model
  bool dgs;      // the gradient goes out times lr (SAMomentum takes lr inside)
  const Dataset* trainSet;
  const Dataset* testSet;
  const std::vector<float>* init;  // the initial parameters of every model
};

std::unique_ptr<Models> makeHostModels(const ModelSetup& setup);
// The model on the GPU (--model-device cuda), one stream per rank; null in a build without
// cuBLAS.
std::unique_ptr<Models> makeDeviceModels(const ModelSetup& setup,
                                         const std::vector<cudaStream_t>& streams,
                                         svComm_t comm0);

}  // namespace train
