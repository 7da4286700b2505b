/* C ABI of libchai_cuda_backend.so, the CUDA backend loaded at run time.
 *
 * The `chai` binary and the tests link no CUDA library: kernels/backend_registry
 * dlopen()s this module (DESIGN.md section 8, docs/GPU.md) and reaches it through
 * the one exported symbol, chai_cuda_module(), which returns a table of entry
 * points. The loader checks `abi` before touching anything else.
 *
 * The table's `create` returns a chai::kernels::Backend* (kernels/backend.h) as
 * void*: the module and its loader are built from the same tree by the same
 * compiler, which the ABI number stands for. Every other entry point passes only
 * C types. Status codes are the CHAI_CUDA_* values below; each entry point
 * writes a NUL-terminated one-line message into msg (at most cap bytes) when it
 * does not return CHAI_CUDA_OK.
 *
 * Thread-safety: probe and mem_info may be called from any thread; a backend's
 * own entry points follow kernels/backend.h (one engine thread at a time). */
#ifndef CHAI_KERNELS_CUDA_CUDA_MODULE_H_
#define CHAI_KERNELS_CUDA_CUDA_MODULE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bump whenever this table, kernels/backend.h or anything a Backend passes
 * across the boundary changes layout. */
#define CHAI_CUDA_MODULE_ABI 3

#define CHAI_CUDA_OK 0
#define CHAI_CUDA_ERROR 1     /* a CUDA/cuBLAS call failed (driver error, out of memory) */
#define CHAI_CUDA_BAD_ARG 2   /* the caller passed something invalid */
#define CHAI_CUDA_NO_DEVICE 3 /* no driver, no device, or no such device: use the CPU */
#define CHAI_CUDA_OUT_OF_MEMORY 4

typedef struct ChaiCudaBackendOptions {
  int device; /* CUDA device ordinal */
} ChaiCudaBackendOptions;

typedef struct ChaiCudaModule {
  int abi; /* CHAI_CUDA_MODULE_ABI of the module */
  /* Whether device `device` is usable; CHAI_CUDA_NO_DEVICE when
   * cudaGetDeviceCount fails or finds fewer devices. On CHAI_CUDA_OK, msg holds
   * a one-line description of the device. */
  int (*probe)(int device, char* msg, size_t cap);
  /* Creates a backend on options->device; *backend receives a
   * chai::kernels::Backend* that the caller owns (delete through the Backend). */
  int (*create)(const ChaiCudaBackendOptions* options, void** backend, char* msg, size_t cap);
  /* Free and total memory of device `device`, in bytes. */
  int (*mem_info)(int device, size_t* free_bytes, size_t* total_bytes, char* msg, size_t cap);
  /* The first error a backend made by `create` met (its ops return void, so
   * errors are sticky: see cuda_backend.h). CHAI_CUDA_BAD_ARG when `backend`
   * is not a live backend of this module. */
  int (*backend_status)(const void* backend, char* msg, size_t cap);
} ChaiCudaModule;

typedef const ChaiCudaModule* (*ChaiCudaModuleFn)(void);

/* The one exported symbol. */
const ChaiCudaModule* chai_cuda_module(void);

#ifdef __cplusplus
}
#endif

#endif /* CHAI_KERNELS_CUDA_CUDA_MODULE_H_ */
