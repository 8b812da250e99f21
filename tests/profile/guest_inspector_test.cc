// The guest inspector on images made at test time with e2fsprogs, sfdisk and
// qemu-img: the file -> image extent map must be exact (the image bytes at
// the reported extents are the source file's bytes, and match debugfs), for
// raw whole-disk, MBR, GPT, qcow2 and compressed qcow2 images; hostile and
// foreign images give clean errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "profile/guest_disk.h"
#include "profile/guest_file_map_codec.h"
#include "profile/guest_inspector.h"
#include "profile/trace_attribution.h"
#include "tests/support/test_env.h"

namespace affinity::profile {
namespace {

using affinity::testing::ReadWholeFile;
using affinity::testing::TempDir;
using affinity::testing::WriteRandomFile;
namespace fs = std::filesystem;

// Runs a shell command; returns its stdout+stderr, or fails the test.
std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    ADD_FAILURE() << "popen " << command;
    return out;
  }
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << command << "\n" << out;
  return out;
}

std::string ReadAt(const std::string& path, uint64_t offset, uint64_t length) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::string s(length, '\0');
  in.read(s.data(), static_cast<std::streamsize>(length));
  EXPECT_EQ(static_cast<uint64_t>(in.gcount()), length) << path << " @" << offset;
  return s;
}

