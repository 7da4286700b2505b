#include "engine/serving/request_engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/sampling/penalty_state.h"
#include "engine/sampling/sampler.h"
#include "engine/serving/kv_cache_allocator.h"
#include "engine/serving/scheduler.h"
#include "engine/serving/stop_strings.h"
#include "engine/text_stream.h"

namespace chai::engine {
namespace {

// CHAI clusters a sequence on its first 5 prompt tokens, all inside one
// forward pass (engine/model_runner.h).
constexpr int32_t kChaiClusterTokens = 5;

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

bool IsValidUtf8(const std::string& s) { return SanitizeUtf8(s) == s; }

// A request accepted by Submit, on its way to the engine thread.
struct Pending {
  GenerationRequest request;
  UpdateSink sink;
  Sampler sampler;
};

// Everything the engine thread keeps about one request.
struct Sequence {
  Sequence(Pending p, const Tokenizer* tokenizer, int64_t vocab_size)
      : request(std::move(p.request)),
        sink(std::move(p.sink)),
        sampler(std::move(p.sampler)),
        history(vocab_size),
        text(tokenizer),
        stop(request.stop.stop) {}

  GenerationRequest request;
  UpdateSink sink;
  Sampler sampler;
  PenaltyState history;
  TextStream text;
  StopStringMatcher stop;
  std::vector<int32_t> tokens;  // prompt + generated
  int32_t num_generated = 0;
  bool chai = false;
  bool scheduled = false;  // has been admitted at least once
  bool has_token = false;
  absl::Time first_scheduled, first_token, last_token;
  int64_t k_saved_per_token = 0;
};

}  // namespace

absl::Status RequestEngineOptions::Validate() const {
  if (max_num_seqs < 1) return absl::InvalidArgumentError("max_num_seqs must be >= 1");
  if (max_batch_tokens < std::max(max_num_seqs, kChaiClusterTokens)) {
    return absl::InvalidArgumentError(absl::StrCat("max_batch_tokens (", max_batch_tokens,
                                                   ") must be >= max_num_seqs (", max_num_seqs,
                                                   ") and >= ", kChaiClusterTokens));
  }
  if (max_queue < 1) return absl::InvalidArgumentError("max_queue must be >= 1");
  if (max_model_len < 0) return absl::InvalidArgumentError("max_model_len must be >= 0");
  if (kv_cache_bytes < 1) return absl::InvalidArgumentError("kv_cache_bytes must be > 0");
  if (block_size < 1) return absl::InvalidArgumentError("block_size must be >= 1");
  if (prefill_chunk < kChaiClusterTokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefill_chunk must be >= ", kChaiClusterTokens));
  }
  if (chai.clusters.size() != chai.k_heads.size()) {
    return absl::InvalidArgumentError("chai plan: clusters and k_heads differ in length");
  }
  return absl::OkStatus();
}

class RequestEngine::Impl {
 public:
  Impl(const LoadedModel* model, const RequestEngineOptions& options, EngineObserver* observer,
       int64_t max_model_len, std::unique_ptr<ModelRunner> runner, std::unique_ptr<KvCache> cache)
      : model_(model),
        vocab_size_(model->weights->config.vocab_size),
        options_(options),
        observer_(observer),
        max_model_len_(max_model_len),
        runner_(std::move(runner)),
        cache_(std::move(cache)),
        allocator_(cache_.get()),
        scheduler_({options.max_num_seqs, options.max_batch_tokens, options.prefill_chunk},
                   &allocator_),
        logits_(static_cast<size_t>(options.max_num_seqs) * vocab_size_) {
    const LlamaConfig& config = model->weights->config;
    if (options.chai.enabled()) {
      k_saved_per_token_ =
          KvCache::KBytesPerToken(config, {}, cache_->kv_dtype()) -
          KvCache::KBytesPerToken(config, options.chai.k_heads, cache_->kv_dtype());
    }
    snapshot_.kv_blocks_total = cache_->options().num_blocks;
    snapshot_.max_model_len = max_model_len_;
  }

  void Start() {
    // Before the loop thread exists, so that the config is on /metrics by
    // the time the server says it is serving: reported from the thread it
    // could arrive after a first scrape (chai_deploy_metric_names_test saw
    // no chai_clusters series under a loaded ctest -j2).
    if (observer_ != nullptr) observer_->OnClusterConfig(options_.chai.clusters);
    thread_ = std::thread([this] { Loop(); });
  }

