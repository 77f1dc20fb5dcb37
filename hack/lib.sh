# Shell functions the hack/ scripts share; sourced, not run.

# ensure_debian_packages PACKAGE...: installs those not installed yet (root needed only then).
ensure_debian_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "[$(basename "$0")] installing Debian packages: ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then echo "[$(basename "$0")] need root to install ${missing[*]}" >&2; return 1; fi
  # Two runs setting up at once (a test suite and the demo) wait for each other's dpkg lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# cached_go_build PREFIX BINARY PACKAGE [FILE...]: builds PACKAGE of the wrapper module in the
# calling script's directory into $cache/PREFIX-<key>/BINARY, the key hashing its go.mod, go.sum,
# the FILEs and the Go version, so a fresh clone reuses what an earlier one built. Prints the
# binary's path.
cached_go_build() {
  local prefix=$1 binary=$2 package=$3; shift 3
  local here; here="$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)"
  local cache_root="${NETWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netwarden}"
  local files=("$here/go.mod" "$here/go.sum") f
  for f in "$@"; do files+=("$here/$f"); done
  local key; key="$(cat "${files[@]}" <(go env GOVERSION) | sha256sum | cut -c1-12)"
  local out="$cache_root/$prefix-$key"
  mkdir -p "$out"
  if [[ ! -x "$out/$binary" ]]; then
    echo "building $binary into $out" >&2
    local start=$SECONDS
    # Build to a temporary name and rename, so an interrupted build never leaves a half binary.
    (cd "$here" && CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags="-s -w" -o "$out/.$binary.tmp" "$package")
    mv "$out/.$binary.tmp" "$out/$binary"
    echo "built $binary in $((SECONDS - start))s" >&2
  fi
  echo "$out/$binary"
}
