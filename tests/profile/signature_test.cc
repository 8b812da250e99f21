// Application signatures: globs, the guest path index, dpkg status parsing,
// the signature files (shipped and hostile) and detection on synthetic
// guest file maps.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "profile/dpkg_status.h"
#include "profile/file_map_index.h"
#include "profile/path_glob.h"
#include "profile/signature_db.h"
#include "profile/signature_matcher.h"
#include "tests/profile/guest_map_builder.h"
#include "tests/support/test_env.h"

namespace affinity::profile {
namespace {

using testing::DpkgStanza;
using testing::GuestMapBuilder;

const std::string kShipped = AFFINITY_SOURCE_DIR "/profile/signatures";

// ---- globs ----

TEST(PathGlob, ComponentsAndGlobstar) {
  EXPECT_TRUE(GlobMatch("/usr/sbin/nginx", "/usr/sbin/nginx"));
  EXPECT_TRUE(GlobMatch("/etc/*.conf", "/etc/a.conf"));
  EXPECT_FALSE(GlobMatch("/etc/*.conf", "/etc/x/a.conf"));  // * stays within a component
  EXPECT_TRUE(GlobMatch("/boot/vmlinuz-?.*", "/boot/vmlinuz-6.1"));
  EXPECT_TRUE(GlobMatch("/lib/[ab]c", "/lib/bc"));
  EXPECT_FALSE(GlobMatch("/lib/[!ab]c", "/lib/bc"));
  // ** is any number of components, zero included.
  EXPECT_TRUE(GlobMatch("/etc/nginx/**", "/etc/nginx"));
  EXPECT_TRUE(GlobMatch("/etc/nginx/**", "/etc/nginx/nginx.conf"));
  EXPECT_TRUE(GlobMatch("/etc/nginx/**", "/etc/nginx/sites-enabled/default"));
  EXPECT_FALSE(GlobMatch("/etc/nginx/**", "/etc/nginx-old/x"));
  EXPECT_TRUE(GlobMatch("/**/modules.dep", "/modules.dep"));
  EXPECT_TRUE(GlobMatch("/usr/**/x/**/*.so", "/usr/a/b/x/y/z.so"));
  EXPECT_TRUE(GlobMatch("/usr/**/x/**/*.so", "/usr/x/z.so"));
  EXPECT_FALSE(GlobMatch("/usr/**/x/**/*.so", "/usr/a/b/z.so"));
  EXPECT_FALSE(GlobMatch("/a/b", "/a"));
  EXPECT_FALSE(GlobMatch("/a", "/a/b"));
}

TEST(PathGlob, ValidationNamesTheProblem) {
  EXPECT_TRUE(ValidateGlob("/").ok());
  EXPECT_TRUE(ValidateGlob("/etc/**").ok());
  EXPECT_TRUE(ValidateGlob("/lib/[]a]").ok());
  for (const char* bad : {"", "etc/x", "/etc//x", "/etc/", "/a/../b", "/a/./b", "/a**", "/**b/c", "/a/[bc",
                          "/a\\*"}) {
    Status st = ValidateGlob(bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ValidateGlob("/a/[bc").message().find("unclosed"), std::string::npos);
  EXPECT_FALSE(ValidateGlob("/" + std::string(kMaxGlobLength, 'a')).ok());
}

// ---- the guest path index ----

TEST(FileMapIndex, ResolvesThroughMergedUsrAndStopsLoops) {
  GuestMapBuilder b;
  b.MergedUsr().File("/usr/lib/systemd/systemd").Link("/usr/sbin/init", "../lib/systemd/systemd");
  b.Link("/loop/a", "b").Link("/loop/b", "a");
  const GuestFileMap map = b.Build();
  FileMapIndex index(map);
  std::vector<const GuestFile*> via;
  const GuestFile* init = index.Resolve("/sbin/init", true, &via);
  ASSERT_NE(init, nullptr);
  EXPECT_EQ(init->path, "/usr/lib/systemd/systemd");
  ASSERT_EQ(via.size(), 2u);  // /sbin, then /usr/sbin/init
  EXPECT_EQ(via[0]->path, "/sbin");
  EXPECT_EQ(via[1]->path, "/usr/sbin/init");
  const GuestFile* link = index.Resolve("/sbin/init", false);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->kind, GuestFileKind::kSymlink);
  EXPECT_EQ(index.Resolve("/loop/a", true), nullptr);
  EXPECT_EQ(index.Resolve("/usr/lib/systemd/systemd/x", true), nullptr);  // not a directory
  EXPECT_EQ(index.Resolve("/nope", true), nullptr);
  // A glob's literal head is resolved: /lib/systemd/* is searched in /usr/lib/systemd.
  auto hits = index.Glob("/lib/systemd/*");
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]->path, "/usr/lib/systemd/systemd");
  // Parent directories of a file, root first.
  auto parents = index.ParentDirectories(*init);
  ASSERT_EQ(parents.size(), 4u);
  EXPECT_EQ(parents[0]->path, "/");
  EXPECT_EQ(parents[3]->path, "/usr/lib/systemd");
}

