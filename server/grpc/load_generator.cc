#include "server/grpc/load_generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "chai/v1/chai.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace chai::server {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Ids below this are the special/control tokens in the vocabularies we
// serve (SmolLM2: 0..16; Llama-3: >= 128000 are special but sit at the top,
// excluded by the upper bound below).
constexpr int32_t kFirstOrdinaryId = 256;

struct Sample {
  grpc::StatusCode code = grpc::StatusCode::OK;
  double ttft_s = 0;
  double e2e_s = 0;
  int32_t tokens = 0;
  int32_t prompt_tokens = 0;
  int32_t retries = 0;
  std::vector<double> itl_s;
};

// One Generate call; `start` is when the request's first attempt began, so
// a retried request's TTFT and end-to-end latency include its failed tries.
void RunAttempt(v1::ChaiService::Stub& stub, const LoadOptions& o, const v1::GenerateRequest& req,
                Clock::time_point start, Sample* s) {
  grpc::ClientContext ctx;
  AddCallCredentials(o.client, &ctx);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(o.request_timeout_s * 1000)));
  Clock::time_point last = start;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse msg;
  while (reader->Read(&msg)) {
    const int n = msg.token_ids_size();
    if (n == 0) continue;
    const Clock::time_point now = Clock::now();
    if (s->tokens == 0) {
      s->ttft_s = Seconds(now - start);
      // Tokens after the first that arrived in the same message came with
      // it: zero gap each.
      for (int i = 1; i < n; ++i) s->itl_s.push_back(0);
    } else {
      // A message may carry several tokens (the server merges updates a
      // slow reader has not taken yet): spread its gap over them.
      for (int i = 0; i < n; ++i) s->itl_s.push_back(Seconds(now - last) / n);
    }
    last = now;
    s->tokens += n;
  }
  s->code = reader->Finish().error_code();
  s->e2e_s = Seconds(Clock::now() - start);
}

Sample RunOne(v1::ChaiService::Stub& stub, const LoadOptions& o, int32_t vocab, uint64_t index) {
  std::mt19937_64 rng(o.seed * 1000003 + index);
  const int32_t hi = std::max(kFirstOrdinaryId + 1, std::min(vocab, 128000));
  std::uniform_int_distribution<int32_t> id(kFirstOrdinaryId, hi - 1);
  v1::GenerateRequest req;
  for (int32_t i = 0; i < o.prompt_tokens; ++i) req.mutable_token_ids()->add_ids(id(rng));
  req.mutable_sampling()->set_temperature(static_cast<float>(o.temperature));
  req.mutable_sampling()->set_seed(o.seed + index);
  req.mutable_stopping()->set_max_tokens(o.max_tokens);
  req.mutable_stopping()->set_ignore_eos(true);

  Sample s;
  s.prompt_tokens = o.prompt_tokens;
  const Clock::time_point start = Clock::now();
  for (int32_t attempt = 0;; ++attempt) {
    RunAttempt(stub, o, req, start, &s);
    // Only a request that never started is resent: after a token, the
    // stream's output would be duplicated. This client never cancels, so
    // CANCELLED came from the server (a call caught by its shutdown).
    const bool retryable =
        (s.code == grpc::StatusCode::UNAVAILABLE || s.code == grpc::StatusCode::CANCELLED) &&
        s.tokens == 0;
    if (!retryable || attempt >= o.retries) break;
    ++s.retries;
    std::this_thread::sleep_for(std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(o.retry_backoff_s * (attempt + 1))));
  }
  return s;
}

}  // namespace

