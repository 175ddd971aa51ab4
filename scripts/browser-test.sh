#!/usr/bin/env bash
# Browser test of a report: load DIR/index.html in headless Chromium (no network), check that
# the page raised no JavaScript or console errors and that every <img> decoded
# (naturalWidth > 0), and take a full-page screenshot.
#
#   scripts/browser-test.sh DIR [SCREENSHOT.png]
#
# Exit status: 0 pass; 1 a check failed; 2 usage error or no chromium
# (install it with `apt-get install -y chromium`).
set -euo pipefail

dir=${1:?usage: scripts/browser-test.sh DIR [SCREENSHOT.png]}
shot=${2:-$dir/screenshot.png}
index="$dir/index.html"
[[ -f $index ]] || { echo "error: $index does not exist (run \`salient report $dir\` first)" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n $browser ]] || { echo "error: no chromium found (apt-get install -y chromium)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-extensions --hide-scrollbars --user-data-dir="$work/profile")

# A copy of the page beside the original (so relative links resolve the same way) with a
# checker appended: it records errors from the moment it runs and, after load, writes the
# verdict into the DOM, which --dump-dom prints. The report itself carries no script.
probe="$dir/.browser-test-$$.html"
trap 'rm -rf "$work" "$probe"' EXIT
{
  printf '%s\n' '<script>window.__errors=[];window.addEventListener("error",function(e){window.__errors.push("error: "+(e.message||(e.target&&(e.target.src||"").slice(0,60))||"resource"))},true);(function(){var c=console.error;console.error=function(){window.__errors.push("console.error: "+Array.prototype.join.call(arguments," "));c.apply(console,arguments)}})();</script>'
  cat "$index"
  printf '%s\n' '<script>window.addEventListener("load",function(){var imgs=Array.prototype.slice.call(document.images);var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).map(function(i){return i.alt||"(no alt)"});var p=document.createElement("pre");p.id="browser-test-result";p.textContent="IMAGES "+imgs.length+"\nBROKEN "+bad.length+(bad.length?" "+bad.join("; "):"")+"\nERRORS "+window.__errors.length+(window.__errors.length?" "+window.__errors.join("; "):"")+"\nWIDTH "+document.body.scrollWidth+"\nHEIGHT "+document.body.scrollHeight;document.body.appendChild(p)});</script>'
} > "$probe"

url="file://$(cd "$(dirname "$probe")" && pwd)/$(basename "$probe")"
dom="$work/dom.html"
timeout 60 "$browser" "${flags[@]}" --enable-logging=stderr --v=0 --virtual-time-budget=5000 --dump-dom "$url" >"$dom" 2>"$work/log.txt" || true
result=$(sed -n '/<pre id="browser-test-result">/,/<\/pre>/p' "$dom" | sed -e 's/<[^>]*>//g')
if [[ -z $result ]]; then
  echo "FAIL: the page did not finish loading in chromium" >&2
  tail -20 "$work/log.txt" >&2
  exit 1
fi
echo "$result"
images=$(awk '/^IMAGES/{print $2}' <<<"$result")
broken=$(awk '/^BROKEN/{print $2}' <<<"$result")
errors=$(awk '/^ERRORS/{print $2}' <<<"$result")
height=$(awk '/^HEIGHT/{print $2}' <<<"$result")
# Console messages chromium logs for the page itself (our probe records them too).
console=$(grep -E 'CONSOLE\(|Uncaught' "$work/log.txt" || true)

# Screenshot of the original page (not the probe), tall enough for all of it.
height=$(( ${height:-2000} > 16000 ? 16000 : ${height:-2000} ))
timeout 60 "$browser" "${flags[@]}" --window-size=1280,"$((height + 40))" --screenshot="$shot" "file://$(cd "$dir" && pwd)/index.html" >/dev/null 2>&1 || true

status=0
[[ ${images:-0} -gt 0 ]] || { echo "FAIL: the page has no images"; status=1; }
[[ ${broken:-1} -eq 0 ]] || { echo "FAIL: $broken image(s) did not decode"; status=1; }
[[ ${errors:-1} -eq 0 ]] || { echo "FAIL: $errors error(s) on the page"; status=1; }
[[ -z $console ]] || { echo "FAIL: console messages:"; echo "$console"; status=1; }
[[ -s $shot ]] || { echo "FAIL: no screenshot written to $shot"; status=1; }
[[ $status -eq 0 ]] && echo "PASS: $images images decoded, no errors; screenshot $shot"
exit $status