// ---- dpkg status ----

TEST(DpkgStatus, InstalledVersusRemovedAndContinuationLines) {
  std::string text = DpkgStanza("nginx-core", "install ok installed", "1.22.1-9") +
                     DpkgStanza("apache2", "deinstall ok config-files") +
                     DpkgStanza("redis-server", "hold ok installed", "5:7.0.15-1") +
                     DpkgStanza("half", "install reinstreq half-installed") +
                     "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n"
                     "Conffiles:\n /etc/ld.so.conf.d/x86_64-linux-gnu.conf 593ad12389ab2b6f952e7ede67b8fbbf\n\n"
                     "Package: libc6\nStatus: deinstall ok config-files\nArchitecture: i386\nVersion: 2.36-8\n";
  Result<DpkgStatus> s = ParseDpkgStatus(text);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->at("nginx-core").installed);
  EXPECT_EQ(s->at("nginx-core").version, "1.22.1-9");
  EXPECT_FALSE(s->at("apache2").installed);
  EXPECT_TRUE(s->at("redis-server").installed);
  EXPECT_FALSE(s->at("half").installed);
  EXPECT_TRUE(s->at("libc6").installed);  // multi-arch: one architecture installed is enough
  EXPECT_EQ(s->at("libc6").version, "2.36-9");
  // Windows line ends and no final newline are fine.
  Result<DpkgStatus> crlf = ParseDpkgStatus("Package: a\r\nStatus: install ok installed\r\n");
  ASSERT_TRUE(crlf.ok());
  EXPECT_TRUE(crlf->at("a").installed);
}

TEST(DpkgStatus, GarbageIsAnErrorNotACrash) {
  EXPECT_NE(ParseDpkgStatus("Package: a\nthis is not a field\n").status().message().find("line 2"),
            std::string::npos);
  EXPECT_EQ(ParseDpkgStatus(std::string("Package: a\n\0\n", 13)).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseDpkgStatus(" continuation first\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseDpkgStatus("Status: install ok installed\n\n").status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseDpkgStatus(std::string(kMaxDpkgStatusBytes + 1, 'x')).status().code(), StatusCode::kCorruption);
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) % 255 + 1));
  EXPECT_FALSE(ParseDpkgStatus(junk).ok());
  EXPECT_TRUE(ParseDpkgStatus("").ok());
}

// ---- signature files ----

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string Minimal(const std::string& app, const std::string& needs_phase = "steady",
                    const std::string& path = "\"/usr/bin/x\"") {
  return R"({"format":"affinity-signature","version":1,"application":")" + app +
         R"(","description":"d","source":"test","detect":[{"path":"/usr/bin/)" + app +
         R"("}],"needs":[{"phase":")" + needs_phase + R"(","priority":"early","paths":[)" + path + "]}]}";
}