  absl::Status Submit(GenerationRequest request, UpdateSink sink);
  void Cancel(const std::string& id);
  void StopAccepting();
  void Shutdown();
  EngineSnapshot Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    EngineSnapshot s = snapshot_;
    s.accepting = accepting_;
    s.inbound = static_cast<int32_t>(inbound_.size());
    s.in_flight = static_cast<int32_t>(in_flight_.size());
    return s;
  }
  int64_t max_model_len() const { return max_model_len_; }

 private:
  // A message for a sink, delivered after the step's snapshot is published.
  struct Delivery {
    Sequence* seq;  // owned by `finished` when the update is final
    GenerationUpdate update;
  };

  absl::Status Validate(const GenerationRequest& request) const;
  absl::Status Reject(absl::Status status);
  void Loop();
  void Admit(Pending pending);
  // Retires `key` with a final update (reason and, for kError, status).
  void Finish(int64_t key, GenerationUpdate update, FinishReason reason, absl::Status error);
  void RunStep(StepStats& stats);
  // Handles one sampled token: stop conditions, text, the update.
  void OnToken(int64_t key, const SampleResult& sample);
  void Publish(int64_t steps_done);
  void Deliver();

  // Immutable after construction.
  const LoadedModel* model_;
  const int64_t vocab_size_;
  const RequestEngineOptions options_;
  EngineObserver* const observer_;
  const int64_t max_model_len_;
  int64_t k_saved_per_token_ = 0;

  // Engine thread only.
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<KvCache> cache_;
  KvCacheAllocator allocator_;
  Scheduler scheduler_;
  std::vector<float> logits_;
  absl::flat_hash_map<int64_t, std::unique_ptr<Sequence>> seqs_;
  absl::flat_hash_map<std::string, int64_t> keys_;
  int64_t next_key_ = 0;
  int64_t steps_ = 0;
  std::vector<Delivery> deliveries_;
  std::vector<std::unique_ptr<Sequence>> finished_;
  int32_t left_queue_ = 0;  // requests that left the queue this step (see queued_)

  // Shared, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> inbound_;
  std::vector<std::string> cancels_;
  std::vector<absl::StatusCode> rejections_;
  absl::flat_hash_set<std::string> in_flight_;
  int32_t queued_ = 0;  // accepted, never scheduled yet
  bool accepting_ = true;
  bool stop_ = false;
  EngineSnapshot snapshot_;

  std::mutex join_mu_;
  std::thread thread_;
};

absl::Status RequestEngine::Impl::Validate(const GenerationRequest& r) const {
  if (r.id.empty()) return absl::InvalidArgumentError("request id is empty");
  if (r.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= vocab_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token id ", t, " is outside the vocabulary [0, ", vocab_size_, ")"));
    }
  }
  if (absl::Status s = r.sampling.Validate(vocab_size_); !s.ok()) return s;
  if (r.stop.max_tokens < 1) return absl::InvalidArgumentError("max_tokens must be >= 1");
  const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.stop.max_tokens;
  if (total > max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat("prompt (", r.prompt.size(),
                                                   " tokens) + max_tokens (", r.stop.max_tokens,
                                                   ") exceeds max_model_len ", max_model_len_));
  }
  for (const std::string& s : r.stop.stop) {
    if (s.empty()) return absl::InvalidArgumentError("empty stop string");
    if (!IsValidUtf8(s)) return absl::InvalidArgumentError("stop string is not valid UTF-8");
  }
  for (int32_t t : r.stop.stop_token_ids) {
    if (t < 0 || t >= vocab_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop token id ", t, " is outside the vocabulary"));
    }
  }
  if (r.top_logprobs > kMaxTopLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_logprobs must be <= ", kMaxTopLogprobs, ", got ", r.top_logprobs));
  }
  return absl::OkStatus();
}

absl::Status RequestEngine::Impl::Reject(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    rejections_.push_back(status.code());
  }
  cv_.notify_one();
  return status;
}

