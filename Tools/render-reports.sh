#!/usr/bin/env bash
# Renders every report.html under the given folders to a PNG beside it (report.png) in headless Chromium, and fails
# when the browser logs any console message: an uncaught script error, or an SVG attribute it cannot parse (a NaN
# coordinate). Reports have no scripts; the check guards the markup, and any script a report may gain. Each PNG
# is as tall as its page: a first pass measures the page (in a copy with a measuring script), the second renders it.
#
# Usage: Tools/render-reports.sh [FOLDER…]
#   Without folders it makes fresh demo runs first (`refit demo`, into a temporary folder: a pre-training run and a
#   fine-tuning run). REFIT names the refit binary (default .build/release/refit, else .build/debug/refit);
#   WIDTH the window width in pixels (default 1280).
# Needs Chromium: Debian's package `chromium` (sudo apt-get install -y chromium).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
width="${WIDTH:-1280}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "render-reports: Chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 2
fi
flags=(--headless --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$(mktemp -d)")
[ "$(id -u)" -eq 0 ] && flags+=(--no-sandbox)  # Chromium refuses to run as root inside its sandbox

if [ $# -eq 0 ]; then
  refit="${REFIT:-}"
  for candidate in "$root/.build/release/refit" "$root/.build/debug/refit"; do
    [ -z "$refit" ] && [ -x "$candidate" ] && refit="$candidate"
  done
  if [ -z "$refit" ]; then
    echo "render-reports: no built refit; run swift build -c release first, or set REFIT" >&2
    exit 2
  fi
  demo="$(mktemp -d)/demo"
  echo "render-reports: making demo runs in $demo with $refit" >&2
  "$refit" demo --out "$demo" --quiet >/dev/null
  set -- "$demo"
fi

reports=()
while IFS= read -r -d '' report; do reports+=("$report"); done < <(find "$@" -name report.html -print0 | sort -z)
if [ ${#reports[@]} -eq 0 ]; then
  echo "render-reports: no report.html under $*" >&2
  exit 1
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
status=0
for report in "${reports[@]}"; do
  path="$(realpath "$report")"
  png="${path%.html}.png"
  # The page's height, from a copy that writes it into its own DOM; the report itself is rendered untouched.
  sed 's|</body>|<script>document.documentElement.dataset.height = document.documentElement.scrollHeight</script></body>|' \
    "$path" >"$scratch/measure.html"
  height="$(timeout 60 "$browser" "${flags[@]}" --window-size="$width,800" --dump-dom "file://$scratch/measure.html" 2>/dev/null \
    | grep -o 'data-height="[0-9]*"' | grep -o '[0-9][0-9]*' || true)"
  height="${height:-2400}"
  if ! timeout 60 "$browser" "${flags[@]}" --enable-logging=stderr --v=0 --window-size="$width,$height" --screenshot="$png" \
      "file://$path" >/dev/null 2>"$scratch/log"; then
    echo "FAIL $report: Chromium did not render it" >&2
    status=1
    continue
  fi
  # Chromium logs the page's console as INFO:CONSOLE lines (uncaught errors as "Uncaught …"); the rest of its log is
  # about the machine (D-Bus, GPU) and says nothing about the page.
  if grep -E ':CONSOLE|Uncaught' "$scratch/log" >&2; then
    echo "FAIL $report: the console above" >&2
    status=1
  else
    echo "ok   $report → $png (${width}×$height)"
  fi
done
exit $status