TEST(SignatureDb, ShippedFilesLoadCleanly) {
  SignatureDb db = SignatureDb::Load({kShipped});
  for (const Status& e : db.errors()) ADD_FAILURE() << e.ToString();
  std::vector<std::string> apps;
  for (const Signature& s : db.signatures()) apps.push_back(s.application);
  EXPECT_EQ(apps, (std::vector<std::string>{"disk-boot", "linux-boot", "mysql", "nginx", "package-manager", "postgresql",
                                            "redis"}));
  const Signature* boot = db.Find("linux-boot");
  ASSERT_NE(boot, nullptr);
  EXPECT_TRUE(boot->always);
  EXPECT_TRUE(boot->detect.empty());
  const Signature* nginx = db.Find("nginx");
  ASSERT_NE(nginx, nullptr);
  EXPECT_EQ(nginx->detect[0], (DetectRule{DetectRule::Kind::kDpkg, "nginx-core"}));
  EXPECT_EQ(nginx->needs[0].phase, SignaturePhase::kServiceStart);
  EXPECT_EQ(nginx->needs[0].priority, SignaturePriority::kCritical);
  EXPECT_EQ(nginx->file, kShipped + "/nginx.json");
}

TEST(SignatureDb, HostileFilesAreRejectedNamingFileAndFieldOthersLoad) {
  affinity::testing::TempDir dir;
  Write(dir / "good.json", Minimal("good"));
  Write(dir / "version.json",
        R"({"format":"affinity-signature","version":2,"application":"v","always":true,"needs":[]})");
  Write(dir / "phase.json", Minimal("phase", "bootup"));
  Write(dir / "huge.json", Minimal("huge") + std::string(kMaxSignatureFileBytes, ' '));
  Write(dir / "notjson.json", "{\"format\": ");
  Write(dir / "nonstring.json", Minimal("nonstring", "steady", "\"/a\", 42"));
  Write(dir / "badglob.json", Minimal("badglob", "steady", "\"/a/[b\""));
  Write(dir / "relative.json", Minimal("relative", "steady", "\"etc/x\""));
  std::string unknown = Minimal("unknown");
  unknown.insert(1, R"("colour":"blue",)");
  Write(dir / "unknown.json", unknown);
  std::string many;
  for (size_t i = 0; i <= kMaxSignaturePatterns; ++i) many += (i ? ",\"/p" : "\"/p") + std::to_string(i) + "\"";
  Write(dir / "many.json", Minimal("many", "steady", many));
  Write(dir / "both.json", R"({"format":"affinity-signature","version":1,"application":"both","always":true,)"
                           R"("detect":[{"path":"/x"}],"needs":[{"phase":"boot","priority":"critical","paths":["/x"]}]})");
  Write(dir / "rule.json", R"({"format":"affinity-signature","version":1,"application":"rule",)"
                           R"("detect":[{"rpm":"x"}],"needs":[{"phase":"boot","priority":"critical","paths":["/x"]}]})");
  Write(dir / "ignored.txt", "not a signature");

  SignatureDb db = SignatureDb::Load({dir.path()});
  ASSERT_EQ(db.signatures().size(), 1u);
  EXPECT_EQ(db.signatures()[0].application, "good");

  std::map<std::string, std::string> by_file;
  for (const Status& e : db.errors()) {
    const std::string& m = e.message();
    by_file[m.substr(dir.path().size() + 1, m.find(':') - dir.path().size() - 1)] = m;
  }
  auto expect = [&](const std::string& file, const std::string& field) {
    ASSERT_EQ(by_file.count(file), 1u) << file;
    EXPECT_NE(by_file[file].find(field), std::string::npos) << by_file[file];
  };
  expect("version.json", ": version: unsupported");
  expect("phase.json", ": needs[0].phase: unknown phase \"bootup\"");
  expect("huge.json", "larger than 1 MiB");
  expect("notjson.json", "not JSON");
  expect("nonstring.json", ": needs[0].paths[1]: must be a string");
  expect("badglob.json", ": needs[0].paths[0]: pattern \"/a/[b\": unclosed");
  expect("relative.json", ": needs[0].paths[0]: pattern \"etc/x\" is not absolute");
  expect("unknown.json", ": colour: unknown key");
  expect("many.json", "more than 4096 patterns");
  expect("both.json", ": detect: not allowed");
  expect("rule.json", ": detect[0].rpm: unknown rule");
  EXPECT_EQ(by_file.size(), 11u);
}

