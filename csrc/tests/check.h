// A minimal test harness for the torch-free C++ tests: CHECK records failures and main returns their count.
#pragma once

#include <cmath>
#include <cstdio>
#include <vector>

#include "core/platform.h"

namespace snn_test {

// Storage elements to and from double: float and double by value, bfloat16 and float16 through float (the kernels'
// rounding).
template <typename T>
double as_double(T value) {
  return static_cast<double>(value);
}
inline double as_double(snn::bfloat16 value) { return snn::to_acc<float>(value); }
inline double as_double(snn::float16 value) { return snn::to_acc<float>(value); }

template <typename T>
T from_double(double value) {
  return static_cast<T>(value);
}
template <>
inline snn::bfloat16 from_double<snn::bfloat16>(double value) {
  return snn::from_acc<snn::bfloat16>(static_cast<float>(value));
}
template <>
inline snn::float16 from_double<snn::float16>(double value) {
  return snn::from_acc<snn::float16>(static_cast<float>(value));
}

inline int& failures() {
  static int count = 0;
  return count;
}

// |actual - expected| within tol, relative to |expected| above 1, absolute below; NaN is never near.
inline bool near(double actual, double expected, double tol) {
  return std::fabs(actual - expected) <= tol * std::fmax(1.0, std::fabs(expected));
}

inline void check_near(double actual, double expected, double tol, const char* what, const char* file, int line) {
  if (!near(actual, expected, tol)) {
    std::printf("%s:%d: %s: got %.17g, expected %.17g (tol %.1e)\n", file, line, what, actual, expected, tol);
    ++failures();
  }
}

// Element-wise check_near of two arrays; reports the first mismatch and how many there are, not each one.
template <typename T>
void compare(const std::vector<T>& actual, const std::vector<T>& expected, double tol, const char* what) {
  if (actual.size() != expected.size()) {
    std::printf("%s: %zu elements, expected %zu\n", what, actual.size(), expected.size());
    ++failures();
    return;
  }
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (!near(as_double(actual[i]), as_double(expected[i]), tol) && mismatches++ == 0) first = i;
  }
  if (mismatches > 0) {
    std::printf("%s: %zu of %zu elements differ (tol %.1e); first at %zu: got %.17g, expected %.17g\n", what,
                mismatches, expected.size(), tol, first, as_double(actual[first]), as_double(expected[first]));
    ++failures();
  }
}

// The pointer to a host vector's or a device buffer's elements, or null for an absent optional argument.
template <typename T>
T* optional_ptr(bool present, std::vector<T>& host) {
  return present ? host.data() : nullptr;
}

template <typename Buffer>
auto optional_ptr(bool present, Buffer& buffer) -> decltype(buffer.ptr) {
  return present ? buffer.ptr : nullptr;
}

inline int finish(const char* name) {
  std::printf("%s: %s (%d failures)\n", name, failures() ? "FAILED" : "passed", failures());
  return failures() ? 1 : 0;
}

}  // namespace snn_test

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::printf("%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++snn_test::failures();                                         \
    }                                                                 \
  } while (0)
#define CHECK_NEAR(actual, expected, tol, what) \
  snn_test::check_near((actual), (expected), (tol), (what), __FILE__, __LINE__)
