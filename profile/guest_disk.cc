#include "profile/guest_disk.h"

#include <algorithm>
#include <cstring>

namespace affinity::profile {

void AppendExtent(std::vector<ImageExtent>* out, uint64_t offset, uint64_t length) {
  if (length == 0) return;
  if (!out->empty() && out->back().offset + out->back().length == offset) {
    out->back().length += length;
    return;
  }
  out->push_back({offset, length});
}

Result<GuestDisk> GuestDisk::Open(const std::string& path) {
  auto file = ImageFile::Open(path);
  if (!file.ok()) return file.status();
  GuestDisk disk(std::move(*file));
  uint8_t magic[4] = {};
  if (disk.file_.size() >= 4) {
    if (Status s = disk.file_.ReadExact(0, magic, 4); !s.ok()) return s;
  }
  if (Qcow2Image::HasMagic(magic, sizeof magic)) {
    auto q = Qcow2Image::Open(disk.file_);
    if (!q.ok()) return q.status().WithContext(path);
    disk.qcow2_ = std::move(*q);
    disk.container_ = "qcow2";
    disk.disk_size_ = disk.qcow2_->virtual_size();
  } else {
    disk.disk_size_ = disk.file_.size();
  }
  auto part = FindExtPartition([&disk](uint64_t o, void* b, size_t n) { return disk.ReadGuest(o, b, n); },
                               disk.disk_size_);
  if (!part.ok()) {
    return Status(part.status().code(), part.status().message() + " (" + disk.container_ + " image " + path + ")");
  }
  disk.partition_ = std::move(*part);
  return disk;
}

Status GuestDisk::ReadGuest(uint64_t offset, void* buf, size_t len) {
  if (offset > disk_size_ || len > disk_size_ - offset) {
    return OutOfRange("guest read [" + std::to_string(offset) + ", +" + std::to_string(len) +
                      ") past the end of the disk (" + std::to_string(disk_size_) + " bytes)");
  }
  if (!qcow2_) return file_.ReadExact(offset, buf, len);
  return ReadQcow2(offset, static_cast<uint8_t*>(buf), len);
}

Status GuestDisk::ReadQcow2(uint64_t offset, uint8_t* buf, size_t len) {
  const uint64_t cs = qcow2_->cluster_size();
  while (len > 0) {
    const uint64_t in = offset % cs;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(len, cs - in));
    auto c = qcow2_->Lookup(file_, offset);
    if (!c.ok()) return c.status();
    switch (c->kind) {
      case Qcow2Image::Cluster::Kind::kData:
        if (Status s = file_.ReadExact(c->host_offset + in, buf, n); !s.ok()) return s;
        break;
      case Qcow2Image::Cluster::Kind::kZero:
        std::memset(buf, 0, n);
        break;
      case Qcow2Image::Cluster::Kind::kUnallocated:
        // Zeros would be a guess: the guest reads these bytes from the backing file.
        if (qcow2_->has_backing_file()) {
          return FailedPrecondition("not inspectable: guest offset " + std::to_string(offset) +
                                    " is in the qcow2 backing file " + qcow2_->backing_file() + " (not read)");
        }
        std::memset(buf, 0, n);
        break;
      case Qcow2Image::Cluster::Kind::kCompressed:
        if (inflated_.empty() || inflated_host_offset_ != c->host_offset) {
          inflated_.resize(cs);
          inflated_host_offset_ = c->host_offset;
          if (Status s = qcow2_->Decompress(file_, *c, inflated_.data()); !s.ok()) {
            inflated_.clear();
            return s;
          }
        }
        std::memcpy(buf, inflated_.data() + in, n);
        break;
    }
    buf += n;
    offset += n;
    len -= n;
  }
  return Status::Ok();
}

Status GuestDisk::MapGuestRange(uint64_t offset, uint64_t len, std::vector<ImageExtent>* out) {
  if (offset >= disk_size_) return Status::Ok();
  len = std::min(len, disk_size_ - offset);
  const uint64_t file_size = file_.size();
  if (!qcow2_) {
    if (offset < file_size) AppendExtent(out, offset, std::min(len, file_size - offset));
    return Status::Ok();
  }
  const uint64_t cs = qcow2_->cluster_size();
  while (len > 0) {
    const uint64_t in = offset % cs;
    const uint64_t n = std::min(len, cs - in);
    auto c = qcow2_->Lookup(file_, offset);
    if (!c.ok()) return c.status();
    if (c->kind == Qcow2Image::Cluster::Kind::kData && c->host_offset + in < file_size) {
      AppendExtent(out, c->host_offset + in, std::min(n, file_size - (c->host_offset + in)));
    }
    offset += n;
    len -= n;
  }
  return Status::Ok();
}

}  // namespace affinity::profile
