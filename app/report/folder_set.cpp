#include "app/report/folder_set.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "attention/npy.h"
#include "attention/types.h"

namespace attnlab::report {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_lock_name = ".attnlab.lock";
constexpr const char* k_staging_prefix = ".attnlab-staging-";
constexpr const char* k_manifest_name = ".attnlab-commit";

struct Held {
  int fd = -1;
  int count = 0;
};

std::mutex g_locks_mutex;
std::map<std::string, Held>& heldLocks() {
  static std::map<std::string, Held> locks;
  return locks;
}

std::atomic<unsigned> g_staging_counter{0};

void syncFolder(const std::string& dir) {
  if (const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

bool isRealFolder(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool lexists(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

// Moves the entries a committed staging folder names into `dir` (those still there: it may have been
// interrupted half-way), then removes the staging folder. Everything is decided first, so the renames
// (the window in which a reader could see two runs mixed) follow one another with nothing between.
void rollForward(const fs::path& dir, const fs::path& staging) {
  std::ifstream in(staging / k_manifest_name);
  struct Move {
    fs::path src, dst, aside;  // aside: where a folder in the way goes first (rename cannot replace one)
  };
  std::vector<Move> moves;
  for (std::string name; std::getline(in, name);) {
    if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') continue;
    Move m{staging / name, dir / name, {}};
    if (!lexists(m.src)) continue;  // already moved in
    if (lexists(m.dst) && (isRealFolder(m.dst) || isRealFolder(m.src))) {
      m.aside = staging / (".old-" + name);
      std::error_code ec;
      fs::remove_all(m.aside, ec);
    }
    moves.push_back(m);
  }
  for (const auto& m : moves)
    if ((!m.aside.empty() && ::rename(m.dst.c_str(), m.aside.c_str()) != 0) || ::rename(m.src.c_str(), m.dst.c_str()) != 0)
      throw attn::UserError("cannot replace '" + m.dst.string() + "': " + std::strerror(errno) + "; the new files are complete in '" +
                            staging.string() + "' and the next attnlab run there moves them in");
  syncFolder(dir.string());
  std::error_code ec;
  fs::remove_all(staging, ec);
}

// What a killed writer left in `dir`: a committed set is finished, an unfinished one removed.
void recover(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().starts_with(k_staging_prefix)) leftovers.push_back(it->path());
  for (const auto& staging : leftovers) {
    if (lexists(staging / k_manifest_name)) rollForward(dir, staging);
    else fs::remove_all(staging, ec);
  }
}

// The process holding the flock on `fd`'s file, from /proc/locks ("1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF").
std::string holderOf(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return "another process";
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev), (unsigned long long)st.st_ino);
  std::ifstream locks("/proc/locks");
  for (std::string line; std::getline(locks, line);) {
    std::istringstream in(line);
    std::string index, kind, mode, access, pid, file;
    if (!(in >> index >> kind) || kind != "FLOCK" || !(in >> mode >> access >> pid >> file) || file != id) continue;
    std::ifstream cmdline("/proc/" + pid + "/cmdline", std::ios::binary);
    std::string cmd(std::istreambuf_iterator<char>(cmdline), {});
    for (char& c : cmd)
      if (c == '\0') c = ' ';
    while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
    if (cmd.size() > 300) cmd = cmd.substr(0, 300) + "…";
    return "process " + pid + (cmd.empty() ? "" : ": " + cmd);
  }
  return "another process";
}

}  // namespace

const std::string& requireSafeName(const std::string& name, const std::string& key) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '+');
  if (!ok) {
    std::string shown = name.size() > 80 ? name.substr(0, 80) + "…" : name;
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
    throw attn::UserError("the " + key + " '" + shown + "' cannot be part of a file name (it may use letters, digits, '-', '_', "
                          "'.' and '+', at most 64 of them, and not start with '.'): correct it and try again");
  }
  return name;
}

