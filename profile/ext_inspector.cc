#include "profile/ext_inspector.h"

// ext2fs.h brings com_err (error_message) with C linkage; et/com_err.h alone would not.
#include <ext2fs/ext2fs.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "profile/byte_order.h"
#include "profile/guest_io_manager.h"

namespace affinity::profile {
namespace {

// ext3 is ext2 plus a journal; any feature beyond these makes it ext4 (as blkid decides).
constexpr uint32_t kExt3Incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_RECOVER |
                                   EXT2_FEATURE_INCOMPAT_META_BG | EXT3_FEATURE_INCOMPAT_JOURNAL_DEV;
constexpr uint32_t kRoCompatBtreeDir = 0x0004;  // never implemented; no longer named by ext2fs.h
constexpr uint32_t kExt3RoCompat =
    EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE | kRoCompatBtreeDir;

std::string FileSystemType(const ext2_super_block* sb) {
  if ((sb->s_feature_incompat & ~kExt3Incompat) != 0 || (sb->s_feature_ro_compat & ~kExt3RoCompat) != 0) return "ext4";
  return (sb->s_feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL) ? "ext3" : "ext2";
}

std::string Join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

// The superblock's size claims against the partition (ext4 disk layout: s_blocks_count_lo at 4,
// s_log_block_size at 24, s_feature_incompat at 0x60, s_blocks_count_hi at 0x150).
Status CheckSize(GuestDisk* disk) {
  uint8_t sb[SUPERBLOCK_SIZE];
  const GuestPartition& part = disk->partition();
  if (part.size < SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE) return Corruption(part.name + " is too small for an ext superblock");
  if (Status s = disk->ReadGuest(part.offset + SUPERBLOCK_OFFSET, sb, sizeof sb); !s.ok()) return s;
  const uint32_t log_block_size = LoadLe<uint32_t>(sb + 24);
  if (log_block_size > 6) {
    return Corruption("ext superblock on " + part.name + ": s_log_block_size " + std::to_string(log_block_size) +
                      " (block size over 64 KiB)");
  }
  uint64_t blocks = LoadLe<uint32_t>(sb + 4);
  if (LoadLe<uint32_t>(sb + 0x60) & EXT4_FEATURE_INCOMPAT_64BIT) blocks |= uint64_t{LoadLe<uint32_t>(sb + 0x150)} << 32;
  const uint64_t block_size = uint64_t{1024} << log_block_size;
  if (blocks > part.size / block_size) {
    return Corruption("the ext file system on " + part.name + " claims " + std::to_string(blocks) + " blocks of " +
                      std::to_string(block_size) + " bytes but its partition holds " + std::to_string(part.size) +
                      " bytes (a truncated image?)");
  }
  return Status::Ok();
}

}  // namespace

// The state of one Walk: budgets, visited directories, per-inode results of hard links.
class ExtInspector::Walker {
 public:
  Walker(ExtInspector* self, const InspectOptions& options, std::vector<GuestFile>* out)
      : self_(self),
        fs_(self->fs_),
        options_(options),
        out_(out),
        deadline_(std::chrono::steady_clock::now() + options.max_time),
        block_budget_(ext2fs_blocks_count(self->fs_->super)) {}

  Status Run();

 private:
  struct Entry {
    std::string name;
    ext2_ino_t ino;
  };
  struct Pending {
    ext2_ino_t ino;
    std::string path;
    uint32_t depth;
    bool stale;  // its inode checksum fails (see ReadInode)
  };

  Status Metadata();
  // Lists `ino` at `path`; pushes directories not entered yet.
  Status Visit(ext2_ino_t ino, const std::string& path, uint32_t depth);
  Status ReadInode(ext2_ino_t ino, const std::string& path, ext2_inode* inode, bool* stale);
  Status Describe(ext2_ino_t ino, const ext2_inode& inode, GuestFile* file);
  Status InodeExtent(ext2_ino_t ino, ImageExtent* out);
  Status DataExtents(ext2_ino_t ino, ext2_inode* inode, std::vector<ImageExtent>* out);
  Status AddBlocks(ext2_ino_t ino, blk64_t first, uint64_t count, std::vector<ImageExtent>* out);
  Status SymlinkTarget(ext2_ino_t ino, ext2_inode* inode, std::string* target);
  Status CheckTime();

