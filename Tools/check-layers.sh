#!/usr/bin/env bash
# Checks that the folders of Sources/Refit are floors: a file uses only types declared in its own folder or in the
# folders below it. The order is read from the README's line "Floors, bottom to top: A → B → …", so the document and
# the check cannot drift apart. Exits 1 and prints file:line for every upward use; 0 when there is none.
# Usage: Tools/check-layers.sh [REPOSITORY_ROOT]   (default: this script's repository)
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
sources="$root/Sources/Refit"
line=$(grep -m1 'Floors, bottom to top:' "$root/README.md" || true)
if [ -z "$line" ]; then
  echo "check-layers: $root/README.md has no line 'Floors, bottom to top: A → B → …'" >&2
  exit 2
fi
floors=$(echo "${line#*Floors, bottom to top:}" | sed 's/→/ /g; s/[^A-Za-z ]//g')
status=0
for folder in "$sources"/*/; do
  name=$(basename "$folder")
  if ! grep -qw "$name" <<<"$floors"; then echo "check-layers: Sources/Refit/$name is not among the README's floors ($floors)"; status=1; fi
done
for floor in $floors; do
  [ -d "$sources/$floor" ] || { echo "check-layers: the README names floor $floor, but Sources/Refit/$floor does not exist"; status=1; }
done
if compgen -G "$sources/*.swift" >/dev/null; then
  echo "check-layers: Swift files directly in Sources/Refit belong to no floor: $(cd "$sources" && ls ./*.swift | tr '\n' ' ')"; status=1
fi
[ "$status" -eq 0 ] || exit 1

# Pass 1 declares every top-level type (indented, nested types are their owner's) with its floor; pass 2 strips
# comments and string literals and reports each use of a type that lives on a higher floor.
files=()
for floor in $floors; do while IFS= read -r f; do files+=("$f"); done < <(find "$sources/$floor" -name '*.swift' | sort); done
awk -v floors="$floors" -v sources="$sources/" '
BEGIN { n = split(floors, order, " "); for (i = 1; i <= n; i++) rank[order[i]] = i }
function floorOf(path,   rest) { rest = substr(path, length(sources) + 1); return substr(rest, 1, index(rest, "/") - 1) }
FNR == 1 { pass = (FILENAME in seen) ? 2 : 1; seen[FILENAME] = 1; here = floorOf(FILENAME) }
pass == 1 {
  if (match($0, /^((public|internal|fileprivate|private|final|indirect|open) )*(class|struct|enum|protocol|typealias|actor) [A-Z][A-Za-z0-9_]*/)) {
    decl = substr($0, RSTART, RLENGTH); sub(/.* /, "", decl)
    if ((decl in home) && home[decl] != here) { printf "check-layers: %s is declared in both %s and %s\n", decl, home[decl], here; bad = 1 }
    home[decl] = here
  }
  next
}
{
  text = $0
  gsub(/"([^"\\]|\\.)*"/, "\"\"", text)
  sub(/\/\/.*/, "", text)
  while (match(text, /[A-Za-z_][A-Za-z0-9_]*/)) {
    word = substr(text, RSTART, RLENGTH); text = substr(text, RSTART + RLENGTH)
    if ((word in home) && rank[home[word]] > rank[here] && !((FILENAME, word) in told)) {
      told[FILENAME, word] = 1
      printf "%s:%d: uses %s from %s, a floor above %s\n", substr(FILENAME, length(sources) + 1), FNR, word, home[word], here
      bad = 1
    }
  }
}
END { exit bad }
' "${files[@]}" "${files[@]}" || status=1
if [ "$status" -eq 0 ]; then echo "check-layers: ${#files[@]} files on $(wc -w <<<"$floors") floors, no upward use"; fi
exit "$status"