absl::Status RequestEngine::Impl::Submit(GenerationRequest request, UpdateSink sink) {
  if (absl::Status s = Validate(request); !s.ok()) return Reject(std::move(s));
  // The request's top_logprobs governs; SamplingParams' own field is a
  // fallback for callers that set only that.
  SamplingParams params = request.sampling;
  if (request.top_logprobs < 0 && params.top_logprobs > 0)
    request.top_logprobs = params.top_logprobs;
  params.top_logprobs = std::max(0, request.top_logprobs);
  absl::StatusOr<Sampler> sampler = Sampler::Create(params, vocab_size_);
  if (!sampler.ok()) return Reject(sampler.status());
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status status;
    if (!accepting_) {
      status = absl::UnavailableError("the engine is not accepting requests");
    } else if (in_flight_.contains(request.id)) {
      status = absl::AlreadyExistsError(absl::StrCat("request id '", request.id, "' is in flight"));
    } else if (queued_ >= options_.max_queue) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("request queue is full (", options_.max_queue, " waiting)"));
    }
    if (!status.ok()) {
      rejections_.push_back(status.code());
      cv_.notify_one();
      return status;
    }
    in_flight_.insert(request.id);
    ++queued_;
    inbound_.push_back({std::move(request), std::move(sink), *std::move(sampler)});
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void RequestEngine::Impl::Cancel(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!in_flight_.contains(id)) return;
    cancels_.push_back(id);
  }
  cv_.notify_one();
}

void RequestEngine::Impl::StopAccepting() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
}

void RequestEngine::Impl::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
    stop_ = true;
  }
  cv_.notify_one();
  std::lock_guard<std::mutex> join(join_mu_);
  if (thread_.joinable()) thread_.join();
}

void RequestEngine::Impl::Admit(Pending pending) {
  const int64_t key = next_key_++;
  auto seq = std::make_unique<Sequence>(std::move(pending), model_->tokenizer.get(), vocab_size_);
  seq->tokens = seq->request.prompt;
  seq->chai = options_.chai.enabled() && seq->request.chai &&
              static_cast<int64_t>(seq->tokens.size()) >= kChaiClusterTokens;
  seq->k_saved_per_token = seq->chai ? k_saved_per_token_ : 0;
  // Validated in Submit, so neither call can fail on the request's data.
  absl::Status s = seq->history.AddPrompt(seq->tokens);
  if (s.ok()) {
    s = scheduler_.Add(key, static_cast<int64_t>(seq->tokens.size()), seq->chai,
                       seq->chai ? kChaiClusterTokens : 1);
  }
  keys_[seq->request.id] = key;
  seqs_[key] = std::move(seq);
  if (!s.ok()) Finish(key, {}, FinishReason::kError, absl::InternalError(s.message()));
}

void RequestEngine::Impl::Finish(int64_t key, GenerationUpdate update, FinishReason reason,
                                 absl::Status error) {
  auto it = seqs_.find(key);
  if (it == seqs_.end()) return;
  std::unique_ptr<Sequence> seq = std::move(it->second);
  seqs_.erase(it);
  keys_.erase(seq->request.id);
  scheduler_.Remove(key);              // frees the KV blocks now, before anything is delivered
  if (!seq->scheduled) ++left_queue_;  // it leaves the queue unscheduled
  const absl::Time now = absl::Now();
  update.finished = true;
  update.finish_reason = reason;
  update.error = std::move(error);
  update.prompt_tokens = static_cast<int32_t>(seq->request.prompt.size());
  update.completion_tokens = seq->num_generated;
  update.queue_s = Seconds((seq->scheduled ? seq->first_scheduled : now) - seq->request.arrival);
  update.ttft_s = seq->has_token ? Seconds(seq->first_token - seq->request.arrival) : 0;
  update.total_s = Seconds(now - seq->request.arrival);
  update.chai = seq->chai;
  deliveries_.push_back({seq.get(), std::move(update)});
  finished_.push_back(std::move(seq));
}

