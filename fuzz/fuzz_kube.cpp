// What the agent reads from a Kubernetes API server: a watch stream cut into lines wherever
// the network cuts it, each line an event, each event's object decoded as the kind being
// watched; and the same bytes as a list page. Nothing throws, nothing crashes; a line too
// long to be an event ends the stream instead of growing the buffer.
//
// Input: byte 0 picks the kind, byte 1 the chunk size; the rest is the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "zonewall/agent/decode.h"
#include "zonewall/agent/objects.h"

namespace agent = zonewall::agent;

namespace {

void decode(agent::Kind kind, const nlohmann::json& object) {
  agent::Converted c = agent::fromApi(kind, object);
  if (c.object && !c.errors.empty()) std::abort();  // an object, or the errors refusing it
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  constexpr int kKinds = static_cast<int>(agent::Kind::kGlobalNetworkSet) + 1;
  const auto kind = static_cast<agent::Kind>(data[0] % kKinds);
  const size_t chunk = 1 + data[1];
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  agent::LineSplitter lines;
  size_t seen = 0;
  for (size_t at = 0; at < stream.size(); at += chunk) {
    auto status = lines.feed(stream.substr(at, chunk), [&](std::string_view line) {
      seen += line.size() + 1;
      if (auto ev = agent::parseKubeWatchEvent(line)) decode(kind, ev->object);
      return true;
    });
    if (status != agent::LineSplitter::Status::kMore) std::abort();
  }
  // Every byte was handed on as a line or is still waiting for its '\n'.
  if (seen + lines.rest().size() != stream.size()) std::abort();

  if (auto page = agent::parseKubeListPage(stream)) {
    for (const auto& item : page->items) decode(kind, item);
  }
  (void)agent::statusMessage(stream);
  return 0;
}
