#include "server/serve_command.h"

#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <iostream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/serving/request_engine.h"
#include "kernels/backend_registry.h"
#include "server/activations_flag.h"
#include "server/chai_config_flag.h"
#include "server/cli_flags.h"
#include "server/grpc/access_log.h"
#include "server/grpc/api_key.h"
#include "server/grpc/chai_service.h"
#include "server/grpc/grpc_server.h"
#include "server/grpc/memory_budget.h"
#include "server/kv_dtype_flag.h"
#include "server/metrics/metrics_http.h"
#include "server/metrics/serving_metrics.h"

namespace chai::server {
namespace {

constexpr char kSynopsis[] =
    "chai serve --model PATH [--host 0.0.0.0] [--port 50051] [--metrics-port 9090] "
    "[--chai-config none|FILE] [--backend auto|cpu|cuda] [--threads N] "
    "[--activations int16|float] [--kv-cache-dtype f16|f32] [--max-model-len N] "
    "[--max-num-seqs N] [--max-batch-tokens N] [--max-queue N] "
    "[--kv-cache-bytes N | --gpu-memory-fraction F] [--drain-grace 5s] [--drain-timeout 30s] "
    "[--tls-cert F --tls-key F] [--api-key-file F] [--max-connection-age D] [--reflection]";

// Share of the available memory the KV cache takes by default, and the most
// it takes without --kv-cache-bytes.
constexpr double kDefaultKvFraction = 0.25;
constexpr int64_t kDefaultKvCap = int64_t{8} << 30;
// After the last stream of a drain, how long its final messages get to leave
// before the connections are closed.
constexpr absl::Duration kShutdownFlushDelay = absl::Milliseconds(200);

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "chai serve: %s (see --help)\n", msg.c_str());
  return 2;
}

int Failure(const absl::Status& s) {
  std::fprintf(stderr, "chai serve: %s\n", std::string(s.message()).c_str());
  return 1;
}

void Log(const std::string& msg) {
  std::fprintf(stderr, "chai serve: %s\n", msg.c_str());
  std::fflush(stderr);
}

// "30s", "500ms", "2m", "1h30m" or bare seconds.
absl::StatusOr<absl::Duration> ParseFlagDuration(const FlagSet& f, const std::string& name) {
  const std::string text = f.Str(name);
  absl::Duration d;
  double seconds;
  if (absl::SimpleAtod(text, &seconds) && seconds >= 0 && seconds < 1e9) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
             d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be a duration such as 30s, 500ms or 2m, got '", text, "'"));
  }
  return d;
}

// Adapts the engine to the front end's narrow interface.
class EngineAdapter : public GenerationEngine {
 public:
  explicit EngineAdapter(engine::RequestEngine* engine) : engine_(engine) {}
  absl::Status Submit(engine::GenerationRequest request, engine::UpdateSink sink) override {
    return engine_->Submit(std::move(request), std::move(sink));
  }
  void Cancel(const std::string& id) override { engine_->Cancel(id); }

 private:
  engine::RequestEngine* engine_;
};

v1::ModelInfo MakeModelInfo(const engine::LoadedModel& model, int64_t max_model_len,
                            const ResolvedChaiPlan& chai) {
  const engine::LlamaConfig& c = model.weights->config;
  v1::ModelInfo info;
  info.set_name(c.name);
  info.set_architecture(c.architecture);
  info.set_context_length(static_cast<int32_t>(max_model_len));
  info.set_model_context_length(static_cast<int32_t>(c.context_length));
  info.set_vocab_size(model.tokenizer->vocab_size());
  info.set_n_layers(static_cast<int32_t>(c.n_layers));
  info.set_n_heads(static_cast<int32_t>(c.n_heads));
  info.set_n_kv_heads(static_cast<int32_t>(c.n_kv_heads));
  info.set_head_dim(static_cast<int32_t>(c.head_dim));
  info.set_dim(static_cast<int32_t>(c.dim));
  info.set_bos_token_id(model.tokenizer->bos_id());
  info.set_eos_token_id(model.tokenizer->eos_id());
  info.set_max_logprobs(engine::kMaxTopLogprobs);
  v1::ChaiConfig* cc = info.mutable_chai();
  cc->set_enabled(chai.plan.enabled());
  cc->mutable_clusters_per_layer()->Add(chai.plan.clusters.begin(), chai.plan.clusters.end());
  cc->mutable_k_heads_per_layer()->Add(chai.plan.k_heads.begin(), chai.plan.k_heads.end());
  cc->set_source(chai.source);
  return info;
}

