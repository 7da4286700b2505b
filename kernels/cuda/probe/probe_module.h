/* C ABI of libchai_cuda_probe_module.so, the run-time-loaded CUDA probe module.
 * Mirrors how the CUDA backend will be loaded (DESIGN.md §8): the host binary
 * links no CUDA library; it dlopen()s the module and falls back to the CPU
 * when the module, its libraries (libcublas), the driver or a device is missing.
 * Plain C so that the loader (g++, no CUDA headers) and the module agree. */
#ifndef CHAI_CUDA_PROBE_MODULE_H_
#define CHAI_CUDA_PROBE_MODULE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHAI_CUDA_PROBE_MODULE_ABI 1

/* Status codes of chai_cuda_probe_module_run. */
#define CHAI_PROBE_OK 0        /* GPU path ran and its check passed */
#define CHAI_PROBE_ERROR 1     /* a CUDA/cuBLAS call or the check failed */
#define CHAI_PROBE_NO_DEVICE 3 /* no driver / no device: use the CPU backend */

/* Returns CHAI_CUDA_PROBE_MODULE_ABI. The loader refuses other values. */
typedef int (*chai_cuda_probe_module_abi_fn)(void);

/* Runs RMSNorm [64, 576] on device 0 and checks it against the CPU; writes a
 * one-line, NUL-terminated report into msg (at most cap bytes). */
typedef int (*chai_cuda_probe_module_run_fn)(char* msg, size_t cap);

int chai_cuda_probe_module_abi(void);
int chai_cuda_probe_module_run(char* msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* CHAI_CUDA_PROBE_MODULE_H_ */
