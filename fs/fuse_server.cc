#define FUSE_USE_VERSION 314
#include "fs/fuse_server.h"

#include <fuse3/fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <fcntl.h>
#include <linux/falloc.h>

#include <atomic>
#include <cerrno>
#include <span>
#include <cstring>
#include <ctime>

#include "fs/xattr_stats.h"

namespace affinity::fs {
namespace {

constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
constexpr double kAttrTimeoutSeconds = 3600.0;  // the namespace never changes while mounted
constexpr unsigned kMaxReadBytes = 1u << 20;
const time_t kMountTime = std::time(nullptr);

FuseServer* Server(fuse_req_t req) { return static_cast<FuseServer*>(fuse_req_userdata(req)); }

std::shared_ptr<ImageCache> ImageOf(FuseServer* server, fuse_ino_t ino) {
  const auto& images = server->cache().images();
  if (ino < 2 || ino - 2 >= images.size()) return nullptr;
  return images[ino - 2];
}

void FillAttr(FuseServer* server, fuse_ino_t ino, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = ::getuid();
  st->st_gid = ::getgid();
  st->st_atime = st->st_mtime = st->st_ctime = kMountTime;
  st->st_blksize = static_cast<blksize_t>(server->cache().options().chunk_size);
  if (ino == kRootIno) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    return;
  }
  auto image = ImageOf(server, ino);
  st->st_mode = S_IFREG | 0644;  // writes are checked against the grant when they come (EROFS)
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(image->record().size);
  st->st_blocks = static_cast<blkcnt_t>(image->cached_bytes() / 512);  // `du` shows what is cached
}

bool ValidIno(FuseServer* server, fuse_ino_t ino) { return ino == kRootIno || ImageOf(server, ino) != nullptr; }

void OnInit(void* userdata, fuse_conn_info* conn) {
  auto* server = static_cast<FuseServer*>(userdata);
  (void)server;
  // Zero-copy replies from the cache file when the kernel supports splice.
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE) conn->want |= FUSE_CAP_SPLICE_MOVE;
  // Only our own writes change the content while mounted (and a commit, which invalidates explicitly).
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_AUTO_INVAL_DATA);
  // Write-through: the kernel must not acknowledge a write we have not made durable.
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
  // max_write also sets max_pages, which bounds read requests to 1 MiB.
  conn->max_write = kMaxReadBytes;
  conn->max_read = kMaxReadBytes;
}

void OnLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseServer* server = Server(req);
  if (parent != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  const auto& images = server->cache().images();
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i]->record().name == name) {
      fuse_entry_param e{};
      e.ino = 2 + i;
      e.attr_timeout = kAttrTimeoutSeconds;
      e.entry_timeout = kAttrTimeoutSeconds;
      FillAttr(server, e.ino, &e.attr);
      fuse_reply_entry(req, &e);
      return;
    }
  }
  fuse_reply_err(req, ENOENT);
}

void OnGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  FuseServer* server = Server(req);
  if (!ValidIno(server, ino)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st;
  FillAttr(server, ino, &st);
  // Short timeout: st_blocks changes as chunks arrive.
  fuse_reply_attr(req, &st, 1.0);
}

// Logs a refused write at most every few seconds (a guest retries in a loop).
void LogRefusedWrite(const std::string& image, const Status& s) {
  static std::atomic<int64_t> last_log{0};
  const int64_t now = std::time(nullptr);
  int64_t last = last_log.load(std::memory_order_relaxed);
  if (now - last < 5 || !last_log.compare_exchange_strong(last, now)) return;
  spdlog::warn("write to {} refused: {}", image, s.ToString());
}

void OnSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  FuseServer* server = Server(req);
  auto image = ImageOf(server, ino);
  if (image == nullptr) {
    fuse_reply_err(req, ino == kRootIno ? EPERM : ENOENT);
    return;
  }
  if ((to_set & FUSE_SET_ATTR_SIZE) != 0 && static_cast<uint64_t>(attr->st_size) != image->record().size) {
    spdlog::warn("truncate {} to {} refused: images keep the size the storage host gives them ({})",
                 image->record().name, attr->st_size, image->record().size);
    fuse_reply_err(req, EPERM);
    return;
  }
  if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) != 0) {
    fuse_reply_err(req, EPERM);
    return;
  }
  // Times (touch, utimes) are accepted and not kept: the storage host owns them.
  struct stat st;
  FillAttr(server, ino, &st);
  fuse_reply_attr(req, &st, 1.0);
}

void OnOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  fuse_reply_open(req, fi);
}

void OnReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  FuseServer* server = Server(req);
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  const auto& images = server->cache().images();
  // Entry k: 0 ".", 1 "..", 2+i image i. `off` is the index of the next entry.
  for (size_t k = static_cast<size_t>(off); k < images.size() + 2; ++k) {
    struct stat st{};
    std::string name;
    if (k == 0) {
      name = ".";
      st.st_ino = kRootIno;
      st.st_mode = S_IFDIR;
    } else if (k == 1) {
      name = "..";
      st.st_ino = kRootIno;
      st.st_mode = S_IFDIR;
    } else {
      name = images[k - 2]->record().name;
      st.st_ino = k;
      st.st_mode = S_IFREG;
    }
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, static_cast<off_t>(k + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OnOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseServer* server = Server(req);
  if (ImageOf(server, ino) == nullptr) {
    fuse_reply_err(req, ino == kRootIno ? EISDIR : ENOENT);
    return;
  }
  auto image = ImageOf(server, ino);
  if ((fi->flags & O_TRUNC) != 0 && image->record().size != 0 && (fi->flags & O_ACCMODE) != O_RDONLY) {
    spdlog::warn("open {} with O_TRUNC refused: images keep their size", image->record().name);
    fuse_reply_err(req, EPERM);
    return;
  }
  // Opening for writing is always allowed (QEMU opens its disks read-write
  // on an incoming migration before it owns them); each write is checked.
  // The page cache stays valid across opens: only writes through this mount
  // change the bytes (and the kernel updates its pages with them).
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void OnRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  FuseServer* server = Server(req);
  auto image = ImageOf(server, ino);
  if (image == nullptr) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (server->options().on_read) server->options().on_read(static_cast<uint32_t>(ino - 2), static_cast<uint64_t>(off), size);
  auto deadline = std::chrono::steady_clock::now() + server->options().timeout;
  auto offset = static_cast<uint64_t>(off);
  image->NoteReadForReadahead(offset, size, deadline);
  auto lease = image->Acquire(offset, size, deadline);
  if (!lease.ok()) {
    spdlog::error("read {} [{}+{}]: {}", image->record().name, offset, size, lease.status().ToString());
    fuse_reply_err(req, lease.status().ToErrno());
    return;
  }
  if (lease->length() == 0) {
    fuse_reply_buf(req, nullptr, 0);
  } else if (lease->from_memory()) {
    fuse_reply_buf(req, reinterpret_cast<const char*>(lease->memory().data()), lease->length());
  } else {
    fuse_bufvec bufv = FUSE_BUFVEC_INIT(lease->length());
    bufv.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    bufv.buf[0].fd = lease->fd();
    bufv.buf[0].pos = static_cast<off_t>(lease->offset());
    fuse_reply_data(req, &bufv, FUSE_BUF_SPLICE_MOVE);
  }
  // `lease` unpins here, after the kernel has the bytes.
}

void OnWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
  FuseServer* server = Server(req);
  auto image = ImageOf(server, ino);
  if (image == nullptr) {
    fuse_reply_err(req, ino == kRootIno ? EISDIR : ENOENT);
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + server->options().timeout;
  Status s = image->Write(static_cast<uint64_t>(off), std::span(reinterpret_cast<const uint8_t*>(buf), size), deadline);
  if (!s.ok()) {
    int err = s.code() == StatusCode::kOutOfRange ? EFBIG : s.ToErrno();
    if (s.code() == StatusCode::kReadOnly) {
      LogRefusedWrite(image->record().name, s);
    } else {
      spdlog::error("write {} [{}+{}]: {}", image->record().name, off, size, s.ToString());
    }
    fuse_reply_err(req, err);
    return;
  }
  if (server->options().on_write) server->options().on_write(static_cast<uint32_t>(ino - 2), static_cast<uint64_t>(off), size);
  if (WriteBack* wb = server->cache().write_back()) wb->Wake();
  fuse_reply_write(req, size);
}

// fsync and fdatasync alike: the bytes are what matters, and the storage
// host keeps no metadata a guest could change.
void OnFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  FuseServer* server = Server(req);
  auto image = ImageOf(server, ino);
  WriteBack* wb = server->cache().write_back();
  if (image == nullptr || wb == nullptr) {
    fuse_reply_err(req, image == nullptr && ino != kRootIno ? ENOENT : 0);
    return;
  }
  Status s = wb->Flush(*image, std::chrono::steady_clock::now() + server->options().timeout);
  if (!s.ok()) spdlog::error("fsync {}: {}", image->record().name, s.ToString());
  fuse_reply_err(req, s.ok() ? 0 : s.ToErrno());
}

