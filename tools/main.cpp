// zonewall: the command line (cli.h); this only hands over argv and the standard streams.
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  return zonewall::tools::runCli(args, std::cin, std::cout, std::cerr);
}
