// Minimal command-line flag parsing for the `chai` subcommands.
//
// Accepts `--name value`, `--name=value` and bare boolean flags. Every flag a
// subcommand accepts is declared up front; anything else is an error, and the
// caller prints the one-line message and exits with status 2 (DESIGN.md
// section 3).
//
// Thread-safety: single-threaded use at start-up.
#ifndef CHAI_SERVER_CLI_FLAGS_H_
#define CHAI_SERVER_CLI_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace chai::server {

class FlagSet {
 public:
  // Declares a flag taking a value / a boolean switch, with its help line.
  void Value(const std::string& name, const std::string& help, const std::string& def = "");
  void Bool(const std::string& name, const std::string& help);

  // Parses args (without the program and subcommand names). INVALID_ARGUMENT
  // for an unknown flag, a missing value, or a stray positional argument.
  absl::Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_; }
  bool Has(const std::string& name) const;         // given on the command line
  std::string Str(const std::string& name) const;  // value or default
  bool On(const std::string& name) const;
  // Typed getters: INVALID_ARGUMENT naming the flag when the text is not a
  // number in [lo, hi].
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t lo, int64_t hi) const;
  absl::StatusOr<double> Double(const std::string& name, double lo, double hi) const;

  std::string Usage(const std::string& synopsis) const;

 private:
  struct Def {
    bool is_bool;
    std::string help;
    std::string def;
  };
  std::map<std::string, Def> defs_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
};

}  // namespace chai::server

#endif  // CHAI_SERVER_CLI_FLAGS_H_
