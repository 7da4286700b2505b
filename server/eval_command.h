// `chai eval`: accuracy (HellaSwag, PIQA, ARC-Easy/-Challenge, BoolQ) or
// perplexity (WikiText-2) of a model, scored as lm-evaluation-harness and
// llama.cpp's perplexity tool score them, with plain attention or CHAI; with
// CHAI also the KL divergence from plain attention over the same tokens
// (DESIGN.md section 3; engine side in engine/eval/).
//
// Returns the process exit status: 0 success, 1 runtime failure (bad model
// or data file, unusable CHAI config), 2 bad command line.
#ifndef CHAI_SERVER_EVAL_COMMAND_H_
#define CHAI_SERVER_EVAL_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunEval(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_EVAL_COMMAND_H_