// Waits for SIGTERM/SIGINT (blocked in every thread since start-up) up to
// `timeout`; true when one arrived.
bool WaitForSignal(const sigset_t& set, absl::Duration timeout) {
  while (true) {
    if (timeout == absl::InfiniteDuration()) {
      int sig = 0;
      if (sigwait(&set, &sig) == 0) return true;
      continue;
    }
    if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
    const absl::Time until = absl::Now() + timeout;
    timespec ts = absl::ToTimespec(timeout);  // zero: just poll
    const int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return true;
    if (errno == EAGAIN) return false;
    timeout = until - absl::Now();  // EINTR: wait for the rest
    if (timeout <= absl::ZeroDuration()) return false;
  }
}

struct ServeFlags {
  std::string model;
  GrpcServerOptions grpc;
  int64_t metrics_port = 9090;
  engine::RequestEngineOptions engine;
  std::optional<int64_t> kv_cache_bytes;
  double kv_fraction = kDefaultKvFraction;
  int64_t threads = 0;
  kernels::cpu::ActivationMode activations = kernels::cpu::ActivationMode::kInt16;
  kernels::DType kv_dtype = kernels::DType::kF16;
  std::string backend;
  std::string chai_config;
  std::string api_key_file;
  absl::Duration drain_grace;
  absl::Duration drain_timeout;
};

