// Runs the `chai` binary as a user would, for CLI tests: stdout, stderr and
// the exit status of one command line.
//
// Thread-safety: RunCli may run concurrently in different processes (ctest
// -j): each process writes stderr to its own file.
#ifndef CHAI_TESTS_TESTING_CLI_RUNNER_H_
#define CHAI_TESTS_TESTING_CLI_RUNNER_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chai::testing {

struct CliRun {
  int status = -1;  // exit status; -1 if killed by a signal
  std::string out;
  std::string err;
};

// Single-quotes `s` for /bin/sh.
inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q.append("'\\''");
    } else {
      q.push_back(c);
    }
  }
  q.push_back('\'');
  return q;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `binary args...` through the shell and collects its output.
inline CliRun RunCli(const std::string& binary, const std::vector<std::string>& args) {
  const std::string err_path =
      ::testing::TempDir() + "/chai_cli_stderr_" + std::to_string(getpid()) + ".txt";
  std::string cmd = binary;
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>" + err_path;
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = ReadFile(err_path);
  return r;
}

// The last non-empty line of `text` (a --json summary line).
inline std::string LastLine(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end + 1 - (start + 1));
}

}  // namespace chai::testing

#endif  // CHAI_TESTS_TESTING_CLI_RUNNER_H_
