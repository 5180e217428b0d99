// InotifyWatcher: recursive directory watching with Linux inotify, translated
// into one-line events: `created <path>`, `modified <path>`, `deleted <path>`,
// `moved <from> -> <to>` and `overflow: events lost`.
//
// This is the transport-independent core of the file_watcher example. It owns
// an inotify instance, keeps a watch on every directory of the trees it was
// asked to watch (including directories created or moved in later) and turns
// raw inotify records (decoded by inotify_decoder.h) into WatchEvents. It
// never blocks: the caller waits for fd() to become readable (the event loop
// does that) and calls ReadEvents(), which reads a bounded amount per call.
//
// Thread-safety: thread-compatible, not thread-safe. Calls must come from one
// thread at a time; the event loop guarantees that by running one handler at a
// time.
//
// Ownership: the watcher owns its inotify file descriptor (RAII: the
// destructor closes it, which drops every watch). fd() is borrowed: poll it,
// never close it, and unregister it from any poller before destroying the
// watcher.
#ifndef MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_WATCHER_H_
#define MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_WATCHER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/file_watcher/inotify_decoder.h"

namespace mill {

// One change in a watched tree, already translated from inotify.
//
// `path` (and `to_path` for kMoved) is the root directory as passed to
// InotifyWatcher::AddRecursive() with trailing slashes removed, joined by '/'
// with the path relative to it. Plain value type.
struct WatchEvent {
  enum class Kind {
    kCreated,
    kModified,
    kDeleted,
    kMoved,
    kOverflow,  // The kernel queue overflowed: events were lost.
  };

  Kind kind = Kind::kCreated;
  std::string path;     // Empty for kOverflow; the source for kMoved.
  std::string to_path;  // Destination for kMoved, empty otherwise.
  bool is_dir = false;  // The entry is a directory (informational only).

  // The printed form, without a newline: "created <path>", "modified <path>",
  // "deleted <path>", "moved <path> -> <to_path>" or "overflow: events
  // lost". Paths are
  // printed verbatim (no quoting), so a name containing a newline or " -> "
  // makes the line ambiguous; the example accepts that.
  std::string ToLine() const;

  friend bool operator==(const WatchEvent& a, const WatchEvent& b) {
    return a.kind == b.kind && a.path == b.path && a.to_path == b.to_path &&
           a.is_dir == b.is_dir;
  }
  friend bool operator!=(const WatchEvent& a, const WatchEvent& b) {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const WatchEvent& e) {
    return os << e.ToLine() << (e.is_dir ? " (dir)" : "");
  }
};

// Watches directory trees recursively and reports what changes in them.
//
// Usage (the event loop registers fd() for readability):
//
//   auto watcher = InotifyWatcher::Create();  // StatusOr<unique_ptr<...>>
//   if (!watcher.ok()) return watcher.status();
//   absl::Status s = (*watcher)->AddRecursive("src");
//   if (!s.ok()) return s;
//   // Whenever (*watcher)->fd() is readable (level-triggered: if the budget
//   // left records queued, it is still readable):
//   std::vector<WatchEvent> events;
//   s = (*watcher)->ReadEvents(&events);  // events are valid even if !s.ok()
//   for (const WatchEvent& e : events) std::cout << e.ToLine() << std::endl;
//
// Semantics, from inotify to events:
// - IN_CREATE -> created. A new directory is watched recursively and every
//   entry that already exists inside it is reported as created too (parents
//   before children, names sorted): this closes the race between mkdir and the
//   watch being added (`mkdir -p a/b/c && touch a/b/c/f` reports all four).
//   An entry that the scan reports and that also has a queued IN_CREATE is
//   reported once: the scan's record suppresses the matching IN_CREATE until
//   the queue has been read empty after the scan (over as many ReadEvents()
//   calls as that takes).
// - IN_MODIFY -> modified, for every write the kernel reports; consecutive
//   identical modified events within one ReadEvents() call collapse into one
//   (the kernel merges identical unread events too), so a burst of writes
//   read at once gives one line. IN_CLOSE_WRITE is not used: it would call an
//   empty `touch` a modification and never report writers that keep a file
//   open (logs). A file created with content gives `created` then `modified`.
// - IN_DELETE -> deleted. Deleting a tree reports its entries in the order
//   they were removed, then the directory itself.
// - IN_MOVED_FROM + IN_MOVED_TO with the same cookie in one ReadEvents() call
//   -> `moved <from> -> <to>`. The watches of a moved directory follow it: the
//   directory and all its descendants are known by their new paths. A rename
//   over an existing entry is only `moved` (the replaced entry is implied
//   gone, as with rename(2)).
//   An unpaired IN_MOVED_FROM (moved out of the watched trees) -> deleted; a
//   moved-out directory stops being watched. An unpaired IN_MOVED_TO (moved
//   in) -> created; a moved-in directory is treated like a created one
//   (watched, its content reported as created).
//   The kernel queues both halves of a rename within one rename(2), and an
//   IN_MOVED_FROM that ends a call's reading budget is held for the next
//   call; only a read that lands between the halves while the second is not
//   yet queued gives deleted + created, which still describes the final
//   state.
// - IN_DELETE_SELF on a root -> `deleted <root>` and the root is forgotten;
//   IN_IGNORED forgets a watch (directory gone, unmounted or moved out).
// - IN_Q_OVERFLOW -> kOverflow (`overflow: events lost`): the kernel queue
//   (fs.inotify.max_queued_events) filled up and dropped events. The watcher
//   rescans its roots, watching directories that appeared and dropping those
//   that vanished, but does not synthesize the lost events: on `overflow` a
//   consumer should resynchronize its own view. Until then events around the
//   overflow may be missing or duplicated.
// - Not reported: attribute changes (IN_ATTRIB: chmod, chown, timestamps,
//   `touch` of an existing file), opens, reads and closes.
//
// Paths: the root is used as given except that trailing slashes are removed
// ("d/" and "d" both report "d/f"; "/" stays "/" and reports "/f"). No other
// normalization: "./d" reports "./d/f" and symlinks in the root path are not
// resolved. The root may be a symlink to a directory (it is followed); links
// inside a tree are reported as entries but never followed. If a root itself
// is renamed, its events keep using the path as given. Overlapping roots
// ("a" and "a/b") share watches: one line per change, under the path most
// recently given for that directory.
class InotifyWatcher {
 public:
  // Creates an inotify instance (IN_NONBLOCK | IN_CLOEXEC). Fails with the
  // errno text, e.g. ResourceExhausted when fs.inotify.max_user_instances is
  // reached.
  static absl::StatusOr<std::unique_ptr<InotifyWatcher>> Create();

