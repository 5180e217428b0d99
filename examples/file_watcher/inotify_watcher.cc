#include "examples/file_watcher/inotify_watcher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"

namespace mill {
namespace {

// What every directory watch asks for. IN_ONLYDIR makes a non-directory fail
// with ENOTDIR atomically; IN_EXCL_UNLINK drops events on unlinked-but-open
// files, which no longer have a path to report.
constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MODIFY |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF |
                                IN_EXCL_UNLINK | IN_ONLYDIR;

// Large enough for hundreds of records per read(2).
constexpr size_t kBufferSize = 64 * 1024;
// The smallest buffer read(2) accepts for any record (else EINVAL).
constexpr size_t kMinReadSize = sizeof(inotify_event) + NAME_MAX + 1;

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (name.empty()) return dir;
  if (!dir.empty() && dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

// True if `path` is `dir` or below it.
bool IsWithin(const std::string& path, const std::string& dir) {
  if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) {
    return false;
  }
  return path.size() == dir.size() || dir.back() == '/' ||
         path[dir.size()] == '/';
}

// The directory disappeared or was replaced by something that is not one:
// expected while a tree changes under us.
bool Vanished(int err) {
  return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

absl::Status AddWatchError(int err, const std::string& path) {
  if (err == ENOSPC) {
    return mill::ErrnoStatus(
        err, absl::StrCat("inotify_add_watch(", path,
                          "): inotify watch limit reached (raise "
                          "fs.inotify.max_user_watches)"));
  }
  return mill::ErrnoStatus(err, absl::StrCat("inotify_add_watch(", path, ")"));
}

struct DirEntry {
  std::string name;
  bool is_dir;
};

// Lists `path` sorted by name. On failure returns the errno (0 on success).
int ListDir(const std::string& path, bool follow, std::vector<DirEntry>* out) {
  const int dfd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                                         (follow ? 0 : O_NOFOLLOW));
  if (dfd < 0) return errno;
  DIR* dir = fdopendir(dfd);
  if (dir == nullptr) {
    const int err = errno;
    close(dfd);
    return err;
  }
  int err = 0;
  for (;;) {
    errno = 0;
    const dirent* ent = readdir(dir);
    if (ent == nullptr) {
      err = errno;
      break;
    }
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) {
      continue;
    }
    bool is_dir = ent->d_type == DT_DIR;
    if (ent->d_type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(dfd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      is_dir = S_ISDIR(st.st_mode);
    }
    out->push_back({ent->d_name, is_dir});
  }
  closedir(dir);
  std::sort(out->begin(), out->end(), [](const DirEntry& a, const DirEntry& b) {
    return a.name < b.name;
  });
  return err;
}

}  // namespace

std::string WatchEvent::ToLine() const {
  switch (kind) {
    case Kind::kCreated:
      return absl::StrCat("created ", path);
    case Kind::kModified:
      return absl::StrCat("modified ", path);
    case Kind::kDeleted:
      return absl::StrCat("deleted ", path);
    case Kind::kMoved:
      return absl::StrCat("moved ", path, " -> ", to_path);
    case Kind::kOverflow:
      return "overflow: events lost";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<InotifyWatcher>> InotifyWatcher::Create() {
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return mill::ErrnoStatus(
        err, err == EMFILE
                 ? "inotify_init1 (fs.inotify.max_user_instances reached?)"
                 : "inotify_init1");
  }
  return std::unique_ptr<InotifyWatcher>(new InotifyWatcher(fd));
}

InotifyWatcher::InotifyWatcher(int fd) : fd_(fd), buffer_(kBufferSize) {}

InotifyWatcher::~InotifyWatcher() { close(fd_); }

std::vector<std::string> InotifyWatcher::WatchedPaths() const {
  std::vector<std::string> paths;
  paths.reserve(paths_.size());
  for (const auto& [wd, path] : paths_) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::Status InotifyWatcher::AddRecursive(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("AddRecursive: empty directory path");
  }
  std::string root = StripTrailingSlashes(dir);
  bool top_watched = false;
  absl::Status status =
      WatchTree(root, Origin::kUserRoot, nullptr, nullptr, &top_watched);
  if (top_watched &&
      std::find(roots_.begin(), roots_.end(), root) == roots_.end()) {
    roots_.push_back(std::move(root));
  }
  return status;
}

// Walks the tree depth-first with an explicit stack (trees can be deep): each
// directory is watched before it is listed, so an entry created after the
// listing raises an event and one created before it is in the listing.
absl::Status InotifyWatcher::WatchTree(const std::string& dir, Origin origin,
                                       std::vector<WatchEvent>* emit,
                                       absl::flat_hash_set<int>* seen,
                                       bool* top_watched) {
  struct Item {
    std::string path;
    bool is_dir;
    bool top;
  };
  absl::Status first_error;
  std::vector<Item> stack;
  stack.push_back({dir, true, true});
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!item.top && emit != nullptr) {
      emit->push_back(
          {WatchEvent::Kind::kCreated, item.path, std::string(), item.is_dir});
      scanned_.insert(item.path);
    }
    if (!item.is_dir) continue;

    const bool follow = item.top && origin == Origin::kUserRoot;
    const int wd = inotify_add_watch(
        fd_, item.path.c_str(), kWatchMask | (follow ? 0 : IN_DONT_FOLLOW));
    if (wd < 0) {
      const int err = errno;
      if (item.top && origin == Origin::kUserRoot) {
        return AddWatchError(err, item.path);
      }
      if (!Vanished(err) && first_error.ok()) {
        first_error = AddWatchError(err, item.path);
      }
      continue;
    }
    // The kernel returns the existing descriptor for an inode watched
    // already; the latest path wins (a rescan or a re-add refreshes it).
    paths_[wd] = item.path;
    if (seen != nullptr) seen->insert(wd);
    if (item.top && top_watched != nullptr) *top_watched = true;

    std::vector<DirEntry> entries;
    const int err = ListDir(item.path, follow, &entries);
    if (err != 0 && !Vanished(err) && first_error.ok()) {
      first_error =
          mill::ErrnoStatus(err, absl::StrCat("reading directory ", item.path));
    }
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      stack.push_back({JoinPath(item.path, it->name), it->is_dir, false});
    }
  }
  return first_error;
}

