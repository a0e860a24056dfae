// Fashion-MNIST from the Debian package dataset-fashion-mnist (gzipped IDX files), and the
// per-rank splits of the S3GD-MV authors' code.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace train {

struct Dataset {
  std::vector<float> images;   // n x 784, pixels / 255
  std::vector<uint8_t> labels; // n
  size_t size() const { return labels.size(); }
  // The samples `index` into x (index.size() x 784) and y, in that order.
  void gather(const std::vector<uint32_t>& index, float* x, uint8_t* y) const;
};

// Loads <dir>/<prefix>-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz (prefix "train" or
// "t10k"). Throws std::runtime_error naming the file on any problem.
Dataset loadFashionMnist(const std::string& dir, const std::string& prefix);

// Sample indices per rank. IID: a random equal partition. Non-IID with L labels per rank: ranks
// come in groups of 10/L; in each group the 10 labels are permuted and cut into chunks of L;
// a rank gets every sample of its L labels (so samples repeat across groups). nranks must be a
// multiple of 10/L (std::invalid_argument otherwise).
std::vector<std::vector<uint32_t>> splitIid(const Dataset& d, int nranks, std::mt19937_64& rng);
std::vector<std::vector<uint32_t>> splitByLabels(const Dataset& d, int nranks, int labelsPerRank,
                                                 std::mt19937_64& rng);

}  // namespace train