TEST(SignatureDb, AnOperatorDirectoryOverridesAShippedApplication) {
  affinity::testing::TempDir ops;
  std::string mine = Minimal("nginx");
  mine.replace(mine.find("\"description\":\"d\""), 17, "\"description\":\"ours\"");
  Write(ops / "00-nginx-ours.json", mine);
  Write(ops / "custom.json", Minimal("custom-app"));
  SignatureDb db = SignatureDb::Load({kShipped, ops.path(), ops / "missing"});
  ASSERT_EQ(db.errors().size(), 1u);  // the missing directory
  EXPECT_NE(db.errors()[0].message().find("missing"), std::string::npos);
  const Signature* nginx = db.Find("nginx");
  ASSERT_NE(nginx, nullptr);
  EXPECT_EQ(nginx->description, "ours");
  EXPECT_EQ(nginx->file, ops / "00-nginx-ours.json");
  EXPECT_NE(db.Find("custom-app"), nullptr);
  EXPECT_NE(db.Find("redis"), nullptr);  // shipped ones stay

  // Two files of one application in one directory: the second is refused.
  Write(ops / "01-nginx-again.json", Minimal("nginx"));
  SignatureDb twice = SignatureDb::Load({ops.path()});
  ASSERT_EQ(twice.errors().size(), 1u);
  EXPECT_NE(twice.errors()[0].message().find("01-nginx-again.json: application"), std::string::npos);
  EXPECT_EQ(twice.Find("nginx")->description, "ours");
}

// ---- detection ----

// A Debian 12 guest with none of the applications the signatures name.
GuestMapBuilder DebianBase(const std::string& extra_dpkg = "") {
  GuestMapBuilder b;
  b.MergedUsr()
      .File("/usr/lib/systemd/systemd")
      .Link("/usr/sbin/init", "../lib/systemd/systemd")
      .File("/usr/sbin/apache2")
      .File("/usr/lib/systemd/system/apache2.service")
      .File("/usr/lib/postgresql/15/bin/psql")
      .Dir("/etc/systemd/system/multi-user.target.wants")
      .Link("/etc/systemd/system/multi-user.target.wants/apache2.service", "/lib/systemd/system/apache2.service")
      .Link("/etc/systemd/system/redis-server.service", "/dev/null")  // masked
      .File("/usr/lib/systemd/system/redis-server.service")
      .Content("/var/lib/dpkg/status", DpkgStanza("apache2", "install ok installed") +
                                           DpkgStanza("postgresql-client-15", "install ok installed") +
                                           DpkgStanza("nginx-core", "deinstall ok config-files") +
                                           DpkgStanza("mariadb-client", "install ok installed") + extra_dpkg);
  return b;
}

// A data disk: no operating system, no dpkg.
GuestMapBuilder DataDisk() {
  GuestMapBuilder b;
  b.Dir("/lost+found").File("/backup/db.tar");
  return b;
}

std::set<std::string> Detected(const SignatureDb& db, const GuestMapBuilder& b) {
  std::set<std::string> apps;
  for (const SignatureMatch& m : DetectApplications(db, b.Build(), b.Reader())) apps.insert(m.application);
  return apps;
}

TEST(DetectApplications, EachShippedSignatureOnAMatchingMapAndNotOnOthers) {
  const SignatureDb db = SignatureDb::Load({kShipped});
  ASSERT_TRUE(db.errors().empty());
  // The base Debian guest is Linux with dpkg, and nothing else.
  EXPECT_EQ(Detected(db, DebianBase()), (std::set<std::string>{"linux-boot", "package-manager"}));
  EXPECT_EQ(Detected(db, DataDisk()), (std::set<std::string>{}));

  struct Case {
    std::string app;
    std::function<void(GuestMapBuilder&)> add;
  };
  const std::vector<Case> cases = {
      {"postgresql", [](GuestMapBuilder& b) { b.File("/usr/lib/postgresql/15/bin/postgres"); }},
      {"mysql", [](GuestMapBuilder& b) { b.File("/usr/lib/systemd/system/mariadb.service"); }},
      {"nginx", [](GuestMapBuilder& b) { b.File("/usr/sbin/nginx"); }},
      {"redis",
       [](GuestMapBuilder& b) {
         b.Link("/etc/systemd/system/multi-user.target.wants/redis.service", "/lib/systemd/system/redis.service");
       }},
      {"package-manager", [](GuestMapBuilder& b) { b.File("/usr/bin/apt"); }},
      {"linux-boot", [](GuestMapBuilder& b) { b.File("/boot/vmlinuz-6.1.0-13-amd64"); }},
  };
  for (const Case& c : cases) {
    GuestMapBuilder base = DebianBase();
    c.add(base);
    EXPECT_TRUE(Detected(db, base).count(c.app)) << c.app << " on Debian";
    GuestMapBuilder disk = DataDisk();
    c.add(disk);
    EXPECT_EQ(Detected(db, disk), (std::set<std::string>{c.app})) << c.app << " on a data disk";
  }
  // By dpkg alone, with a glob.
  EXPECT_TRUE(Detected(db, DebianBase(DpkgStanza("postgresql-15", "install ok installed"))).count("postgresql"));
  EXPECT_TRUE(
      Detected(db, DebianBase(DpkgStanza("mysql-server-core-8.0", "install ok installed"))).count("mysql"));
  EXPECT_FALSE(
      Detected(db, DebianBase(DpkgStanza("mysql-server-core-8.0", "deinstall ok config-files"))).count("mysql"));
}

