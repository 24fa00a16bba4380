// pybind11 bindings of showo_sdk._maskgit: the loop, plus the numeric primitives the tests
// compare bit for bit with their numpy twins in showo_sdk.sampling.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "categorical.h"
#include "detmath.h"
#include "maskgit_loop.h"
#include "rng.h"

namespace py = pybind11;

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

DoubleArray exp_det(const DoubleArray& x) {
  DoubleArray out(x.request().shape);
  showo::exp_det_array(x.data(), out.mutable_data(), x.size());
  return out;
}

DoubleArray log_det(const DoubleArray& x) {
  DoubleArray out(x.request().shape);
  for (py::ssize_t i = 0; i < x.size(); ++i) out.mutable_data()[i] = showo::detmath::log_det(x.data()[i]);
  return out;
}

DoubleArray uniform(uint64_t seed, uint64_t step, const IndexArray& rows, const IndexArray& positions,
                    uint64_t stream) {
  if (rows.ndim() != 1 || positions.ndim() != 1 || rows.size() != positions.size()) {
    throw showo::InvalidArgument("rows and positions must be 1-D arrays of one length");
  }
  DoubleArray out(rows.size());
  for (py::ssize_t i = 0; i < rows.size(); ++i) {
    out.mutable_data()[i] = showo::rng::uniform(seed, step, static_cast<uint64_t>(rows.data()[i]),
                                                static_cast<uint64_t>(positions.data()[i]), stream);
  }
  return out;
}

std::pair<IndexArray, DoubleArray> sample_rows(const FloatArray& logits, const py::object& u_obj,
                                               const py::object& uncond_obj, double guidance_scale) {
  if (logits.ndim() != 2 || logits.shape(0) < 1 || logits.shape(1) < 1) {
    throw showo::InvalidArgument("logits must be float32 (M, K) with M, K >= 1");
  }
  const py::ssize_t rows = logits.shape(0);
  const int64_t k = logits.shape(1);
  const bool greedy = u_obj.is_none();
  const bool guided = !uncond_obj.is_none();
  DoubleArray u = greedy ? DoubleArray(rows) : u_obj.cast<DoubleArray>();
  FloatArray uncond = guided ? uncond_obj.cast<FloatArray>() : FloatArray(std::vector<py::ssize_t>{0});
  if (u.ndim() != 1 || u.size() != rows) throw showo::InvalidArgument("u must be float64 (M,)");
  if (guided && (uncond.ndim() != 2 || uncond.shape(0) != rows || uncond.shape(1) != k)) {
    throw showo::InvalidArgument("uncond must be float32 with the shape of logits");
  }
  std::vector<float> mixed(static_cast<size_t>(showo::padded_codes(k)));
  std::vector<double> exps(mixed.size());
  const showo::RowScratch scratch{mixed.data(), exps.data()};
  IndexArray index(rows);
  DoubleArray prob(rows);
  for (py::ssize_t r = 0; r < rows; ++r) {
    const double ur = greedy ? 0.0 : u.data()[r];
    const float* row_uncond = guided ? uncond.data() + r * k : nullptr;
    const showo::RowSample s =
        showo::sample_row(logits.data() + r * k, row_uncond, k, static_cast<float>(1.0 + guidance_scale),
                          static_cast<float>(guidance_scale), greedy, ur, scratch);
    if (s.status != showo::RowStatus::kOk) throw showo::InvalidArgument("logits (and their mix) must be finite");
    index.mutable_data()[r] = s.index;
    prob.mutable_data()[r] = s.prob;
  }
  return {index, prob};
}

// Explicit conversions of generate's scalar arguments, so a wrong type or a value the C++ type
// cannot hold raises a one-line TypeError (as before, but without pybind11's multi-line listing of
// the signature); range checks inside generate raise InvalidArgument.
std::string type_name(const py::handle& obj) { return py::str(py::type::of(obj).attr("__name__")).cast<std::string>(); }

[[noreturn]] void bad_type(const char* name, const char* want, const py::handle& obj) {
  std::string got = type_name(obj);
  if (PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
    got = py::str(obj).cast<std::string>();
    if (got.size() > 40) got = got.substr(0, 37) + "...";
  }
  throw py::type_error(std::string(name) + " must be " + want + "; got " + got);
}

