// `chai calibrate`: offline CHAI calibration of a model (DESIGN.md section
// 3; engine/chai/calibration.h for the method). Writes the cluster config
// to --out and, beside it, FILE.csv (error curves) and FILE.svg (one panel
// per layer), where FILE is --out without its ".json" suffix. Progress and
// ETA go to stderr. Returns the exit status: 0 success, 1 runtime failure
// (one line on stderr), 2 bad command line.
#ifndef CHAI_SERVER_CALIBRATE_COMMAND_H_
#define CHAI_SERVER_CALIBRATE_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunCalibrate(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_CALIBRATE_COMMAND_H_
