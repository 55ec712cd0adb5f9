// zonewall-cni: the CNI plugin binary (installed as "zonewall" in CNI_PATH, the name a
// config's "type" gives). Parameters come in the environment, the config on stdin; the result
// or error goes to stdout (CNI spec 1.0.0 / 1.1.0).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>

#include "zonewall/cni/plugin.h"

extern char** environ;

int main() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (!kv.starts_with("CNI_")) continue;
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::string input;
  // VERSION may come without a config; never wait on a terminal for one.
  if (!isatty(STDIN_FILENO)) {
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  zonewall::cni::Outcome out = zonewall::cni::runPlugin(env, input);
  std::fwrite(out.stdout_text.data(), 1, out.stdout_text.size(), stdout);
  return out.exit_code;
}
