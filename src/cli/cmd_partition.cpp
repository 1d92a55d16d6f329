// `fedsilo partition`: splits a data set into per-silo train/test HDF5 files with a NIID-Bench
// scheme, plus the global test split and partition.json describing the result.
#include <fmt/core.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "core/fs.h"
#include "core/philox.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/partition.h"

namespace fedsilo::cli {
namespace {

namespace fsys = std::filesystem;
using data::Dataset;

// Sub-streams of the partition purpose for the choices made before splitting; the split itself
// uses round 0 (data/partition.h).
constexpr uint32_t kTrainSubsetStream = 1;
constexpr uint32_t kTestSubsetStream = 2;
constexpr uint32_t kHoldoutStream = 3;
constexpr int64_t kHoldoutDenominator = 7;  // --input without --test-input: 1/7 held out

struct Splits {
  Dataset train;
  Dataset test;
};

Status check_args(const PartitionArgs& a) {
  if (a.dataset.empty() == a.input.empty()) {
    return invalid_argument("give exactly one of --dataset fashion-mnist and --input FILE.h5");
  }
  if (!a.dataset.empty() && a.dataset != "fashion-mnist") {
    return invalid_argument("--dataset: unknown data set '" + a.dataset +
                            "' (expected fashion-mnist, or --input FILE.h5 for your own data)");
  }
  if (!a.test_input.empty() && a.input.empty()) {
    return invalid_argument("--test-input needs --input");
  }
  if (a.out.empty()) return invalid_argument("--out DIR is required");
  if (a.silos < 1) {
    return invalid_argument("--silos " + std::to_string(a.silos) + ": need at least 1 silo");
  }
  if (a.max_train < 0) return invalid_argument("--max-train must be >= 0");
  if (a.max_test < 0) return invalid_argument("--max-test must be >= 0");
  return {};
}

// The training set and the global test split, before subsetting.
Result<Splits> load(const PartitionArgs& a) {
  Splits s;
  if (!a.dataset.empty()) {
    const fsys::path dir(a.idx_dir);
    FEDSILO_ASSIGN_OR_RETURN(s.train,
                             data::read_idx_pair((dir / "train-images-idx3-ubyte.gz").string(),
                                                 (dir / "train-labels-idx1-ubyte.gz").string()));
    FEDSILO_ASSIGN_OR_RETURN(s.test,
                             data::read_idx_pair((dir / "t10k-images-idx3-ubyte.gz").string(),
                                                 (dir / "t10k-labels-idx1-ubyte.gz").string()));
    return s;
  }
  FEDSILO_ASSIGN_OR_RETURN(Dataset all, data::read_xy_file(a.input));
  if (!a.test_input.empty()) {
    FEDSILO_ASSIGN_OR_RETURN(s.test, data::read_xy_file(a.test_input));
    if (s.test.chw != all.chw) {
      return corrupt_data(
          a.test_input + ": samples of shape {" +
          fmt::format("{}, {}, {}", s.test.chw[0], s.test.chw[1], s.test.chw[2]) +
          "} do not match " + a.input + "'s {" +
          fmt::format("{}, {}, {}", all.chw[0], all.chw[1], all.chw[2]) + "}");
    }
    const int classes = std::max(all.num_classes, s.test.num_classes);
    all.num_classes = s.test.num_classes = classes;
    s.test.name = all.name;
    s.train = std::move(all);
    return s;
  }
  const int64_t n_test = all.size() / kHoldoutDenominator;
  if (n_test < 1) {
    return corrupt_data(a.input + ": " + std::to_string(all.size()) +
                            " samples are too few to hold out 1/7 as the test split; "
                            "pass --test-input");
  }
  Philox rng(a.seed, kHoldoutStream, 0, RngPurpose::kPartition);
  const std::vector<int64_t> test_idx = data::random_subset(all.size(), n_test, rng);
  std::vector<int64_t> train_idx;
  train_idx.reserve(static_cast<size_t>(all.size() - n_test));
  size_t t = 0;
  for (int64_t i = 0; i < all.size(); ++i) {
    if (t < test_idx.size() && test_idx[t] == i) {
      ++t;
    } else {
      train_idx.push_back(i);
    }
  }
  s.train = data::select(all, train_idx);
  s.test = data::select(all, test_idx);
  return s;
}

Dataset take_subset(Dataset ds, int64_t max, uint64_t seed, uint32_t stream) {
  if (max <= 0 || max >= ds.size()) return ds;
  Philox rng(seed, stream, 0, RngPurpose::kPartition);
  return data::select(ds, data::random_subset(ds.size(), max, rng));
}

// Refuses to replace a partition unless asked; with --overwrite removes the old partition.json
// first (the directory is then visibly incomplete until the new one is written) and silo
// directories the new partition will not have.
Status prepare_out_dir(const PartitionArgs& a) {
  const fsys::path dir(a.out);
  std::error_code ec;
  const bool had_partition = fsys::exists(dir / "partition.json", ec);
  if (had_partition && !a.overwrite) {
    return {StatusCode::kAlreadyExists,
            "--out " + a.out + " already holds a partition; pass --overwrite"};
  }
  FEDSILO_CHECK(fs::make_dirs(a.out));
  if (!had_partition) return {};
  if (!fsys::remove(dir / "partition.json", ec) && ec) {
    return io_error("cannot remove " + (dir / "partition.json").string() + ": " + ec.message());
  }
  std::set<std::string> keep;
  for (int s = 0; s < a.silos; ++s) keep.insert(data::silo_dir_name(s, a.silos));
  for (const auto& entry : fsys::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool silo_like = name.rfind("silo-", 0) == 0 && name.size() > 5 &&
                           name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (silo_like && entry.is_directory() && keep.count(name) == 0) {
      fsys::remove_all(entry.path(), ec);
      if (ec) return io_error("cannot remove " + entry.path().string() + ": " + ec.message());
    }
  }
  return {};
}

struct SiloSummary {
  std::string dir;
  std::vector<int64_t> train_counts;
  std::vector<int64_t> test_counts;
  int64_t train = 0;
  int64_t test = 0;
  double noise_std = 0.0;
};

void print_table(const std::vector<SiloSummary>& silos, int num_classes) {
  std::string head = fmt::format("{:>10} {:>8} {:>7}", "silo", "samples", "test");
  for (int c = 0; c < num_classes; ++c) head += fmt::format(" {:>6}", fmt::format("c{}", c));
  std::cout << head << '\n';
  for (const SiloSummary& s : silos) {
    std::string row = fmt::format("{:>10} {:>8} {:>7}", s.dir, s.train, s.test);
    for (int64_t n : s.train_counts) row += fmt::format(" {:>6}", n);
    std::cout << row << '\n';
  }
}

Status run(const PartitionArgs& a) {
  FEDSILO_CHECK(check_args(a));
  FEDSILO_ASSIGN_OR_RETURN(data::Scheme scheme, data::parse_scheme(a.scheme));
  FEDSILO_ASSIGN_OR_RETURN(Splits loaded, load(a));
  Dataset train = take_subset(std::move(loaded.train), a.max_train, a.seed, kTrainSubsetStream);
  Dataset test = take_subset(std::move(loaded.test), a.max_test, a.seed, kTestSubsetStream);
  const int classes = train.num_classes;
  FEDSILO_CHECK(data::validate_scheme(scheme, a.silos, train.size(), classes));
  FEDSILO_CHECK(prepare_out_dir(a));
  FEDSILO_ASSIGN_OR_RETURN(data::SiloIndices parts,
                           data::partition_indices(scheme, train.y, classes, a.silos, a.seed));

  int64_t assigned = 0;  // labels:K drops labels nobody holds
  for (const auto& p : parts) assigned += static_cast<int64_t>(p.size());
  const fsys::path out(a.out);
  std::vector<SiloSummary> summary;
  for (int s = 0; s < a.silos; ++s) {
    SiloSummary info;
    info.dir = data::silo_dir_name(s, a.silos);
    Dataset silo_train = data::select(train, parts[s]);
    info.train_counts = data::class_counts(silo_train.y, classes);
    const std::vector<int64_t> test_idx =
        data::draw_silo_test(test.y, classes, info.train_counts, assigned, a.seed, s);
    Dataset silo_test = data::select(test, test_idx);
    info.test_counts = data::class_counts(silo_test.y, classes);
    silo_train.silo = silo_test.silo = s;
    // Drawn once here; the silo's test set shares its noise level (NIID-Bench).
    info.noise_std = data::silo_noise_std(scheme, s, a.silos);
    Philox noise_rng(a.seed, 0, static_cast<uint32_t>(s), RngPurpose::kNoise);
    data::add_gaussian_noise(silo_train.x, info.noise_std, noise_rng);
    data::add_gaussian_noise(silo_test.x, info.noise_std, noise_rng);
    info.train = silo_train.size();
    info.test = silo_test.size();

    const fsys::path dir = out / info.dir;
    FEDSILO_CHECK(fs::make_dirs(dir.string()));
    FEDSILO_CHECK(data::write_dataset((dir / "train.h5").string(), silo_train));
    FEDSILO_CHECK(data::write_dataset((dir / "test.h5").string(), silo_test));
    summary.push_back(std::move(info));
  }
  test.silo = -1;
  FEDSILO_CHECK(data::write_dataset((out / "test.h5").string(), test));

  nlohmann::ordered_json j;
  j["dataset"] = train.name;
  j["scheme"] = scheme.text;
  j["seed"] = a.seed;
  j["silos"] = a.silos;
  j["num_classes"] = classes;
  j["chw"] = train.chw;
  j["train_samples"] = assigned;
  j["test_samples"] = test.size();
  j["test_class_counts"] = data::class_counts(test.y, classes);
  nlohmann::ordered_json per_silo = nlohmann::ordered_json::array();
  for (int s = 0; s < a.silos; ++s) {
    const SiloSummary& info = summary[static_cast<size_t>(s)];
    nlohmann::ordered_json e;
    e["silo"] = s;
    e["dir"] = info.dir;
    e["train_samples"] = info.train;
    e["train_class_counts"] = info.train_counts;
    e["test_samples"] = info.test;
    e["test_class_counts"] = info.test_counts;
    if (scheme.kind == data::SchemeKind::kNoise) e["noise_std"] = info.noise_std;
    per_silo.push_back(std::move(e));
  }
  j["per_silo"] = std::move(per_silo);
  // Last: a directory with partition.json is a complete partition.
  FEDSILO_CHECK(fs::write_text_atomically((out / "partition.json").string(), j.dump(2) + "\n"));

  if (!a.quiet) {
    std::cout << fmt::format(
        "{}: {} training samples over {} silos ({}, seed {}), "
        "{} global test samples -> {}\n",
        train.name, assigned, a.silos, scheme.text, a.seed, test.size(), a.out);
    print_table(summary, classes);
  }
  return {};
}

}  // namespace

int run_partition(const PartitionArgs& args) {
  Status st;
  try {
    st = run(args);
  } catch (const std::exception& e) {
    st = internal_error(e.what());
  }
  if (!st.ok()) std::cerr << "fedsilo partition: error: " << st.message() << '\n';
  return exit_code_for(st);
}

}  // namespace fedsilo::cli
