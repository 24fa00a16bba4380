// Every input is validated before any memory is touched; buffers are allocated once per call,
// so the per-step hot path (GIL released) allocates nothing.
#include "maskgit_loop.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "categorical.h"
#include "detmath.h"
#include "rng.h"
#include "worker_pool.h"

namespace py = pybind11;

namespace showo {
namespace {

constexpr int kFailNonFinite = 1;
constexpr int kFailOverflow = 2;
constexpr double kProbMin = 1e-20;

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_text(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

void require_callable(const py::object& f, const char* name, const char* what) {
  if (!PyCallable_Check(f.ptr())) {
    throw InvalidArgument(std::string(name) + " must be callable " + what + "; got " +
                          py::str(py::type::of(f).attr("__name__")).cast<std::string>());
  }
}

// A C-contiguous numpy array of dtype T with `ndim` dimensions, or InvalidArgument.
template <class T>
py::array require_array(const py::object& obj, const std::string& name, py::ssize_t ndim, const char* what) {
  if (!py::isinstance<py::array>(obj)) {
    throw InvalidArgument(name + " must be a numpy array " + what + "; got " +
                          py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>())) {
    throw InvalidArgument(name + " must have dtype " + py::str(py::dtype::of<T>()).cast<std::string>() +
                          "; got dtype " + dtype_text(a));
  }
  if (a.ndim() != ndim) throw InvalidArgument(name + " must be " + what + "; got shape " + shape_text(a));
  if (!(a.flags() & py::array::c_style)) throw InvalidArgument(name + " must be C-contiguous");
  return a;
}

void check_range(const char* name, double value, double high) {
  if (!(std::isfinite(value) && value >= 0.0 && value <= high)) {
    throw InvalidArgument(std::string(name) + " must be finite and in [0, " + std::to_string(high) +
                          "]; got " + std::to_string(value));
  }
}

void check_count(const char* name, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw InvalidArgument(std::string(name) + " must be in [" + std::to_string(low) + ", " + std::to_string(high) +
                          "]; got " + std::to_string(value));
  }
}

// step_fn's output as float32 (rows, N, K) logits, or InvalidArgument naming the step.
py::array step_logits(const py::object& out, int64_t step, int64_t rows, int64_t n, int64_t k, bool guided) {
  const std::string where = "step " + std::to_string(step) + ": step_fn output";
  const char* what = guided ? "(2B, N, K): conditional rows then unconditional rows" : "(B, N, K)";
  py::array a = require_array<float>(out, where, 3, what);
  if (a.shape(0) != rows || a.shape(1) != n || a.shape(2) != k) {
    throw InvalidArgument(where + " has shape " + shape_text(a) + "; expected (" + std::to_string(rows) + ", " +
                          std::to_string(n) + ", " + std::to_string(k) + ") " + what);
  }
  return a;
}

// Re-masks the lowest-confidence positions of each row in `current`, from this step's samples.
void remask_rows(std::vector<int64_t>& current, const std::vector<int64_t>& samples, const std::vector<double>& conf,
                 std::vector<double>& scratch, int64_t batch, int64_t n, int64_t mask_token, int64_t table_value) {
  for (int64_t b = 0; b < batch; ++b) {
    int64_t* row = current.data() + b * n;
    const int64_t unknown = std::count(row, row + n, mask_token);
    const int64_t count = std::max<int64_t>(1, std::min<int64_t>(unknown - 1, table_value));
    const double* row_conf = conf.data() + b * n;
    double cutoff = INFINITY;  // count >= N (only N = 1): everything is re-masked
    if (count < n) {
      std::copy(row_conf, row_conf + n, scratch.begin());
      std::nth_element(scratch.begin(), scratch.begin() + count, scratch.end());
      cutoff = scratch[static_cast<size_t>(count)];
    }
    for (int64_t i = 0; i < n; ++i) row[i] = row_conf[i] < cutoff ? mask_token : samples[b * n + i];
  }
}

}  // namespace

py::array_t<int64_t> generate(const py::object& step_fn, const py::object& canvas_obj, const py::object& mask_lens_obj,
                              const py::object& temperatures_obj, int64_t num_codes, double guidance_scale,
                              uint64_t seed, bool greedy, int64_t num_threads, const py::object& progress) {
  require_callable(step_fn, "step_fn", "(canvas -> logits)");
  if (!progress.is_none()) require_callable(progress, "progress", "(step, steps) or None");
  check_count("num_codes", num_codes, 1, kMaxCodes);
  check_range("guidance_scale", guidance_scale, kMaxScale);
  check_count("num_threads", num_threads, 0, kMaxThreads);
  py::array canvas = require_array<int64_t>(canvas_obj, "canvas", 2, "(B, N)");
  const int64_t batch = canvas.shape(0);
  const int64_t n = canvas.shape(1);
  if (batch < 1 || n < 1) throw InvalidArgument("canvas must have shape (B, N) with B, N >= 1; got " + shape_text(canvas));
  if (batch * n > kMaxPositions) {  // no overflow: a C-contiguous int64 (B, N) holds 8 * B * N bytes
    throw InvalidArgument("canvas must have at most " + std::to_string(kMaxPositions) + " cells (B * N); got shape " +
                          shape_text(canvas));
  }
  const int64_t logit_rows = guidance_scale > 0.0 ? 2 * batch : batch;
  if (logit_rows * n * num_codes > kMaxLogits) {
    throw InvalidArgument("step_fn's logits (" + std::to_string(logit_rows) + ", " + std::to_string(n) + ", " +
                          std::to_string(num_codes) + ") would hold " + std::to_string(logit_rows * n * num_codes) +
                          " float32 values; at most " + std::to_string(kMaxLogits) +
                          " (rows * N * num_codes) are supported");
  }
  const size_t positions = static_cast<size_t>(batch * n);
  const auto* canvas_data = static_cast<const int64_t*>(canvas.data());
  const int64_t mask_token = num_codes;
  for (size_t i = 0; i < positions; ++i) {
    if (canvas_data[i] < 0 || canvas_data[i] > mask_token) {
      throw InvalidArgument("canvas values must be codes in [0, " + std::to_string(num_codes - 1) +
                            "] or the MASK sentinel " + std::to_string(mask_token) + " (= num_codes); got " +
                            std::to_string(canvas_data[i]));
    }
  }
  py::array mask_lens = require_array<int64_t>(mask_lens_obj, "mask_lens", 1, "(steps,)");
  const int64_t steps = mask_lens.shape(0);
  check_count("steps (len(mask_lens))", steps, 1, kMaxSteps);
  py::array temperatures = require_array<double>(temperatures_obj, "temperatures", 1, "(steps,)");
  if (temperatures.shape(0) != steps) {
    throw InvalidArgument("temperatures must have one value per step: shape (" + std::to_string(steps) +
                          ",); got " + shape_text(temperatures));
  }
  const auto* table = static_cast<const int64_t*>(mask_lens.data());
  const auto* temps = static_cast<const double*>(temperatures.data());
  for (int64_t s = 0; s < steps; ++s) check_range("temperatures[s]", temps[s], kMaxScale);

  const bool guided = guidance_scale > 0.0;
  const float mix_cond = static_cast<float>(1.0 + guidance_scale);  // as torch: python scalar -> float32
  const float mix_uncond = static_cast<float>(guidance_scale);
  const size_t padded = static_cast<size_t>(padded_codes(num_codes));
  const size_t chunk = static_cast<size_t>(std::clamp<int64_t>(16384 / num_codes, 1, 256));
  // Threads: as asked (0: all cores), but never more than kMaxPoolThreads, than there are chunks of
  // work, or than keeps the per-thread scratch (threads x padded K) under kMaxScratchCodes.
  // Every draw depends on (seed, step, row, position) only, so the count never changes the result.
  const int64_t wanted = num_threads > 0 ? num_threads : std::max(1u, std::thread::hardware_concurrency());
  const int64_t chunks = static_cast<int64_t>((positions + chunk - 1) / chunk);
  const int64_t scratch_cap = std::max<int64_t>(1, kMaxScratchCodes / static_cast<int64_t>(padded));
  const auto threads = static_cast<unsigned>(
      std::max<int64_t>(1, std::min({wanted, kMaxPoolThreads, chunks, scratch_cap})));

  std::vector<int64_t> current(canvas_data, canvas_data + positions);
  std::vector<int64_t> samples(positions);
  std::vector<double> conf(positions);
  std::vector<double> selection(static_cast<size_t>(n));
  // Scratch and threads are set up only once step 0's logits passed their checks: a wrong
  // step_fn is refused before any per-thread memory is asked for.
  std::vector<float> mixed;
  std::vector<double> exps;
  std::unique_ptr<WorkerPool> pool;

  for (int64_t step = 0; step < steps; ++step) {
    py::array_t<int64_t> view({batch, n});
    std::memcpy(view.mutable_data(), current.data(), positions * sizeof(int64_t));
    const py::object out = step_fn(view);
    const py::array logits = step_logits(out, step, guided ? 2 * batch : batch, n, num_codes, guided);
    if (!pool) {
      mixed.resize(threads * padded);
      exps.resize(threads * padded);
      pool = std::make_unique<WorkerPool>(threads);
    }
    const auto* data = static_cast<const float*>(logits.data());
    const double temp = temps[step];
    std::atomic<int> failure{0};

    auto score = [&](unsigned thread, size_t idx) {
      const uint64_t b = idx / static_cast<size_t>(n);
      const uint64_t i = idx % static_cast<size_t>(n);
      const float* cond = data + idx * num_codes;
      const float* uncond = guided ? data + (positions + idx) * num_codes : nullptr;
      double prob = FLT_MAX;  // known positions are never re-masked
      if (current[idx] == mask_token) {
        const double u = greedy ? 0.0 : rng::uniform(seed, step, b, i, rng::kStreamCategorical);
        const RowScratch scratch{mixed.data() + thread * padded, exps.data() + thread * padded};
        const RowSample s = sample_row(cond, uncond, num_codes, mix_cond, mix_uncond, greedy, u, scratch);
        if (s.status != RowStatus::kOk) {
          failure.fetch_or(s.status == RowStatus::kOverflow ? kFailOverflow : kFailNonFinite);
          return;
        }
        samples[idx] = s.index;
        prob = s.prob;
      } else {
        if (!all_finite(cond, num_codes) || (guided && !all_finite(uncond, num_codes))) {
          failure.fetch_or(kFailNonFinite);
          return;
        }
        samples[idx] = current[idx];
      }
      double c = detmath::log_det(prob < kProbMin ? kProbMin : prob);
      if (!greedy) {
        const double u = rng::uniform(seed, step, b, i, rng::kStreamGumbel);
        const double inner = -detmath::log_det(u < kProbMin ? kProbMin : u);
        c = c + temp * -detmath::log_det(inner < kProbMin ? kProbMin : inner);
      }
      conf[idx] = c;
    };
    {
      py::gil_scoped_release release;
      pool->for_each(positions, chunk, score);
      if (failure.load() == 0) remask_rows(current, samples, conf, selection, batch, n, mask_token, table[step]);
    }
    const std::string at = "step " + std::to_string(step) + ": ";
    if (failure.load() & kFailNonFinite) {
      throw InvalidArgument(at + "step_fn returned non-finite logits (NaN or Inf); logits must be finite");
    }
    if (failure.load() & kFailOverflow) {
      throw InvalidArgument(at + "guided logits overflow float32 (guidance_scale=" + std::to_string(guidance_scale) +
                            "); use a smaller guidance_scale or smaller logits");
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (!progress.is_none()) progress(step, steps);
  }
  py::array_t<int64_t> result({batch, n});
  std::memcpy(result.mutable_data(), samples.data(), positions * sizeof(int64_t));
  return result;
}

}  // namespace showo
