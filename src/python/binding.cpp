// fedsilo._core: the C++ side of the PyTorch binding (pybind11). A thin layer over fl::Session:
// MPI start-up, the session's collective calls with the GIL released, parameter buffers taken
// as NumPy arrays without copies (a CPU tensor's .numpy() shares its memory), and HDF5 silo data
// returned as NumPy arrays. Statuses come back as (exit code, message) pairs; fedsilo/torch.py
// turns them into exceptions once every rank has agreed on them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/exit_codes.h"
#include "config/config.h"
#include "data/dataset.h"
#include "fl/session.h"
#include "mpi/comm.h"

namespace py = pybind11;
using namespace fedsilo;

namespace {

// SIGUSR1: checkpoint after this round and exit 5 (requeue); SIGTERM (scancel; mpirun's
// translation of Ctrl-C): checkpoint after this round and exit 7. Checked in aggregate().
volatile std::sig_atomic_t g_stop_requested = 0;
volatile std::sig_atomic_t g_cancel_requested = 0;
extern "C" void on_stop(int) { g_stop_requested = 1; }
extern "C" void on_cancel(int sig) {
  if (g_cancel_requested != 0) {  // a second one ends the process at once
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  g_cancel_requested = sig;
}
void install(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, nullptr);
}

// One MPI runtime and one world communicator per process, for every session.
class PySession;
struct Process {
  std::unique_ptr<mpi::Runtime> runtime;
  std::unique_ptr<mpi::Comm> world;
  std::vector<std::weak_ptr<PySession>> sessions;  // closed before MPI is finalised
};
Process& process() {
  static Process p;
  return p;
}

using Outcome = std::pair<int, std::string>;  // (exit code, message): (0, "") is success
Outcome outcome(const Status& st) { return {cli::exit_code_for(st), st.message()}; }
// The caller's own outcome, passed into the next collective call.
Status local_status(int code, const std::string& message) {
  if (code == 0) return {};
  return {code == cli::kExitUsage ? StatusCode::kInvalidArgument : StatusCode::kInternal, message};
}

// A writable, C-contiguous float32 array's memory, without a copy.
Result<std::span<float>> float_buffer(py::array& a, const char* what) {
  if (!a.dtype().is(py::dtype::of<float>())) return invalid_argument(std::string(what) + " must be float32");
  if (!(a.flags() & py::array::c_style)) return invalid_argument(std::string(what) + " must be contiguous");
  if (!a.writeable()) return invalid_argument(std::string(what) + " must be writable");
  return std::span<float>(static_cast<float*>(a.mutable_data()), static_cast<size_t>(a.size()));
}

class PySession {
 public:
  static std::pair<Outcome, std::shared_ptr<PySession>> open(const std::string& path, bool resume,
                                                             bool overwrite, bool progress) {
    Process& p = process();
    if (!p.runtime) {
      install(SIGUSR1, on_stop);
      install(SIGTERM, on_cancel);
      auto rt = mpi::Runtime::init(nullptr, nullptr);
      if (!rt.ok()) return {outcome(rt.status()), nullptr};
      p.runtime = std::move(rt).value();
      auto world = mpi::Comm::world();
      if (!world.ok()) return {outcome(world.status()), nullptr};
      p.world = std::make_unique<mpi::Comm>(std::move(world).value());
    }
    mpi::Comm& comm = *p.world;
    // Every rank reads the config itself; they agree on the outcome so all stop together.
    auto cfg = config::load_config(path);
    Status st = comm.agree(cfg.status());
    if (!st.ok()) return {outcome(st), nullptr};
    fl::SessionOptions opts;
    opts.resume = resume;
    opts.overwrite = overwrite;
    opts.progress = progress;
    opts.config_path = path;
    opts.stop_requested = &g_stop_requested;
    opts.cancel_requested = &g_cancel_requested;
    Result<std::unique_ptr<fl::Session>> s = internal_error("not opened");
    {
      py::gil_scoped_release nogil;
      s = fl::Session::open(cfg.value(), opts, comm);
    }
    if (!s.ok()) return {outcome(s.status()), nullptr};
    auto out = std::make_shared<PySession>();
    out->s_ = std::move(s).value();
    p.sessions.push_back(out);
    return {{0, ""}, out};
  }

  fl::Session& s() {
    if (!s_) throw std::runtime_error("fedsilo: the federation was shut down (interpreter exit)");
    return *s_;
  }
  // Destroys the session (its communicators) while MPI is still up. Collective.
  void close() { s_.reset(); }