void Patch(const std::string& path, uint64_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string Be64(uint64_t v) { return Be32(static_cast<uint32_t>(v >> 32)) + Be32(static_cast<uint32_t>(v)); }

const std::string kSlowTarget = "/usr/lib/" + std::string(150, 'x') + "/target";

// A small tree with known contents: files spanning many blocks, an empty
// one, fast and slow symlinks, a hard link, nested directories.
void MakeTree(const std::string& src) {
  fs::create_directories(src + "/etc");
  fs::create_directories(src + "/usr/bin");
  fs::create_directories(src + "/var/lib/dpkg");
  fs::create_directories(src + "/a/b/c");
  std::ofstream(src + "/etc/hostname") << "guest-1\n";
  std::ofstream(src + "/var/lib/dpkg/status") << "Package: bash\nStatus: install ok installed\n";
  std::ofstream(src + "/empty");
  WriteRandomFile(src + "/usr/bin/big", 700'001, 1);
  WriteRandomFile(src + "/usr/bin/small", 5000, 2);
  WriteRandomFile(src + "/a/b/c/deep", 70'000, 3);
  fs::create_symlink("../etc/hostname", src + "/fast-link");
  fs::create_symlink(kSlowTarget, src + "/slow-link");
  fs::create_hard_link(src + "/usr/bin/small", src + "/usr/bin/small-again");
}

std::string MakeFs(const std::string& dir, const std::string& type, const std::string& name = "fs.img",
                   const std::string& size = "16M") {
  const std::string src = dir + "/src";
  if (!fs::exists(src)) MakeTree(src);
  const std::string img = dir + "/" + name;
  Shell("mke2fs -q -F -t " + type + " -d " + src + " -b 4096 " + img + " " + size);
  return img;
}

const GuestFile* Find(const GuestFileMap& map, const std::string& path) {
  for (const auto& f : map.files) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

// The bytes of the image at `extents`, concatenated.
std::string Gather(const std::string& image, const std::vector<ImageExtent>& extents) {
  std::string s;
  for (const auto& e : extents) s += ReadAt(image, e.offset, e.length);
  return s;
}

// Every regular file of `src` is in the map, and its extents in `image` hold its contents.
void ExpectExactExtents(const GuestFileMap& map, const std::string& image, const std::string& src,
                        int min_files = 6) {
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (!entry.is_regular_file() || entry.is_symlink()) continue;
    const std::string path = "/" + fs::relative(entry.path(), src).string();
    const GuestFile* f = Find(map, path);
    ASSERT_NE(f, nullptr) << path;
    const std::string want = ReadWholeFile(entry.path());
    EXPECT_EQ(f->kind, GuestFileKind::kRegular) << path;
    EXPECT_EQ(f->size, want.size()) << path;
    const std::string got = Gather(image, f->extents);
    // Whole blocks: the tail of the last one is padding.
    const uint64_t bs = map.block_size;
    EXPECT_EQ(got.size(), (want.size() + bs - 1) / bs * bs) << path;
    EXPECT_TRUE(got.substr(0, want.size()) == want) << path << ": the image bytes at its extents differ";
    EXPECT_GT(f->inode.length, 0u) << path;
    ++checked;
  }
  EXPECT_GE(checked, min_files);
}

Result<GuestFileMap> Inspect(const std::string& image, const InspectOptions& options = {}) {
  return InspectImage(image, options);
}

void ExpectError(const std::string& image, StatusCode code, const std::string& text) {
  auto map = Inspect(image);
  ASSERT_FALSE(map.ok()) << image << " was inspected";
  EXPECT_EQ(map.status().code(), code) << map.status().ToString();
  EXPECT_NE(map.status().message().find(text), std::string::npos) << map.status().ToString();
}

TEST(GuestInspectorTest, Ext4WholeDiskExtentsAreExactAndMatchDebugfs) {
  TempDir dir;
  const std::string img = MakeFs(dir.path(), "ext4");
  auto map = Inspect(img);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->container, "raw");
  EXPECT_EQ(map->partition, "whole-disk");
  EXPECT_EQ(map->filesystem, "ext4");
  EXPECT_EQ(map->block_size, 4096u);
  EXPECT_EQ(map->image_size, 16u << 20);
  ExpectExactExtents(*map, img, dir / "src");
  EXPECT_TRUE(std::is_sorted(map->files.begin(), map->files.end(),
                             [](const GuestFile& a, const GuestFile& b) { return a.path < b.path; }));

  // debugfs agrees on the blocks: "(0-170):1295-1465" -> one extent at 1295 * 4096.
  // (std::regex would do, but GCC 12's <regex> trips -Wmaybe-uninitialized under ASan.)
  const std::string stat = Shell("debugfs -R 'stat /usr/bin/big' " + img);
  unsigned long long last = 0, first_block = 0, last_block = 0;
  const size_t at = stat.find("(0-");
  ASSERT_NE(at, std::string::npos) << stat;
  ASSERT_EQ(std::sscanf(stat.c_str() + at, "(0-%llu):%llu-%llu", &last, &first_block, &last_block), 3) << stat;
  const GuestFile* big = Find(*map, "/usr/bin/big");
  ASSERT_EQ(big->extents.size(), 1u);
  EXPECT_EQ(big->extents[0].offset, first_block * 4096);
  EXPECT_EQ(big->extents[0].length, (last + 1) * 4096);

  // And on where the inode of a directory is: "located at block 37, offset 0x0b00".
  const std::string imap = Shell("debugfs -R 'imap /usr/bin' " + img);
  unsigned long long table_block = 0, in_block = 0;
  const size_t located = imap.find("located at block ");
  ASSERT_NE(located, std::string::npos) << imap;
  ASSERT_EQ(std::sscanf(imap.c_str() + located, "located at block %llu, offset 0x%llx", &table_block, &in_block), 2)
      << imap;
  const GuestFile* bin = Find(*map, "/usr/bin");
  ASSERT_NE(bin, nullptr);
  EXPECT_EQ(bin->kind, GuestFileKind::kDirectory);
  EXPECT_EQ(bin->inode.offset, table_block * 4096 + in_block);
  EXPECT_EQ(bin->inode.length, 256u);
  ASSERT_EQ(bin->extents.size(), 1u);  // its one directory block holds the names
  EXPECT_NE(ReadAt(img, bin->extents[0].offset, 4096).find("small-again"), std::string::npos);

  // Metadata: the superblock's magic, and group descriptors in block 1.
  const GuestFile* sb = Find(*map, "<superblock>");
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(sb->extents, (std::vector<ImageExtent>{{1024, 1024}}));
  EXPECT_EQ(ReadAt(img, 1024 + 56, 2), "\x53\xef");
  const GuestFile* gd = Find(*map, "<group-descriptors>");
  ASSERT_NE(gd, nullptr);
  EXPECT_EQ(gd->extents, (std::vector<ImageExtent>{{4096, 4096}}));
  const GuestFile* journal = Find(*map, "<journal>");
  ASSERT_NE(journal, nullptr);
  ASSERT_EQ(journal->extents.size(), 1u);
  EXPECT_EQ(ReadAt(img, journal->extents[0].offset, 4), "\xc0\x3b\x39\x98");  // JBD2 magic
}

TEST(GuestInspectorTest, SymlinksHardLinksAndEmptyFiles) {
  TempDir dir;
  const std::string img = MakeFs(dir.path(), "ext4");
  auto map = Inspect(img);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  const GuestFile* fast = Find(*map, "/fast-link");
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->kind, GuestFileKind::kSymlink);
  EXPECT_EQ(fast->link_target, "../etc/hostname");
  EXPECT_TRUE(fast->extents.empty());  // the target is in the inode
  const GuestFile* slow = Find(*map, "/slow-link");
  ASSERT_NE(slow, nullptr);
  EXPECT_EQ(slow->link_target, kSlowTarget);
  ASSERT_EQ(slow->extents.size(), 1u);
  EXPECT_EQ(ReadAt(img, slow->extents[0].offset, kSlowTarget.size()), kSlowTarget);
  const GuestFile* a = Find(*map, "/usr/bin/small");
  const GuestFile* b = Find(*map, "/usr/bin/small-again");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->extents, b->extents);
  EXPECT_EQ(a->inode, b->inode);
  const GuestFile* empty = Find(*map, "/empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->size, 0u);
  EXPECT_TRUE(empty->extents.empty());
  ASSERT_NE(Find(*map, "/"), nullptr);
  EXPECT_EQ(Find(*map, "/")->kind, GuestFileKind::kDirectory);
}

TEST(GuestInspectorTest, Ext2AndExt3BlockMappedFilesAreExact) {
  for (const std::string type : {"ext2", "ext3"}) {
    TempDir dir;
    const std::string img = MakeFs(dir.path(), type);
    auto map = Inspect(img);
    ASSERT_TRUE(map.ok()) << type << ": " << map.status().ToString();
    EXPECT_EQ(map->filesystem, type);
    ExpectExactExtents(*map, img, dir / "src");
    EXPECT_EQ(Find(*map, "<journal>") != nullptr, type == "ext3");
    // 700001 bytes = 171 blocks: past the 12 direct ones, so the indirect block is walked.
    EXPECT_EQ(Find(*map, "/usr/bin/big")->size, 700'001u);
  }
}

TEST(GuestInspectorTest, MbrPartitionOffsetsAreIncluded) {
  TempDir dir;
  const std::string fsimg = MakeFs(dir.path(), "ext4", "fs.img", "16M");
  const std::string img = dir / "disk.img";
  Shell("truncate -s 24M " + img);
  // Partition 1 is Linux but empty, partition 2 holds the file system at 4 MiB.
  Shell("printf 'start=2048, size=4096, type=83\\nstart=8192, size=32768, type=83\\n' | sfdisk -q " + img);
  Shell("dd if=" + fsimg + " of=" + img + " bs=1M seek=4 conv=notrunc status=none");
  auto map = Inspect(img);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->partition, "mbr:2");
  ExpectExactExtents(*map, img, dir / "src");
  EXPECT_EQ(Find(*map, "<superblock>")->extents, (std::vector<ImageExtent>{{(4 << 20) + 1024, 1024}}));
  auto content = ReadGuestFile(img, *Find(*map, "/var/lib/dpkg/status"), 1 << 20);
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(*content, "Package: bash\nStatus: install ok installed\n");
}

TEST(GuestInspectorTest, GptPicksTheFirstPartitionHoldingExt) {
  TempDir dir;
  const std::string fsimg = MakeFs(dir.path(), "ext4", "fs.img", "16M");
  const std::string img = dir / "disk.img";
  Shell("truncate -s 24M " + img);
  Shell("printf 'label: gpt\\nstart=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n"
      "start=8192, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n' | sfdisk -q " +
      img);
  Shell("dd if=" + fsimg + " of=" + img + " bs=1M seek=4 conv=notrunc status=none");
  auto map = Inspect(img);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->partition, "gpt:2");
  ExpectExactExtents(*map, img, dir / "src");

  // Without the file system: what each partition holds instead.
  Shell("dd if=/dev/zero of=" + img + " bs=1M seek=4 count=16 conv=notrunc status=none");
  ExpectError(img, StatusCode::kFailedPrecondition, "gpt partition 1 holds no ext2/3/4 file system (all zeros");
  ExpectError(img, StatusCode::kFailedPrecondition, "gpt partition 2 holds no ext2/3/4 file system");
  // A damaged GPT table is named.
  Patch(img, 1024, "garbage");
  ExpectError(img, StatusCode::kCorruption, "gpt: partition entries CRC32 mismatch");
}

