// `chai generate`: load a model and stream one completion to stdout
// (DESIGN.md section 3). Returns the process exit status: 0 success, 1
// runtime failure (bad model file, prompt too long), 2 bad command line.
#ifndef CHAI_SERVER_GENERATE_COMMAND_H_
#define CHAI_SERVER_GENERATE_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunGenerate(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_GENERATE_COMMAND_H_
