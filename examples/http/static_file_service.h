// StaticFileService: the HTTP example's request handler: a greeting, or the
// files under a root directory.
//
// Behaviour:
//   * Only GET and HEAD; any other method gets 405 with "Allow: GET, HEAD".
//   * Without a root: "/" answers the greeting (text/plain); anything else
//     is 404.
//   * With a root: a path naming a regular file serves it, with a
//     Content-Type from its extension (ContentTypeForPath). A directory
//     serves its index.html; without one, "/" answers the greeting and any
//     other directory is 404 (no listings, no redirect to add a slash).
//     Missing files are 404; files the server may not open are 403.
//   * Escaping the root is refused with 403 Forbidden, whatever the spelling:
//     a ".." segment (raw or percent-encoded), an encoded "/" (%2F) or any
//     backslash (raw or %5C) inside a segment, NUL or other control bytes,
//     and symlinks (anywhere on the path) whose target lies outside the root:
//     every path is resolved with realpath(3) and must stay under the
//     resolved root. Malformed percent-encoding is 400. The query string and
//     fragment are ignored. Absolute-form targets ("http://host/path") are
//     served by their path.
//   * Files are read whole into the response (this is an example server);
//     HEAD only stat()s them.
// Symlinks inside the root that point inside it are followed. The check and
// the open are not atomic: a root whose contents an attacker can change while
// the server runs is out of scope.
//
// Thread-safety: thread-safe; Handle() is const and keeps no state, so one
// service serves all connections and worker threads. Ownership: the service
// owns its options; handlers made by AsHandler() point to the service, which
// must outlive them.
#ifndef MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_
#define MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/http/http_message.h"

namespace mill::http {

// How a request-target's path decodes (see DecodeRequestPath).
struct DecodedPath {
  enum class Verdict { kOk, kBadRequest, kForbidden };
  Verdict verdict = Verdict::kOk;
  // The decoded segments, without empty and "." segments; "/" has none.
  std::vector<std::string> segments;
};

// Splits and percent-decodes the path of `target` (origin-form "/a/b?q" or
// absolute-form "http://h/a/b"), applying the refusal rules listed above.
DecodedPath DecodeRequestPath(std::string_view target);

// The Content-Type for a file name, by its extension (case-insensitive):
// html/htm, css, js/mjs, json, txt, png, jpg/jpeg, gif, svg, ico, wasm, pdf;
// anything else is application/octet-stream. Text types say charset=utf-8.
std::string_view ContentTypeForPath(std::string_view path);

// Serves a greeting and, optionally, a directory tree:
//
//   StaticFileService::Options options;
//   options.root = "/srv/www";
//   auto service = StaticFileService::Create(options);
//   if (!service.ok()) return service.status();
//   HttpConnection conn((*service)->AsHandler());
class StaticFileService {
 public:
  struct Options {
    // Directory to serve; empty serves only the greeting.
    std::string root;
    // Body of "/" when there is no index.html to serve.
    std::string greeting = "Hello from Mill-IO!\n";
  };

  // Fails with NotFound / InvalidArgument when `root` is set but is not an
  // existing directory.
  static absl::StatusOr<std::unique_ptr<StaticFileService>> Create(
      Options options);

  StaticFileService(const StaticFileService&) = delete;
  StaticFileService& operator=(const StaticFileService&) = delete;

  HttpResponse Handle(const HttpRequest& request) const;

  // A handler for HttpConnection that calls Handle() on this service.
  HttpHandler AsHandler() const;

  // The resolved (realpath) root, or empty when serving no files.
  const std::string& root() const { return root_; }

 private:
  StaticFileService(Options options, std::string root);

  // Serves the file at `real_path` (already checked to be under the root).
  HttpResponse ServeFile(const std::string& real_path,
                         std::string_view content_type, bool head) const;
  // realpath() of `path` when it stays under the root; else an error status.
  int Resolve(const std::string& path, std::string* real_path) const;

  Options options_;
  std::string root_;         // Resolved.
  std::string root_prefix_;  // root_ with a trailing '/'.
};

}  // namespace mill::http

#endif  // MILL_IO_EXAMPLES_HTTP_STATIC_FILE_SERVICE_H_
