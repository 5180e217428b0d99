// ThreadSanitizer suppressions for programs that use Debian's OpenSSL
// (//tls), compiled into the executable only under --config=tsan (the
// runtime looks the hook up in the executable).
//
// Debian's OpenSSL is not built with ThreadSanitizer: its atomics
// (reference counts of SSL_SESSION, X509, ...) and what its locks order are
// invisible, but the memcpy/free calls it makes are intercepted, so TSan
// pairs a free after the last (invisible) unref with an earlier read on
// another thread and reports a race. Our own use of each SSL object is
// serialised by our locks, which TSan does see; only reports raised from
// inside OpenSSL are suppressed.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcrypto.so.3\n"
         "called_from_lib:libssl.so.3\n";
}
#endif
