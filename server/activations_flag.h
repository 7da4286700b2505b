// `--activations int16|float` for the subcommands that run the CPU engine:
// how the CPU backend's matrix products meet quantized weights
// (kernels/cpu/matmul.h, docs/ENGINE.md "Numerics"). int16, the default, is
// the fast path, within DESIGN.md's tolerance of a float32 reference; float
// multiplies exactly dequantized weights with float activations (the mode
// the eval goldens and the fidelity tables were made in). The CUDA backend
// ignores it.
//
// Thread-safety: free functions, start-up only.
#ifndef CHAI_SERVER_ACTIVATIONS_FLAG_H_
#define CHAI_SERVER_ACTIVATIONS_FLAG_H_

#include "absl/status/statusor.h"
#include "kernels/cpu/matmul.h"
#include "server/cli_flags.h"

namespace chai::server {

void DeclareActivationsFlag(FlagSet& flags);

// The parsed flag; INVALID_ARGUMENT naming it for anything but int16 or
// float (int8 is for benchmarks only: outside the accuracy tolerance).
absl::StatusOr<kernels::cpu::ActivationMode> ActivationsFlag(const FlagSet& flags);

}  // namespace chai::server

#endif  // CHAI_SERVER_ACTIVATIONS_FLAG_H_
