// Image generations: the pure rule and its SQLite persistence.
#include "storage/state_db.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/sqlite.h"
#include "tests/support/test_env.h"

namespace affinity::storage {
namespace {

TEST(NextGeneration, FirstSightIsOneAndOnlyAChangedIdentityBumps) {
  FileIdentity a{100, 5, 7};
  EXPECT_EQ(NextGeneration(std::nullopt, a), 1u);
  EXPECT_EQ(NextGeneration(GenerationRecord{a, 4}, a), 4u);
  EXPECT_EQ(NextGeneration(GenerationRecord{a, 4}, FileIdentity{101, 5, 7}), 5u) << "size changed";
  EXPECT_EQ(NextGeneration(GenerationRecord{a, 4}, FileIdentity{100, 6, 7}), 5u) << "mtime changed";
  EXPECT_EQ(NextGeneration(GenerationRecord{a, 4}, FileIdentity{100, 5, 8}), 5u) << "inode changed";
}

TEST(StateDb, StartsAtOneBumpsOnChangeAndPersists) {
  testing::TempDir dir;
  const std::string state = dir / "state";  // created by Open
  FileIdentity a{100, 5, 7}, b{100, 6, 7};
  {
    auto db = StateDb::Open(state);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
    EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
    EXPECT_EQ(*(*db)->Generation("vm", "x", b), 2u);
    EXPECT_EQ(*(*db)->Generation("vm", "y", b), 1u) << "generations are per image";
    EXPECT_EQ(*(*db)->Generation("vm2", "x", b), 1u) << "and per VM";
  }
  auto reopened = StateDb::Open(state);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(*(*reopened)->Generation("vm", "x", b), 2u) << "survives a restart";
  EXPECT_EQ(*(*reopened)->Generation("vm", "x", a), 3u) << "changing back is a change too";
  EXPECT_EQ(*(*reopened)->Generation("vm", "x", a), 3u);

  // The table is what the protocol page says, in WAL mode.
  auto raw = SqliteDb::Open(state + "/state.sqlite");
  ASSERT_TRUE(raw.ok());
  auto mode = (*raw)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
  auto row =
      (*raw)->Prepare("SELECT size, mtime_ns, inode, generation FROM image_generations WHERE vm='vm' AND image='x'");
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(*row->Step());
  EXPECT_EQ(row->ColumnInt64(0), 100);
  EXPECT_EQ(row->ColumnInt64(1), 5);
  EXPECT_EQ(row->ColumnInt64(2), 7);
  EXPECT_EQ(row->ColumnInt64(3), 3);
}

TEST(StateDb, RefusesAStatePathThatIsAFile) {
  testing::TempDir dir;
  testing::WriteRandomFile(dir / "file", 10, 1);
  auto db = StateDb::Open(dir / "file");
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("file"), std::string::npos) << db.status().ToString();
}

}  // namespace
}  // namespace affinity::storage
