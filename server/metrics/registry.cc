#include "server/metrics/registry.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace chai::server::metrics {
namespace {

// A family whose points come from a callback at scrape time.
class CallbackFamily : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type, CollectFn collect)
      : FamilyBase(std::move(name), std::move(help), type, {}), collect_(std::move(collect)) {}

 protected:
  std::vector<MetricPoint> CollectPoints() const override { return collect_(); }

 private:
  const CollectFn collect_;
};

std::vector<std::string> SampleNames(const std::string& name, MetricType type) {
  if (type != MetricType::kHistogram) return {name};
  return {absl::StrCat(name, "_bucket"), absl::StrCat(name, "_sum"), absl::StrCat(name, "_count")};
}

}  // namespace

FamilySnapshot FamilyBase::Collect() const {
  FamilySnapshot snapshot;
  snapshot.name = name_;
  snapshot.help = help_;
  snapshot.type = type_;
  snapshot.points = CollectPoints();
  return snapshot;
}

absl::Status Registry::Reserve(const std::string& name, MetricType type,
                               const std::vector<std::string>& label_names) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid metric name \"", name, "\""));
  }
  if (type == MetricType::kCounter && !absl::EndsWith(name, "_total")) {
    return absl::InvalidArgumentError(absl::StrCat("counter \"", name, "\" must be named *_total"));
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& label : label_names) {
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": invalid label name \"", label, "\""));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": label \"le\" is reserved for histogram buckets"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": duplicate label name \"", label, "\""));
    }
  }
  const std::vector<std::string> samples = SampleNames(name, type);
  for (const std::string& sample : samples) {
    if (sample_names_.contains(sample)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "metric \"", name, "\" clashes with registered sample name \"", sample, "\""));
    }
  }
  sample_names_.insert(samples.begin(), samples.end());
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Family<T>*> Registry::Add(const std::string& name, const std::string& help,
                                         MetricType type,
                                         const std::vector<std::string>& label_names,
                                         std::function<std::unique_ptr<T>()> make_child) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Reserve(name, type, label_names); !s.ok()) return s;
  auto family = std::make_unique<Family<T>>(name, help, type, label_names, std::move(make_child));
  Family<T>* raw = family.get();
  families_.push_back(std::move(family));
  return raw;
}

absl::StatusOr<Family<Counter>*> Registry::AddCounterFamily(
    const std::string& name, const std::string& help, const std::vector<std::string>& label_names) {
  return Add<Counter>(name, help, MetricType::kCounter, label_names,
                      [] { return std::make_unique<Counter>(); });
}

absl::StatusOr<Family<Gauge>*> Registry::AddGaugeFamily(
    const std::string& name, const std::string& help, const std::vector<std::string>& label_names) {
  return Add<Gauge>(name, help, MetricType::kGauge, label_names,
                    [] { return std::make_unique<Gauge>(); });
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogramFamily(
    const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
    const std::vector<double>& upper_bounds) {
  if (absl::Status s = ValidateBuckets(upper_bounds); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", s.message()));
  }
  return Add<Histogram>(name, help, MetricType::kHistogram, label_names,
                        [upper_bounds] { return std::make_unique<Histogram>(upper_bounds); });
}

absl::StatusOr<Counter*> Registry::AddCounter(const std::string& name, const std::string& help) {
  absl::StatusOr<Family<Counter>*> family = AddCounterFamily(name, help, {});
  if (!family.ok()) return family.status();
  return (*family)->Get({});
}

absl::StatusOr<Gauge*> Registry::AddGauge(const std::string& name, const std::string& help) {
  absl::StatusOr<Family<Gauge>*> family = AddGaugeFamily(name, help, {});
  if (!family.ok()) return family.status();
  return (*family)->Get({});
}

absl::StatusOr<Histogram*> Registry::AddHistogram(const std::string& name, const std::string& help,
                                                  const std::vector<double>& upper_bounds) {
  absl::StatusOr<Family<Histogram>*> family = AddHistogramFamily(name, help, {}, upper_bounds);
  if (!family.ok()) return family.status();
  return (*family)->Get({});
}

absl::Status Registry::AddCallback(const std::string& name, const std::string& help,
                                   MetricType type, CollectFn collect) {
  if (type == MetricType::kHistogram) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": callback families are counters or gauges"));
  }
  if (!collect) return absl::InvalidArgumentError(absl::StrCat(name, ": empty callback"));
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Reserve(name, type, {}); !s.ok()) return s;
  families_.push_back(std::make_unique<CallbackFamily>(name, help, type, std::move(collect)));
  return absl::OkStatus();
}

std::vector<FamilySnapshot> Registry::Collect() const {
  // Families are never removed, so the pointers outlive the lock; collecting
  // outside it keeps a slow callback from blocking registration.
  std::vector<const FamilyBase*> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::vector<FamilySnapshot> out;
  out.reserve(families.size());
  for (const FamilyBase* family : families) out.push_back(family->Collect());
  return out;
}

}  // namespace chai::server::metrics