void RequestEngine::Impl::OnToken(int64_t key, const SampleResult& sample) {
  Sequence& seq = *seqs_.at(key);
  const int32_t token = sample.token;
  const absl::Time now = absl::Now();
  if (seq.has_token) {
    if (observer_ != nullptr) observer_->OnInterTokenLatency(Seconds(now - seq.last_token));
  } else {
    seq.has_token = true;
    seq.first_token = now;
  }
  seq.last_token = now;
  seq.tokens.push_back(token);
  ++seq.num_generated;
  scheduler_.AppendToken(key);

  GenerationUpdate update;
  update.token_ids.push_back(token);
  if (seq.request.top_logprobs >= 0) {
    UpdateLogprob lp;
    lp.id = token;
    lp.logprob = sample.logprob;
    for (const TokenLogprob& t : sample.top_logprobs) lp.top.emplace_back(t.token, t.logprob);
    update.logprobs.push_back(std::move(lp));
  }

  const StopParams& stop = seq.request.stop;
  std::optional<FinishReason> reason;
  if (!stop.ignore_eos && model_->tokenizer->IsEog(token)) {
    reason = FinishReason::kEos;
  } else if (std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), token) !=
             stop.stop_token_ids.end()) {
    reason = FinishReason::kStop;
  } else {
    StopStringMatcher::Result r = seq.stop.Push(seq.text.Push(token));
    update.text = std::move(r.text);
    if (r.stopped) {
      Finish(key, std::move(update), FinishReason::kStop, absl::OkStatus());
      return;
    }
  }
  if (!reason.has_value() && seq.num_generated >= stop.max_tokens) reason = FinishReason::kLength;
  // The penalty history only matters for later tokens.
  if (!reason.has_value()) {
    if (absl::Status s = seq.history.Add(token); !s.ok()) {
      Finish(key, std::move(update), FinishReason::kError, absl::InternalError(s.message()));
      return;
    }
    deliveries_.push_back({&seq, std::move(update)});
    return;
  }
  // Whatever was held back (an incomplete character, a possible stop-string
  // prefix) is final text now; it can still complete a stop string.
  StopStringMatcher::Result r = seq.stop.Push(seq.text.Flush());
  update.text += r.text;
  if (r.stopped) {
    reason = FinishReason::kStop;
  } else {
    update.text += seq.stop.Flush();
  }
  Finish(key, std::move(update), *reason, absl::OkStatus());
}

void RequestEngine::Impl::RunStep(StepStats& stats) {
  StepPlan plan = scheduler_.Schedule();
  for (int64_t key : plan.failed) {
    Finish(key, {}, FinishReason::kError,
           absl::ResourceExhaustedError("the sequence does not fit the KV cache"));
  }
  const absl::Time now = absl::Now();
  for (int64_t key : plan.admitted) {
    Sequence& seq = *seqs_.at(key);
    if (!seq.scheduled) {
      seq.scheduled = true;
      seq.first_scheduled = now;
      ++left_queue_;
    }
  }
  stats.preempted = static_cast<int32_t>(plan.preempted.size());
  if (plan.chunks.empty()) return;

  std::vector<int32_t> tokens, slots, positions, rows;
  tokens.reserve(plan.num_tokens);
  slots.reserve(plan.num_tokens);
  positions.reserve(plan.num_tokens);
  for (const ScheduledChunk& c : plan.chunks) {
    const Sequence& seq = *seqs_.at(c.seq);
    const int32_t slot = allocator_.slot(c.seq);
    for (int64_t p = c.start; p < c.start + c.num_tokens; ++p) {
      tokens.push_back(seq.tokens[p]);
      slots.push_back(slot);
      positions.push_back(static_cast<int32_t>(p));
    }
    if (c.samples) rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
  }
  std::span<float> logits(logits_.data(), rows.size() * vocab_size_);
  const absl::Status status = runner_->Forward({tokens, slots, positions, rows}, *cache_, logits);
  stats.num_tokens = plan.num_tokens;
  stats.num_prompt_tokens = plan.num_prefill_tokens;
  if (!status.ok()) {
    for (const ScheduledChunk& c : plan.chunks) {
      Finish(c.seq, {}, FinishReason::kError,
             absl::InternalError(absl::StrCat("model step failed: ", status.message())));
    }
    return;
  }
  scheduler_.Commit(plan);
  const ForwardStats& fs = runner_->last_forward_stats();
  if (observer_ != nullptr && fs.sequences_clustered > 0) {
    for (int32_t i = 0; i < fs.sequences_clustered; ++i) {
      observer_->OnClustering(fs.clustering_s / fs.sequences_clustered);
    }
  }

  size_t row = 0;
  for (const ScheduledChunk& c : plan.chunks) {
    if (!c.samples) continue;
    std::span<const float> l = logits.subspan(row++ * vocab_size_, vocab_size_);
    Sequence& seq = *seqs_.at(c.seq);
    absl::StatusOr<SampleResult> sample = seq.sampler.Sample(l, seq.history);
    if (!sample.ok()) {
      Finish(c.seq, {}, FinishReason::kError,
             absl::InternalError(absl::StrCat("sampling failed: ", sample.status().message())));
      continue;
    }
    ++stats.num_generated;
    OnToken(c.seq, *sample);
  }
}