// Parses everything; the message of a bad flag is the one-line usage error.
absl::Status ParseFlags(const FlagSet& f, ServeFlags* out) {
  out->model = f.Str("model");
  out->grpc.host = f.Str("host");
  absl::StatusOr<int64_t> port = f.Int("port", 0, 65535);
  absl::StatusOr<int64_t> metrics_port = f.Int("metrics-port", -1, 65535);
  absl::StatusOr<int64_t> threads = f.Int("threads", 0, 1024);
  absl::StatusOr<int64_t> max_model_len = f.Int("max-model-len", 0, int64_t{1} << 24);
  absl::StatusOr<int64_t> max_num_seqs = f.Int("max-num-seqs", 1, 4096);
  absl::StatusOr<int64_t> max_batch = f.Int("max-batch-tokens", 1, 1 << 20);
  absl::StatusOr<int64_t> max_queue = f.Int("max-queue", 1, 1 << 20);
  absl::StatusOr<int64_t> max_msg = f.Int("max-message-bytes", 1024, int64_t{1} << 30);
  absl::StatusOr<int64_t> max_streams = f.Int("max-concurrent-streams", 1, 1 << 20);
  absl::StatusOr<absl::Duration> grace = ParseFlagDuration(f, "drain-grace");
  absl::StatusOr<absl::Duration> drain = ParseFlagDuration(f, "drain-timeout");
  absl::StatusOr<kernels::cpu::ActivationMode> activations = ActivationsFlag(f);
  absl::StatusOr<kernels::DType> kv_dtype = KvDtypeFlag(f);
  for (const absl::Status& s :
       {port.status(), metrics_port.status(), threads.status(), max_model_len.status(),
        max_num_seqs.status(), max_batch.status(), max_queue.status(), max_msg.status(),
        max_streams.status(), grace.status(), drain.status(), activations.status(),
        kv_dtype.status()}) {
    if (!s.ok()) return s;
  }
  out->activations = *activations;
  out->kv_dtype = *kv_dtype;
  out->grpc.port = static_cast<int32_t>(*port);
  out->metrics_port = *metrics_port;
  out->threads = *threads;
  out->engine.max_model_len = *max_model_len;
  out->engine.max_num_seqs = static_cast<int32_t>(*max_num_seqs);
  out->engine.max_batch_tokens = static_cast<int32_t>(*max_batch);
  out->engine.max_queue = static_cast<int32_t>(*max_queue);
  out->grpc.max_receive_message_bytes = static_cast<int32_t>(*max_msg);
  out->grpc.max_concurrent_streams = static_cast<int32_t>(*max_streams);
  out->drain_grace = *grace;
  out->drain_timeout = *drain;
  if (f.Has("max-connection-age")) {
    absl::StatusOr<absl::Duration> age = ParseFlagDuration(f, "max-connection-age");
    if (!age.ok()) return age.status();
    if (*age <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--max-connection-age must be > 0");
    }
    out->grpc.max_connection_age = *age;
  }
  if (f.Has("kv-cache-bytes") && f.Has("gpu-memory-fraction")) {
    return absl::InvalidArgumentError("give --kv-cache-bytes or --gpu-memory-fraction, not both");
  }
  if (f.Has("kv-cache-bytes")) {
    absl::StatusOr<int64_t> b = f.Int("kv-cache-bytes", 1 << 20, int64_t{1} << 50);
    if (!b.ok()) return b.status();
    out->kv_cache_bytes = *b;
  }
  if (f.Has("gpu-memory-fraction")) {
    absl::StatusOr<double> fr = f.Double("gpu-memory-fraction", 0.01, 0.95);
    if (!fr.ok()) return fr.status();
    out->kv_fraction = *fr;
  }
  out->backend = f.Str("backend");
  if (out->backend != "auto" && out->backend != "cpu" && out->backend != "cuda") {
    return absl::InvalidArgumentError("--backend must be auto, cpu or cuda");
  }
  out->grpc.tls_cert_file = f.Str("tls-cert");
  out->grpc.tls_key_file = f.Str("tls-key");
  if (out->grpc.tls_cert_file.empty() != out->grpc.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  out->grpc.reflection = f.On("reflection");
  out->grpc.health_service_names = {v1::ChaiService::service_full_name()};
  out->api_key_file = f.Str("api-key-file");
  out->chai_config = f.Str("chai-config");
  return out->grpc.Validate();
}

// The KV cache budget: --kv-cache-bytes, or a share of the memory this
// process may still use (cgroup-aware), never more than the configured
// sequences can fill nor less than one full-length sequence.
absl::StatusOr<int64_t> KvBudget(const ServeFlags& flags, const engine::LlamaConfig& config,
                                 kernels::DType kv_dtype) {
  if (flags.kv_cache_bytes.has_value()) return *flags.kv_cache_bytes;
  absl::StatusOr<int64_t> available = AvailableMemoryBytes();
  if (!available.ok()) return available.status();
  const int64_t per_token = engine::KvCache::KBytesPerToken(config, {}, kv_dtype) +
                            engine::KvCache::VBytesPerToken(config, kv_dtype);
  const int64_t max_len =
      flags.engine.max_model_len > 0 ? flags.engine.max_model_len : config.context_length;
  const int64_t one_seq = per_token * (max_len + flags.engine.block_size);
  const int64_t needed = one_seq * flags.engine.max_num_seqs;
  return KvCacheBudget(*available, flags.kv_fraction, kDefaultKvCap, needed, one_seq);
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("model", "GGUF file, or Hugging Face checkpoint directory");
  f.Value("host", "address to listen on", "0.0.0.0");
  f.Value("port", "gRPC port; 0 = any free port (printed)", "50051");
  f.Value("metrics-port", "Prometheus /metrics port; 0 = any free port, -1 = off", "9090");
  f.Value("chai-config", "CHAI cluster config: none, or a FILE (default: the shipped config)");
  f.Value("backend", "auto, cpu or cuda", "auto");
  f.Value("threads", "CPU threads; 0 = all cores", "0");
  DeclareActivationsFlag(f);
  DeclareKvDtypeFlag(f);
  f.Value("max-model-len", "longest prompt + completion; 0 = the model's context", "0");
  f.Value("max-num-seqs", "sequences decoded together", "64");
  f.Value("max-batch-tokens", "tokens in one forward pass", "2048");
  f.Value("max-queue", "requests waiting beyond which new ones get RESOURCE_EXHAUSTED", "1024");
  f.Value("kv-cache-bytes", "KV cache size (default: a share of available memory)");
  f.Value("gpu-memory-fraction", "share of available memory for the KV cache", "0.25");
  f.Value("drain-grace", "after SIGTERM, keep admitting this long (health NOT_SERVING)", "5s");
  f.Value("drain-timeout", "then let streams finish this long before cancelling them", "30s");
  f.Value("tls-cert", "PEM certificate chain: serve TLS");
  f.Value("tls-key", "PEM private key for --tls-cert");
  f.Value("api-key-file", "require one of the keys in this file (one per line)");
  f.Value("max-connection-age", "close connections after this age (e.g. 10m) so LBs rebalance");
  f.Value("max-message-bytes", "largest request message accepted", std::to_string(4 << 20));
  f.Value("max-concurrent-streams", "HTTP/2 streams per connection", "1024");
  f.Bool("reflection", "enable gRPC server reflection");
  if (absl::Status s = f.Parse(args); !s.ok()) return UsageError(std::string(s.message()));
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  if (!f.Has("model")) return UsageError("--model is required");
  ServeFlags flags;
  if (absl::Status s = ParseFlags(f, &flags); !s.ok()) {
    return UsageError(std::string(s.message()));
  }

  // Every thread started from here on inherits the blocked signals, so only
  // the main thread's sigwait sees SIGTERM/SIGINT.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::optional<ApiKeys> api_keys;
  if (!flags.api_key_file.empty()) {
    absl::StatusOr<ApiKeys> k = ApiKeys::Load(flags.api_key_file);
    if (!k.ok()) return Failure(k.status());
    api_keys = *std::move(k);
  }

  // Metrics and the gRPC listener come up first, so health checks see
  // NOT_SERVING (not a refused connection) while the model loads.
  metrics::ServingMetricsOptions mo;
  mo.max_model_len = flags.engine.max_model_len > 0 ? flags.engine.max_model_len : 8192;
  absl::StatusOr<std::unique_ptr<metrics::ServingMetrics>> serving_metrics =
      metrics::ServingMetrics::Create(mo);
  if (!serving_metrics.ok()) return Failure(serving_metrics.status());
  metrics::ServingMetrics* m = serving_metrics->get();
  std::unique_ptr<metrics::MetricsHttpServer> metrics_http;
  if (flags.metrics_port >= 0) {
    metrics::MetricsHttpOptions ho;
    // civetweb here binds IPv4 only; an IPv6 gRPC host keeps metrics on all
    // IPv4 interfaces.
    ho.bind_address = flags.grpc.host.find(':') == std::string::npos ? flags.grpc.host : "0.0.0.0";
    ho.port = static_cast<int>(flags.metrics_port);
    absl::StatusOr<std::unique_ptr<metrics::MetricsHttpServer>> h =
        metrics::MetricsHttpServer::Start(ho, &m->registry());
    if (!h.ok()) return Failure(h.status());
    metrics_http = *std::move(h);
  }

  AccessLog access_log(stderr);
  ChaiServiceImpl::Options so;
  so.api_keys = api_keys.has_value() ? &*api_keys : nullptr;
  so.access_log = &access_log;
  so.on_failure = [m](absl::StatusCode code) { m->RecordFrontEndFailure(code); };
  ChaiServiceImpl service(so);
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(flags.grpc, {&service});
  if (!server.ok()) return Failure(server.status());

  Log(absl::StrCat("loading ", flags.model));
  absl::StatusOr<engine::LoadedModel> model = engine::LoadModel(flags.model);
  if (!model.ok()) return Failure(model.status());
  absl::StatusOr<ResolvedChaiPlan> chai = ResolveChaiPlan(flags.chai_config, *model, "chai serve");
  if (!chai.ok()) return Failure(chai.status());
  flags.engine.chai = chai->plan;
  absl::StatusOr<kernels::BackendKind> backend_kind = kernels::ParseBackendKind(flags.backend);
  if (!backend_kind.ok()) return Failure(backend_kind.status());
  kernels::BackendOptions bo;
  bo.cpu_threads = static_cast<int>(flags.threads);
  bo.cpu_activations = flags.activations;
  bo.cpu_kv_dtype = flags.kv_dtype;
  absl::StatusOr<std::unique_ptr<kernels::Backend>> backend =
      kernels::CreateBackend(*backend_kind, bo);
  if (!backend.ok()) return Failure(backend.status());
  // The budget's unit is the backend's KV element (fp16 on the CPU).
  absl::StatusOr<int64_t> kv_bytes = KvBudget(flags, model->weights->config, (*backend)->KvDtype());
  if (!kv_bytes.ok()) return Failure(kv_bytes.status());
  flags.engine.kv_cache_bytes = *kv_bytes;
  absl::StatusOr<std::unique_ptr<engine::RequestEngine>> engine =
      engine::RequestEngine::Create(&*model, backend->get(), flags.engine, m);
  if (!engine.ok()) return Failure(engine.status());
  EngineAdapter adapter(engine->get());

  ServingState state;
  state.tokenizer = model->tokenizer.get();
  state.engine = &adapter;
  state.limits.context_length = static_cast<int32_t>((*engine)->max_model_len());
  state.limits.vocab_size = model->tokenizer->vocab_size();
  state.model_info = MakeModelInfo(*model, (*engine)->max_model_len(), *chai);
  service.Activate(std::move(state));
  (*server)->SetServing(true);
  Log(absl::StrCat("model ", model->weights->config.name, ", context ", (*engine)->max_model_len(),
                   ", KV cache ", *kv_bytes >> 20, " MiB, CHAI ", chai->source,
                   flags.grpc.tls_cert_file.empty() ? "" : ", TLS",
                   api_keys.has_value() ? ", API key required" : ""));
  if (metrics_http != nullptr) {
    std::cout << "metrics on " << metrics_http->address() << std::endl;
  }
  std::cout << "serving on " << (*server)->address() << std::endl;

  WaitForSignal(signals, absl::InfiniteDuration());
  // Drain: load balancers see NOT_SERVING and move traffic during the grace
  // period, while requests that still arrive are served; then new requests
  // get UNAVAILABLE and the streams in flight finish (or are cancelled at
  // the timeout). A second signal skips the waiting.
  Log(absl::StrCat("draining: health NOT_SERVING, admitting for ",
                   absl::FormatDuration(flags.drain_grace)));
  (*server)->SetServing(false);
  bool hurry = WaitForSignal(signals, flags.drain_grace);
  service.StopAccepting();
  (*engine)->StopAccepting();
  Log(absl::StrCat("draining: ", service.active_streams(), " streams in flight, waiting up to ",
                   absl::FormatDuration(flags.drain_timeout)));
  const absl::Time drain_deadline = absl::Now() + flags.drain_timeout;
  while (!hurry && !service.WaitForStreams(absl::Milliseconds(100))) {
    if (absl::Now() >= drain_deadline) break;
    hurry = WaitForSignal(signals, absl::ZeroDuration());
  }
  const int64_t left = service.active_streams();
  if (left > 0) Log(absl::StrCat("draining: cancelling ", left, " streams"));
  // Shutdown drops the connections at once, which can lose the final status
  // of a stream that has only just finished (a proxy in front then sees the
  // stream cut short). Give the transports a moment to send it; new calls
  // still get UNAVAILABLE meanwhile.
  if (left == 0) absl::SleepFor(kShutdownFlushDelay);
  (*server)->Shutdown(absl::Now());
  (*engine)->Shutdown();
  if (metrics_http != nullptr) metrics_http->Stop();
  Log("stopped");
  return 0;
}

}  // namespace chai::server