  // (outcome, the registered state bytes restored on resume)
  std::pair<Outcome, py::bytes> start(int code, const std::string& message, py::array params,
                                      const std::vector<std::string>& names,
                                      const std::vector<std::vector<int64_t>>& shapes,
                                      int cuda_device) {
    Status local = local_status(code, message);
    std::span<float> buf;
    std::vector<model::ParamInfo> table;
    if (local.ok()) {
      auto b = float_buffer(params, "the parameter buffer");
      if (b.ok()) buf = b.value(); else local = b.status();
    }
    if (local.ok() && names.size() != shapes.size()) local = invalid_argument("start(): names and shapes differ in length");
    int64_t offset = 0;
    for (size_t i = 0; local.ok() && i < names.size(); ++i) {
      int64_t size = 1;
      for (int64_t d : shapes[i]) size *= d;
      table.push_back({names[i], shapes[i], offset, size});
      offset += size;
    }
    if (local.ok() && offset != static_cast<int64_t>(buf.size())) {
      local = invalid_argument("start(): the tensors' sizes do not add up to the buffer's length");
    }
    std::vector<uint8_t> user_state;
    Status st;
    {
      py::gil_scoped_release nogil;
      st = s().start(local, buf, std::move(table), user_state, cuda_device);
    }
    return {outcome(st), py::bytes(reinterpret_cast<const char*>(user_state.data()), user_state.size())};
  }

  // (outcome, whether end_round writes a checkpoint)
  std::pair<Outcome, bool> aggregate(int code, const std::string& message, int64_t round,
                                     py::array params, double weight, int64_t steps, double lr,
                                     double momentum) {
    Status local = local_status(code, message);
    std::span<float> buf;
    if (local.ok()) {
      auto b = float_buffer(params, "the parameter buffer");
      if (b.ok()) buf = b.value(); else local = b.status();
    }
    Result<fl::AggregateResult> r = internal_error("not run");
    {
      py::gil_scoped_release nogil;
      r = s().aggregate(local, round, buf, weight, fl::LocalSteps{steps, lr, momentum});
    }
    return {outcome(r.status()), r.ok() && r->checkpoint};
  }

  // aggregate() on the device sum: `params` is the address of n float32 values in the memory
  // of start()'s CUDA device (a tensor's data_ptr(); the caller has synchronised the device).
  std::pair<Outcome, bool> aggregate_device(int code, const std::string& message, int64_t round,
                                            std::uintptr_t params, int64_t n, double weight,
                                            int64_t steps, double lr, double momentum) {
    Status local = local_status(code, message);
    if (local.ok() && params == 0) local = invalid_argument("aggregate_device(): no device buffer");
    Result<fl::AggregateResult> r = internal_error("not run");
    {
      py::gil_scoped_release nogil;
      r = s().aggregate_device(local, round, reinterpret_cast<float*>(params), n, weight,
                               fl::LocalSteps{steps, lr, momentum});
    }
    return {outcome(r.status()), r.ok() && r->checkpoint};
  }

  Outcome end_round(int code, const std::string& message, int64_t round, const py::dict& log,
                    const py::bytes& user_state) {
    Status local = local_status(code, message);
    fl::RoundLog l;
    for (const auto& [k, v] : log) {
      const std::string key = py::str(k);
      if (v.is_none()) continue;
      const double x = v.cast<double>();  // numbers (fedsilo.torch checks them)
      if (key == "loss") {
        l.has_loss = true;
        l.loss = x;
      } else if (key == "test_accuracy") {
        l.has_own = true;
        l.test_accuracy = x;
      } else if (key == "test_loss") {
        l.has_own = true;
        l.test_loss = x;
      } else if (key == "_global_correct") {
        l.global_correct = x;
      } else if (key == "_global_loss_sum") {
        l.global_loss_sum = x;
      } else if (key == "_global_count") {
        l.global_count = x;
      } else {
        l.extra[key] = x;
      }
    }
    const std::string bytes = user_state;
    const std::vector<uint8_t> state(bytes.begin(), bytes.end());
    py::gil_scoped_release nogil;
    return outcome(s().end_round(local, round, l, state));
  }

  Outcome finish(int code, const std::string& message, py::array params) {
    Status local = local_status(code, message);
    std::span<float> buf;
    if (local.ok()) {
      auto b = float_buffer(params, "the parameter buffer");
      if (b.ok()) buf = b.value(); else local = b.status();
    }
    py::gil_scoped_release nogil;
    return outcome(s().finish(local, buf));
  }

  Outcome fail(int code, const std::string& message) {
    py::gil_scoped_release nogil;
    return outcome(s().fail(local_status(code, message)));
  }

