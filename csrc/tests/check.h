// A minimal test harness for the torch-free C++ tests: CHECK records failures and main returns their count.
#pragma once

#include <cmath>
#include <cstdio>

namespace snn_test {

inline int& failures() {
  static int count = 0;
  return count;
}

inline void check_near(double actual, double expected, double tol, const char* what, const char* file, int line) {
  const double scale = std::fmax(1.0, std::fabs(expected));
  if (!(std::fabs(actual - expected) <= tol * scale)) {
    std::printf("%s:%d: %s: got %.17g, expected %.17g (tol %.1e)\n", file, line, what, actual, expected, tol);
    ++failures();
  }
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
