// {fmt}'s compiled part, built once. Debian ships {fmt} as a shared library only, and the CNI
// plugin links statically (cni/CMakeLists.txt), so zonewall_base carries the implementation
// itself: every other translation unit includes the declarations alone instead of compiling
// format-inl.h again (header-only mode doubled the build, three times over under ASan).
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {
// The out-of-line templates that fmt/format.h declares `extern template` when not header-only.
template FMT_API auto thousands_sep_impl<char>(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl<char>(locale_ref) -> char;
}  // namespace detail
FMT_END_NAMESPACE