TEST(GuestInspectorTest, Qcow2ExtentsPointIntoTheQcow2File) {
  TempDir dir;
  const std::string raw = MakeFs(dir.path(), "ext4");
  const std::string q = dir / "fs.qcow2";
  Shell("qemu-img convert -f raw -O qcow2 " + raw + " " + q);
  auto map = Inspect(q);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->container, "qcow2");
  EXPECT_EQ(map->image_size, fs::file_size(q));
  ExpectExactExtents(*map, q, dir / "src");
  // The same files as the raw image, at other offsets.
  auto raw_map = Inspect(raw);
  ASSERT_TRUE(raw_map.ok());
  ASSERT_EQ(map->files.size(), raw_map->files.size());
  for (size_t i = 0; i < map->files.size(); ++i) EXPECT_EQ(map->files[i].path, raw_map->files[i].path);
  const GuestFile* sb = Find(*map, "<superblock>");
  ASSERT_EQ(sb->extents.size(), 1u);
  EXPECT_EQ(ReadAt(q, sb->extents[0].offset + 56, 2), "\x53\xef");
  // Reads resolve clusters the same way.
  auto inspector = GuestInspector::Open(q);
  ASSERT_TRUE(inspector.ok());
  auto big = (*inspector)->ReadFile("/usr/bin/big", 1 << 20);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_TRUE(*big == ReadWholeFile(dir / "src/usr/bin/big"));
  auto head = (*inspector)->ReadFile("/fast-link", 5);  // followed to /etc/hostname
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(*head, "guest");
  EXPECT_EQ((*inspector)->ReadFile("/nope", 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*inspector)->ReadFile("/usr", 10).status().code(), StatusCode::kInvalidArgument);
}

