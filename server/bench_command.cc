#include "server/bench_command.h"

#include <cstdio>
#include <iostream>

#include "server/cli_flags.h"
#include "server/grpc/load_generator.h"

namespace chai::server {
namespace {

constexpr char kSynopsis[] =
    "chai bench --target HOST:PORT --concurrency C (--requests N | --rate R [--duration S]) "
    "--prompt-tokens P --max-tokens M [--json] [--seed S] [--temperature T] [--tls ...] "
    "[--api-key-file F] [--retries N]";

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "chai bench: %s (see --help)\n", msg.c_str());
  return 2;
}

}  // namespace

int RunBench(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("target", "server address", "127.0.0.1:50051");
  f.Value("concurrency", "streams in flight at most", "8");
  f.Value("requests", "requests to send (closed loop unless --rate)");
  f.Value("rate", "open loop: Poisson arrivals at this many requests per second");
  f.Value("duration", "with --rate and no --requests: seconds of arrivals", "10");
  f.Value("prompt-tokens", "prompt length in tokens (random ids)", "128");
  f.Value("max-tokens", "tokens generated per request (EOS ignored)", "64");
  f.Value("temperature", "sampling temperature; 0 = greedy", "0");
  f.Value("seed", "seed for prompts, arrivals and sampling", "1");
  f.Value("timeout", "per-request deadline in seconds", "600");
  f.Value("retries",
          "resend a request that got UNAVAILABLE or CANCELLED before its first token (a "
          "draining replica behind a load balancer) up to N more times",
          "0");
  f.Bool("json", "print one JSON object instead of the table");
  f.Bool("tls", "connect with TLS");
  f.Value("tls-ca", "PEM root certificates for --tls (default: the system's)");
  f.Value("tls-server-name", "name to verify in the server's certificate");
  f.Value("api-key-file", "send the first key of this file as a bearer token");
  if (absl::Status s = f.Parse(args); !s.ok()) return UsageError(std::string(s.message()));
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  if (f.Has("requests") == false && f.Has("rate") == false) {
    return UsageError("give --requests N or --rate R");
  }
  LoadOptions o;
  o.client.target = f.Str("target");
  o.client.tls = f.On("tls");
  o.client.tls_ca_file = f.Str("tls-ca");
  o.client.tls_server_name = f.Str("tls-server-name");
  absl::StatusOr<int64_t> concurrency = f.Int("concurrency", 1, 10000);
  absl::StatusOr<int64_t> prompt = f.Int("prompt-tokens", 1, 1 << 20);
  absl::StatusOr<int64_t> max_tokens = f.Int("max-tokens", 1, 1 << 20);
  absl::StatusOr<double> temperature = f.Double("temperature", 0, 100);
  absl::StatusOr<int64_t> seed = f.Int("seed", 0, INT64_MAX);
  absl::StatusOr<double> timeout = f.Double("timeout", 0.001, 86400);
  absl::StatusOr<double> duration = f.Double("duration", 0.001, 86400);
  absl::StatusOr<int64_t> retries = f.Int("retries", 0, 100);
  for (const absl::Status& s :
       {concurrency.status(), prompt.status(), max_tokens.status(), temperature.status(),
        seed.status(), timeout.status(), duration.status(), retries.status()}) {
    if (!s.ok()) return UsageError(std::string(s.message()));
  }
  o.concurrency = static_cast<int32_t>(*concurrency);
  o.prompt_tokens = static_cast<int32_t>(*prompt);
  o.max_tokens = static_cast<int32_t>(*max_tokens);
  o.temperature = *temperature;
  o.seed = static_cast<uint64_t>(*seed);
  o.request_timeout_s = *timeout;
  o.retries = static_cast<int32_t>(*retries);
  if (f.Has("rate")) {
    absl::StatusOr<double> rate = f.Double("rate", 0.001, 1e6);
    if (!rate.ok()) return UsageError(std::string(rate.status().message()));
    o.rate = *rate;
  }
  if (f.Has("requests")) {
    absl::StatusOr<int64_t> n = f.Int("requests", 1, 10000000);
    if (!n.ok()) return UsageError(std::string(n.status().message()));
    o.requests = static_cast<int32_t>(*n);
  } else {
    o.requests = std::max(1, static_cast<int32_t>(o.rate * *duration));
  }
  if (f.Has("api-key-file")) {
    absl::StatusOr<std::string> key = FirstApiKey(f.Str("api-key-file"));
    if (!key.ok()) {
      std::fprintf(stderr, "chai bench: %s\n", std::string(key.status().message()).c_str());
      return 1;
    }
    o.client.api_key = *key;
  }
  absl::StatusOr<LoadReport> report = RunLoad(o);
  if (!report.ok()) {
    std::fprintf(stderr, "chai bench: %s\n", std::string(report.status().message()).c_str());
    return 1;
  }
  std::cout << (f.On("json") ? FormatReportJson(o, *report) + "\n" : FormatReportTable(o, *report));
  return 0;
}

}  // namespace chai::server
