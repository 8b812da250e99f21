// LearnSignaturePaths: which guest paths a VM's starts read, attributed to
// applications, exactly (byte ranges, not 64 KiB blocks).
#include "profile/signature_learner.h"

#include <gtest/gtest.h>

namespace affinity::profile {
namespace {

constexpr uint64_t kKiB = 1024;

GuestFile File(std::string path, std::vector<ImageExtent> extents, GuestFileKind kind = GuestFileKind::kRegular) {
  GuestFile f;
  f.path = std::move(path);
  f.kind = kind;
  f.extents = std::move(extents);
  for (const auto& e : f.extents) f.size += e.length;
  return f;
}

// Three small files packed into one 64 KiB block, a daemon binary, a data file.
GuestFileMap Map() {
  GuestFileMap m;
  m.files = {
      File("<superblock>", {{1024, 1024}}, GuestFileKind::kMetadata),
      File("/etc", {{8 * kKiB, 4 * kKiB}}, GuestFileKind::kDirectory),
      File("/etc/a.conf", {{64 * kKiB, 4 * kKiB}}),
      File("/etc/b.conf", {{68 * kKiB, 4 * kKiB}}),
      File("/etc/c.conf", {{72 * kKiB, 4 * kKiB}}),
      File("/usr/sbin/nginx", {{1024 * kKiB, 512 * kKiB}, {4096 * kKiB, 256 * kKiB}}),
      File("/srv/data.bin", {{8192 * kKiB, 1024 * kKiB}}),
  };
  return m;
}

AccessRecord Read(uint64_t offset, uint64_t length, uint64_t t_ms, std::string image = "root.raw") {
  AccessRecord r;
  r.image = std::move(image);
  r.offset = offset;
  r.length = length;
  r.t_us = t_ms * 1000;
  return r;
}

SessionTrace Start(std::vector<AccessRecord> records, SessionKind kind = SessionKind::kStart) {
  SessionTrace s;
  s.kind = kind;
  s.records = std::move(records);
  return s;
}

std::string NginxOwner(const GuestFile& f) { return f.path == "/usr/sbin/nginx" ? "nginx" : ""; }

const LearnedPath* Find(const std::vector<LearnedPath>& learned, const std::string& path) {
  for (const auto& l : learned) {
    if (l.path == path) return &l;
  }
  return nullptr;
}

TEST(SignatureLearnerTest, AReadTeachesOnlyTheFilesItsBytesOverlapNotTheirBlockNeighbours) {
  std::vector<SessionTrace> sessions = {Start({Read(68 * kKiB, 4 * kKiB, 100)})};
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_EQ(learned[0].path, "/etc/b.conf");
  EXPECT_EQ(learned[0].application, kLinuxBootApplication);
  EXPECT_EQ(learned[0].phase, "boot");
  EXPECT_EQ(learned[0].first_ms, 100u);
  EXPECT_FLOAT_EQ(learned[0].support, 1.0f);
}

TEST(SignatureLearnerTest, OwnedFilesGoToTheirApplicationWithThePhaseOfTheirFirstRead) {
  std::vector<SessionTrace> sessions = {
      Start({Read(1024, 1024, 5), Read(4096 * kKiB + 8 * kKiB, 4 * kKiB, 20'000)}),
      Start({Read(4096 * kKiB, 4 * kKiB, 22'000), Read(0, 4 * kKiB, 3)}),
  };
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  const LearnedPath* nginx = Find(learned, "/usr/sbin/nginx");
  ASSERT_NE(nginx, nullptr);
  EXPECT_EQ(nginx->application, "nginx");
  EXPECT_EQ(nginx->phase, "service-start");
  EXPECT_EQ(nginx->first_ms, 22'000u);  // median of {20 s, 22 s}: the upper middle
  const LearnedPath* sb = Find(learned, "<superblock>");
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(sb->application, kLinuxBootApplication);
  EXPECT_FLOAT_EQ(sb->support, 1.0f);  // both starts read bytes of it (0..4 KiB overlaps 1 KiB..2 KiB)
}

TEST(SignatureLearnerTest, UnownedFilesReadAfterBootAreTheVmsOwnDataAndAreNotCarried) {
  std::vector<SessionTrace> sessions = {Start({Read(8192 * kKiB, 4 * kKiB, 90'000), Read(1024 * kKiB, 4 * kKiB, 95'000)})};
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_EQ(learned[0].path, "/usr/sbin/nginx");
  EXPECT_EQ(learned[0].phase, "steady");
}

TEST(SignatureLearnerTest, FilesReadByTooFewStartsAreNotTypicalAndArrivalsDoNotCount) {
  std::vector<SessionTrace> sessions = {
      Start({Read(64 * kKiB, 4 * kKiB, 10), Read(72 * kKiB, 4 * kKiB, 10)}),
      Start({Read(64 * kKiB, 4 * kKiB, 12)}),
      Start({Read(64 * kKiB, 4 * kKiB, 11)}),
      // An arrival reading c.conf at "1 s" says nothing about boot.
      Start({Read(72 * kKiB, 4 * kKiB, 1000), Read(72 * kKiB, 4 * kKiB, 1000)}, SessionKind::kArrival),
  };
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  ASSERT_EQ(learned.size(), 1u);
  EXPECT_EQ(learned[0].path, "/etc/a.conf");
  EXPECT_EQ(learned[0].first_ms, 11u);
}

TEST(SignatureLearnerTest, ReadsOfOtherImagesAndAHistoryWithoutStartsTeachNothing) {
  EXPECT_TRUE(LearnSignaturePaths({Start({Read(64 * kKiB, 4 * kKiB, 1, "data.raw")})}, "root.raw", Map(), NginxOwner)
                  .empty());
  EXPECT_TRUE(LearnSignaturePaths({Start({Read(64 * kKiB, 4 * kKiB, 1)}, SessionKind::kArrival)}, "root.raw", Map(),
                                  NginxOwner)
                  .empty());
}

TEST(SignatureLearnerTest, AReadSpanningSeveralFilesTeachesEachOfThem) {
  std::vector<SessionTrace> sessions = {Start({Read(60 * kKiB, 16 * kKiB, 7)})};
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  ASSERT_EQ(learned.size(), 3u);
  EXPECT_NE(Find(learned, "/etc/a.conf"), nullptr);
  EXPECT_NE(Find(learned, "/etc/b.conf"), nullptr);
  EXPECT_NE(Find(learned, "/etc/c.conf"), nullptr);
}

TEST(SignatureLearnerTest, WhatOfAFileWasReadIsKeptAsOffsetsIntoItsDataAndAWholeReadAsAll) {
  std::vector<SessionTrace> sessions = {
      Start({Read(4096 * kKiB + 8 * kKiB, 4 * kKiB, 10), Read(1024 * kKiB, 8 * kKiB, 11),
             Read(1024 * kKiB + 4 * kKiB, 8 * kKiB, 12), Read(64 * kKiB, 4 * kKiB, 13)}),
      Start({Read(4096 * kKiB + 100 * kKiB, 4 * kKiB, 10)}),
  };
  auto learned = LearnSignaturePaths(sessions, "root.raw", Map(), NginxOwner);
  const LearnedPath* nginx = Find(learned, "/usr/sbin/nginx");
  ASSERT_NE(nginx, nullptr);
  // Its second extent starts 512 KiB into its data; overlapping reads merge;
  // every start's reads count.
  EXPECT_EQ(nginx->ranges, (std::vector<FileRange>{{0, 12 * kKiB}, {520 * kKiB, 4 * kKiB}, {612 * kKiB, 4 * kKiB}}));
  const LearnedPath* conf = Find(learned, "/etc/a.conf");
  ASSERT_NE(conf, nullptr);
  EXPECT_TRUE(conf->ranges.empty()) << "all of it was read";
}

}  // namespace
}  // namespace affinity::profile
