// The RAII alias every C handle gets (libnftnl, libmnl, libnl): no *_free call outside the
// wrapper headers that instantiate it.
#pragma once

#include <memory>

namespace zonewall {

template <auto FreeFn>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    FreeFn(p);
  }
};
template <class T, auto FreeFn>
using CHandle = std::unique_ptr<T, CDeleter<FreeFn>>;

}  // namespace zonewall
