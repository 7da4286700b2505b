// TimedBackend: a Backend decorator for benchmarks that charges the wall time
// of every op to its name ("MatMul", "Attention", ...), so a benchmark can
// say where a CPU forward step's time goes. Meaningful only for synchronous
// backends (the CPU one): an asynchronous backend would be charged for
// queuing, not running. Not for serving: the clock reads cost ~50 ns per op.
//
// Op recording (BeginCapture/EndCapture) is deliberately not forwarded: a
// replayed recording would run the ops without passing the timers, so this
// backend reports CanCapture() == false and ModelRunner issues every op.
//
// Ownership: does not own `inner`, which must outlive it. Thread-safety: as
// the inner backend; the accumulators are not synchronized (ops are issued
// from one thread).
#ifndef CHAI_ENGINE_BENCH_TIMED_BACKEND_H_
#define CHAI_ENGINE_BENCH_TIMED_BACKEND_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "kernels/backend.h"

namespace chai::engine {

class TimedBackend : public kernels::Backend {
 public:
  struct Op {
    double seconds = 0;
    int64_t calls = 0;
  };

  explicit TimedBackend(kernels::Backend* inner) : inner_(inner) {}

  const std::map<std::string, Op>& ops() const { return ops_; }
  void Reset() { ops_.clear(); }

  std::string_view name() const override { return inner_->name(); }
  bool HostMemory() const override { return inner_->HostMemory(); }
  absl::StatusOr<std::unique_ptr<kernels::Buffer>> Allocate(size_t bytes) override {
    return inner_->Allocate(bytes);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    Timed("Copy", [&] { inner_->CopyToDevice(dst, src, bytes); });
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    Timed("Copy", [&] { inner_->CopyToHost(dst, src, bytes); });
  }
  void Synchronize() override { inner_->Synchronize(); }
  absl::StatusOr<kernels::PreparedWeight> PrepareWeight(const kernels::WeightView& w,
                                                        kernels::WeightUse use) override {
    return inner_->PrepareWeight(w, use);
  }
  void Embed(const kernels::WeightView& t, const int32_t* ids, int32_t n, float* out) override {
    Timed("Embed", [&] { inner_->Embed(t, ids, n, out); });
  }
  void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
               float* out) override {
    Timed("RmsNorm", [&] { inner_->RmsNorm(x, w, n, dim, eps, out); });
  }
  void MatMul(const kernels::WeightView& w, const float* x, int32_t m, float* y) override {
    Timed("MatMul", [&] { inner_->MatMul(w, x, m, y); });
  }
  // Charged to "MatMul" as one call.
  void MatMulShared(std::span<const kernels::WeightView> ws, const float* x, int32_t m,
                    std::span<float* const> ys) override {
    Timed("MatMul", [&] { inner_->MatMulShared(ws, x, m, ys); });
  }
  void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
            const kernels::RopeParams& rope) override {
    Timed("Rope", [&] { inner_->Rope(x, pos, n, heads, rope); });
  }
  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override {
    Timed("SwiGlu", [&] { inner_->SwiGlu(gate, up, n, out); });
  }
  void Add(float* x, const float* y, int64_t n) override {
    Timed("Add", [&] { inner_->Add(x, y, n); });
  }
  void AddRmsNorm(float* x, const float* y, const float* w, int32_t n, int32_t dim, float eps,
                  float* out) override {
    Timed("AddRmsNorm", [&] { inner_->AddRmsNorm(x, y, w, n, dim, eps, out); });
  }
  void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                  float* dst) override {
    Timed("GatherRows", [&] { inner_->GatherRows(src, rows, n, dim, dst); });
  }
  void StoreKv(const float* k, const float* v, const kernels::TokenPlacement& place,
               kernels::KvLayer& kv) override {
    Timed("StoreKv", [&] { inner_->StoreKv(k, v, place, kv); });
  }
  void Attention(const float* q, int32_t n_q_heads, const kernels::TokenPlacement& place,
                 const kernels::KvLayer& kv, float* out) override {
    Timed("Attention", [&] { inner_->Attention(q, n_q_heads, place, kv, out); });
  }

 private:
  template <typename F>
  void Timed(const char* op, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    Op& o = ops_[op];
    o.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++o.calls;
  }

  kernels::Backend* inner_;
  std::map<std::string, Op> ops_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_BENCH_TIMED_BACKEND_H_
