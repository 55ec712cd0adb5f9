// A network namespace of a bench's own with an underlay veth pair (ul0 holding `address`/24,
// its peer ul1), removed when the object goes.
#pragma once

#include <string>

#include "test_support.h"

namespace zonewall::bench {

inline bool sh(const std::string& cmd) {
  return testing::run(cmd + " >/dev/null 2>&1").exit_code == 0;
}

class UnderlayNetns {
 public:
  UnderlayNetns(std::string name, const std::string& address) : name_(std::move(name)) {
    ok_ = sh("ip netns add " + name_) && sh("ip -n " + name_ + " link set lo up") &&
          sh("ip -n " + name_ + " link add ul0 type veth peer name ul1") &&
          sh("ip -n " + name_ + " addr add " + address + "/24 dev ul0") &&
          sh("ip -n " + name_ + " link set ul0 up") && sh("ip -n " + name_ + " link set ul1 up");
  }
  ~UnderlayNetns() { sh("ip netns del " + name_); }
  UnderlayNetns(const UnderlayNetns&) = delete;
  UnderlayNetns& operator=(const UnderlayNetns&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

}  // namespace zonewall::bench