absl::Status LoadOptions::Validate() const {
  if (concurrency < 1 || concurrency > 10000) {
    return absl::InvalidArgumentError("concurrency must be in [1, 10000]");
  }
  if (requests < 1) return absl::InvalidArgumentError("requests must be >= 1");
  if (!(rate >= 0) || !std::isfinite(rate)) return absl::InvalidArgumentError("rate must be >= 0");
  if (prompt_tokens < 1) return absl::InvalidArgumentError("prompt tokens must be >= 1");
  if (max_tokens < 1) return absl::InvalidArgumentError("max tokens must be >= 1");
  if (!(request_timeout_s > 0)) return absl::InvalidArgumentError("timeout must be > 0");
  if (retries < 0 || retries > 100)
    return absl::InvalidArgumentError("retries must be in [0, 100]");
  if (!(retry_backoff_s >= 0) || retry_backoff_s > 60) {
    return absl::InvalidArgumentError("retry backoff must be in [0, 60] s");
  }
  return absl::OkStatus();
}

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  p.n = static_cast<int64_t>(v.size());
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  auto at = [&v](double q) {
    const double pos = q * static_cast<double>(v.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& o) {
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeClientChannel(o.client);
  if (!channel.ok()) return channel.status();
  std::unique_ptr<v1::ChaiService::Stub> stub = v1::ChaiService::NewStub(*channel);
  v1::ModelInfo info;
  {
    grpc::ClientContext ctx;
    AddCallCredentials(o.client, &ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          absl::StrCat(o.client.target, ": ", s.error_message()));
    }
  }
  if (o.prompt_tokens + o.max_tokens > info.context_length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt tokens + max tokens (", o.prompt_tokens + o.max_tokens,
                     ") exceed the server's context length ", info.context_length()));
  }

  // Open loop: due times of a Poisson process, fixed up front.
  std::vector<double> due(o.requests, 0.0);
  if (o.rate > 0) {
    std::mt19937_64 rng(o.seed);
    std::exponential_distribution<double> gap(o.rate);
    double t = 0;
    for (double& d : due) {
      d = t;
      t += gap(rng);
    }
  }

  std::atomic<int32_t> next{0};
  std::mutex mu;
  std::vector<Sample> samples;
  samples.reserve(o.requests);
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> workers;
  const int32_t n_workers = std::min(o.concurrency, o.requests);
  for (int32_t w = 0; w < n_workers; ++w) {
    workers.emplace_back([&] {
      while (true) {
        const int32_t i = next.fetch_add(1);
        if (i >= o.requests) return;
        if (o.rate > 0) {
          std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(due[i])));
        }
        Sample s = RunOne(*stub, o, info.vocab_size(), static_cast<uint64_t>(i));
        std::lock_guard<std::mutex> l(mu);
        samples.push_back(std::move(s));
      }
    });
  }
  for (std::thread& t : workers) t.join();

  LoadReport r;
  r.requests = o.requests;
  r.duration_s = Seconds(Clock::now() - t0);
  std::vector<double> ttft, itl, e2e;
  for (const Sample& s : samples) {
    r.retries += s.retries;
    if (s.retries > 0) ++r.retried_requests;
    if (s.code != grpc::StatusCode::OK) {
      ++r.errors[absl::StatusCodeToString(static_cast<absl::StatusCode>(s.code))];
      continue;
    }
    ++r.succeeded;
    r.output_tokens += s.tokens;
    r.prompt_tokens += s.prompt_tokens;
    ttft.push_back(s.ttft_s);
    e2e.push_back(s.e2e_s);
    itl.insert(itl.end(), s.itl_s.begin(), s.itl_s.end());
  }
  if (r.duration_s > 0) {
    r.request_throughput = r.succeeded / r.duration_s;
    r.output_throughput = static_cast<double>(r.output_tokens) / r.duration_s;
  }
  r.ttft_s = Summarize(std::move(ttft));
  r.itl_s = Summarize(std::move(itl));
  r.e2e_s = Summarize(std::move(e2e));
  return r;
}

std::string FormatReportTable(const LoadOptions& o, const LoadReport& r) {
  std::string out = absl::StrFormat(
      "target %s  concurrency %d  requests %d  rate %s  prompt %d  max_tokens %d\n"
      "succeeded %d / %d in %.2f s: %.2f req/s, %.1f output tok/s (%lld tokens)\n\n",
      o.client.target, o.concurrency, o.requests,
      o.rate > 0 ? absl::StrFormat("%.2f/s", o.rate) : std::string("closed-loop"), o.prompt_tokens,
      o.max_tokens, r.succeeded, r.requests, r.duration_s, r.request_throughput,
      r.output_throughput, static_cast<long long>(r.output_tokens));
  absl::StrAppendFormat(&out, "%-10s %10s %10s %10s %10s %10s\n", "ms", "mean", "p50", "p90", "p99",
                        "max");
  for (const auto& [name, p] : {std::pair<const char*, const Percentiles&>{"ttft", r.ttft_s},
                                {"itl", r.itl_s},
                                {"e2e", r.e2e_s}}) {
    absl::StrAppendFormat(&out, "%-10s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, p.mean * 1e3,
                          p.p50 * 1e3, p.p90 * 1e3, p.p99 * 1e3, p.max * 1e3);
  }
  if (o.retries > 0) {
    absl::StrAppendFormat(
        &out, "\nretries %d (%d requests retried: UNAVAILABLE/CANCELLED before a token)\n",
        r.retries, r.retried_requests);
  }
  if (!r.errors.empty()) {
    out += "\nerrors:\n";
    for (const auto& [code, n] : r.errors) absl::StrAppendFormat(&out, "  %-20s %d\n", code, n);
  }
  return out;
}

std::string FormatReportJson(const LoadOptions& o, const LoadReport& r) {
  auto pct = [](const Percentiles& p) {
    return nlohmann::json{{"n", p.n},     {"mean", p.mean}, {"p50", p.p50},
                          {"p90", p.p90}, {"p99", p.p99},   {"max", p.max}};
  };
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, n] : r.errors) errors[code] = n;
  nlohmann::json j = {
      {"target", o.client.target},
      {"concurrency", o.concurrency},
      {"requests", r.requests},
      {"rate", o.rate},
      {"prompt_tokens", o.prompt_tokens},
      {"max_tokens", o.max_tokens},
      {"succeeded", r.succeeded},
      {"errors", errors},
      {"max_retries", o.retries},
      {"retries", r.retries},
      {"retried_requests", r.retried_requests},
      {"duration_s", r.duration_s},
      {"output_tokens", r.output_tokens},
      {"request_throughput", r.request_throughput},
      {"output_throughput", r.output_throughput},
      {"ttft_s", pct(r.ttft_s)},
      {"itl_s", pct(r.itl_s)},
      {"e2e_s", pct(r.e2e_s)},
  };
  return j.dump();
}

}  // namespace chai::server