TEST(DetectApplications, EvidenceSaysWhatHeld) {
  SignatureDb db = SignatureDb::Load({kShipped});
  GuestMapBuilder b = DebianBase(DpkgStanza("nginx-light", "install ok installed", "1.22.1-9"));
  b.File("/usr/sbin/nginx")
      .File("/usr/lib/systemd/system/nginx.service")
      .Link("/etc/systemd/system/multi-user.target.wants/nginx.service", "/lib/systemd/system/nginx.service")
      .File("/usr/lib/systemd/system/mariadb.service");
  int reads = 0;
  std::vector<SignatureMatch> m = DetectApplications(db, b.Build(), b.Reader(&reads));
  EXPECT_EQ(reads, 1);  // the dpkg status, once for all signatures
  std::map<std::string, std::string> ev;
  for (const auto& s : m) ev[s.application] = s.evidence;
  EXPECT_EQ(ev["nginx"],
            "dpkg: nginx-light 1.22.1-9 installed; path /usr/sbin/nginx present; "
            "unit nginx.service enabled (multi-user.target.wants)");
  EXPECT_EQ(ev["mysql"], "unit mariadb.service present (/lib/systemd/system), not enabled");
  EXPECT_EQ(ev["linux-boot"], "linux: /sbin/init present");
  EXPECT_EQ(ev["package-manager"], "path /var/lib/dpkg/status present");  // no "dpkg" stanza in this status

  // Guest names are bytes: the evidence stays printable ASCII (it goes into CBOR text and JSON).
  GuestMapBuilder odd;
  odd.File("/boot/vmlinuz-\xff\x01");
  m = DetectApplications(db, odd.Build(), odd.Reader());
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].evidence, "linux: /boot/vmlinuz-?? present");
}

TEST(DetectApplications, AnUnreadableDpkgStatusIsIgnoredAndSaid) {
  SignatureDb db = SignatureDb::Load({kShipped});
  GuestMapBuilder b;
  b.File("/usr/sbin/mariadbd").Content("/var/lib/dpkg/status", "Package: nginx-core\n\x01\x02 garbage\n");
  std::vector<std::string> notes;
  int reads = 0;
  std::vector<SignatureMatch> m = DetectApplications(db, b.Build(), b.Reader(&reads), &notes);
  EXPECT_EQ(reads, 1);
  std::map<std::string, std::string> ev;
  for (const auto& s : m) ev[s.application] = s.evidence;
  EXPECT_EQ(ev.count("nginx"), 0u);
  ASSERT_EQ(ev.count("mysql"), 1u);
  EXPECT_NE(ev["mysql"].find("path /usr/sbin/mariadbd present; dpkg status unreadable: line 2"),
            std::string::npos)
      << ev["mysql"];
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("dpkg status unreadable"), std::string::npos);

  // A reader that fails is the same.
  GuestFileReader failing = [](const std::string&, size_t) -> Result<std::string> { return IoError("EIO"); };
  m = DetectApplications(db, b.Build(), failing);
  ASSERT_EQ(m.size(), 2u);  // mysql (by path), package-manager (by path)
  EXPECT_NE(m[0].evidence.find("dpkg status unreadable: EIO"), std::string::npos);
}

}  // namespace
}  // namespace affinity::profile
