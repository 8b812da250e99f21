#include "ctl/profile_command.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "common/atomic_file.h"
#include "common/names.h"
#include "ctl/admin_client.h"
#include "profile/block_trace.h"
#include "profile/prefetch_plan.h"
#include "profile/profile_codec.h"
#include "profile/guest_inspector.h"
#include "profile/signature_profile.h"

namespace affinity::ctl {
namespace {

struct ProfileOptions {
  AdminConnection connection;
  std::string vm, file, out, image = "root.raw", live_trace;
  std::vector<std::string> traces;
  double cut_s = -1;
  std::string guest_image, teacher_image;            // signatures (docs/signatures.md)
  std::vector<std::string> signature_dirs, teacher_traces;
  bool no_shipped = false;
  int top = 10;
  bool json = false;
};

uint64_t PlanBytes(const profile::Profile& p, const std::vector<profile::PlanItem>& plan, profile::PrefetchClass c) {
  uint64_t n = 0;
  for (const auto& item : plan) n += item.cls == c ? p.block_size : 0;
  return n;
}

int Show(const std::string& encoded, const ProfileOptions& o) {
  auto p = profile::DecodeProfile(encoded);
  if (!p.ok()) return Fail(p.status().message());
  const auto restart = profile::BuildPrefetchPlan(*p, {.arrival = profile::Arrival::kRestart});
  const auto live = profile::BuildPrefetchPlan(*p, {.arrival = profile::Arrival::kLiveMigration});
  nlohmann::json images = nlohmann::json::array();
  for (const auto& img : p->images) {
    std::vector<profile::BlockProfile> top(img.blocks);
    std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
    top.resize(std::min<size_t>(top.size(), static_cast<size_t>(std::max(0, o.top))));
    nlohmann::json t = nlohmann::json::array();
    for (const auto& b : top) {
      t.push_back({{"offset", uint64_t{b.block} * p->block_size},
                   {"score", b.score},
                   {"boot_support", b.boot_support},
                   {"first_ms", b.first_ms},
                   {"reads_per_session", b.decayed_reads}});
    }
    images.push_back({{"name", img.name},
                      {"blocks", img.blocks.size()},
                      {"bytes", uint64_t{img.blocks.size()} * p->block_size},
                      {"successor_edges", img.successors.size()},
                      {"top", t}});
  }
  nlohmann::json sigs = nlohmann::json::array();
  for (const auto& s : p->signatures) sigs.push_back({{"application", s.application}, {"evidence", s.evidence}});
  nlohmann::json j{
      {"vm", p->vm},
      {"profile_id", profile::ProfileId(encoded)},
      {"format_version", profile::Profile::kFormatVersion},
      {"encoded_bytes", encoded.size()},
      {"built", UnixTime(p->built_ms / 1000)},
      {"target", UnixTime(p->target_ms / 1000)},
      {"sessions", p->sessions},
      {"boot_sessions", p->boot_sessions},
      {"live_session", p->live_session},
      {"live_elapsed_ms", p->live_elapsed_ms},
      {"hour_histogram", p->hour_histogram},
      {"weekday_histogram", p->weekday_histogram},
      {"signatures", sigs},
      {"plan_restart_bytes",
       {{"critical", PlanBytes(*p, restart, profile::PrefetchClass::kCritical)},
        {"early", PlanBytes(*p, restart, profile::PrefetchClass::kEarly)}}},
      {"plan_live_bytes",
       {{"critical", PlanBytes(*p, live, profile::PrefetchClass::kCritical)},
        {"early", PlanBytes(*p, live, profile::PrefetchClass::kEarly)}}},
      {"images", images}};
  if (o.json) {
    std::printf("%s\n", JsonDump(j).c_str());
    return 0;
  }
  std::printf("vm               %s\nprofile          %s (format %u, %zu bytes encoded)\n", p->vm.c_str(),
              profile::ProfileId(encoded).c_str(), profile::Profile::kFormatVersion, encoded.size());
  std::printf("built            %s\npredicts for     %s\n", UnixTime(p->built_ms / 1000).c_str(),
              UnixTime(p->target_ms / 1000).c_str());
  std::printf("history          %u sessions (%u VM starts)\n", p->sessions, p->boot_sessions);
  std::printf("live session     %s\n", p->live_session.empty()
                                           ? "-"
                                           : (p->live_session + " (ran " + std::to_string(p->live_elapsed_ms / 1000) +
                                              " s)").c_str());
  std::printf("applications     %s\n", p->signatures.empty() ? "none detected (history only)" : "");
  for (const auto& s : p->signatures) std::printf("  %s: %s\n", s.application.c_str(), s.evidence.c_str());
  std::printf("plan, restart    critical %llu bytes, early %llu bytes\n",
              static_cast<unsigned long long>(PlanBytes(*p, restart, profile::PrefetchClass::kCritical)),
              static_cast<unsigned long long>(PlanBytes(*p, restart, profile::PrefetchClass::kEarly)));
  std::printf("plan, live       critical %llu bytes, early %llu bytes\n",
              static_cast<unsigned long long>(PlanBytes(*p, live, profile::PrefetchClass::kCritical)),
              static_cast<unsigned long long>(PlanBytes(*p, live, profile::PrefetchClass::kEarly)));
  for (const auto& img : j["images"]) {
    std::printf("image %s: %llu blocks of %u bytes, %llu successor edges\n", img["name"].get<std::string>().c_str(),
                static_cast<unsigned long long>(img["blocks"].get<uint64_t>()), p->block_size,
                static_cast<unsigned long long>(img["successor_edges"].get<uint64_t>()));
    for (const auto& b : img["top"]) {
      std::printf("  offset %12llu  score %.3f  boot %.2f  first %7u ms  reads/session %.2f\n",
                  static_cast<unsigned long long>(b["offset"].get<uint64_t>()), b["score"].get<double>(),
                  b["boot_support"].get<double>(), b["first_ms"].get<uint32_t>(),
                  b["reads_per_session"].get<double>());
    }
  }
  return 0;
}

// Traces carry no wall clock: they are taken as consecutive past starts, an
// hour apart, the last one an hour before `now`.
std::vector<profile::SessionTrace> TraceSessions(const std::vector<std::string>& traces, const std::string& image,
                                                 int64_t now, Status* error) {
  std::vector<profile::SessionTrace> sessions;
  for (size_t i = 0; i < traces.size(); ++i) {
    auto t = profile::LoadBlockTrace(traces[i]);
    if (!t.ok()) {
      *error = t.status();
      return {};
    }
    const int64_t start = now - static_cast<int64_t>(traces.size() - i) * 3'600'000;
    sessions.push_back(profile::TraceToSession(*t, image, "s-trace-" + std::to_string(i), start,
                                               profile::SessionKind::kStart));
  }
  return sessions;
}

// What the storage host adds to a profile: the signatures of --guest-image,
// what its own traces teach, and what a teacher VM's traces taught
// (--teacher-image, --teacher-trace), as profile/signature_profile.h does.
int AddSignatures(const ProfileOptions& o, const std::vector<profile::SessionTrace>& history, profile::Profile& p) {
  std::vector<std::string> dirs;
  if (!o.no_shipped) dirs.push_back(profile::ShippedSignatureDir());
  dirs.insert(dirs.end(), o.signature_dirs.begin(), o.signature_dirs.end());
  const profile::SignatureDb db = profile::SignatureDb::Load(dirs);
  for (const Status& e : db.errors()) std::fprintf(stderr, "signatures: %s\n", e.ToString().c_str());
  std::vector<profile::LearnedPath> taught;
  if (!o.teacher_image.empty()) {
    auto map = profile::InspectImage(o.teacher_image);
    if (!map.ok()) return Fail("--teacher-image " + o.teacher_image + ": " + map.status().ToString());
    Status error;
    auto sessions = TraceSessions(o.teacher_traces, o.image, p.built_ms, &error);
    if (!error.ok()) return Fail(error.message());
    taught = profile::SignaturesForImage(db, o.image, *map, profile::LazyGuestFileReader(o.teacher_image), sessions, nullptr).learned;
  }
  auto map = profile::InspectImage(o.guest_image);
  if (!map.ok()) return Fail("--guest-image " + o.guest_image + ": " + map.status().ToString());
  const profile::ImageSignatures sig = profile::SignaturesForImage(
      db, o.image, *map, profile::LazyGuestFileReader(o.guest_image), history, [&](const std::set<std::string>& apps) {
        std::vector<profile::LearnedPath> out;
        for (const auto& l : taught) {
          if (apps.count(l.application) != 0) out.push_back(l);
        }
        return out;
      });
  for (const std::string& note : sig.notes) std::fprintf(stderr, "signatures: %s\n", note.c_str());
  profile::ApplySignatures(p, sig);
  std::fprintf(stderr, "signatures: %zu applications, %zu paths learned here, %zu taught, %zu block priors\n",
               sig.matches.size(), sig.learned.size(), sig.taught, sig.priors.size());
  return 0;
}

int Build(const ProfileOptions& o) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  Status error;
  std::vector<profile::SessionTrace> sessions = TraceSessions(o.traces, o.image, now, &error);
  if (!error.ok()) return Fail(error.message());
  profile::BuildOptions b;
  b.now_ms = now;
  b.target_ms = now;
  if (!o.live_trace.empty()) {
    auto t = profile::LoadBlockTrace(o.live_trace);
    if (!t.ok()) return Fail(t.status().message());
    sessions.push_back(profile::TraceToSession(*t, o.image, "s-live", now - static_cast<int64_t>(o.cut_s * 1000),
                                               profile::SessionKind::kStart, o.cut_s));
    b.live_session = "s-live";
  }
  profile::Profile built = profile::BuildProfile(o.vm, sessions, b);
  if (!o.guest_image.empty()) {
    if (!o.live_trace.empty()) sessions.pop_back();  // the live run teaches nothing yet
    if (int failed = AddSignatures(o, sessions, built); failed != 0) return failed;
  }
  const std::string encoded = profile::EncodeProfile(built);
  if (Status s = WriteFileAtomically(o.out, encoded, 0644); !s.ok()) return Fail(s.ToString());
  std::printf("%s: profile %s, %zu bytes\n", o.out.c_str(), profile::ProfileId(encoded).c_str(), encoded.size());
  return 0;
}

}  // namespace