  ~InotifyWatcher();
  InotifyWatcher(const InotifyWatcher&) = delete;
  InotifyWatcher& operator=(const InotifyWatcher&) = delete;

  // Watches `dir` and every directory below it. Entries that already exist are
  // not reported. Errors (errno text and the path in the message):
  //   InvalidArgument     `dir` is empty
  //   NotFound            `dir` does not exist
  //   FailedPrecondition  `dir` is not a directory (ENOTDIR)
  //   PermissionDenied    `dir` or a directory below it cannot be read
  //   ResourceExhausted   the per-user watch limit was hit (ENOSPC; raise
  //                       fs.inotify.max_user_watches)
  // If `dir` itself cannot be watched nothing changes. If a directory below it
  // cannot, the rest of the tree is still watched and the first such error is
  // returned; the watches already added stay. Subdirectories that vanish
  // during the walk are skipped silently. Adding a watched tree again is
  // harmless.
  absl::Status AddRecursive(const std::string& dir);

  // The inotify descriptor: poll it for readability, then call ReadEvents().
  int fd() const { return fd_; }

  // Default for ReadEvents' budget, the event loop's default read budget.
  static constexpr size_t kDefaultReadBudget = 64 * 1024;

  // Reads queued inotify records until EAGAIN or until about `max_bytes`
  // of them were read (never blocks; at least one record if any is queued,
  // and never more than max_bytes plus one record's size), and appends the
  // translated events to `out`, in the order they happened. Records left
  // queued keep fd() readable, so a level-triggered poller reports it again
  // and the next call continues where this one stopped: a burst of events
  // is read over several calls, none lost, and other sources get their turn
  // in between (guarantee 7 of reactor/event_loop.h). Returns OK when
  // nothing is queued. A directory discovered while reading that cannot be
  // watched (e.g. ResourceExhausted) does not stop the batch: all events
  // are still appended and the first such error is returned afterwards. A
  // failing read(2) returns its errno status; a malformed record (which the
  // kernel never produces) DataLoss, after the events before it.
  absl::Status ReadEvents(std::vector<WatchEvent>* out,
                          size_t max_bytes = kDefaultReadBudget);

  // Number of directories currently watched.
  size_t watch_count() const { return paths_.size(); }

  // Paths of the watched directories as the watcher knows them, sorted.
  // For tests and diagnostics.
  std::vector<std::string> WatchedPaths() const;

 private:
  explicit InotifyWatcher(int fd);

  // How a directory reached WatchTree.
  enum class Origin {
    kUserRoot,    // AddRecursive/rescan: follow a symlink; errors are fatal.
    kDiscovered,  // Found by an event: not followed; vanishing is fine.
  };

  // Watches `dir` and the directories below it. With `emit`, reports every
  // entry below `dir` as created and records it in scanned_; with `seen`,
  // collects the watch descriptors met; `top_watched` says whether `dir`
  // itself got a watch.
  absl::Status WatchTree(const std::string& dir, Origin origin,
                         std::vector<WatchEvent>* emit,
                         absl::flat_hash_set<int>* seen, bool* top_watched);
  // Reads and decodes records into `raw` until EAGAIN (*drained) or until
  // *read_bytes (the call's running total) reaches max_bytes.
  absl::Status ReadAvailable(size_t max_bytes, size_t* read_bytes,
                             bool* drained, std::vector<InotifyRecord>* raw);
  // Translates one round of records; sets *scanned if a directory was scanned.
  absl::Status Process(const std::vector<InotifyRecord>& raw, size_t first,
                       std::vector<WatchEvent>* out, bool* scanned);
  void Emit(WatchEvent event, size_t first, std::vector<WatchEvent>* out);
  void RenameSubtree(const std::string& from, const std::string& to);
  void UnwatchSubtree(const std::string& dir);
  void Rescan();

  int fd_;
  // Watch descriptor -> directory path.
  absl::flat_hash_map<int, std::string> paths_;
  // Roots as given (trailing slashes removed), for overflow rescans.
  std::vector<std::string> roots_;
  // Entries reported as created by a directory scan since the queue was
  // last read empty; a queued IN_CREATE/IN_MOVED_TO for one is a duplicate.
  absl::flat_hash_set<std::string> scanned_;
  // An IN_MOVED_FROM read last, when the budget stopped the call before its
  // IN_MOVED_TO: processed with the next call's records.
  std::vector<InotifyRecord> held_back_;
  std::vector<char> buffer_;
};

}  // namespace mill

#endif  // MILL_IO_EXAMPLES_FILE_WATCHER_INOTIFY_WATCHER_H_
