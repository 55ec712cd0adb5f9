#!/usr/bin/env bash
# The house style, enforced: every tracked C++ file is as clang-format (the project's
# .clang-format) writes it, and no line of C++, CMake or the Makefile is longer than 100
# columns (characters, not bytes: the diagrams draw with UTF-8 arrows).
# Exit 0 clean, 1 with every offending place listed. `make format` fixes the first kind.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
mapfile -t cxx < <(git ls-files '*.cpp' '*.h')
if ! clang-format --dry-run --Werror "${cxx[@]}" 2>/tmp/zonewall-format.$$; then
  sed -n '1,60p' /tmp/zonewall-format.$$ >&2
  echo "check-style: clang-format would change the files above; run 'make format'" >&2
  status=1
fi
rm -f /tmp/zonewall-format.$$

# clang-format leaves long string literals and comments it cannot break; they count too.
mapfile -t all < <(git ls-files '*.cpp' '*.h' 'CMakeLists.txt' '*.cmake' 'Makefile')
if long=$(LC_ALL=C.UTF-8 grep -nP '^.{101,}' "${all[@]}"); then
  echo "$long" | cut -c1-120 >&2
  echo "check-style: lines over 100 columns" >&2
  status=1
fi
exit $status
