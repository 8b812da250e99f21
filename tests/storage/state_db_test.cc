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

// The storage host dies between a write's pwrite and its AdoptWrite: after
// the restart the changed file keeps its generation (the destination that
// sent the write still holds it dirty and sends it again); an open intent is
// used once, and a later out-of-band change bumps as usual.
TEST(StateDb, AWriteInterruptedByACrashKeepsTheGeneration) {
  testing::TempDir dir;
  const std::string state = dir / "state";
  FileIdentity a{100, 5, 7}, b{100, 6, 7}, c{100, 7, 7};
  {
    auto db = StateDb::Open(state);
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
    ASSERT_TRUE((*db)->BeginWrite("vm", "x", a).ok());
    // ... pwrite happens, then the process dies: no AdoptWrite.
  }
  auto db = StateDb::Open(state);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*(*db)->Generation("vm", "x", b), 1u) << "the interrupted write's change is adopted";
  EXPECT_EQ(*(*db)->Generation("vm", "x", c), 2u) << "the intent was used once: an out-of-band change bumps";
  // A finished write closes its intent.
  ASSERT_TRUE((*db)->BeginWrite("vm", "x", c).ok());
  EXPECT_EQ(*(*db)->AdoptWrite("vm", "x", c, a), 2u);
  EXPECT_EQ(*(*db)->Generation("vm", "x", b), 3u);
}

// The crashed write's intent is still open when the sender's retry arrives
// (before any read): the retry's write adopts it, no bump.
TEST(StateDb, ARetriedWriteAfterACrashKeepsTheGeneration) {
  testing::TempDir dir;
  const std::string state = dir / "state";
  FileIdentity a{100, 5, 7}, b{100, 6, 7}, c{100, 7, 7};
  {
    auto db = StateDb::Open(state);
    ASSERT_TRUE(db.ok());
    EXPECT_EQ(*(*db)->Generation("vm", "x", a), 1u);
    ASSERT_TRUE((*db)->BeginWrite("vm", "x", a).ok());
  }
  auto db = StateDb::Open(state);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->BeginWrite("vm", "x", b).ok());  // the file is at b: the crashed write's change
  EXPECT_EQ(*(*db)->AdoptWrite("vm", "x", b, c), 1u);
  EXPECT_EQ(*(*db)->Generation("vm", "x", c), 1u);
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
