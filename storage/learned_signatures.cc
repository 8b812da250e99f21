#include "storage/learned_signatures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "storage/state_dir.h"

namespace affinity::storage {
namespace {

constexpr double kSupportScale = 10'000;

// "boot" < "service-start" < "steady": the earliest phase wins.
int PhaseRank(const std::string& phase) {
  if (phase == "boot") return 0;
  if (phase == "service-start") return 1;
  return 2;
}

// "offset+length,..." (empty: the whole file).
std::string EncodeRanges(const std::vector<profile::FileRange>& ranges) {
  std::string out;
  for (const auto& r : ranges) {
    if (!out.empty()) out += ',';
    out += std::to_string(r.offset) + "+" + std::to_string(r.length);
  }
  return out;
}

// What EncodeRanges wrote; a damaged entry is skipped (the file is then
// prefetched by its other ranges, or whole if none is left).
std::vector<profile::FileRange> DecodeRanges(const std::string& text) {
  std::vector<profile::FileRange> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    unsigned long long offset = 0, length = 0;
    if (std::sscanf(text.substr(pos, end - pos).c_str(), "%llu+%llu", &offset, &length) == 2 && length > 0) {
      out.push_back({offset, length});
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<LearnedSignatures>> LearnedSignatures::Open(const std::string& state_dir) {
  auto db = OpenStateDatabase(state_dir, "signatures.sqlite");
  if (!db.ok()) return db.status();
  Status s = (*db)->Exec(
      "CREATE TABLE IF NOT EXISTS learned("
      " vm TEXT NOT NULL, image TEXT NOT NULL, application TEXT NOT NULL, path TEXT NOT NULL,"
      " phase TEXT NOT NULL, support_e4 INTEGER NOT NULL, first_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
      " ranges TEXT NOT NULL,"
      " PRIMARY KEY(vm, image, application, path));"
      "CREATE INDEX IF NOT EXISTS learned_by_application ON learned(application);");
  if (!s.ok()) return s;
  return std::unique_ptr<LearnedSignatures>(new LearnedSignatures(std::move(*db)));
}

Status LearnedSignatures::Replace(const std::string& vm, const std::string& image,
                                  const std::vector<profile::LearnedPath>& learned, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Status s = db_->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  auto fail = [&](Status e) {
    (void)db_->Exec("ROLLBACK");
    return e;
  };
  auto del = db_->Prepare("DELETE FROM learned WHERE vm = ?1 AND image = ?2");
  if (!del.ok()) return fail(del.status());
  if (s = del->Bind(1, vm).Bind(2, image).Run(); !s.ok()) return fail(s);
  auto ins = db_->Prepare(
      "INSERT OR REPLACE INTO learned(vm, image, application, path, phase, support_e4, first_ms, updated_ms, ranges)"
      " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!ins.ok()) return fail(ins.status());
  for (const auto& l : learned) {
    s = ins->Bind(1, vm)
            .Bind(2, image)
            .Bind(3, l.application)
            .Bind(4, l.path)
            .Bind(5, l.phase)
            .Bind(6, static_cast<int64_t>(std::lround(l.support * kSupportScale)))
            .Bind(7, static_cast<int64_t>(l.first_ms))
            .Bind(8, now_ms)
            .Bind(9, EncodeRanges(l.ranges))
            .Run();
    if (!s.ok()) return fail(s);
  }
  s = db_->Exec("COMMIT");
  return s.ok() ? s : fail(s);
}

Result<std::vector<profile::LearnedPath>> LearnedSignatures::Aggregate(const std::set<std::string>& applications,
                                                                       const std::string& exclude_vm) const {
  std::lock_guard lock(mu_);
  std::vector<profile::LearnedPath> out;
  auto teachers = db_->Prepare("SELECT COUNT(DISTINCT vm) FROM learned WHERE application = ?1 AND vm != ?2");
  auto rows = db_->Prepare(
      "SELECT path, phase, support_e4, first_ms, ranges FROM learned WHERE application = ?1 AND vm != ?2 ORDER BY path");
  if (!teachers.ok()) return teachers.status();
  if (!rows.ok()) return rows.status();
  for (const std::string& app : applications) {
    teachers->Bind(1, app).Bind(2, exclude_vm);
    auto has = teachers->Step();
    if (!has.ok()) return has.status();
    const int64_t vms = *has ? teachers->ColumnInt64(0) : 0;
    teachers->Reset();
    if (vms == 0) continue;
    struct Sum {
      double support = 0;
      double first_ms = 0;
      int n = 0;
      std::string phase;
      bool whole = false;  // some VM read all of it
      std::vector<profile::FileRange> ranges;
    };
    std::map<std::string, Sum> by_path;
    rows->Bind(1, app).Bind(2, exclude_vm);
    for (;;) {
      auto row = rows->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Sum& sum = by_path[rows->ColumnText(0)];
      std::string phase = rows->ColumnText(1);
      if (sum.n == 0 || PhaseRank(phase) < PhaseRank(sum.phase)) sum.phase = std::move(phase);
      sum.support += static_cast<double>(rows->ColumnInt64(2)) / kSupportScale;
      sum.first_ms += static_cast<double>(rows->ColumnInt64(3));
      ++sum.n;
      std::vector<profile::FileRange> ranges = DecodeRanges(rows->ColumnText(4));
      sum.whole = sum.whole || ranges.empty();
      sum.ranges.insert(sum.ranges.end(), ranges.begin(), ranges.end());
    }
    rows->Reset();
    for (auto& [path, sum] : by_path) {
      if (sum.whole) sum.ranges.clear();
      std::sort(sum.ranges.begin(), sum.ranges.end(),
                [](const auto& a, const auto& b) { return a.offset < b.offset; });
      out.push_back({app, path, sum.phase, static_cast<float>(std::min(1.0, sum.support / static_cast<double>(vms))),
                     static_cast<uint32_t>(sum.first_ms / sum.n), std::move(sum.ranges)});
    }
  }
  return out;
}

}  // namespace affinity::storage