TEST(GuestInspectorTest, CompressedQcow2ClustersAreOmittedButReadable) {
  TempDir dir;
  const std::string raw = MakeFs(dir.path(), "ext4");
  for (const std::string type : {"zlib", "zstd"}) {
    const std::string q = dir / ("fs-" + type + ".qcow2");
    Shell("qemu-img convert -c -f raw -O qcow2 -o compression_type=" + type + " " + raw + " " + q);
    auto map = Inspect(q);
    ASSERT_TRUE(map.ok()) << type << ": " << map.status().ToString();
    // Random data does not compress: qemu stores those clusters plainly and
    // they are mapped (each extent holds block-aligned bytes of the file);
    // the compressed ones (the file's last, zero-padded cluster) are left out.
    const GuestFile* big = Find(*map, "/usr/bin/big");
    ASSERT_NE(big, nullptr);
    const std::string source = ReadWholeFile(dir / "src/usr/bin/big");
    uint64_t mapped = 0;
    for (const auto& e : big->extents) {
      const size_t at = source.find(ReadAt(q, e.offset, std::min<uint64_t>(e.length, 4096)));
      EXPECT_TRUE(at != std::string::npos && at % 4096 == 0) << type << " extent @" << e.offset;
      mapped += e.length;
    }
    EXPECT_GT(mapped, 0u);
    EXPECT_LT(mapped, source.size());
    auto whole = ReadGuestFile(q, *big, 1 << 20);
    ASSERT_TRUE(whole.ok()) << whole.status().ToString();
    EXPECT_TRUE(*whole == source) << type;
    const GuestFile* hostname = Find(*map, "/etc/hostname");
    ASSERT_NE(hostname, nullptr);
    EXPECT_TRUE(hostname->extents.empty()) << type;  // "guest-1\n" + zeros compresses
    auto content = ReadGuestFile(q, *hostname, 100);
    ASSERT_TRUE(content.ok()) << content.status().ToString();
    EXPECT_EQ(*content, "guest-1\n");
  }
}

