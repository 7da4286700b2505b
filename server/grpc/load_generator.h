// The client side of `chai bench`: drives a running server with streaming
// Generate calls and measures what users feel -- time to first token,
// inter-token latency, end-to-end latency, throughput -- plus errors by
// status code (the measurements of vLLM's benchmark_serving).
//
// Each worker thread runs one stream at a time (thread per stream), so
// `concurrency` bounds the streams in flight. Closed loop (rate == 0): each
// worker starts its next request as soon as the previous ends. Open loop
// (rate > 0): requests are due at Poisson arrival times (seeded), and a
// request starts at its due time or when a worker frees up, whichever is
// later; latencies count from the actual start.
//
// Prompts are `prompt_tokens` random token ids (seeded, distinct per
// request, drawn from the ordinary vocabulary above the special tokens) and
// `ignore_eos` is set, so every successful request produces exactly
// `max_tokens` tokens.
//
// Retries (`retries` > 0): a request that ends UNAVAILABLE or CANCELLED
// before its first token is sent again, up to `retries` more times, after a
// short linear backoff. A draining replica answers UNAVAILABLE to calls it
// no longer admits, and gRPC answers CANCELLED to a call that arrives in the
// instant the server shuts down (this client never cancels its own calls,
// so a CANCELLED can only come from the other side). A gRPC load balancer
// (nginx) cannot retry either: each is a complete HTTP/2 response to it.
// The request never started, so resending it is safe; a request that
// already received a token is never retried (the same rule as gRPC's retry
// policy, which commits a call at its first response message). Latencies of
// a retried request count from its first attempt (what the user waited).
//
// Thread-safety: RunLoad is self-contained; call it from one thread.
#ifndef CHAI_SERVER_GRPC_LOAD_GENERATOR_H_
#define CHAI_SERVER_GRPC_LOAD_GENERATOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/grpc/client_channel.h"

namespace chai::server {

struct LoadOptions {
  ClientOptions client;
  int32_t concurrency = 1;
  int32_t requests = 1;
  double rate = 0;  // requests per second; 0 = closed loop
  int32_t prompt_tokens = 32;
  int32_t max_tokens = 32;
  double temperature = 0;  // greedy by default: the cheapest sampler
  uint64_t seed = 1;
  double request_timeout_s = 600;
  int32_t retries = 0;            // extra attempts per request, UNAVAILABLE before any token
  double retry_backoff_s = 0.05;  // attempt k waits k * this before resending

  absl::Status Validate() const;
};

struct Percentiles {
  int64_t n = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// Linear interpolation between closest ranks (numpy's default). Empty
// input: all zero.
Percentiles Summarize(std::vector<double> values);

struct LoadReport {
  int32_t requests = 0;
  int32_t succeeded = 0;
  std::map<std::string, int32_t> errors;  // status code name -> count (after retries)
  int32_t retries = 0;                    // attempts beyond each request's first
  int32_t retried_requests = 0;           // requests that needed at least one retry
  double duration_s = 0;
  int64_t output_tokens = 0;
  int64_t prompt_tokens = 0;
  double request_throughput = 0;  // successful requests / s
  double output_throughput = 0;   // generated tokens / s
  Percentiles ttft_s;             // successful requests
  Percentiles itl_s;              // gaps between token arrivals
  Percentiles e2e_s;
};

// Asks GetModelInfo first (for the vocabulary and context), then runs the
// load. UNAVAILABLE when the server cannot be reached; INVALID_ARGUMENT when
// prompt_tokens + max_tokens exceed its context.
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

std::string FormatReportTable(const LoadOptions& options, const LoadReport& report);
std::string FormatReportJson(const LoadOptions& options, const LoadReport& report);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_LOAD_GENERATOR_H_
