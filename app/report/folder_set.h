// A folder of results written as a set: `attnlab sweep`, `attnlab report`, `attnlab demo` and the
// window's Curves report put every new file into a staging folder inside the target
// (DIR/.attnlab-staging-PID-K), and only when all are complete move them over the previous ones, so a
// kill, a full disk or a failing figure leaves the previous report whole. A lock (flock on
// DIR/.attnlab.lock, released by the system when its process dies) keeps two writers out of one folder.
//
// Commit: the staging folder gets a manifest (.attnlab-commit, written and synced last), then each entry
// is renamed over its namesake in DIR (a folder first moved aside), back to back. That is the one window
// left: several directory entries cannot change in one step, so a process killed during those renames
// (six system calls, well under a millisecond on an idle machine, longer when it is descheduled) leaves
// DIR mixed beside a committed staging folder, which the next attnlab to lock DIR moves in before
// anything else. One killed before the manifest leaves a staging folder that the next removes. Files in DIR that attnlab
// did not stage (a user's notes, interrupted-* folders) are never touched.
#pragma once
#include <memory>
#include <string>

namespace attnlab::report {

/// Holds DIR's lock for this process (re-entrant within it), creating DIR when missing, and first
/// finishes or removes what a killed run left. UserError naming DIR and the process holding it when
/// another process does.
class FolderLock {
 public:
  explicit FolderLock(const std::string& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  /// Removes DIR again when this lock created it and it holds nothing but the lock file.
  void removeIfUnused();

 private:
  std::string key_;
  bool created_ = false;
};

/// The staging folder of one set of files for DIR; entries not committed are removed with it.
class FolderSet {
 public:
  explicit FolderSet(const std::string& dir);
  ~FolderSet();
  FolderSet(const FolderSet&) = delete;
  FolderSet& operator=(const FolderSet&) = delete;
  /// Where to write the entry `name` (one path component: a file or a folder) of the set.
  std::string path(const std::string& name) const;
  /// Moves every staged entry into DIR, over the previous ones.
  void commit();

 private:
  std::string dir_, staging_;
  std::unique_ptr<FolderLock> lock_;
  bool committed_ = false;
};

/// `name` unchanged when it can be one component of a path (letters, digits, '-', '_', '.', '+', not
/// starting with '.', at most 64 bytes); otherwise UserError naming `key` and the value.
const std::string& requireSafeName(const std::string& name, const std::string& key);

}  // namespace attnlab::report