TEST(GuestInspectorTest, Qcow2WithBackingFileIsNotInspectable) {
  TempDir dir;
  const std::string raw = MakeFs(dir.path(), "ext4");
  const std::string q = dir / "overlay.qcow2";
  Shell("qemu-img create -q -f qcow2 -b " + raw + " -F raw " + q);
  ExpectError(q, StatusCode::kFailedPrecondition, "backing file");
}

TEST(GuestInspectorTest, HostileQcow2HeadersAreRefused) {
  TempDir dir;
  const std::string raw = MakeFs(dir.path(), "ext4");
  const std::string base = dir / "base.qcow2";
  Shell("qemu-img convert -f raw -O qcow2 " + raw + " " + base);
  struct Case {
    uint64_t offset;
    std::string bytes;
    StatusCode code;
    std::string text;
  } cases[] = {
      {40, Be64(1ULL << 40), StatusCode::kCorruption, "L1 table"},             // L1 beyond EOF
      {36, Be32(0xFFFFFFFF), StatusCode::kCorruption, "l1_size"},              // huge L1
      {36, Be32(0), StatusCode::kCorruption, "too small for the virtual size"},  // no L1
      {20, Be32(30), StatusCode::kCorruption, "cluster_bits 30"},
      {24, Be64(~0ULL), StatusCode::kCorruption, "l1_size"},  // an absurd virtual size
      {32, Be32(1), StatusCode::kFailedPrecondition, "encrypted"},
      {72, Be64(1ULL << 4), StatusCode::kFailedPrecondition, "extended L2"},
      {72, Be64(1ULL << 2), StatusCode::kFailedPrecondition, "external data file"},
      {72, Be64(1ULL << 9), StatusCode::kFailedPrecondition, "unknown incompatible features 0x200"},
      {4, Be32(7), StatusCode::kFailedPrecondition, "version 7"},
  };
  for (const auto& c : cases) {
    const std::string q = dir / "hostile.qcow2";
    fs::copy_file(base, q, fs::copy_options::overwrite_existing);
    Patch(q, c.offset, c.bytes);
    SCOPED_TRACE(c.text);
    ExpectError(q, c.code, c.text);
  }
  // An L2 table pointer past the end of the file.
  const std::string q = dir / "hostile.qcow2";
  fs::copy_file(base, q, fs::copy_options::overwrite_existing);
  const std::string header = ReadAt(q, 40, 8);
  uint64_t l1 = 0;
  for (char ch : header) l1 = (l1 << 8) | static_cast<uint8_t>(ch);
  Patch(q, l1, Be64((1ULL << 63) | (1ULL << 40)));
  ExpectError(q, StatusCode::kCorruption, "L1 entry 0");
  // A truncated qcow2: the data clusters are gone.
  fs::copy_file(base, q, fs::copy_options::overwrite_existing);
  fs::resize_file(q, 4 * 65536);
  ExpectError(q, StatusCode::kCorruption, "");
}