// An int (or numpy integer; not bool) as a Python int object, or nullptr.
py::object as_index(const py::object& obj) {
  if (PyBool_Check(obj.ptr()) || py::isinstance<py::bool_>(obj) || !PyIndex_Check(obj.ptr())) return py::object();
  PyObject* index = PyNumber_Index(obj.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    return py::object();
  }
  return py::reinterpret_steal<py::object>(index);
}

int64_t int64_arg(const char* name, const py::object& obj) {
  const py::object index = as_index(obj);
  if (!index) bad_type(name, "an int", obj);
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0 || (value == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    bad_type(name, "an int that fits in int64", index);
  }
  return static_cast<int64_t>(value);
}

uint64_t seed_arg(const py::object& obj) {
  const py::object index = as_index(obj);
  if (!index) bad_type("seed", "an int in [0, 2**64 - 1]", obj);
  const unsigned long long value = PyLong_AsUnsignedLongLong(index.ptr());
  if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    bad_type("seed", "an int in [0, 2**64 - 1]", index);
  }
  return static_cast<uint64_t>(value);
}

double real_arg(const char* name, const py::object& obj) {
  PyObject* p = obj.ptr();
  const bool real = PyFloat_Check(p) || PyLong_Check(p) || py::isinstance(obj, py::module_::import("numpy").attr("floating")) ||
                    py::isinstance(obj, py::module_::import("numpy").attr("integer"));
  if (PyBool_Check(p) || !real) bad_type(name, "a real number", obj);
  const double value = PyFloat_AsDouble(p);
  if (value == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    bad_type(name, "a real number that fits in float64", obj);
  }
  return value;
}

bool bool_arg(const char* name, const py::object& obj) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  if (py::isinstance(obj, py::module_::import("numpy").attr("bool_"))) return obj.attr("__bool__")().cast<bool>();
  bad_type(name, "a bool", obj);
}

py::array_t<int64_t> generate(const py::object& step_fn, const py::object& canvas, const py::object& mask_lens,
                              const py::object& temperatures, const py::object& num_codes,
                              const py::object& guidance_scale, const py::object& seed, const py::object& greedy,
                              const py::object& num_threads, const py::object& progress) {
  return showo::generate(step_fn, canvas, mask_lens, temperatures, int64_arg("num_codes", num_codes),
                         real_arg("guidance_scale", guidance_scale), seed_arg(seed), bool_arg("greedy", greedy),
                         int64_arg("num_threads", num_threads), progress);
}

}  // namespace

PYBIND11_MODULE(_maskgit, m) {
  m.doc() = "C++ MaskGIT re-masking loop of showo-sdk (use showo_sdk.sampling.maskgit_generate).";
  py::register_exception<showo::InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
  m.attr("LANES") = showo::kLanes;
  m.attr("MAX_STEPS") = showo::kMaxSteps;
  m.def("generate", &generate, py::arg("step_fn"), py::arg("canvas"), py::arg("mask_lens"),
        py::arg("temperatures"), py::kw_only(), py::arg("num_codes"), py::arg("guidance_scale"), py::arg("seed"),
        py::arg("greedy"), py::arg("num_threads"), py::arg("progress") = py::none(),
        "Run the MaskGIT loop; see showo_sdk.sampling.maskgit_generate for the contract.");
  m.def("_exp_det", &exp_det, py::arg("x"), "exp_det elementwise (test twin of sampling.detmath.exp_det).");
  m.def("_log_det", &log_det, py::arg("x"), "log_det elementwise (test twin of sampling.detmath.log_det).");
  m.def("_uniform", &uniform, py::arg("seed"), py::arg("step"), py::arg("rows"), py::arg("positions"),
        py::arg("stream"), "Counter-based uniforms (test twin of sampling.rng.uniform).");
  m.def("_sample_rows", &sample_rows, py::arg("logits"), py::arg("u"), py::arg("uncond") = py::none(),
        py::arg("guidance_scale") = 0.0,
        "One draw per row of logits, or of (1+g)*logits - g*uncond; argmax if u is None "
        "(test twin of sampling.categorical.sample_rows over sampling.reference.guided_logits).");
}
