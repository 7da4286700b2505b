// A registry of metric families, rendered in the Prometheus text format on
// scrape (our replacement for prometheus-cpp, which Debian 12 does not ship).
//
//   Registry registry;
//   absl::StatusOr<Counter*> c = registry.AddCounter("foo_total", "Foos seen.");
//   absl::StatusOr<Family<Counter>*> f =
//       registry.AddCounterFamily("bar_total", "Bars by kind.", {"kind"});
//   absl::StatusOr<Counter*> red = (*f)->Get({"red"});
//   (*c)->Increment();
//   std::string text = registry.Render();
//
// Families render in registration order, children in creation order. Label
// sets are fixed at registration and meant for small, bounded value sets:
// never put per-request values (ids, prompts) in labels.
//
// Ownership: the registry owns its families and their instruments; pointers
// it hands out stay valid for the registry's lifetime.
// Thread-safety: all methods are thread-safe. Instrument updates take no
// lock; Family::Get takes the family's mutex (cache the pointer on hot paths).
#ifndef CHAI_SERVER_METRICS_REGISTRY_H_
#define CHAI_SERVER_METRICS_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "server/metrics/exposition.h"
#include "server/metrics/instruments.h"

namespace chai::server::metrics {

// What every family has; Registry::Collect walks these.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  FamilySnapshot Collect() const;

 protected:
  virtual std::vector<MetricPoint> CollectPoints() const = 0;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

// A metric with one child per label-value combination. T is Counter, Gauge
// or Histogram.
template <typename T>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make_child)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
        make_child_(std::move(make_child)) {}

  // The child for these label values (in label-name order), created on first
  // use. INVALID_ARGUMENT if the number of values differs from the number
  // of label names.
  absl::StatusOr<T*> Get(const std::vector<std::string>& label_values) {
    if (label_values.size() != label_names().size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(), ": expected ", label_names().size(), " label values (",
                       absl::StrJoin(label_names(), ", "), "), got ", label_values.size()));
    }
    absl::MutexLock lock(&mu_);
    auto it = index_.find(label_values);
    if (it != index_.end()) return children_[it->second].second.get();
    children_.emplace_back(label_values, make_child_());
    index_.emplace(label_values, children_.size() - 1);
    return children_.back().second.get();
  }

 protected:
  std::vector<MetricPoint> CollectPoints() const override {
    absl::MutexLock lock(&mu_);
    std::vector<MetricPoint> points(children_.size());
    for (size_t i = 0; i < children_.size(); ++i) {
      const std::vector<std::string>& values = children_[i].first;
      for (size_t j = 0; j < values.size(); ++j) {
        points[i].labels.emplace_back(label_names()[j], values[j]);
      }
      children_[i].second->Fill(&points[i]);
    }
    return points;
  }

 private:
  const std::function<std::unique_ptr<T>()> make_child_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::vector<std::string>, std::unique_ptr<T>>> children_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::vector<std::string>, size_t> index_ ABSL_GUARDED_BY(mu_);
};

// Produces a family's points at scrape time, for values read from elsewhere
// (/proc, a config). Called on the scraping thread; must be thread-safe and
// quick. REQUIRES: every point's labels use valid label names.
using CollectFn = std::function<std::vector<MetricPoint>()>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registration fails with INVALID_ARGUMENT for a malformed metric or label
  // name, a duplicate label name, a counter whose name does not end in
  // "_total", a histogram label named "le", or bad buckets; ALREADY_EXISTS
  // when any sample name it would write (histograms write <name>_bucket,
  // _sum, _count) is already taken.
  absl::StatusOr<Family<Counter>*> AddCounterFamily(const std::string& name,
                                                    const std::string& help,
                                                    const std::vector<std::string>& label_names);
  absl::StatusOr<Family<Gauge>*> AddGaugeFamily(const std::string& name, const std::string& help,
                                                const std::vector<std::string>& label_names);
  absl::StatusOr<Family<Histogram>*> AddHistogramFamily(const std::string& name,
                                                        const std::string& help,
                                                        const std::vector<std::string>& label_names,
                                                        const std::vector<double>& upper_bounds);

  // Unlabelled shorthands: the family's one child.
  absl::StatusOr<Counter*> AddCounter(const std::string& name, const std::string& help);
  absl::StatusOr<Gauge*> AddGauge(const std::string& name, const std::string& help);
  absl::StatusOr<Histogram*> AddHistogram(const std::string& name, const std::string& help,
                                          const std::vector<double>& upper_bounds);

  // A family whose points `collect` produces at each scrape. Same name rules
  // as above (histogram callbacks are not supported: INVALID_ARGUMENT).
  absl::Status AddCallback(const std::string& name, const std::string& help, MetricType type,
                           CollectFn collect);

  // Every family's current state, in registration order.
  std::vector<FamilySnapshot> Collect() const;
  // Collect() in the text exposition format.
  std::string Render() const { return RenderText(Collect()); }

 private:
  // Validates and reserves the names a new family writes.
  absl::Status Reserve(const std::string& name, MetricType type,
                       const std::vector<std::string>& label_names);
  template <typename T>
  absl::StatusOr<Family<T>*> Add(const std::string& name, const std::string& help, MetricType type,
                                 const std::vector<std::string>& label_names,
                                 std::function<std::unique_ptr<T>()> make_child);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> sample_names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_REGISTRY_H_
