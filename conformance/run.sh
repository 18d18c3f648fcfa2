#!/usr/bin/env bash
# Autobahn|Testsuite (fuzzingclient) against Helios in echo mode, sections 1–10.
#
#   npm run conformance          (or: bash conformance/run.sh; tests the addon as built: 'npm run build' first)
#
# - makes, once, a Python 2.7 virtualenv with `autobahntestsuite` in conformance/.venv27/ (the suite is
#   Python 2 code); fails if no Python 2.7 can be found;
# - starts conformance/echo-server.mjs under Bun, runs `wstest -m fuzzingclient`, stops the server;
# - summarizes the report (conformance/reports/index.json) into docs/conformance.md and fails if any case
#   FAILED (its behavior or its closing behavior).
#
# Sections 12–13 (permessage-deflate) are excluded: Helios does not support compression.
# Environment: PYTHON27=/path/to/python2.7 to choose the interpreter; CONFORMANCE_REBUILD_VENV=1 to remake
# the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONF=$ROOT/conformance
VENV=$CONF/.venv27
REPORTS=$CONF/reports
BUN=$ROOT/node_modules/.bin/bun

step() { printf '\n== conformance: %s ==\n' "$*"; }
die() { printf 'conformance: ERROR: %s\n' "$*" >&2; exit 1; }
START=$(date +%s)