FolderLock::FolderLock(const std::string& dir) {
  std::error_code ec;
  created_ = !fs::exists(dir, ec);
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    throw attn::UserError("cannot create the folder '" + dir + "': " + (ec ? ec.message() : std::string("a file has that name")));
  key_ = fs::canonical(dir, ec).string();
  if (ec) key_ = fs::absolute(dir).string();
  std::lock_guard guard(g_locks_mutex);
  if (auto it = heldLocks().find(key_); it != heldLocks().end()) {
    ++it->second.count;
    return;
  }
  const std::string lock_path = (fs::path(key_) / k_lock_name).string();
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      throw attn::UserError("cannot write in the folder '" + dir + "': cannot create '" + lock_path + "': " + std::strerror(errno));
    // A file system without locks (ENOLCK, EOPNOTSUPP: some network mounts) gets the staging without the lock.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno != ENOLCK && errno != EOPNOTSUPP && errno != ENOSYS) {
      const int err = errno;
      const std::string holder = holderOf(fd);
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw attn::UserError("the folder '" + dir + "' is in use by another attnlab (" + holder +
                              "): wait until it finishes, or write to another folder");
      throw attn::UserError("cannot lock the folder '" + dir + "' (" + lock_path + "): " + std::strerror(err));
    }
    // The lock file may have been removed (removeIfUnused) between our open and our lock: lock the one there now.
    struct stat a {}, b {};
    if (::fstat(fd, &a) == 0 && ::stat(lock_path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      heldLocks()[key_] = {fd, 1};
      break;
    }
    ::close(fd);
    if (attempt > 100) throw attn::UserError("cannot lock the folder '" + dir + "': its lock file keeps changing");
  }
  try {
    recover(key_);
  } catch (...) {
    auto it = heldLocks().find(key_);
    ::close(it->second.fd);
    heldLocks().erase(it);
    throw;
  }
}

FolderLock::~FolderLock() {
  std::lock_guard guard(g_locks_mutex);
  auto it = heldLocks().find(key_);
  if (it == heldLocks().end() || --it->second.count > 0) return;
  ::close(it->second.fd);
  heldLocks().erase(it);
}

void FolderLock::removeIfUnused() {
  std::lock_guard guard(g_locks_mutex);
  auto it = heldLocks().find(key_);
  if (!created_ || it == heldLocks().end() || it->second.count != 1) return;
  std::error_code ec;
  for (fs::directory_iterator d(key_, ec), end; !ec && d != end; d.increment(ec))
    if (d->path().filename() != k_lock_name) return;
  ::unlink((fs::path(key_) / k_lock_name).c_str());  // still locked: a process that opened it meanwhile retries
  ::rmdir(key_.c_str());
}

FolderSet::FolderSet(const std::string& dir) : dir_(dir), lock_(std::make_unique<FolderLock>(dir)) {
  staging_ = (fs::path(dir) / (k_staging_prefix + std::to_string(::getpid()) + "-" + std::to_string(g_staging_counter++))).string();
  std::error_code ec;
  fs::remove_all(staging_, ec);
  if (::mkdir(staging_.c_str(), 0755) != 0)
    throw attn::UserError("cannot write in the folder '" + dir + "': cannot create '" + staging_ + "': " + std::strerror(errno));
}

FolderSet::~FolderSet() {
  if (committed_) return;
  std::error_code ec;
  try {
    if (lexists(fs::path(staging_) / k_manifest_name)) rollForward(dir_, staging_);  // complete: finish moving it in
    else fs::remove_all(staging_, ec);
  } catch (...) {  // a destructor cannot report: the next run that locks the folder finishes it
  }
}

std::string FolderSet::path(const std::string& name) const {
  return (fs::path(staging_) / requireSafeName(name, "entry name")).string();
}

void FolderSet::commit() {
  std::error_code ec;
  std::ostringstream manifest;
  for (fs::directory_iterator it(staging_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name[0] != '.') manifest << name << "\n";
    if (isRealFolder(it->path())) syncFolder(it->path().string());
  }
  if (ec) throw attn::UserError("cannot list '" + staging_ + "': " + ec.message());
  // Written (and synced, with the folder) last: from here on the set is complete and moves in.
  attn::writeFileAtomically((fs::path(staging_) / k_manifest_name).string(), manifest.str());
  rollForward(dir_, staging_);
  committed_ = true;
}

}  // namespace attnlab::report
