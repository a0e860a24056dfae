#include "data.h"

#include <zlib.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace train {

namespace {

std::vector<uint8_t> readGz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof(buf))) > 0) out.insert(out.end(), buf, buf + got);
  const bool failed = got < 0;
  gzclose(f);
  if (failed) throw std::runtime_error("cannot decompress " + path);
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
}

}  // namespace

Dataset loadFashionMnist(const std::string& dir, const std::string& prefix) {
  const std::string ip = dir + "/" + prefix + "-images-idx3-ubyte.gz";
  const std::string lp = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
  const std::vector<uint8_t> img = readGz(ip), lab = readGz(lp);
  if (img.size() < 16 || be32(img, 0) != 0x803 || be32(img, 8) != 28 || be32(img, 12) != 28)
    throw std::runtime_error(ip + " is not an IDX file of 28x28 images");
  if (lab.size() < 8 || be32(lab, 0) != 0x801)
    throw std::runtime_error(lp + " is not an IDX label file");
  const size_t n = be32(img, 4);
  if (be32(lab, 4) != n || img.size() != 16 + n * 784 || lab.size() != 8 + n)
    throw std::runtime_error(ip + " and " + lp + " disagree on the number of samples");
  Dataset d;
  d.images.resize(n * 784);
  for (size_t i = 0; i < n * 784; ++i) d.images[i] = img[16 + i] / 255.0f;
  d.labels.assign(lab.begin() + 8, lab.end());
  for (uint8_t l : d.labels)
    if (l > 9) throw std::runtime_error(lp + " has a label outside 0..9");
  return d;
}

std::vector<std::vector<uint32_t>> splitIid(const Dataset& d, int nranks, std::mt19937_64& rng) {
  std::vector<uint32_t> all(d.size());
  std::iota(all.begin(), all.end(), 0u);
  std::shuffle(all.begin(), all.end(), rng);
  std::vector<std::vector<uint32_t>> out(nranks);
  for (size_t i = 0; i < all.size(); ++i) out[i % nranks].push_back(all[i]);
  return out;
}

std::vector<std::vector<uint32_t>> splitByLabels(const Dataset& d, int nranks, int labelsPerRank,
                                                 std::mt19937_64& rng) {
  if (labelsPerRank < 1 || 10 % labelsPerRank != 0 || nranks % (10 / labelsPerRank) != 0)
    throw std::invalid_argument("non-IID split: labels per rank must divide 10 and the number "
                                "of ranks must be a multiple of 10 / labels per rank");
  std::vector<std::vector<uint32_t>> byLabel(10);
  for (size_t i = 0; i < d.size(); ++i) byLabel[d.labels[i]].push_back(static_cast<uint32_t>(i));
  const int group = 10 / labelsPerRank;
  std::vector<std::vector<uint32_t>> out(nranks);
  for (int g0 = 0; g0 < nranks; g0 += group) {
    std::vector<int> perm(10);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int r = 0; r < group; ++r)
      for (int j = 0; j < labelsPerRank; ++j) {
        const auto& s = byLabel[perm[r * labelsPerRank + j]];
        out[g0 + r].insert(out[g0 + r].end(), s.begin(), s.end());
      }
  }
  return out;
}

void Dataset::gather(const std::vector<uint32_t>& index, float* x, uint8_t* y) const {
  for (size_t b = 0; b < index.size(); ++b) {
    std::copy_n(&images[size_t(index[b]) * 784], 784, &x[b * 784]);
    y[b] = labels[index[b]];
  }
}

}  // namespace train
