// compat.cc — keeps the prebuilt addon loadable by the libstdc++ of older distributions.
//
// GCC 11's headers make std::allocator<T>::allocate call std::__throw_bad_array_new_length(),
// a symbol that first appeared in libstdc++ 3.4.29 (GCC 11): linked dynamically, the addon
// would refuse to load on Debian 11, Ubuntu 20.04 or RHEL 8, whose libstdc++ is older, although
// nothing else it uses is. (Linking libstdc++ statically instead pulls in symbols of the build
// host's glibc 2.34-2.36.) The addon is built without exceptions, so the throw can only end the
// process, which is what this definition does; -fvisibility=hidden keeps it inside the addon.
// scripts/check-prebuilds.js checks the symbol versions the prebuilds need.
#include <cstdlib>

namespace std {
[[noreturn]] void __throw_bad_array_new_length() {
  abort();
}
}  // namespace std
