// Host twins of the Thrust iterators kernels/ hands to CUB, for the SIMT emulator (simt.h).
#pragma once

#include <cstddef>

namespace thrust {

template <class T>
class counting_iterator {
 public:
  explicit counting_iterator(T first) : first_(first) {}
  template <class D>
  T operator[](D i) const {
    return static_cast<T>(first_ + static_cast<T>(i));
  }

 private:
  T first_;
};

// out[j] = v calls f(j, v).
template <class F>
class tabulate_output_iterator {
  struct Slot {
    const F& f;
    std::ptrdiff_t j;
    template <class V>
    const Slot& operator=(const V& v) const {
      f(j, v);
      return *this;
    }
  };

 public:
  explicit tabulate_output_iterator(F f) : f_(f) {}
  template <class D>
  Slot operator[](D j) const {
    return Slot{f_, static_cast<std::ptrdiff_t>(j)};
  }

 private:
  F f_;
};

}  // namespace thrust