void AddProfileCommand(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("profile", "Show, export, import or build a VM's affinity profile");
  cmd->require_subcommand(1);
  auto o = std::make_shared<ProfileOptions>();

  CLI::App* show = cmd->add_subcommand("show", "What a profile predicts (from the storage host, or --file)");
  AddAdminConnectionOptions(show, o->connection);
  show->add_option("--vm", o->vm, "VM (asks the storage host)");
  show->add_option("--file", o->file, "A profile file (export, build) instead");
  show->add_option("--top", o->top, "Blocks to list per image, by score (default 10)");
  show->add_flag("--json", o->json, "JSON output");
  show->callback([o, &exit_code] {
    if (o->file.empty() == o->vm.empty()) {
      exit_code = Fail("give exactly one of --vm and --file");
      return;
    }
    auto bytes = o->file.empty() ? CallStorageRaw(o->connection, "GET", "/v1/vms/" + o->vm + "/profile")
                                 : profile::ReadProfileFile(o->file);
    exit_code = bytes.ok() ? Show(*bytes, *o) : Fail(bytes.status().message());
  });

  CLI::App* exp = cmd->add_subcommand("export", "Save the profile the storage host serves now");
  AddAdminConnectionOptions(exp, o->connection);
  exp->add_option("--vm", o->vm, "VM")->required();
  exp->add_option("-o,--out", o->out, "Output file")->required();
  exp->callback([o, &exit_code] {
    if (Status s = ValidateName("--vm", o->vm); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    auto bytes = CallStorageRaw(o->connection, "GET", "/v1/vms/" + o->vm + "/profile");
    if (!bytes.ok()) {
      exit_code = Fail(bytes.status().message());
      return;
    }
    if (auto p = profile::DecodeProfile(*bytes); !p.ok()) {
      exit_code = Fail("the storage host sent a bad profile: " + p.status().message());
      return;
    }
    if (Status s = WriteFileAtomically(o->out, *bytes, 0644); !s.ok()) {
      exit_code = Fail(s.ToString());
      return;
    }
    std::printf("%s: profile %s, %zu bytes\n", o->out.c_str(), profile::ProfileId(*bytes).c_str(), bytes->size());
    exit_code = 0;
  });

  CLI::App* imp = cmd->add_subcommand("import", "Store a profile file as a VM's profile (admin)");
  AddAdminConnectionOptions(imp, o->connection);
  imp->add_option("--vm", o->vm, "VM")->required();
  imp->add_option("file", o->file, "Profile file")->required();
  imp->callback([o, &exit_code] {
    if (Status s = ValidateName("--vm", o->vm); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    auto bytes = profile::ReadProfileFile(o->file);
    if (!bytes.ok()) {
      exit_code = Fail(bytes.status().message());
      return;
    }
    if (auto p = profile::DecodeProfile(*bytes); !p.ok()) {  // say it here, before sending it
      exit_code = Fail(o->file + ": " + p.status().message());
      return;
    }
    auto reply = CallStorageRaw(o->connection, "PUT", "/v1/vms/" + o->vm + "/profile", *bytes, profile::kProfileMediaType);
    if (!reply.ok()) {
      exit_code = Fail(reply.status().message());
      return;
    }
    std::printf("%s\n", reply->c_str());
    exit_code = 0;
  });

  CLI::App* build = cmd->add_subcommand("build", "Build a profile from block traces (CSV time_s,offset,length,op)");
  build->add_option("--vm", o->vm, "VM the profile is for")->required();
  build->add_option("--image", o->image, "Image the traces read (default root.raw)");
  build->add_option("-o,--out", o->out, "Output file")->required();
  build->add_option("--live", o->live_trace, "Trace of the run being migrated");
  build->add_option("--cut", o->cut_s, "Seconds of --live observed before the cut-over");
  build->add_option("traces", o->traces, "Traces of earlier runs, oldest first");
  build->add_option("--guest-image", o->guest_image,
                    "The VM's image file: inspect it and add its application signatures (docs/signatures.md)")
      ->check(CLI::ExistingFile);
  build->add_option("--signatures", o->signature_dirs, "More signature directories (after the shipped ones)")
      ->check(CLI::ExistingDirectory);
  build->add_flag("--no-shipped-signatures", o->no_shipped, "Only the --signatures directories");
  build->add_option("--teacher-image", o->teacher_image,
                    "Another VM's image whose --teacher-trace runs teach the signatures (its starts)")
      ->check(CLI::ExistingFile);
  build->add_option("--teacher-trace", o->teacher_traces, "A block trace of a start of --teacher-image");
  build->callback([o, &exit_code] {
    if (Status s = ValidateName("--vm", o->vm); !s.ok()) {
      exit_code = Fail(s.message());
      return;
    }
    if (!o->live_trace.empty() && o->cut_s < 0) {
      exit_code = Fail("--live needs --cut SECONDS");
      return;
    }
    exit_code = Build(*o);
  });
}

}  // namespace affinity::ctl
