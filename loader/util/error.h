#pragma once
#include <stdexcept>
#include <string>

namespace ipsnat {

// An error the user can act on: printed as one line, "ipsnat: <what> (<hint>)", exit status 1.
class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what, std::string hint = {})
      : std::runtime_error(what), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// errno-carrying failure of a system call, with the operation that failed.
class SysError : public std::runtime_error {
 public:
  SysError(const std::string& op, int err);
  int code() const { return err_; }

 private:
  int err_;
};

}  // namespace ipsnat
