#include "server/metrics/registry.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/metrics/instruments.h"
#include "server/metrics/testing/scrape.h"

namespace chai::server::metrics {
namespace {

TEST(RegistryTest, ExactTextForSmallRegistry) {
  Registry registry;
  absl::StatusOr<Counter*> requests = registry.AddCounter("app_requests_total", "Requests.");
  ASSERT_TRUE(requests.ok()) << requests.status();
  absl::StatusOr<Family<Gauge>*> queue =
      registry.AddGaugeFamily("app_queue_depth", "Queue depth.", {"queue"});
  ASSERT_TRUE(queue.ok()) << queue.status();
  absl::StatusOr<Histogram*> latency =
      registry.AddHistogram("app_latency_seconds", "Latency.", {0.5, 1});
  ASSERT_TRUE(latency.ok()) << latency.status();

  (*requests)->Increment();
  (*requests)->Increment(2);
  (*(*queue)->Get({"high"}))->Set(4);
  (*(*queue)->Get({"low"}))->Set(0.25);
  (*latency)->Observe(0.5);
  (*latency)->Observe(0.75);
  (*latency)->Observe(3);

  EXPECT_EQ(registry.Render(),
            "# HELP app_requests_total Requests.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total 3\n"
            "# HELP app_queue_depth Queue depth.\n"
            "# TYPE app_queue_depth gauge\n"
            "app_queue_depth{queue=\"high\"} 4\n"
            "app_queue_depth{queue=\"low\"} 0.25\n"
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{le=\"0.5\"} 1\n"
            "app_latency_seconds_bucket{le=\"1\"} 2\n"
            "app_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "app_latency_seconds_sum 4.25\n"
            "app_latency_seconds_count 3\n");
}

TEST(RegistryTest, FamilyGetReturnsTheSameChildForTheSameLabels) {
  Registry registry;
  absl::StatusOr<Family<Counter>*> family = registry.AddCounterFamily("x_total", "X.", {"a", "b"});
  ASSERT_TRUE(family.ok());
  absl::StatusOr<Counter*> one = (*family)->Get({"1", "2"});
  absl::StatusOr<Counter*> again = (*family)->Get({"1", "2"});
  absl::StatusOr<Counter*> other = (*family)->Get({"2", "1"});
  ASSERT_TRUE(one.ok() && again.ok() && other.ok());
  EXPECT_EQ(*one, *again);
  EXPECT_NE(*one, *other);
  EXPECT_EQ((*family)->Get({"only-one"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*family)->Get({"1", "2", "3"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RegistryTest, RejectsBadRegistrations) {
  Registry registry;
  EXPECT_EQ(registry.AddCounter("requests", "no _total").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGauge("bad-name", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGauge("", "h").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGaugeFamily("g", "h", {"__x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddGaugeFamily("g", "h", {"a", "a"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogramFamily("h", "h", {"le"}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "h", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "h", {1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "h", {2, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      registry.AddHistogram("h", "h", {1, std::numeric_limits<double>::infinity()}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.AddHistogram("h", "h", {std::nan("")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      registry
          .AddCallback("h", "h", MetricType::kHistogram, [] { return std::vector<MetricPoint>{}; })
          .code(),
      absl::StatusCode::kInvalidArgument);
  // None of the failures registered anything.
  EXPECT_EQ(registry.Render(), "");
}

TEST(RegistryTest, RejectsNameClashesIncludingHistogramSampleNames) {
  Registry registry;
  ASSERT_TRUE(registry.AddGauge("g", "h").ok());
  EXPECT_EQ(registry.AddGauge("g", "h").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddGaugeFamily("g", "h", {"a"}).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry.AddHistogram("lat", "h", {1}).ok());
  EXPECT_EQ(registry.AddGauge("lat_sum", "h").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddGauge("lat_bucket", "h").status().code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(registry.AddGauge("size_count", "h").ok());
  EXPECT_EQ(registry.AddHistogram("size", "h", {1}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(HistogramTest, LeIsInclusiveAndCountsAreCumulative) {
  Histogram h({1, 2, 5});
  for (double v : {-3.0, 0.0, 1.0, 1.0000001, 2.0, 4.9, 5.0, 5.0000001, 1e9}) h.Observe(v);
  const HistogramPoint p = h.Snapshot();
  // <=1: -3, 0, 1 | <=2: + 1.0000001, 2 | <=5: + 4.9, 5 | +Inf: + 5.0000001, 1e9
  EXPECT_EQ(p.bucket_counts, (std::vector<uint64_t>{3, 5, 7}));
  EXPECT_EQ(p.count, 9u);
  EXPECT_DOUBLE_EQ(p.sum, -3.0 + 0 + 1 + 1.0000001 + 2 + 4.9 + 5 + 5.0000001 + 1e9);
  EXPECT_EQ(p.upper_bounds, (std::vector<double>{1, 2, 5}));
}

TEST(HistogramTest, NanIsDroppedInfinityGoesToTheInfBucket) {
  Histogram h({1});
  h.Observe(std::nan(""));
  EXPECT_EQ(h.Snapshot().count, 0u);
  EXPECT_EQ(h.Snapshot().sum, 0);
  h.Observe(std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.Snapshot().bucket_counts, (std::vector<uint64_t>{0}));
  EXPECT_EQ(h.Snapshot().count, 1u);
}

TEST(CounterTest, NeverGoesDown) {
  Counter c;
  c.Increment(2);
  c.Increment(-1);
  c.Increment(std::nan(""));
  c.Increment(0.5);
  EXPECT_EQ(c.Value(), 2.5);
}

TEST(GaugeTest, SetIncrementDecrement) {
  Gauge g;
  g.Set(10);
  g.Increment(2.5);
  g.Decrement(4);
  EXPECT_EQ(g.Value(), 8.5);
  g.Decrement(20);
  EXPECT_EQ(g.Value(), -11.5);
}

TEST(RegistryTest, CallbackFamiliesRenderWhatTheCallbackReturns) {
  Registry registry;
  std::atomic<int> calls{0};
  ASSERT_TRUE(registry
                  .AddCallback("layers", "Per layer.", MetricType::kGauge,
                               [&calls] {
                                 ++calls;
                                 std::vector<MetricPoint> points(2);
                                 points[0].labels = {{"layer", "0"}};
                                 points[0].value = 9;
                                 points[1].labels = {{"layer", "1"}};
                                 points[1].value = 3;
                                 return points;
                               })
                  .ok());
  EXPECT_EQ(registry.Render(),
            "# HELP layers Per layer.\n# TYPE layers gauge\n"
            "layers{layer=\"0\"} 9\nlayers{layer=\"1\"} 3\n");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(registry.AddGauge("layers", "again").status().code(), absl::StatusCode::kAlreadyExists);
}

// Many threads update the same instruments (and create the same labelled
// children) while another scrapes; every total must come out exact and every
// scrape must be internally consistent.
TEST(RegistryConcurrencyTest, ConcurrentUpdatesAreExact) {
  Registry registry;
  Counter* counter = *registry.AddCounter("c_total", "c");
  Gauge* gauge = *registry.AddGauge("g", "g");
  Histogram* histogram = *registry.AddHistogram("h", "h", {1, 2, 3});
  Family<Counter>* family = *registry.AddCounterFamily("f_total", "f", {"k"});

  constexpr int kThreads = 8;
  constexpr int kIterations = 100000;
  std::atomic<bool> go{false};
  std::atomic<bool> done{false};
  std::atomic<int> bad_scrapes{0};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!done.load()) {
      absl::StatusOr<testing::ParsedText> parsed = testing::ParseText(registry.Render());
      if (!parsed.ok()) {
        ++bad_scrapes;
        continue;
      }
      const auto& s = parsed->samples;
      // Cumulative counts never decrease along le, and +Inf equals _count.
      const double b1 = s.at("h_bucket{le=\"1\"}"), b2 = s.at("h_bucket{le=\"2\"}"),
                   b3 = s.at("h_bucket{le=\"3\"}"), inf = s.at("h_bucket{le=\"+Inf\"}");
      if (!(b1 <= b2 && b2 <= b3 && b3 <= inf && inf == s.at("h_count"))) ++bad_scrapes;
      ++scrapes;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* mine = *family->Get({absl::StrCat("t", t % 2)});
      while (!go.load()) {
      }  // start together, so updates really overlap
      for (int i = 0; i < kIterations; ++i) {
        counter->Increment();
        mine->Increment(2);
        gauge->Increment(1);
        gauge->Decrement(0.5);
        histogram->Observe(static_cast<double>(i % 4));  // 0,1 | 2 | 3 | (none above 3)
      }
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  done = true;
  scraper.join();

  const double n = static_cast<double>(kThreads) * kIterations;
  EXPECT_EQ(counter->Value(), n);
  EXPECT_EQ(gauge->Value(), n * 0.5);
  EXPECT_EQ((*family->Get({"t0"}))->Value(), n);  // half the threads, +2 each
  EXPECT_EQ((*family->Get({"t1"}))->Value(), n);
  const HistogramPoint p = histogram->Snapshot();
  EXPECT_EQ(p.bucket_counts,
            (std::vector<uint64_t>{static_cast<uint64_t>(n / 2), static_cast<uint64_t>(n * 3 / 4),
                                   static_cast<uint64_t>(n)}));
  EXPECT_EQ(p.count, static_cast<uint64_t>(n));
  EXPECT_EQ(p.sum, n / 4 * (0 + 1 + 2 + 3));
  EXPECT_EQ(bad_scrapes.load(), 0);
  EXPECT_GT(scrapes.load(), 0);
}

// The same operations as tests/golden/make_metrics_reference.py, checked
// against what the official Python client renders for them.
TEST(ReferenceTest, MatchesPythonClient) {
  const std::string path =
      std::string(CHAI_SOURCE_DIR) + "/tests/golden/metrics/python_client.prom";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<testing::ParsedText> reference = testing::ParseText(buffer.str());
  ASSERT_TRUE(reference.ok()) << reference.status();

  Registry r;
  Family<Counter>* c = *r.AddCounterFamily(
      "ref_requests_total", "Requests with \"quotes\", a back\\slash and a\nnewline.",
      {"code", "path"});
  (*c->Get({"200", "/a"}))->Increment();
  (*c->Get({"200", "/a"}))->Increment(2.5);
  (*c->Get({"500", "we\"ird\\va\nlue"}))->Increment(3);
  (*r.AddGauge("ref_temperature", "A gauge."))->Set(-3.25);
  Family<Gauge>* special =
      *r.AddGaugeFamily("ref_special", "Large, small and infinite values.", {"kind"});
  (*special->Get({"big"}))->Set(1e20);
  (*special->Get({"int"}))->Set(123456789);
  (*special->Get({"tiny"}))->Set(1e-7);
  (*special->Get({"inf"}))->Set(std::numeric_limits<double>::infinity());
  (*special->Get({"neginf"}))->Set(-std::numeric_limits<double>::infinity());
  Histogram* h = *r.AddHistogram("ref_latency_seconds", "A histogram.", {0.1, 0.5, 1, 2.5});
  for (double v : {0.05, 0.1, 0.1000001, 0.5, 0.7, 1.0, 2.5, 2.6, 100.0, -1.0}) h->Observe(v);
  Family<Histogram>* h2 =
      *r.AddHistogramFamily("ref_sizes", "A labelled histogram.", {"op"}, {1, 10});
  (*h2->Get({"read"}))->Observe(1);
  (*h2->Get({"read"}))->Observe(10);
  (*h2->Get({"write"}))->Observe(11);

  absl::StatusOr<testing::ParsedText> ours = testing::ParseText(r.Render());
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_EQ(ours->samples, reference->samples);
  ASSERT_EQ(ours->families.size(), reference->families.size());
  for (const auto& [name, family] : reference->families) {
    ASSERT_TRUE(ours->families.contains(name)) << name;
    EXPECT_EQ(ours->families.at(name).help, family.help) << name;
    EXPECT_EQ(ours->families.at(name).type, family.type) << name;
  }
}

}  // namespace
}  // namespace chai::server::metrics
