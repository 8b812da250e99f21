// ApiError: the storage host's refusals (docs/protocol.md, "Errors").
//
// Every refusal is a JSON body {"error":"<code>","reason":"<sentence>"} plus
// an `Affinity-Error: <code>` header; the code fixes the HTTP status. The
// reason is a human sentence naming what was wrong ("image 'x.raw' of vm
// 'vm-42' not found").
//
// Thread safety: pure functions.
// Failure: n/a.
#pragma once

#include <string>
#include <string_view>

#include "acl/grant_refusal.h"
#include "common/status.h"
#include "storage/reply.h"

namespace affinity::storage {

enum class ApiError {
  kBadRequest,           // 400 malformed HTTP, bad %-escape, a request body
  kBadName,              // 400 a VM or image name breaks the rules
  kBadRange,             // 400 malformed or multi-range Range header
  kForbidden,            // 403 a symbolic link, or the OS refused access
  kNotFound,             // 404 unknown VM, image or endpoint
  kMethodNotAllowed,     // 405
  kRangeNotSatisfiable,  // 416
  kConflict,             // 409 not allowed in the current state (commit after abort, ...)
  kPayloadTooLarge,      // 413 a write larger than the server accepts at once
  kInternal,             // 500 an I/O or unexpected error on the storage host
};

std::string_view ApiErrorCode(ApiError e);  // "bad_request", ...
int ApiErrorStatus(ApiError e);             // 400, ...

Reply ErrorReply(ApiError e, std::string reason);

// Maps a VolumeStore/StateDb status: kInvalidArgument -> bad_name,
// kNotFound -> not_found, kPermissionDenied -> forbidden,
// kFailedPrecondition -> conflict, kOutOfRange -> range_not_satisfiable,
// else internal.
Reply ErrorReplyFromStatus(const Status& s);

// A refused grant or control-plane credential: 401/403 with the refusal's
// own code (acl/grant_refusal.h) as `error` and `Affinity-Error`.
Reply DenialReply(const acl::GrantDenial& denial);

}  // namespace affinity::storage
