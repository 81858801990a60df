// Symbols that g++ 12's libstdc++ headers make compiled C++ (tch's wrapper, FAISS) call, but
// that the floor's runtime lacks: glibc 2.28 and GCC 8's libstdc++ (GLIBCXX_3.4.25,
// CXXABI_1.3.11), the oldest that PyTorch's manylinux_2_28 wheel runs with. Each is defined here,
// hidden, so the binary resolves it inside itself: either on top of an interface that GCC 8's
// libstdc++ already exports (looked up with its old version), or whole where it is a one-liner. Built into the shipped build
// only (build.rs, HUELAB_GLIBC_FLOOR); tests/suite/glibc_floor.rs reads what the binary asks for.
//
// The definitions carry the mangled C++ names as extern "C" names: the headers declare the C++
// functions too, and a second C++ definition with another visibility would not compile.
#include <dlfcn.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <sstream>

#define HIDDEN extern "C" __attribute__((visibility("hidden")))

// glibc 2.32: libstdc++'s reference counts (shared_ptr, locales) skip their atomic instructions
// while this says the process has one thread. Always 0 here: always atomic, correct with any
// number of threads.
HIDDEN char __libc_single_threaded = 0;

// GLIBCXX_3.4.29: what `new T[n]` calls when n is too large.
HIDDEN [[noreturn]] void _ZSt28__throw_bad_array_new_lengthv() { throw std::bad_array_new_length(); }

// GLIBCXX_3.4.26: the default constructors of std::ostringstream and std::stringstream, which
// are the open-mode constructors (GLIBCXX_3.4.21) with the standard's default modes.
HIDDEN void _ZNSt7__cxx1119basic_ostringstreamIcSt11char_traitsIcESaIcEEC1Ev(std::ostringstream* self) {
    new (self) std::ostringstream(std::ios_base::out);
}
HIDDEN void _ZNSt7__cxx1118basic_stringstreamIcSt11char_traitsIcESaIcEEC1Ev(std::stringstream* self) {
    new (self) std::stringstream(std::ios_base::in | std::ios_base::out);
}

// libstdc++'s own definition of `name` at `version`, looked up in libstdc++ itself: a plain
// reference could be bound by the loader to an inline copy that the binary holds of the same
// function (the binary exports those libtorch calls, ~exception_ptr among them), which would
// call back into this file without end.
template <typename F>
static F libstdcxx_symbol(const char* name, const char* version) {
    void* lib = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_NOLOAD);
    void* symbol = lib ? dlvsym(lib, name, version) : nullptr;
    if (symbol == nullptr) {
        std::fprintf(stderr, "huelab: the machine's libstdc++.so.6 has no %s@%s\n", name, version);
        std::abort();
    }
    return reinterpret_cast<F>(symbol);
}

// GLIBCXX_3.4.30: condition_variable::wait, exported again when GCC 12 changed its internals;
// the GLIBCXX_3.4.11 one it kept does the same.
HIDDEN void _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE(std::condition_variable* self, std::unique_lock<std::mutex>* lock) {
    using Wait = void (*)(std::condition_variable*, std::unique_lock<std::mutex>*);
    static const Wait wait = libstdcxx_symbol<Wait>("_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE", "GLIBCXX_3.4.11");
    wait(self, lock);
}

// CXXABI_1.3.13: exception_ptr's reference count, which GCC 12 made callable from inline code
// (before, only the out-of-line copy constructor and destructor used it). Those two are exported
// since GCC 4.4 (CXXABI_1.3.3) and do exactly one addref / one release each.
HIDDEN void _ZNSt15__exception_ptr13exception_ptr9_M_addrefEv(void** self) {
    using Copy = void (*)(void**, void* const*);
    static const Copy copy = libstdcxx_symbol<Copy>("_ZNSt15__exception_ptr13exception_ptrC1ERKS0_", "CXXABI_1.3.3");
    void* owner;  // copied (one reference taken) and never destroyed: the count goes up by one
    copy(&owner, self);
}
HIDDEN void _ZNSt15__exception_ptr13exception_ptr10_M_releaseEv(void** self) {
    using Destroy = void (*)(void**);
    static const Destroy destroy = libstdcxx_symbol<Destroy>("_ZNSt15__exception_ptr13exception_ptrD1Ev", "CXXABI_1.3.3");
    void* owner = *self;  // a copy without a reference of its own, destroyed: down by one
    destroy(&owner);
}