  ExtInspector* self_;
  ext2_filsys fs_;
  const InspectOptions& options_;
  std::vector<GuestFile>* out_;
  std::chrono::steady_clock::time_point deadline_;
  uint64_t block_budget_;  // data blocks all files may still claim
  uint64_t listed_ = 0;
  std::vector<Pending> stack_;
  std::unordered_set<ext2_ino_t> entered_;
  std::unordered_map<ext2_ino_t, size_t> linked_;  // inode with several links -> its first entry in out_
};

Status ExtInspector::Walker::CheckTime() {
  if (std::chrono::steady_clock::now() > deadline_) {
    return Corruption("inspection took over " + std::to_string(options_.max_time.count()) + " s (limit)");
  }
  return Status::Ok();
}

Status ExtInspector::Walker::Run() {
  if (Status s = Metadata(); !s.ok()) return s;
  if (Status s = Visit(EXT2_ROOT_INO, "/", 0); !s.ok()) return s;  // pushes "/"
  while (!stack_.empty()) {
    Pending dir = std::move(stack_.back());
    stack_.pop_back();
    if (Status s = CheckTime(); !s.ok()) return s;
    std::vector<Entry> entries;
    struct Ctx {
      std::vector<Entry>* entries;
      uint64_t limit;
    } ctx{&entries, options_.max_files};
    auto collect = [](ext2_ino_t, int entry, ext2_dir_entry* dirent, int, int, char*, void* priv) -> int {
      auto* c = static_cast<Ctx*>(priv);
      if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE) return 0;
      std::string name(dirent->name, static_cast<size_t>(ext2fs_dirent_name_len(dirent)));
      // A hostile directory could hold "." again, or a name with '/' or NUL: not a path component.
      if (name.empty() || name == "." || name == ".." || name.find_first_of(std::string("/\0", 2)) != std::string::npos) {
        return 0;
      }
      c->entries->push_back({std::move(name), dirent->inode});
      return c->entries->size() > c->limit ? DIRENT_ABORT : 0;
    };
    const errcode_t err = ext2fs_dir_iterate2(fs_, dir.ino, 0, nullptr, collect, &ctx);
    if (dir.stale) ext2fs_flush_icache(fs_);
    if (err) return self_->Error(err, "directory " + dir.path + " (inode " + std::to_string(dir.ino) + ")");
    if (entries.size() > options_.max_files) {
      return Corruption("directory " + dir.path + " has over " + std::to_string(options_.max_files) + " entries (limit)");
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    for (const Entry& e : entries) {
      if (Status s = Visit(e.ino, Join(dir.path, e.name), dir.depth + 1); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

Status ExtInspector::Walker::Visit(ext2_ino_t ino, const std::string& path, uint32_t depth) {
  if (ino < EXT2_ROOT_INO || ino > fs_->super->s_inodes_count) {
    return Corruption(path + ": inode " + std::to_string(ino) + " outside 2.." + std::to_string(fs_->super->s_inodes_count));
  }
  if (++listed_ > options_.max_files) {
    return Corruption("over " + std::to_string(options_.max_files) + " files (limit) at " + path);
  }
  ext2_inode inode{};
  bool stale = false;
  if (Status s = ReadInode(ino, path, &inode, &stale); !s.ok()) return s;
  const bool dir = LINUX_S_ISDIR(inode.i_mode);
  if (dir) {
    if (!entered_.insert(ino).second) return Status::Ok();  // a loop or a hard-linked directory
    if (depth > options_.max_depth) {
      return Corruption(path + ": directories nested over " + std::to_string(options_.max_depth) + " deep (limit)");
    }
  } else if (!LINUX_S_ISREG(inode.i_mode) && !LINUX_S_ISLNK(inode.i_mode)) {
    return Status::Ok();
  }
  if (!dir && inode.i_links_count > 1) {
    if (auto it = linked_.find(ino); it != linked_.end()) {
      GuestFile copy = (*out_)[it->second];
      copy.path = path;
      out_->push_back(std::move(copy));
      return Status::Ok();
    }
    linked_[ino] = out_->size();
  }
  GuestFile file;
  file.path = path;
  Status s = Describe(ino, inode, &file);
  if (stale) ext2fs_flush_icache(fs_);  // libext2fs read it again, see ReadInode
  if (!s.ok()) return s.WithContext(path);
  out_->push_back(std::move(file));
  if (dir) stack_.push_back({ino, path, depth, stale});
  return Status::Ok();
}

Status ExtInspector::Walker::ReadInode(ext2_ino_t ino, const std::string& path, ext2_inode* inode, bool* stale) {
  std::vector<uint8_t> full(EXT2_INODE_SIZE(fs_->super));
  auto* large = reinterpret_cast<ext2_inode_large*>(full.data());
  if (errcode_t err = ext2fs_read_inode_full(fs_, ino, reinterpret_cast<ext2_inode*>(large), static_cast<int>(full.size()))) {
    return self_->Error(err, path + ": inode " + std::to_string(ino));
  }
  std::memcpy(inode, full.data(), sizeof *inode);
  // libext2fs 1.47.0 stores an inode whose checksum fails in its inode cache
  // under another inode's number (ext2fs_read_inode2 fills the next slot but
  // tags it only when the checksum holds): flush the cache after every read
  // of such an inode, or a later lookup gets this inode's bytes.
  *stale = ext2fs_has_feature_metadata_csum(fs_->super) && !ext2fs_inode_csum_verify(fs_, ino, large);
  if (*stale) ext2fs_flush_icache(fs_);
  return Status::Ok();
}

Status ExtInspector::Walker::Describe(ext2_ino_t ino, const ext2_inode& const_inode, GuestFile* file) {
  ext2_inode inode = const_inode;
  file->size = EXT2_I_SIZE(&inode);
  file->kind = LINUX_S_ISDIR(inode.i_mode)   ? GuestFileKind::kDirectory
               : LINUX_S_ISLNK(inode.i_mode) ? GuestFileKind::kSymlink
                                              : GuestFileKind::kRegular;
  if (Status s = InodeExtent(ino, &file->inode); !s.ok()) return s;
  if (file->kind == GuestFileKind::kSymlink) {
    if (Status s = SymlinkTarget(ino, &inode, &file->link_target); !s.ok()) return s;
    if (ext2fs_is_fast_symlink(&inode)) return Status::Ok();  // i_block holds text, not blocks
  }
  return DataExtents(ino, &inode, &file->extents);
}

Status ExtInspector::Walker::InodeExtent(ext2_ino_t ino, ImageExtent* out) {
  const uint32_t per_group = fs_->super->s_inodes_per_group;
  const dgrp_t group = (ino - 1) / per_group;
  const uint64_t index = (ino - 1) % per_group;
  const blk64_t table = ext2fs_inode_table_loc(fs_, group);
  const uint64_t inode_size = EXT2_INODE_SIZE(fs_->super);
  if (table == 0 || table >= ext2fs_blocks_count(fs_->super)) {
    return Corruption("inode " + std::to_string(ino) + ": group " + std::to_string(group) + "'s inode table at block " +
                      std::to_string(table) + " is outside the file system");
  }
  std::vector<ImageExtent> extents;
  if (Status s = self_->target_->disk->MapGuestRange(
          self_->target_->offset + table * fs_->blocksize + index * inode_size, inode_size, &extents);
      !s.ok()) {
    return s;
  }
  *out = extents.size() == 1 ? extents[0] : ImageExtent{};  // split or unmapped: unknown
  return Status::Ok();
}

Status ExtInspector::Walker::AddBlocks(ext2_ino_t ino, blk64_t first, uint64_t count, std::vector<ImageExtent>* out) {
  const uint64_t total = ext2fs_blocks_count(fs_->super);
  if (first >= total || count > total - first) {
    return Corruption("inode " + std::to_string(ino) + ": blocks " + std::to_string(first) + "+" + std::to_string(count) +
                      " are outside the file system");
  }
  if (count > block_budget_) {
    return Corruption("inode " + std::to_string(ino) +
                      ": the files claim more data blocks than the file system has (a looping or cross-linked block map)");
  }
  block_budget_ -= count;
  const uint64_t bs = fs_->blocksize;
  if (Status s = self_->target_->disk->MapGuestRange(self_->target_->offset + first * bs, count * bs, out); !s.ok()) {
    return s;
  }
  if (out->size() > options_.max_extents_per_file) {
    return Corruption("inode " + std::to_string(ino) + " has over " + std::to_string(options_.max_extents_per_file) +
                      " image extents (limit)");
  }
  return Status::Ok();
}

Status ExtInspector::Walker::DataExtents(ext2_ino_t ino, ext2_inode* inode, std::vector<ImageExtent>* out) {
  if (inode->i_flags & EXT4_INLINE_DATA_FL) return Status::Ok();  // the data is in the inode
  if (inode->i_flags & EXT4_EXTENTS_FL) {
    ext2_extent_handle_t handle = nullptr;
    if (errcode_t err = ext2fs_extent_open2(fs_, ino, inode, &handle)) {
      return self_->Error(err, "inode " + std::to_string(ino) + " extent tree");
    }
    Status status;
    ext2fs_extent extent{};
    blk64_t run_start = 0, run_len = 0;  // physically contiguous blocks not yet mapped
    uint64_t steps = 0;
    for (errcode_t err = ext2fs_extent_get(handle, EXT2_EXTENT_ROOT, &extent);;
         err = ext2fs_extent_get(handle, EXT2_EXTENT_NEXT, &extent)) {
      if (err == EXT2_ET_EXTENT_NO_NEXT || err == EXT2_ET_NO_CURRENT_NODE) break;
      if (err) {
        status = self_->Error(err, "inode " + std::to_string(ino) + " extent tree");
        break;
      }
      if (++steps % 65536 == 0) {
        if (status = CheckTime(); !status.ok()) break;
      }
      if (steps > 4 * options_.max_extents_per_file + 64) {
        status = Corruption("inode " + std::to_string(ino) + ": extent tree has over " +
                            std::to_string(4 * options_.max_extents_per_file) + " entries (limit)");
        break;
      }
      if (!(extent.e_flags & EXT2_EXTENT_FLAGS_LEAF) || (extent.e_flags & EXT2_EXTENT_FLAGS_UNINIT) ||
          extent.e_len == 0) {
        continue;
      }
      if (run_len > 0 && run_start + run_len == extent.e_pblk) {
        run_len += extent.e_len;
        continue;
      }
      if (run_len > 0 && !(status = AddBlocks(ino, run_start, run_len, out)).ok()) break;
      run_start = extent.e_pblk;
      run_len = extent.e_len;
    }
    ext2fs_extent_free(handle);
    if (status.ok() && run_len > 0) status = AddBlocks(ino, run_start, run_len, out);
    return status;
  }
  // ext2/3 block map: one callback per data block, in logical order.
  struct Ctx {
    Walker* walker;
    ext2_ino_t ino;
    std::vector<ImageExtent>* out;
    blk64_t run_start = 0, run_len = 0;
    uint64_t calls = 0;
    Status status;
  } ctx{this, ino, out};
  auto on_block = [](ext2_filsys, blk64_t* block, e2_blkcnt_t, blk64_t, int, void* priv) -> int {
    auto* c = static_cast<Ctx*>(priv);
    if (++c->calls > c->walker->block_budget_ + 1) {
      c->status = Corruption("inode " + std::to_string(c->ino) +
                             ": the block map holds more blocks than the file system has (a loop)");
      return BLOCK_ABORT;
    }
    if (c->calls % 65536 == 0 && !(c->status = c->walker->CheckTime()).ok()) return BLOCK_ABORT;
    if (c->run_len > 0 && c->run_start + c->run_len == *block) {
      ++c->run_len;
      return 0;
    }
    if (c->run_len > 0 && !(c->status = c->walker->AddBlocks(c->ino, c->run_start, c->run_len, c->out)).ok()) {
      return BLOCK_ABORT;
    }
    c->run_start = *block;
    c->run_len = 1;
    return 0;
  };
  if (errcode_t err = ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, nullptr, on_block, &ctx)) {
    if (!ctx.status.ok()) return ctx.status;
    return self_->Error(err, "inode " + std::to_string(ino) + " block map");
  }
  if (!ctx.status.ok()) return ctx.status;
  return ctx.run_len > 0 ? AddBlocks(ino, ctx.run_start, ctx.run_len, out) : Status::Ok();
}

Status ExtInspector::Walker::SymlinkTarget(ext2_ino_t ino, ext2_inode* inode, std::string* target) {
  // A target longer than a block is not a valid symlink; read at most that much.
  const size_t size = static_cast<size_t>(std::min<uint64_t>(EXT2_I_SIZE(inode), fs_->blocksize));
  if (ext2fs_is_fast_symlink(inode)) {
    const char* text = reinterpret_cast<const char*>(inode->i_block);
    target->assign(text, std::min(size, sizeof inode->i_block));
    return Status::Ok();
  }
  auto content = self_->ReadContent(ino, size);
  if (!content.ok()) return content.status();
  *target = std::move(*content);
  return Status::Ok();
}

Status ExtInspector::Walker::Metadata() {
  const uint64_t bs = fs_->blocksize;
  const uint64_t base = self_->target_->offset;
  GuestDisk* disk = self_->target_->disk;
  GuestFile sb{.path = "<superblock>", .kind = GuestFileKind::kMetadata, .size = SUPERBLOCK_SIZE};
  if (Status s = disk->MapGuestRange(base + SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, &sb.extents); !s.ok()) return s;
  out_->push_back(std::move(sb));

  GuestFile gd{.path = "<group-descriptors>", .kind = GuestFileKind::kMetadata, .size = fs_->desc_blocks * bs};
  for (dgrp_t i = 0; i < fs_->desc_blocks; ++i) {
    const blk64_t block = ext2fs_descriptor_block_loc2(fs_, fs_->super->s_first_data_block, i);
    if (Status s = disk->MapGuestRange(base + block * bs, bs, &gd.extents); !s.ok()) return s;
  }
  out_->push_back(std::move(gd));

  const ext2_ino_t journal = fs_->super->s_journal_inum;
  if ((fs_->super->s_feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL) && journal != 0 &&
      journal <= fs_->super->s_inodes_count) {
    // Its first block: the journal superblock a mount reads. The log itself is read only for recovery.
    GuestFile j{.path = "<journal>", .kind = GuestFileKind::kMetadata, .size = bs};
    blk64_t first = 0;
    if (errcode_t err = ext2fs_bmap2(fs_, journal, nullptr, nullptr, 0, 0, nullptr, &first)) {
      return self_->Error(err, "journal inode " + std::to_string(journal));
    }
    ext2fs_flush_icache(fs_);  // as after any inode read (see ReadInode)
    if (Status s = InodeExtent(journal, &j.inode); !s.ok()) return s;
    if (first != 0 && first < ext2fs_blocks_count(fs_->super)) {
      if (Status s = disk->MapGuestRange(base + first * bs, bs, &j.extents); !s.ok()) return s;
    }
    out_->push_back(std::move(j));
  }
  return Status::Ok();
}

Result<std::unique_ptr<ExtInspector>> ExtInspector::Open(GuestDisk* disk) {
  static std::once_flag errors_registered;
  std::call_once(errors_registered, [] { initialize_ext2_error_table(); });
  std::unique_ptr<ExtInspector> self(new ExtInspector);
  self->target_ = std::make_unique<GuestIoTarget>();
  self->target_->disk = disk;
  self->target_->offset = disk->partition().offset;
  self->target_->size = disk->partition().size;
  // Checked before libext2fs sizes its tables from the superblock: a hostile
  // block count must not make it allocate for a file system the disk cannot hold.
  if (Status s = CheckSize(disk); !s.ok()) return s;
  const std::string name = GuestIoName(self->target_.get());
  ext2_filsys fs = nullptr;
  // Checksums are not verified: an image copied from a running VM may have a
  // stale one, and a map with one wrong entry costs a wasted prefetch, while
  // a hostile image can forge checksums anyway. Every bound is checked regardless.
  const errcode_t err = ext2fs_open2(name.c_str(), nullptr,
                                     EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
                                     GuestIoManager(), &fs);
  if (err) {
    if (err == EXT2_ET_UNSUPP_FEATURE || err == EXT2_ET_RO_UNSUPP_FEATURE) {
      return FailedPrecondition("not inspectable: " + disk->partition().name + ": " + error_message(err));
    }
    return self->Error(err, "ext file system on " + disk->partition().name);
  }
  self->fs_ = fs;
  fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;  // ext2fs_open2 honours it only while opening
  self->filesystem_ = FileSystemType(fs->super);
  return self;
}

ExtInspector::~ExtInspector() {
  if (fs_ != nullptr) ext2fs_close_free(&fs_);
}

uint32_t ExtInspector::block_size() const { return fs_->blocksize; }

Status ExtInspector::Error(long errcode, const std::string& what) {
  // The GuestDisk's reason (a truncated image, a qcow2 backing cluster) says more than "short read".
  if (errcode == EXT2_ET_SHORT_READ && !target_->last_error.ok()) {
    Status s = target_->last_error.WithContext(what);
    target_->last_error = Status::Ok();
    return s;
  }
  return Corruption(what + ": " + error_message(errcode));
}

Status ExtInspector::Walk(const InspectOptions& options, std::vector<GuestFile>* files) {
  Walker walker(this, options, files);
  return walker.Run();
}

Result<std::string> ExtInspector::ReadContent(uint32_t ino, size_t max_bytes) {
  ext2_file_t file = nullptr;
  if (errcode_t err = ext2fs_file_open(fs_, ino, 0, &file)) return Error(err, "inode " + std::to_string(ino));
  std::string data;
  Status status;
  char buf[65536];
  while (data.size() < max_bytes) {
    unsigned int got = 0;
    const auto want = static_cast<unsigned int>(std::min(sizeof buf, max_bytes - data.size()));
    if (errcode_t err = ext2fs_file_read(file, buf, want, &got)) {
      status = Error(err, "inode " + std::to_string(ino));
      break;
    }
    if (got == 0) break;
    data.append(buf, got);
  }
  ext2fs_file_close(file);
  if (!status.ok()) return status;
  return data;
}

Result<std::string> ExtInspector::ReadFile(const std::string& path, size_t max_bytes) {
  if (path.empty() || path[0] != '/') return InvalidArgument("guest path " + path + " is not absolute");
  ext2fs_flush_icache(fs_);  // an inode with a failing checksum may have poisoned it (see Walker::ReadInode)
  ext2_ino_t ino = 0;
  if (errcode_t err = ext2fs_namei_follow(fs_, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino)) {
    if (err == EXT2_ET_FILE_NOT_FOUND) return NotFound("guest file " + path + " not found");
    return Error(err, "guest path " + path);
  }
  ext2_inode inode{};
  if (errcode_t err = ext2fs_read_inode(fs_, ino, &inode)) return Error(err, path);
  if (!LINUX_S_ISREG(inode.i_mode)) return InvalidArgument("guest path " + path + " is not a regular file");
  auto data = ReadContent(ino, max_bytes);
  if (!data.ok()) return data.status().WithContext(path);
  return data;
}

}  // namespace affinity::profile
