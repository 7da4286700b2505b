#include "server/cli_flags.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace chai::server {

void FlagSet::Value(const std::string& name, const std::string& help, const std::string& def) {
  defs_[name] = {false, help, def};
  order_.push_back(name);
}

void FlagSet::Bool(const std::string& name, const std::string& help) {
  defs_[name] = {true, help, ""};
  order_.push_back(name);
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "'"));
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = defs_.find(name);
    if (it == defs_.end()) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (it->second.is_bool) {
      if (value && *value != "true" && *value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      values_[name] = value.value_or("true");
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    values_[name] = *value;
  }
  return absl::OkStatus();
}

bool FlagSet::Has(const std::string& name) const { return values_.contains(name); }

std::string FlagSet::Str(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  auto d = defs_.find(name);
  return d == defs_.end() ? "" : d->second.def;
}

bool FlagSet::On(const std::string& name) const { return Str(name) == "true"; }

absl::StatusOr<int64_t> FlagSet::Int(const std::string& name, int64_t lo, int64_t hi) const {
  const std::string text = Str(name);
  int64_t v;
  if (!absl::SimpleAtoi(text, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be an integer in [", lo, ", ", hi, "], got '", text, "'"));
  }
  return v;
}

absl::StatusOr<double> FlagSet::Double(const std::string& name, double lo, double hi) const {
  const std::string text = Str(name);
  double v;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be a number in [", lo, ", ", hi, "], got '", text, "'"));
  }
  return v;
}

std::string FlagSet::Usage(const std::string& synopsis) const {
  std::string out = absl::StrCat("usage: ", synopsis, "\n\nflags:\n");
  for (const std::string& name : order_) {
    const Def& d = defs_.at(name);
    std::string left = absl::StrCat("  --", name, d.is_bool ? "" : " VALUE");
    if (left.size() < 28) left.resize(28, ' ');
    absl::StrAppend(&out, left, " ", d.help);
    if (!d.def.empty()) absl::StrAppend(&out, " (default ", d.def, ")");
    out += "\n";
  }
  absl::StrAppend(&out, "  --help                     this text\n");
  return out;
}

}  // namespace chai::server
