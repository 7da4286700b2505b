// DefaultBuildInfo() lives alone so that the configure-time definitions it
// reads (CHAI_BUILD_*) recompile only this file when they change.
#include "server/metrics/serving_metrics.h"

#ifndef CHAI_BUILD_VERSION
#define CHAI_BUILD_VERSION "dev"
#endif
#ifndef CHAI_BUILD_REVISION
#define CHAI_BUILD_REVISION "unknown"
#endif
#ifndef CHAI_BUILD_COMPILER
#define CHAI_BUILD_COMPILER "unknown"
#endif
#ifndef CHAI_BUILD_TYPE
#define CHAI_BUILD_TYPE "unknown"
#endif

namespace chai::server::metrics {

BuildInfo DefaultBuildInfo() {
  return BuildInfo{CHAI_BUILD_VERSION, CHAI_BUILD_REVISION, CHAI_BUILD_COMPILER, CHAI_BUILD_TYPE};
}

}  // namespace chai::server::metrics
