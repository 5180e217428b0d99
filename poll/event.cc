#include "poll/event.h"

#include <cassert>
#include <ostream>

namespace mill {

std::ostream& operator<<(std::ostream& os, const Event& event) {
  os << "Event(" << event.token() << ", ";
  struct Name {
    uint32_t flag;
    const char* name;
  };
  static constexpr Name kNames[] = {
      {Event::kReadable, "READABLE"},
      {Event::kWritable, "WRITABLE"},
      {Event::kError, "ERROR"},
      {Event::kReadClosed, "READ_CLOSED"},
      {Event::kWriteClosed, "WRITE_CLOSED"},
      {Event::kPriority, "PRIORITY"},
  };
  const char* sep = "";
  for (const Name& n : kNames) {
    if ((event.flags() & n.flag) != 0) {
      os << sep << n.name;
      sep = "|";
    }
  }
  if (*sep == '\0') os << "NONE";
  return os << ")";
}

Events::Events(size_t capacity)
    : data_(new Event[capacity == 0 ? 1 : capacity]),
      capacity_(capacity == 0 ? 1 : capacity) {
  assert(capacity >= 1);
}

}  // namespace mill