 private:
  std::unique_ptr<fl::Session> s_;
};

// (outcome, x float32 [N, C, H, W], y int32 [N], num_classes)
std::tuple<Outcome, py::object, py::object, int> read_dataset(const std::string& path) {
  auto ds = data::read_dataset(path);
  if (!ds.ok()) return {outcome(ds.status()), py::none(), py::none(), 0};
  const auto n = static_cast<py::ssize_t>(ds->size());
  py::array_t<float> x({n, py::ssize_t{ds->chw[0]}, py::ssize_t{ds->chw[1]}, py::ssize_t{ds->chw[2]}});
  std::memcpy(x.mutable_data(), ds->x.data(), ds->x.size() * sizeof(float));
  py::array_t<int32_t> y(n);
  std::memcpy(y.mutable_data(), ds->y.data(), ds->y.size() * sizeof(int32_t));
  return {{0, ""}, std::move(x), std::move(y), ds->num_classes};
}

// Before the interpreter exits: sessions are gone (their destructors may be collective), then MPI.
void shutdown() {
  Process& p = process();
  for (auto& w : p.sessions) {
    if (auto session = w.lock()) session->close();
  }
  p.sessions.clear();
  p.world.reset();
  p.runtime.reset();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fedsilo's C++ core for the PyTorch binding (use fedsilo.torch)";
  m.attr("version") = FEDSILO_VERSION;
  m.attr("EXIT_USAGE") = cli::kExitUsage;
  m.attr("EXIT_REQUEUE") = cli::kExitRequeue;
  m.attr("EXIT_CANCELLED") = cli::kExitCancelled;
  m.attr("EXIT_ERROR") = cli::kExitError;
  m.def("read_dataset", &read_dataset, py::arg("path"));
  m.def("shutdown", &shutdown);
  m.def("abort", [](int code) { mpi::Runtime::abort_job(code); });
  py::class_<PySession, std::shared_ptr<PySession>>(m, "Session")
      .def_static("open", &PySession::open)
      .def("start", &PySession::start)
      .def("aggregate", &PySession::aggregate)
      .def("aggregate_device", &PySession::aggregate_device)
      .def_property_readonly("device_sum", [](PySession& p) { return p.s().device_sum(); })
      .def("end_round", &PySession::end_round)
      .def("finish", &PySession::finish)
      .def("fail", &PySession::fail)
      .def_property_readonly("rank", [](PySession& p) { return p.s().comm().rank(); })
      .def_property_readonly("size", [](PySession& p) { return p.s().comm().size(); })
      .def_property_readonly("local_rank", [](PySession& p) { return p.s().comm().local_rank(); })
      .def_property_readonly("silo_name", [](PySession& p) { return p.s().silo_name(); })
      .def_property_readonly("silo_dir", [](PySession& p) { return p.s().silo_dir(); })
      .def_property_readonly("private_dir", [](PySession& p) { return p.s().private_dir(); })
      .def_property_readonly("test_file", [](PySession& p) { return p.s().test_file(); })
      .def_property_readonly("run_dir", [](PySession& p) { return p.s().config().run.out_dir; })
      .def_property_readonly("start_round", [](PySession& p) { return p.s().start_round(); })
      .def_property_readonly("rounds", [](PySession& p) { return p.s().config().run.rounds; })
      .def_property_readonly("finished", [](PySession& p) { return p.s().finished(); })
      .def_property_readonly("eval_every", [](PySession& p) { return p.s().config().eval.every; })
      .def_property_readonly("strategy", [](PySession& p) { return std::string(config::name(p.s().config().strategy.name)); })
      .def_property_readonly("mu", [](PySession& p) { return p.s().config().strategy.mu; })
      .def_property_readonly("local", [](PySession& p) {
        const auto& l = p.s().config().local;
        py::dict d;
        d["epochs"] = l.epochs;
        d["batch_size"] = l.batch_size;
        d["lr"] = l.lr;
        d["momentum"] = l.momentum;
        d["weight_decay"] = l.weight_decay;
        d["threads"] = l.threads;
        return d;
      })
      .def("sampled", [](PySession& p, int64_t round) { return p.s().sampled(round); })
      // SCAFFOLD's c - c_s for the round (a copy; empty for other strategies).
      .def("correction", [](PySession& p) {
        const std::span<const float> c = p.s().correction();
        return py::array_t<float>(static_cast<py::ssize_t>(c.size()), c.data());
      })
      .def("seed", [](PySession& p, int64_t round) { return p.s().seed(round); });
}