absl::Status InotifyWatcher::ReadAvailable(size_t max_bytes, size_t* read_bytes,
                                           bool* drained,
                                           std::vector<InotifyRecord>* raw) {
  *drained = false;
  absl::Status first_error;
  while (*read_bytes < max_bytes) {
    // Never ask for more than the budget allows, but always enough for one
    // record of any size.
    const size_t want = std::min(
        buffer_.size(), std::max(max_bytes - *read_bytes, kMinReadSize));
    const ssize_t n = read(fd_, buffer_.data(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *drained = true;
        return first_error;
      }
      return mill::ErrnoStatus(errno, "read(inotify)");
    }
    if (n == 0) {
      *drained = true;
      return first_error;
    }
    *read_bytes += static_cast<size_t>(n);
    // The kernel returns whole records; a malformed one is reported and
    // the rest of that read skipped.
    absl::Status decoded = DecodeInotifyRecords(
        std::string_view(buffer_.data(), static_cast<size_t>(n)), raw);
    if (first_error.ok()) first_error = decoded;
  }
  return first_error;
}

absl::Status InotifyWatcher::ReadEvents(std::vector<WatchEvent>* out,
                                        size_t max_bytes) {
  const size_t first = out->size();
  absl::Status first_error;
  max_bytes = std::max<size_t>(max_bytes, 1);  // Always make progress.
  size_t read_bytes = 0;
  // A round reads until EAGAIN or the budget, and translates. A round that
  // scanned a new directory is followed by another: an entry created between
  // the watch and the scan has its IN_CREATE queued by the time the scan
  // ends, so a later round meets it while scanned_ can still suppress the
  // duplicate. scanned_ is kept across calls until a read finds the queue
  // empty after the last scan, so stopping at the budget loses nothing.
  std::vector<InotifyRecord> raw;
  for (;;) {
    raw = std::move(held_back_);
    held_back_.clear();
    bool drained = false;
    const absl::Status read_status =
        ReadAvailable(max_bytes, &read_bytes, &drained, &raw);
    if (!drained && !raw.empty() && (raw.back().mask & IN_MOVED_FROM)) {
      // Stopped at the budget right after the first half of a rename: keep
      // it for the next call, which reads its IN_MOVED_TO.
      bool paired = false;
      for (const InotifyRecord& r : raw) {
        paired = paired || ((r.mask & IN_MOVED_TO) && r.cookie != 0 &&
                            r.cookie == raw.back().cookie);
      }
      if (!paired) {
        held_back_.push_back(std::move(raw.back()));
        raw.pop_back();
      }
    }
    bool scanned = false;
    const absl::Status process_status = Process(raw, first, out, &scanned);
    if (first_error.ok()) {
      first_error = !read_status.ok() ? read_status : process_status;
    }
    if (drained && !scanned) {
      scanned_.clear();  // Nothing queued can duplicate a scan any more.
      break;
    }
    // Budget spent, or read(2) failed: the descriptor stays readable and
    // the next call goes on.
    if (!drained || read_bytes >= max_bytes) break;
  }
  return first_error;
}

void InotifyWatcher::Emit(WatchEvent event, size_t first,
                          std::vector<WatchEvent>* out) {
  if (event.kind == WatchEvent::Kind::kModified && out->size() > first &&
      out->back() == event) {
    return;  // Same file written again in the same batch: one line.
  }
  out->push_back(std::move(event));
}

