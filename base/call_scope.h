// CallScope: what the current thread is running inside of, for code that
// must behave differently when it is re-entered: a Close() from inside the
// connection's own callback is carried out when the callback returns, a
// Stop() from inside a callback cannot wait for callbacks, a handler that
// deregisters itself must not wait for itself, RunInLoop from inside a task
// runs inline.
//
// Every such question in Mill-IO is answered here, from one thread-local
// stack of scopes: a scope is pushed for its lifetime (scopes nest and are
// popped in reverse order) and names a kind (a family, such as "callbacks of
// a Connection") and a key (the object, such as that connection). Asking
// walks the few scopes of this thread; no object stores thread ids.
//
//   ABSL_CONST_INIT const mill::CallScopeKind kCallbacks{"callbacks"};
//   void Conn::RunCallback() {
//     mill::CallScope scope(kCallbacks, this);
//     callback_();
//   }
//   void Conn::Close() {
//     if (mill::CallScope::Active(kCallbacks, this)) { defer(); return; }
//     ...
//   }
//
// Thread-safety: a scope belongs to the thread that made it; the queries
// look at the calling thread only. Ownership: a scope borrows its key and
// data.
#ifndef MILL_IO_BASE_CALL_SCOPE_H_
#define MILL_IO_BASE_CALL_SCOPE_H_

namespace mill {

// A family of scopes; define one per question, with static storage
// duration (its address is its identity).
struct CallScopeKind {
  const char* name;  // for debugging
};

class CallScope {
 public:
  CallScope(const CallScopeKind& kind, const void* key, void* data = nullptr)
      : kind_(&kind), key_(key), data_(data), outer_(top_) {
    top_ = this;
  }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
  ~CallScope() { top_ = outer_; }

  // The innermost scope of `kind` on this thread for `key`, or null.
  static CallScope* Find(const CallScopeKind& kind, const void* key) {
    for (CallScope* s = top_; s != nullptr; s = s->outer_) {
      if (s->kind_ == &kind && s->key_ == key) return s;
    }
    return nullptr;
  }
  // The innermost scope of `kind` on this thread, whatever its key, or null.
  static CallScope* Innermost(const CallScopeKind& kind) {
    for (CallScope* s = top_; s != nullptr; s = s->outer_) {
      if (s->kind_ == &kind) return s;
    }
    return nullptr;
  }
  // This thread is inside a scope of `kind` for `key`.
  static bool Active(const CallScopeKind& kind, const void* key) {
    return Find(kind, key) != nullptr;
  }
  // This thread is inside any scope of `kind`.
  static bool AnyActive(const CallScopeKind& kind) {
    return Innermost(kind) != nullptr;
  }

  const void* key() const { return key_; }
  void* data() const { return data_; }

 private:
  static inline thread_local CallScope* top_ = nullptr;

  const CallScopeKind* const kind_;
  const void* const key_;
  void* const data_;
  CallScope* const outer_;
};

}  // namespace mill

#endif  // MILL_IO_BASE_CALL_SCOPE_H_
