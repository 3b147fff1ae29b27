// The op schemas (one TORCH_LIBRARY block for the whole library) and the Python module, which holds the controls
// of the CPU output cache and of the CPU kernels' streaming stores.
//
// Each recurrence is a forward/backward pair. Backends register implementations with TORCH_LIBRARY_IMPL in their
// own files, the autograd formulas in autograd.cpp; fake (meta) implementations are registered from Python
// (snn_cuda/ops).
#include <Python.h>
#include <torch/library.h>

#include "../cpu/common.h"
#include "output_cache.h"

TORCH_LIBRARY(snn_cuda, m) {
  // Returns (spikes, v_last, r_last, h, v_seq); h is empty unless store_h, the membrane sequence v_seq (v[t] after
  // step t's reset) unless store_v_seq. The backward needs either h or (on the CPU) x, v0 and r0 to recompute h.
  // detach_reset and the surrogate only matter to the backward; the forward takes them so that its autograd
  // formula (autograd.cpp) sees the whole configuration.
  m.def(
      "lif_fwd(Tensor x, Tensor alpha, Tensor theta, Tensor? v0, Tensor? r0, str reset, float v_reset, "
      "float? gamma, float rho, bool detach_reset, str surrogate, float surrogate_param, bool store_h, "
      "bool store_v_seq=False) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // Returns (grad_x, grad_v0, grad_r0, grad_alpha, grad_theta); the parameter grads are per element (shape of
  // x[0], float32 or float64) when param_grads, else empty. Exactly one of h (saved by the forward) and x is
  // given; with x the kernel recomputes h from x, v0 and r0 (CPU only). grad_v_seq is the membrane sequence's
  // gradient, when the forward returned one.
  m.def(
      "lif_bwd(Tensor grad_spikes, Tensor? grad_v_last, Tensor? grad_r_last, Tensor? h, Tensor? x, Tensor alpha, "
      "Tensor theta, Tensor? v0, Tensor? r0, str reset, float v_reset, float? gamma, float rho, bool detach_reset, "
      "str surrogate, float surrogate_param, bool param_grads, Tensor? grad_v_seq=None) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // The IIR filter p[t] = a1 p[t-1] + a2 p[t-2] + b x[t]. a1, a2, b are per element (shape of x[0], float32 or
  // float64); a2 None is first order. Returns (p, p_last, p_before_last); the backward needs only p and x.
  m.def(
      "iir_fwd(Tensor x, Tensor a1, Tensor? a2, Tensor b, Tensor? p1, Tensor? p2) -> (Tensor, Tensor, Tensor)");
  // Returns (grad_x, grad_a1, grad_a2, grad_b, grad_p1, grad_p2). grad_x is computed when grad_x, the a1, a2
  // gradients (per element, the compute dtype) when grad_a, which needs p, and the b gradient when grad_b, which
  // needs x; the ones not computed are empty.
  m.def(
      "iir_bwd(Tensor grad_p, Tensor? grad_p_last, Tensor? grad_p_before_last, Tensor? p, Tensor? x, Tensor a1, "
      "Tensor? a2, Tensor b, Tensor? p1, Tensor? p2, bool grad_x, bool grad_a, bool grad_b) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

namespace {

using namespace snn::torch_ops;

// The CPU output cache's controls (output_cache.h); snn_cuda/memory.py wraps them.
PyObject* cpu_cache_stats(PyObject*, PyObject*) {
  const OutputCacheStats s = output_cache_stats();
  return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L}", "cached_bytes", static_cast<long long>(s.cached_bytes),
                       "cached_blocks", static_cast<long long>(s.cached_blocks), "in_use_bytes",
                       static_cast<long long>(s.in_use_bytes), "limit_bytes", static_cast<long long>(s.limit_bytes),
                       "hits", static_cast<long long>(s.hits), "misses", static_cast<long long>(s.misses));
}

// snn_cuda.set_cpu_cache_limit checks the value; a negative one reaching here raises OverflowError.
PyObject* cpu_cache_set_limit(PyObject*, PyObject* arg) {
  const size_t bytes = PyLong_AsSize_t(arg);
  if (bytes == static_cast<size_t>(-1) && PyErr_Occurred()) return nullptr;
  set_output_cache_limit(bytes);
  Py_RETURN_NONE;
}

PyObject* cpu_cache_empty(PyObject*, PyObject*) {
  empty_output_cache();
  Py_RETURN_NONE;
}

// The size from which the CPU kernels stream their outputs (cpu/common.h); snn_cuda.memory checks the value and
// stands for "never" with INT64_MAX.
PyObject* cpu_stream_threshold(PyObject*, PyObject*) {
  return PyLong_FromLongLong(snn::cpu::stream_threshold_bytes().load());
}

PyObject* cpu_stream_set_threshold(PyObject*, PyObject* arg) {
  const long long bytes = PyLong_AsLongLong(arg);
  if (bytes == -1 && PyErr_Occurred()) return nullptr;
  snn::cpu::stream_threshold_bytes().store(bytes);
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"cpu_cache_stats", cpu_cache_stats, METH_NOARGS, "The CPU output cache's counters, as a dict."},
    {"cpu_cache_set_limit", cpu_cache_set_limit, METH_O, "Sets the CPU output cache's limit in bytes (0: off)."},
    {"cpu_cache_empty", cpu_cache_empty, METH_NOARGS, "Frees the CPU output cache's waiting blocks."},
    {"cpu_stream_threshold", cpu_stream_threshold, METH_NOARGS, "Bytes from which CPU outputs are streamed."},
    {"cpu_stream_set_threshold", cpu_stream_set_threshold, METH_O, "Sets the bytes from which CPU outputs stream."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

// What the Python side expects of this library: bump it with snn_cuda/_ext.py's INTERFACE_VERSION whenever the
// two change together (2: the autograd formulas moved from Python into autograd.cpp). A library built from
// older sources is then refused, with a hint to rebuild, instead of running without gradients.
constexpr int kInterfaceVersion = 2;

// Whether this library was compiled with OpenMP, so that at::parallel_for (inline in torch's OpenMP builds) runs
// the CPU kernels on torch's threads; without it they run on one thread (setup.py, _openmp_flags).
#ifdef _OPENMP
constexpr int kOpenMP = 1;
#else
constexpr int kOpenMP = 0;
#endif

// Importing snn_cuda._C runs the static initialisers above (the ops); the module holds the controls.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  PyObject* module = PyModule_Create(&module_def);
  if (module != nullptr && (PyModule_AddIntConstant(module, "INTERFACE_VERSION", kInterfaceVersion) != 0 ||
                            PyModule_AddIntConstant(module, "OPENMP", kOpenMP) != 0)) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
