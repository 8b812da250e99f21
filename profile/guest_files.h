// GuestFileMap: the files of a VM image's guest file system and where their
// bytes live in the image file (the file affinityfs serves and the cache
// chunks), as the guest inspector found them (docs/signatures.md).
//
// Offsets are offsets into the IMAGE FILE, not the guest disk: for a raw
// image with a partition table they include the partition's start; for a
// qcow2 image they are the host clusters the qcow2 tables point at. A range
// the image does not hold (a qcow2 cluster that is unallocated, compressed or
// in a backing file, a hole) is left out: nothing to prefetch there.
//
// Plain data: no I/O, no threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace affinity::profile {

struct ImageExtent {
  uint64_t offset = 0;  // byte offset in the image file
  uint64_t length = 0;  // bytes
  bool operator==(const ImageExtent&) const = default;
};

enum class GuestFileKind : uint8_t {
  kRegular = 0,
  kDirectory = 1,
  kSymlink = 2,
  kMetadata = 3,  // file-system structures every mount reads: "<superblock>", "<group-descriptors>", ...
};

struct GuestFile {
  std::string path;                  // absolute guest path ("/etc/os-release"); "<name>" for kMetadata
  GuestFileKind kind = GuestFileKind::kRegular;
  uint64_t size = 0;                 // bytes (i_size)
  std::string link_target;           // kSymlink: where it points, as stored
  ImageExtent inode;                 // the image bytes holding its inode (length 0 if unknown)
  std::vector<ImageExtent> extents;  // its data (directory blocks for a directory), in file order, merged
  bool operator==(const GuestFile&) const = default;
};

struct GuestFileMap {
  std::string container;    // "raw" | "qcow2"
  std::string partition;    // "whole-disk" | "mbr:N" | "gpt:N" (1-based)
  std::string filesystem;   // "ext2" | "ext3" | "ext4"
  uint64_t image_size = 0;  // bytes of the image file inspected
  uint32_t block_size = 0;  // the file system's block size
  std::vector<GuestFile> files;  // every inode reachable from "/", sorted by path, plus kMetadata entries
  bool operator==(const GuestFileMap&) const = default;
};

}  // namespace affinity::profile