absl::Status InotifyWatcher::Process(const std::vector<InotifyRecord>& raw,
                                     size_t first, std::vector<WatchEvent>* out,
                                     bool* scanned) {
  using Kind = WatchEvent::Kind;
  absl::Status first_error;
  // Cookie -> index of the IN_MOVED_TO that completes a rename.
  absl::flat_hash_map<uint32_t, size_t> moved_to;
  for (size_t i = 0; i < raw.size(); ++i) {
    if ((raw[i].mask & IN_MOVED_TO) && raw[i].cookie != 0) {
      moved_to.emplace(raw[i].cookie, i);
    }
  }
  std::vector<bool> consumed(raw.size(), false);

  for (size_t i = 0; i < raw.size(); ++i) {
    if (consumed[i]) continue;
    const InotifyRecord& e = raw[i];
    if (e.mask & IN_Q_OVERFLOW) {
      Emit({Kind::kOverflow, std::string(), std::string(), false}, first, out);
      Rescan();
      continue;
    }
    auto it = paths_.find(e.wd);
    if (it == paths_.end()) continue;  // Removed already (IN_IGNORED pending).
    if (e.mask & IN_IGNORED) {
      paths_.erase(it);
      continue;
    }
    if (e.mask & IN_DELETE_SELF) {
      // A subdirectory's deletion is reported by its parent's IN_DELETE; a
      // root has no watched parent, so report it here.
      auto root = std::find(roots_.begin(), roots_.end(), it->second);
      if (root != roots_.end()) {
        // A root inside another root is reported by its parent already.
        const bool nested =
            std::any_of(roots_.begin(), roots_.end(), [&](const auto& other) {
              return other != *root && IsWithin(*root, other);
            });
        if (!nested) {
          Emit({Kind::kDeleted, *root, std::string(), true}, first, out);
        }
        roots_.erase(root);
      }
      continue;
    }
    const bool is_dir = (e.mask & IN_ISDIR) != 0;
    std::string path = JoinPath(it->second, e.name);

    if (e.mask & (IN_CREATE | IN_MOVED_TO)) {
      // An IN_MOVED_TO still unconsumed here had no IN_MOVED_FROM: moved in.
      if (scanned_.erase(path) > 0) continue;  // A scan reported it already.
      Emit({Kind::kCreated, path, std::string(), is_dir}, first, out);
      if (is_dir) {
        absl::Status s =
            WatchTree(path, Origin::kDiscovered, out, nullptr, nullptr);
        if (first_error.ok()) first_error = s;
        *scanned = true;
      }
    } else if (e.mask & IN_MODIFY) {
      Emit({Kind::kModified, std::move(path), std::string(), is_dir}, first,
           out);
    } else if (e.mask & IN_DELETE) {
      scanned_.erase(path);
      Emit({Kind::kDeleted, std::move(path), std::string(), is_dir}, first,
           out);
    } else if (e.mask & IN_MOVED_FROM) {
      scanned_.erase(path);
      auto to = moved_to.find(e.cookie);
      if (to != moved_to.end() && to->second > i && !consumed[to->second]) {
        const InotifyRecord& t = raw[to->second];
        auto to_dir = paths_.find(t.wd);
        if (to_dir != paths_.end()) {
          consumed[to->second] = true;
          std::string to_path = JoinPath(to_dir->second, t.name);
          if (scanned_.erase(to_path) == 0) {
            if (is_dir) RenameSubtree(path, to_path);
            Emit({Kind::kMoved, std::move(path), std::move(to_path), is_dir},
                 first, out);
            continue;
          }
          // The destination was reported as created by a scan already (it
          // landed in a directory found in this call), so all that is left
          // to say is that the source is gone.
        }
      }
      if (is_dir) UnwatchSubtree(path);
      Emit({Kind::kDeleted, std::move(path), std::string(), is_dir}, first,
           out);
    }
  }
  return first_error;
}

void InotifyWatcher::RenameSubtree(const std::string& from,
                                   const std::string& to) {
  for (auto& [wd, path] : paths_) {
    if (IsWithin(path, from)) path = to + path.substr(from.size());
  }
}

void InotifyWatcher::UnwatchSubtree(const std::string& dir) {
  std::vector<int> gone;
  for (const auto& [wd, path] : paths_) {
    if (IsWithin(path, dir)) gone.push_back(wd);
  }
  for (int wd : gone) {
    // The directory still exists elsewhere, so its watch would keep firing
    // with a stale path. The IN_IGNORED this queues finds no entry later.
    inotify_rm_watch(fd_, wd);
    paths_.erase(wd);
  }
}

void InotifyWatcher::Rescan() {
  absl::flat_hash_set<int> seen;
  std::vector<std::string> kept;
  for (const std::string& root : roots_) {
    bool top_watched = false;
    // Errors below a root are ignored here: the overflow already tells the
    // consumer that the view is incomplete.
    WatchTree(root, Origin::kUserRoot, nullptr, &seen, &top_watched)
        .IgnoreError();
    if (top_watched) kept.push_back(root);
  }
  roots_ = std::move(kept);
  std::vector<int> stale;
  for (const auto& [wd, path] : paths_) {
    if (!seen.contains(wd)) stale.push_back(wd);
  }
  for (int wd : stale) {
    inotify_rm_watch(fd_, wd);
    paths_.erase(wd);
  }
}

}  // namespace mill