void RequestEngine::Impl::Publish(int64_t steps_done) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::unique_ptr<Sequence>& seq : finished_) in_flight_.erase(seq->request.id);
  queued_ -= left_queue_;
  left_queue_ = 0;
  snapshot_.running = scheduler_.num_running();
  snapshot_.waiting = scheduler_.num_waiting();
  snapshot_.kv_blocks_used = cache_->used_blocks();
  snapshot_.kv_usage_ratio = snapshot_.kv_blocks_total > 0
                                 ? static_cast<double>(snapshot_.kv_blocks_used) /
                                       static_cast<double>(snapshot_.kv_blocks_total)
                                 : 0.0;
  snapshot_.k_bytes_in_use = cache_->k_bytes_in_use();
  snapshot_.v_bytes_in_use = cache_->v_bytes_in_use();
  snapshot_.steps = steps_done;
  snapshot_.num_preemptions = scheduler_.num_preemptions();
}

void RequestEngine::Impl::Deliver() {
  // Sinks run without the lock, so they may call Submit/Cancel/Snapshot.
  for (Delivery& d : deliveries_) {
    const bool final = d.update.finished;
    RequestStats stats;
    if (final) {
      stats.finish_reason = d.update.finish_reason;
      stats.error_code = d.update.error.code();
      stats.prompt_tokens = d.update.prompt_tokens;
      stats.completion_tokens = d.update.completion_tokens;
      stats.queue_s = d.update.queue_s;
      stats.ttft_s = d.seq->has_token ? d.update.ttft_s : -1.0;
      stats.e2e_s = d.update.total_s;
      stats.k_bytes_saved = static_cast<int64_t>(d.seq->tokens.size()) * d.seq->k_saved_per_token;
    }
    // Metrics first: a client that has seen its last message must find the
    // request counted when it scrapes /metrics (a scrape right after the
    // stream ended read one request short under load).
    if (final && observer_ != nullptr) observer_->OnRequestFinished(stats);
    if (d.seq->sink) d.seq->sink(std::move(d.update));
  }
  deliveries_.clear();
  finished_.clear();  // destroys the finished requests' sinks
}

void RequestEngine::Impl::Loop() {
  bool idle_plan = false;
  for (;;) {
    std::deque<Pending> arrivals;
    std::vector<std::string> cancels;
    std::vector<absl::StatusCode> rejections;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] {
        return stop_ || !inbound_.empty() || !cancels_.empty() || !rejections_.empty() ||
               (!seqs_.empty() && !idle_plan);
      };
      // A plan with nothing to run while sequences exist cannot happen with
      // valid options; the timeout keeps even that case from spinning or
      // sleeping past deadlines.
      if (idle_plan) {
        cv_.wait_for(lock, std::chrono::milliseconds(5), ready);
      } else {
        cv_.wait(lock, ready);
      }
      arrivals.swap(inbound_);
      cancels.swap(cancels_);
      rejections.swap(rejections_);
      stop = stop_;
    }
    if (observer_ != nullptr) {
      for (absl::StatusCode code : rejections) observer_->OnRequestRejected(code);
    }
    const absl::Time step_start = absl::Now();
    for (Pending& p : arrivals) Admit(std::move(p));
    if (stop) {
      std::vector<int64_t> keys;
      for (const auto& [key, seq] : seqs_) keys.push_back(key);
      std::sort(keys.begin(), keys.end());
      for (int64_t key : keys) {
        Finish(key, {}, FinishReason::kError, absl::UnavailableError("the engine shut down"));
      }
      Publish(++steps_);
      Deliver();
      return;
    }
    for (const std::string& id : cancels) {
      auto it = keys_.find(id);
      if (it != keys_.end()) Finish(it->second, {}, FinishReason::kCancelled, absl::OkStatus());
    }
    std::vector<int64_t> expired;
    for (const auto& [key, seq] : seqs_) {
      if (seq->request.deadline <= step_start) expired.push_back(key);
    }
    std::sort(expired.begin(), expired.end());
    for (int64_t key : expired) {
      Finish(key, {}, FinishReason::kError,
             absl::DeadlineExceededError("the request's deadline passed"));
    }

    StepStats stats;
    if (!seqs_.empty()) RunStep(stats);
    idle_plan = !seqs_.empty() && stats.num_tokens == 0 && deliveries_.empty();
    Publish(++steps_);
    if (observer_ != nullptr) {
      stats.running = scheduler_.num_running();
      stats.waiting = scheduler_.num_waiting();
      stats.kv_usage_ratio = static_cast<double>(cache_->used_blocks()) /
                             static_cast<double>(cache_->options().num_blocks);
      stats.k_bytes_in_use = cache_->k_bytes_in_use();
      stats.v_bytes_in_use = cache_->v_bytes_in_use();
      stats.k_bytes_saved = cache_->k_bytes_full_in_use() - stats.k_bytes_in_use;
      stats.step_s = Seconds(absl::Now() - step_start);
      observer_->OnStep(stats);
    }
    Deliver();
  }
}

