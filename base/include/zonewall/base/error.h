// Source locations and the error every module boundary returns (std::expected<T, Error>).
#pragma once

#include <cstdint>
#include <expected>
#include <string>

namespace zonewall {

/// A position in an input file; line and column are 1-based (0 means unknown).
struct SourceLoc {
  std::string file;
  int line = 0;
  int col = 0;

  /// "file:line:col", or just "file" when the position is unknown.
  std::string str() const;
  bool known() const { return line > 0; }
  friend bool operator==(const SourceLoc&, const SourceLoc&) = default;
};

/// An error at a module boundary.
struct Error {
  enum class Code : std::uint8_t {
    kInvalidInput,
    kIo,
    kUnsupported,
    kKernel,
    kInternal,
    kNotFound,   ///< a datastore key that should be there is not
    kConflict,   ///< another writer got there first (a lost claim race)
    kExhausted,  ///< nothing left to allocate
  };
  Code code = Code::kInvalidInput;
  std::string message;
  SourceLoc loc;
  int sys_errno = 0;  ///< errno captured right after the failing call, 0 if none

  /// "file:line:col: message: strerror(errno)", each part only where known.
  std::string str() const;
};

/// `return fail(Error::Code::kIo, "open " + path, errno);`
inline std::unexpected<Error> fail(Error::Code code, std::string message, int sys_errno = 0) {
  return std::unexpected(Error{code, std::move(message), {}, sys_errno});
}
/// An error at a place in the input.
inline std::unexpected<Error> fail(Error::Code code, std::string message, SourceLoc loc) {
  return std::unexpected(Error{code, std::move(message), std::move(loc), 0});
}

}  // namespace zonewall