// close(): nothing to do. Acknowledged writes are already durable locally;
// only fsync promises the storage host has them.
void OnFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OnFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  FuseServer* server = Server(req);
  auto image = ImageOf(server, ino);
  if (image == nullptr) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if ((mode & ~FALLOC_FL_KEEP_SIZE) != 0) {
    // Punching holes / zeroing ranges: QEMU falls back to writing zeros.
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  Status allowed = server->cache().access().WritePermission();
  if (!allowed.ok()) {
    LogRefusedWrite(image->record().name, allowed);
    fuse_reply_err(req, EROFS);
    return;
  }
  const bool grows = static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > image->record().size;
  // Inside the image there is nothing to reserve: the bytes exist on the storage host.
  fuse_reply_err(req, grows && (mode & FALLOC_FL_KEEP_SIZE) == 0 ? EFBIG : 0);
}

void OnStatfs(fuse_req_t req, fuse_ino_t) {
  FuseServer* server = Server(req);
  struct statvfs sv{};
  uint64_t total = 0;
  for (const auto& image : server->cache().images()) total += image->record().size;
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_blocks = total / 4096;
  sv.f_files = server->cache().images().size() + 1;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

// The xattr reply protocol: size 0 asks for the length, a short buffer is ERANGE.
void ReplyXattr(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

XattrList XattrsOf(FuseServer* server, fuse_ino_t ino) {
  if (ino == kRootIno) {
    XattrList out = RootXattrs(server->cache(), server->options().storage_url);
    if (server->options().extra_root_xattrs) {
      for (auto& kv : server->options().extra_root_xattrs()) out.push_back(std::move(kv));
    }
    return out;
  }
  return ImageXattrs(*ImageOf(server, ino));
}

void OnGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  FuseServer* server = Server(req);
  if (!ValidIno(server, ino)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (std::strncmp(name, kXattrPrefix, std::strlen(kXattrPrefix)) != 0) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  for (const auto& [key, value] : XattrsOf(server, ino)) {
    if (key != name) continue;
    ReplyXattr(req, value, size);
    return;
  }
  fuse_reply_err(req, ENODATA);
}

void OnListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  FuseServer* server = Server(req);
  if (!ValidIno(server, ino)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  std::string names;
  for (const auto& kv : XattrsOf(server, ino)) {
    names += kv.first;
    names += '\0';
  }
  ReplyXattr(req, names, size);
}

constexpr const char* kControlXattr = "user.affinity.control";

void OnSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int) {
  FuseServer* server = Server(req);
  if (ino != kRootIno || std::strcmp(name, kControlXattr) != 0 || !server->options().control) {
    fuse_reply_err(req, EROFS);
    return;
  }
  Status s = server->options().control(std::string(value, size));
  if (!s.ok()) spdlog::warn("{} = '{}': {}", kControlXattr, std::string(value, std::min<size_t>(size, 64)), s.ToString());
  fuse_reply_err(req, s.ok() ? 0 : s.ToErrno());
}
void OnRemovexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }

// The namespace is the storage host's image list: nothing is created,
// removed or renamed here. (The mount is not "ro" so that the control
// attribute can be set; every write path answers EROFS itself.)
void OnMknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void OnMkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void OnUnlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void OnSymlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void OnRename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  fuse_reply_err(req, EROFS);
}
void OnLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void OnCreate(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) { fuse_reply_err(req, EROFS); }

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OnInit;
  ops.lookup = OnLookup;
  ops.getattr = OnGetattr;
  ops.setattr = OnSetattr;
  ops.opendir = OnOpendir;
  ops.readdir = OnReaddir;
  ops.open = OnOpen;
  ops.read = OnRead;
  ops.statfs = OnStatfs;
  ops.getxattr = OnGetxattr;
  ops.listxattr = OnListxattr;
  ops.setxattr = OnSetxattr;
  ops.removexattr = OnRemovexattr;
  ops.mknod = OnMknod;
  ops.mkdir = OnMkdir;
  ops.unlink = OnUnlink;
  ops.rmdir = OnUnlink;
  ops.symlink = OnSymlink;
  ops.rename = OnRename;
  ops.link = OnLink;
  ops.create = OnCreate;
  ops.write = OnWrite;
  ops.fallocate = OnFallocate;
  ops.fsync = OnFsync;
  ops.flush = OnFlush;
  return ops;
}();

}  // namespace

FuseServer::FuseServer(VmCache* cache, FuseServerOptions options) : cache_(cache), options_(std::move(options)) {}

FuseServer::~FuseServer() {
  if (session_ != nullptr) {
    if (signals_installed_) fuse_remove_signal_handlers(session_);
    if (mounted_) fuse_session_unmount(session_);
    fuse_session_destroy(session_);
  }
}

Status FuseServer::Mount() {
  std::vector<std::string> args = {"affinityfs"};
  if (options_.debug) args.push_back("-d");
  std::string base = "default_permissions,fsname=affinityfs:" + cache_->options().vm +
                     ",subtype=affinityfs,max_read=" + std::to_string(kMaxReadBytes);
  args.push_back("-o");
  args.push_back(base);
  for (const std::string& o : options_.fuse_options) {
    args.push_back("-o");
    args.push_back(o);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&fargs, &kOps, sizeof kOps, this);
  fuse_opt_free_args(&fargs);  // libfuse may have copied argv to add its own arguments
  if (session_ == nullptr) {
    return InvalidArgument("libfuse rejected the mount options (see the message above): " + base);
  }
  if (fuse_session_mount(session_, options_.mountpoint.c_str()) != 0) {
    return IoError("cannot mount on " + options_.mountpoint + " (see the message above)");
  }
  mounted_ = true;
  if (fuse_set_signal_handlers(session_) != 0) return Internal("cannot install signal handlers");
  signals_installed_ = true;
  return Status::Ok();
}

Status FuseServer::Run() {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, options_.max_threads);
  fuse_loop_cfg_set_idle_threads(config, 8);
  int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  if (rc < 0) return IoError(std::string("FUSE loop failed: ") + std::strerror(-rc));
  return Status::Ok();
}

void FuseServer::InvalidateKernelCache(const std::string& image, uint64_t offset, uint64_t length) {
  if (session_ == nullptr || !mounted_) return;
  const auto& images = cache_->images();
  for (size_t i = 0; i < images.size(); ++i) {
    if (images[i]->record().name != image) continue;
    int rc = fuse_lowlevel_notify_inval_inode(session_, kRootIno + 1 + i, static_cast<off_t>(offset),
                                              static_cast<off_t>(length));
    // ENOENT: the kernel never looked the inode up; ENOSYS/ENOTCONN: the session is
    // not initialised yet (nothing can be cached then).
    if (rc != 0 && rc != -ENOENT && rc != -ENOSYS && rc != -ENOTCONN) {
      spdlog::warn("dropping the kernel cache of {}: {}", image, std::strerror(-rc));
    }
    return;
  }
}

void FuseServer::InvalidateAllKernelCaches() {
  for (const auto& image : cache_->images()) InvalidateKernelCache(image->record().name, 0, 0);
}

}  // namespace affinity::fs
