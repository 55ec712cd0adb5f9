// The Calico selector grammar alone. Any text parses or is refused at an offset inside it; a
// parsed selector's canonical text parses again to the same canonical text, and evaluating
// either against labels taken from the input never disagrees.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "zonewall/policy/selector.h"

using zonewall::policy::Labels;
using zonewall::policy::parseSelector;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto sel = parseSelector(text);
  if (!sel) {
    if (sel.error().offset > size || sel.error().message.empty()) std::abort();
    return 0;
  }
  auto again = parseSelector(sel->str());
  if (!again || again->str() != sel->str()) std::abort();
  // Labels named by the input's first words, so that evaluation takes every branch.
  Labels labels;
  size_t start = 0;
  for (int i = 0; i < 4 && start < size; ++i) {
    size_t end = text.find_first_of(" =!()&|,{}'\"", start);
    if (end == std::string_view::npos) end = size;
    if (end > start) labels.emplace(std::string(text.substr(start, end - start)), "a");
    start = end + 1;
  }
  if (sel->matches(labels) != again->matches(labels)) std::abort();
  return 0;
}
