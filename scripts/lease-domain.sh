# Sourced by the scripts: leases a DDS domain the way the tests do, so that a demo, a CI step
# and the tests of several checkouts never share one. An exclusive lock on
# ${TMPDIR:-/tmp}/amlip-domains/<domain>.lock, held on file descriptor 9 until the shell exits.
# Sets $domain. Skips 0, 42 (the compose cluster) and 166 (AML-IP's default).
lease_domain() {
  local dir="${TMPDIR:-/tmp}/amlip-domains" d
  mkdir -p "$dir"
  for d in $(shuf -i 1-232); do
    case $d in 42|166) continue ;; esac
    exec 9>"$dir/$d.lock"
    if flock -n 9; then
      domain=$d
      return 0
    fi
  done
  echo "no free DDS domain (every lock in $dir is held)" >&2
  return 1
}