TEST(GuestInspectorTest, HostileAndForeignRawImagesGiveCleanErrors) {
  TempDir dir;
  const std::string img = MakeFs(dir.path(), "ext4");
  const std::string t = dir / "t.img";
  auto fresh = [&] { fs::copy_file(img, t, fs::copy_options::overwrite_existing); };

  fresh();
  Patch(t, 1080, std::string("\0\0", 2));  // the superblock magic
  ExpectError(t, StatusCode::kFailedPrecondition, "not inspectable: the disk has no partition table and holds no ext2/3/4");

  fresh();
  fs::resize_file(t, 8 << 20);
  ExpectError(t, StatusCode::kCorruption, "truncated");

  fresh();
  Shell("debugfs -w -R 'ssv inodes_count 4000000000' " + t);
  ExpectError(t, StatusCode::kCorruption, "");

  fresh();
  Patch(t, 1024 + 24, std::string("\x30\0\0\0", 4));  // s_log_block_size 48
  ExpectError(t, StatusCode::kCorruption, "");

  fresh();
  Patch(t, 0, "XFSB");
  Patch(t, 1080, std::string("\0\0", 2));
  ExpectError(t, StatusCode::kFailedPrecondition, "(XFS)");

  WriteRandomFile(t, 1 << 20, 9);
  ExpectError(t, StatusCode::kFailedPrecondition, "not inspectable");

  fs::resize_file(t, 0);
  ExpectError(t, StatusCode::kFailedPrecondition, "not inspectable");

  ExpectError(dir / "missing.img", StatusCode::kNotFound, "missing.img");
}

TEST(GuestInspectorTest, StaleMetadataChecksumsAreTolerated) {
  TempDir dir;
  // A small tree whose walk reads /bin's inode again (to list it) after
  // /etc/hostname's failing checksum: libext2fs 1.47.0 then returned
  // hostname's inode for /bin ("not a directory") unless its inode cache is
  // flushed (see Walker::ReadInode).
  const std::string src = dir / "src";
  fs::create_directories(src + "/bin");
  fs::create_directories(src + "/etc");
  std::ofstream(src + "/etc/hostname") << "guest-1\n";
  WriteRandomFile(src + "/bin/x", 3000, 4);
  fs::create_symlink("etc/hostname", src + "/l");
  const std::string img = MakeFs(dir.path(), "ext4");
  auto before = Inspect(img);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  Shell("debugfs -w -R 'sif /etc/hostname checksum 0x1234' " + img);
  auto after = Inspect(img);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(*after == *before);
  ExpectExactExtents(*after, img, src, 2);
  auto content = ReadGuestFile(img, *Find(*after, "/etc/hostname"), 100);
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(*content, "guest-1\n");
}

TEST(GuestInspectorTest, LoopingDirectoriesAreEnteredOnce) {
  TempDir dir;
  const std::string img = MakeFs(dir.path(), "ext4");
  Shell("debugfs -w -R 'link /a /a/b/c/loop' " + img);
  Shell("debugfs -w -R 'link / /a/root' " + img);
  auto map = Inspect(img);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_NE(Find(*map, "/a/b/c/deep"), nullptr);
  EXPECT_EQ(Find(*map, "/a/b/c/loop"), nullptr);
  EXPECT_EQ(Find(*map, "/a/root"), nullptr);
}

TEST(GuestInspectorTest, LimitsAreEnforced) {
  TempDir dir;
  const std::string img = MakeFs(dir.path(), "ext4");
  auto few = Inspect(img, {.max_files = 5});
  ASSERT_FALSE(few.ok());
  EXPECT_EQ(few.status().code(), StatusCode::kCorruption);
  EXPECT_NE(few.status().message().find("over 5 entries (limit)"), std::string::npos) << few.status().ToString();
  auto six = Inspect(img, {.max_files = 9});  // "/" has 6 entries; the files beyond are over the limit
  ASSERT_FALSE(six.ok());
  EXPECT_NE(six.status().message().find("over 9 files (limit)"), std::string::npos) << six.status().ToString();
  auto shallow = Inspect(img, {.max_depth = 2});
  ASSERT_FALSE(shallow.ok());
  EXPECT_NE(shallow.status().message().find("directories nested over 2 deep (limit)"), std::string::npos)
      << shallow.status().ToString();
}

