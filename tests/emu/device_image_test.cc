// A GPU of an architecture the build left out (CMAKE_CUDA_ARCHITECTURES): the emulated device
// without an image of the kernels (emu.h: svemu::setKernelImage). A CUDA communicator is refused
// at creation, naming the device, its compute capability, the build's architectures and the
// fix, instead of breaking at its first exchange; nothing is created. A real GPU cannot be made
// to lack the image on cue, so this runs on the emulated device only.
#include <string>

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

}  // namespace
