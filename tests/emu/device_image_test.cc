// Devices a real GPU of the lane cannot stand for, on the emulated device only.
// A GPU of an architecture the build left out (CMAKE_CUDA_ARCHITECTURES): the emulated device
// without an image of the kernels (emu.h: svemu::setKernelImage). A CUDA communicator is refused
// at creation, naming the device, its compute capability, the build's architectures and the
// fix, instead of breaking at its first exchange; nothing is created. A real GPU cannot be made
// to lack the image on cue.
// A process with two GPUs (svemu::setDeviceCount; the lane has one): a buffer or a stream of
// the other device is refused.
#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "cuda_world.h"
#include "emu.h"
#include "world.h"

namespace {

TEST(DeviceImage, ADeviceWithoutAnImageOfTheKernelsIsRefusedAtCreation) {
  svConfig_t cfg = SV_CONFIG_INITIALIZER;
  cfg.backend = SV_BACKEND_CUDA;
  svComm_t sentinel = reinterpret_cast<svComm_t>(&cfg);
  svComm_t comms[3] = {sentinel, sentinel, sentinel};
  svemu::setKernelImage(false);
  const svResult_t r = svCommInitLoopback(comms, 3, &cfg);
  const std::string text = svGetLastError(nullptr);
  svemu::setKernelImage(true);
  EXPECT_EQ(r, svInvalidArgument);
  for (svComm_t c : comms) EXPECT_EQ(c, sentinel) << "a handle was written";
  for (const char* part : {"svCommInitLoopback: config->backend = SV_BACKEND_CUDA",
                           "device 0, compute capability 9.0", "CMAKE_CUDA_ARCHITECTURES = ",
                           "no kernel image is available",
                           "rebuild signvote with -DCMAKE_CUDA_ARCHITECTURES=90"})
    EXPECT_NE(text.find(part), std::string::npos) << "missing \"" << part << "\" in: " << text;
  // The probe's error is not left behind for the caller's next CUDA call.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);

  // With the image, the same call creates the world.
  ASSERT_EQ(svCommInitLoopback(comms, 3, &cfg), svSuccess) << svGetLastError(nullptr);
  for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
}

// A process that sees no device (CUDA_VISIBLE_DEVICES= on a GPU machine; CI, where a GPU
// test skips, has no driver at all, which tests/unit/api_errors_test.cc covers): a CUDA
// communicator is refused at creation saying why; nothing is created.
TEST(NoDevice, ACudaCommunicatorIsRefusedAtCreation) {
  svConfig_t cfg = SV_CONFIG_INITIALIZER;
  cfg.backend = SV_BACKEND_CUDA;
  svComm_t sentinel = reinterpret_cast<svComm_t>(&cfg);
  svComm_t comms[2] = {sentinel, sentinel};
  svemu::setDeviceCount(0);
  const svResult_t r = svCommInitLoopback(comms, 2, &cfg);
  const std::string text = svGetLastError(nullptr);
  svemu::setDeviceCount(1);
  EXPECT_EQ(r, svInvalidArgument);
  for (svComm_t c : comms) EXPECT_EQ(c, sentinel) << "a handle was written";
  EXPECT_NE(text.find("svCommInitLoopback: config->backend = SV_BACKEND_CUDA but no CUDA device "
                      "is usable (no CUDA device)"),
            std::string::npos)
      << text;
}

// Rank 1 hands over memory of device 1 while its communicator is on device 0, as a trainer
// that mixes up its tensors' devices would: the kernels on device 0 would fault on it (without
// peer access) and break the CUDA context. The call is refused naming the field, the pointer's
// device and the communicator's; nothing runs, the group after it works. So is a stream of
// device 1, where the launches would fail with part of the step enqueued, and a bucket created
// while device 1 is current, whose state would live there.
TEST(DeviceMemory, AnotherDevicesBufferOrStreamIsRefusedWithNoEffect) {
  using namespace svtest;
  struct TwoDevices {  // undone however the test ends, for the tests after it in this process
    TwoDevices() { svemu::setDeviceCount(2); }
    ~TwoDevices() {
      cudaSetDevice(0);
      svemu::setDeviceCount(1);
    }
  } twoDevices;
  std::mt19937_64 rng(testSeed() + 61);
  const int W = 2;
  const size_t n = 1000;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.k = 10;
  World host(W, cfg);
  CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
  void* other = nullptr;
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&other, std::max(n * 4, dev.wsBytes[1])), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  std::vector<std::vector<float>> grads(W);
  for (auto& v : grads) v = normal(n, rng);
  dev.upload(grads);
  const uint32_t sentinelBits = 0x7F7F7F7F;  // CudaWorld's output fill
  float sentinel;
  std::memcpy(&sentinel, &sentinelBits, 4);
  for (const char* field : {"sendbuff", "recvbuff", "workspace"}) {
    SCOPED_TRACE(field);
    svGroupStart();
    svResult_t call = svSuccess;
    for (int r = 0; r < W; ++r) {
      const bool swap = r == 1;
      const void* send = swap && field[0] == 's' ? other : dev.g[r];
      void* recv = swap && field[0] == 'r' ? other : dev.out[r];
      void* ws = swap && field[0] == 'w' ? other : dev.ws[r];
      size_t bytes = dev.wsBytes[r];
      const svResult_t e = svExchange(dev.buckets[r], send, recv, ws, &bytes, dev.streams[r]);
      if (swap) call = e;
    }
    const std::string text = svGetLastError(dev.comms[1]);
    EXPECT_EQ(svGroupEnd(), svInvalidArgument);
    EXPECT_EQ(call, svInvalidArgument);
    const std::string want = std::string("svExchange: ") + field + " = ";
    EXPECT_NE(text.find(want), std::string::npos) << text;
    EXPECT_NE(text.find("is memory of device 1, but comm (rank 1) is on device 0"),
              std::string::npos)
        << text;
    for (int r = 0; r < W; ++r) {
      uint64_t seq = 1;
      EXPECT_EQ(svCommGetSequence(dev.comms[r], &seq), svSuccess);
      EXPECT_EQ(seq, 0u);
      for (float v : dev.output(r)) ASSERT_TRUE(sameBits(v, sentinel)) << "an output was written";
      for (float v : dev.residual(r)) ASSERT_TRUE(sameBits(v, 0.0f)) << "a residual was changed";
    }
  }
  // A stream of device 1 for rank 1.
  cudaStream_t otherStream;
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&otherStream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  std::swap(dev.streams[1], otherStream);
  EXPECT_EQ(dev.exchange(), svInvalidArgument);
  std::swap(dev.streams[1], otherStream);
  const std::string text = svGetLastError(dev.comms[1]);
  EXPECT_NE(text.find("belongs to device 1, but comm (rank 1) is on device 0"), std::string::npos)
      << text;
  for (int r = 0; r < W; ++r) {
    uint64_t seq = 1;
    EXPECT_EQ(svCommGetSequence(dev.comms[r], &seq), svSuccess);
    EXPECT_EQ(seq, 0u);
  }
  // A bucket created while device 1 is current would keep its state there.
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  const svBucket_t unset = reinterpret_cast<svBucket_t>(&cfg);
  svBucket_t b = unset;
  EXPECT_EQ(svBucketCreate(&b, dev.comms[0], &cfg), svInvalidUsage);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(b, unset) << "a handle was written";
  EXPECT_NE(std::string(svGetLastError(dev.comms[0]))
                .find("svBucketCreate: the current CUDA device is 1 but comm (rank 0) was "
                      "created on device 0; call cudaSetDevice(0) first"),
            std::string::npos)
      << svGetLastError(dev.comms[0]);
  ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
  ASSERT_EQ(host.exchange(grads), svSuccess);
  for (int r = 0; r < W; ++r) expectSameBits(dev.output(r), host.out[r], "output");
  cudaStreamDestroy(otherStream);
  cudaFree(other);
}

}  // namespace
