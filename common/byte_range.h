// Single byte ranges as used by HTTP Range / Content-Range (RFC 9110 §14).
//
// We serve and request exactly one range per request; multi-range requests
// are refused rather than answered with multipart bodies nobody here needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace affinity {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }  // exclusive
  bool operator==(const ByteRange&) const = default;
};

// Parses a Range header value against an object of `size` bytes.
// kInvalidArgument: not "bytes=a-b" / "bytes=a-" / "bytes=-n", or several ranges.
// kOutOfRange: well formed but unsatisfiable (start >= size, or an empty object).
Result<ByteRange> ParseRangeHeader(std::string_view value, uint64_t size);

// "bytes=<first>-<last>" for a request (length must be > 0).
std::string FormatRangeHeader(const ByteRange& range);

// "bytes <first>-<last>/<size>" for a 206 response.
std::string FormatContentRange(const ByteRange& range, uint64_t size);

// Parses "bytes <first>-<last>/<size|*>"; kCorruption when malformed.
Result<ByteRange> ParseContentRange(std::string_view value);

}  // namespace affinity