TEST(GuestFileMapCodecTest, RoundTripsARealMapAndArbitraryNames) {
  TempDir dir;
  auto map = Inspect(MakeFs(dir.path(), "ext4"));
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  map->files.push_back({.path = "/\xff\xfe-not-utf8", .kind = GuestFileKind::kSymlink, .link_target = "\x80"});
  std::sort(map->files.begin(), map->files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  auto back = DecodeGuestFileMap(EncodeGuestFileMap(*map));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == *map);
  EXPECT_EQ(back->files.size(), map->files.size());
}

TEST(GuestFileMapCodecTest, MalformedMapsAreRefusedNamingTheField) {
  GuestFileMap good{.container = "raw", .partition = "gpt:2", .filesystem = "ext4", .image_size = 1 << 20,
                    .block_size = 4096};
  good.files = {{.path = "/a", .extents = {{0, 4096}}}, {.path = "/b", .inode = {8192, 256}}};
  ASSERT_TRUE(DecodeGuestFileMap(EncodeGuestFileMap(good)).ok());
  auto expect = [](GuestFileMap m, const std::string& text) {
    auto r = DecodeGuestFileMap(EncodeGuestFileMap(m));
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
    EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().ToString();
  };
  GuestFileMap m = good;
  m.files[0].extents[0].offset = 1 << 20;
  expect(m, "files[0].extents[0]");
  m = good;
  m.files[1].inode.length = 2 << 20;
  expect(m, "files[1].inode");
  m = good;
  std::swap(m.files[0], m.files[1]);
  expect(m, "files[1].path");
  m = good;
  m.container = "vmdk";
  expect(m, "container");
  m = good;
  m.partition = "mbr:0";
  expect(m, "partition");
  m = good;
  m.block_size = 3000;
  expect(m, "block_size");
  m = good;
  m.files[0].kind = static_cast<GuestFileKind>(9);
  expect(m, "files[0].kind");
  EXPECT_FALSE(DecodeGuestFileMap("").ok());
  EXPECT_FALSE(DecodeGuestFileMap("not zstd at all").ok());
}

TEST(TraceAttributionTest, ReadsCountForTheFilesTheyFallInByFirstRead) {
  GuestFileMap map{.block_size = 4096};
  map.files = {
      {.path = "/a", .inode = {100, 256}, .extents = {{4096, 8192}, {40960, 4096}}},
      {.path = "/a-link", .inode = {100, 256}, .extents = {{4096, 8192}, {40960, 4096}}},  // a hard link
      {.path = "/b", .inode = {356, 256}, .extents = {{16384, 4096}}},
      {.path = "<superblock>", .kind = GuestFileKind::kMetadata, .extents = {{1024, 1024}}},
  };
  const std::vector<TraceRecord> trace = {
      {0.1, 0, 4096, false},       // superblock (1024) + inodes (512) + free (2560)
      {0.2, 16384, 4096, false},   // /b
      {0.3, 8192, 12288, false},   // /a's tail (4096), free (4096), /b (4096)
      {0.4, 40960, 4096, true},    // a write: ignored
      {0.5, 40960, 4096, false},   // /a again
      {9.0, 16384, 4096, false},   // outside the window
  };
  const TraceAttribution a = AttributeTrace(map, trace, 5.0);
  EXPECT_EQ(a.reads, 4u);
  EXPECT_EQ(a.read_bytes, 4096u * 6);
  ASSERT_EQ(a.files.size(), 2u);
  EXPECT_EQ(a.files[0].path, "/b");
  EXPECT_DOUBLE_EQ(a.files[0].first_read_s, 0.2);
  EXPECT_EQ(a.files[0].bytes, 8192u);
  EXPECT_EQ(a.files[0].reads, 2u);
  EXPECT_EQ(a.files[1].path, "/a");
  EXPECT_DOUBLE_EQ(a.files[1].first_read_s, 0.3);
  EXPECT_EQ(a.files[1].bytes, 8192u);
  EXPECT_EQ(a.unattributed_bytes, 4096u + 4096u);
  EXPECT_EQ(a.metadata_bytes, 1024u + 512u);
  EXPECT_EQ(AttributeTrace(map, trace, -1).files[0].bytes, 3 * 4096u);  // the whole trace
}

}  // namespace
}  // namespace affinity::profile