# ---------------------------------------------------------------------------------------------------------
# 1. the Python 2.7 virtualenv with autobahntestsuite (cached)
# ---------------------------------------------------------------------------------------------------------
find_python27() {
  if [[ -n "${PYTHON27:-}" ]]; then echo "$PYTHON27"; return 0; fi
  local roots=() r p
  if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
  [[ -n "${PYENV_ROOT:-}" ]] && roots+=("$PYENV_ROOT")
  roots+=("$HOME/.pyenv" /root/.pyenv /opt/pyenv /usr/local/pyenv)
  for r in "${roots[@]}"; do
    for p in "$r"/versions/2.7*/bin/python2.7; do
      [[ -x "$p" ]] && { echo "$p"; return 0; }
    done
  done
  for p in python2.7 python2; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' 2>/dev/null; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

find_python3() {
  local p
  for p in python3 python3.12 python3.11 python3.10; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip, sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' 2>/dev/null; then
      command -v "$p"; return 0
    fi
  done
  return 1
}

[[ "${CONFORMANCE_REBUILD_VENV:-0}" == 1 ]] && rm -rf "$VENV"
if [[ -f "$VENV/.ready" && -x "$VENV/bin/wstest" ]]; then
  step "using the cached Python 2.7 virtualenv ($VENV)"
else
  step "making the Python 2.7 virtualenv with autobahntestsuite (once, about a minute)"
  PY27=$(find_python27) || die "no Python 2.7 found (looked for PYTHON27, pyenv's versions/2.7*, python2.7 on PATH). Autobahn|Testsuite is Python 2 code and needs it; install one (e.g. 'pyenv install 2.7.18') or set PYTHON27."
  PY3=$(find_python3) || die "no Python 3 (>= 3.8, with venv and ensurepip) found to bootstrap virtualenv"
  echo "python 2.7: $PY27 ($("$PY27" --version 2>&1))"
  echo "python 3:   $PY3 ($("$PY3" --version 2>&1))"
  rm -rf "$VENV"
  BOOT=$(mktemp -d)
  trap 'rm -rf "$BOOT"' EXIT
  "$PY3" -m venv "$BOOT/venv"
  "$BOOT/venv/bin/pip" install --quiet --disable-pip-version-check 'virtualenv<20.22'
  "$BOOT/venv/bin/virtualenv" --quiet --python "$PY27" "$VENV"
  rm -rf "$BOOT"; trap - EXIT
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-python-version-warning autobahntestsuite 2>&1 \
    | grep -v -e 'DEPRECATION: Python 2.7' -e 'cryptography' || true
  [[ -x "$VENV/bin/wstest" ]] || die "pip did not install wstest into $VENV"
  "$VENV/bin/python" -c 'import autobahntestsuite' || die "autobahntestsuite does not import in $VENV"
  touch "$VENV/.ready"
fi
echo "wstest: $("$VENV/bin/wstest" --autobahnversion 2>/dev/null | tail -n1 || echo '?')"

# ---------------------------------------------------------------------------------------------------------
# 2. the echo server
# ---------------------------------------------------------------------------------------------------------
[[ -x "$BUN" ]] || die "$BUN not found: run 'npm ci' (or 'npm install') first"
ls "$ROOT"/helios.*.node >/dev/null 2>&1 || die "no built addon (helios.*.node): run 'npm run build' first"
# The suite tests the addon as built (CI builds it in 'npm test' just before); say which one.
for addon in "$ROOT"/helios.*.node; do echo "addon: $(basename "$addon"), built $(date -r "$addon" '+%Y-%m-%d %H:%M:%S')"; done

step "starting the Helios echo server under Bun"
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BUN" "$CONF/echo-server.mjs" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/^listening \([0-9]\+\)$/\1/p' "$WORK/server.out" | head -n1)
  [[ -n "$PORT" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "the echo server exited before listening"; }
  sleep 0.1
done
[[ -n "$PORT" ]] || die "the echo server did not print 'listening <port>' within 10 s"
echo "echo server pid $SERVER_PID on ws://127.0.0.1:$PORT"

# ---------------------------------------------------------------------------------------------------------
# 3. wstest fuzzingclient, sections 1–10 (there is no section 8; 12–13 are compression)
# ---------------------------------------------------------------------------------------------------------
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
cat >"$WORK/spec.json" <<JSON
{
  "outdir": "$REPORTS",
  "servers": [ { "agent": "Helios", "url": "ws://127.0.0.1:$PORT" } ],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
step "running wstest -m fuzzingclient (sections 1–10, about half a minute)"
cp "$WORK/spec.json" "$REPORTS/spec.json"
WSTEST_START=$(date +%s)
# wstest logs one line per case; show one line per case group (1.1, 1.2, ...) with a running count.
if ! ( cd "$WORK" && "$VENV/bin/wstest" -m fuzzingclient -s spec.json ) 2>&1 | tee "$REPORTS/wstest.log" | awk '
  /Running test case ID/ {
    n++; id = $5; split(id, p, "."); group = p[1] "." p[2]
    if (group != last) { printf "  [%3d] %s ...\n", n, group; fflush(); last = group }
  }
  /Traceback|Error|error:/ && !/Running/ { print "  wstest: " $0; fflush() }
  END { printf "  %d cases run\n", n }
'; then
  die "wstest failed (log: $REPORTS/wstest.log)"
fi
WSTEST_SECONDS=$(( $(date +%s) - WSTEST_START ))

kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; die "the echo server died during the run"; }
step "stopping the echo server"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
if [[ -s "$WORK/server.err" ]]; then
  echo "server stderr (last lines):"; tail -n 20 "$WORK/server.err" | sed 's/^/  /'
fi

# ---------------------------------------------------------------------------------------------------------
# 4. summary → docs/conformance.md; fails if any case FAILED
# ---------------------------------------------------------------------------------------------------------
[[ -f "$REPORTS/index.json" ]] || die "wstest wrote no $REPORTS/index.json (see $REPORTS/wstest.log)"
EXPECTED=$(sed -n 's/.*will run \([0-9]\+\) test cases.*/\1/p' "$REPORTS/wstest.log" | head -n1)
step "summary"
"$BUN" "$CONF/summarize.mjs" \
  --expect "${EXPECTED:-0}" \
  --index "$REPORTS/index.json" \
  --out "$ROOT/docs/conformance.md" \
  --command "npm run conformance" \
  --seconds "$WSTEST_SECONDS" \
  --wstest "$("$VENV/bin/pip" show autobahntestsuite 2>/dev/null | sed -n 's/^Version: //p')" \
  --bun "$("$BUN" --version)"
echo "conformance: done in $(( $(date +%s) - START )) s (HTML report: $REPORTS/index.html)"
