#include "profile/guest_io_manager.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace affinity::profile {
namespace {

constexpr char kPrefix[] = "affinity-guest:";

GuestIoTarget* TargetOf(io_channel channel) { return static_cast<GuestIoTarget*>(channel->private_data); }

errcode_t ChannelOpen(const char* name, int flags, io_channel* channel) {
  if (name == nullptr || std::strncmp(name, kPrefix, sizeof kPrefix - 1) != 0) return EXT2_ET_BAD_DEVICE_NAME;
  if (flags & IO_FLAG_RW) return EXT2_ET_RO_FILSYS;
  const uintptr_t address = std::strtoull(name + sizeof kPrefix - 1, nullptr, 16);
  if (address == 0) return EXT2_ET_BAD_DEVICE_NAME;
  io_channel io = nullptr;
  if (errcode_t err = ext2fs_get_memzero(sizeof(struct struct_io_channel), &io)) return err;
  if (errcode_t err = ext2fs_get_mem(std::strlen(name) + 1, &io->name)) {
    ext2fs_free_mem(&io);
    return err;
  }
  std::strcpy(io->name, name);
  io->magic = EXT2_ET_MAGIC_IO_CHANNEL;
  io->manager = GuestIoManager();
  io->block_size = 1024;
  io->refcount = 1;
  io->private_data = reinterpret_cast<GuestIoTarget*>(address);
  *channel = io;
  return 0;
}

errcode_t ChannelClose(io_channel channel) {
  if (--channel->refcount > 0) return 0;
  ext2fs_free_mem(&channel->name);
  ext2fs_free_mem(&channel);
  return 0;
}

errcode_t SetBlockSize(io_channel channel, int block_size) {
  if (block_size <= 0) return EXT2_ET_INVALID_ARGUMENT;
  channel->block_size = block_size;
  return 0;
}

// count > 0: blocks of block_size; count < 0: -count bytes (how ext2fs reads the superblock).
errcode_t ReadBlock64(io_channel channel, unsigned long long block, int count, void* data) {
  GuestIoTarget* t = TargetOf(channel);
  const uint64_t bs = static_cast<uint64_t>(channel->block_size);
  const uint64_t len = count < 0 ? static_cast<uint64_t>(-static_cast<int64_t>(count)) : uint64_t(count) * bs;
  if (block > t->size / bs || len > t->size - block * bs) {
    t->last_error = Corruption("the file system reads block " + std::to_string(block) + " (+" + std::to_string(len) +
                               " bytes) past the end of its " + std::to_string(t->size) + "-byte partition");
    return EXT2_ET_SHORT_READ;
  }
  if (Status s = t->disk->ReadGuest(t->offset + block * bs, data, static_cast<size_t>(len)); !s.ok()) {
    t->last_error = std::move(s);
    return EXT2_ET_SHORT_READ;
  }
  return 0;
}

errcode_t ReadBlock(io_channel channel, unsigned long block, int count, void* data) {
  return ReadBlock64(channel, block, count, data);
}

errcode_t WriteBlock(io_channel, unsigned long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t WriteBlock64(io_channel, unsigned long long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t WriteByte(io_channel, unsigned long, int, const void*) { return EXT2_ET_RO_FILSYS; }
errcode_t Flush(io_channel) { return 0; }
errcode_t SetOption(io_channel, const char*, const char*) { return EXT2_ET_INVALID_ARGUMENT; }

struct struct_io_manager MakeManager() {
  struct struct_io_manager m {};
  m.magic = EXT2_ET_MAGIC_IO_MANAGER;
  m.name = "affinity guest disk";
  m.open = ChannelOpen;
  m.close = ChannelClose;
  m.set_blksize = SetBlockSize;
  m.read_blk = ReadBlock;
  m.write_blk = WriteBlock;
  m.flush = Flush;
  m.write_byte = WriteByte;
  m.set_option = SetOption;
  m.read_blk64 = ReadBlock64;
  m.write_blk64 = WriteBlock64;
  return m;
}

}  // namespace

io_manager GuestIoManager() {
  static struct struct_io_manager manager = MakeManager();
  return &manager;
}

std::string GuestIoName(GuestIoTarget* target) {
  char name[64];
  std::snprintf(name, sizeof name, "%s%" PRIxPTR, kPrefix, reinterpret_cast<uintptr_t>(target));
  return name;
}

}  // namespace affinity::profile