RequestEngine::RequestEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RequestEngine::~RequestEngine() { impl_->Shutdown(); }

absl::StatusOr<std::unique_ptr<RequestEngine>> RequestEngine::Create(
    const LoadedModel* model, kernels::Backend* backend, const RequestEngineOptions& options,
    EngineObserver* observer) {
  if (model == nullptr || model->weights == nullptr || model->tokenizer == nullptr ||
      backend == nullptr) {
    return absl::InvalidArgumentError("RequestEngine needs a loaded model and a backend");
  }
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  const LlamaConfig& config = model->weights->config;
  const int64_t max_model_len =
      options.max_model_len == 0 ? config.context_length : options.max_model_len;
  if (max_model_len > config.context_length) {
    return absl::InvalidArgumentError(absl::StrCat("max_model_len ", max_model_len,
                                                   " exceeds the model's context length ",
                                                   config.context_length));
  }
  KvCacheOptions kv;
  kv.block_size = options.block_size;
  kv.num_blocks = KvCache::BlocksForBytes(config, options.chai, options.block_size,
                                          backend->KvDtype(), options.kv_cache_bytes);
  kv.max_seqs = options.max_num_seqs;
  kv.max_seq_len = max_model_len;
  kv.chai = options.chai;
  if (kv.num_blocks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_bytes ", options.kv_cache_bytes, " holds no KV block"));
  }
  absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(backend, config, kv);
  if (!cache.ok()) return cache.status();
  // Preemption needs every admitted request to fit alone, and a plain
  // sequence is the largest (a CHAI cache is sized for CHAI's K widths).
  absl::StatusOr<int32_t> probe = (*cache)->AddSequence(false);
  if (!probe.ok()) return probe.status();
  const bool fits = (*cache)->CanReserve(*probe, max_model_len);
  (*cache)->RemoveSequence(*probe);
  if (!fits) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_bytes ", options.kv_cache_bytes, " (", kv.num_blocks,
                     " blocks) cannot hold one plain sequence of max_model_len ", max_model_len,
                     " tokens; raise kv_cache_bytes or lower max_model_len"));
  }
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(model->weights.get(), backend, options.max_batch_tokens);
  if (!runner.ok()) return runner.status();
  auto impl = std::make_unique<Impl>(model, options, observer, max_model_len, *std::move(runner),
                                     *std::move(cache));
  impl->Start();
  return std::unique_ptr<RequestEngine>(new RequestEngine(std::move(impl)));
}

absl::Status RequestEngine::Submit(GenerationRequest request, UpdateSink sink) {
  return impl_->Submit(std::move(request), std::move(sink));
}
void RequestEngine::Cancel(const std::string& id) { impl_->Cancel(id); }
void RequestEngine::StopAccepting() { impl_->StopAccepting(); }
void RequestEngine::Shutdown() { impl_->Shutdown(); }
EngineSnapshot RequestEngine::Snapshot() const { return impl_->Snapshot(); }
int64_t RequestEngine::max_model_len() const { return impl_->max_model_len(); }

}  // namespace chai::engine
