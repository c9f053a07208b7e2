#!/bin/sh
# certfleet command issuer for an `openssl ca` directory (docs/issuers.md).
#
#   openssl-ca-issue.sh [CA_DIR]
#
# CA_DIR (the argument, else the environment variable CA_DIR) holds ca.pem, private/ca.key,
# index.txt, index.txt.attr and newcerts/ as openssl.cnf beside this script describes; optionally
#   CA_DIR/chain.pem        what follows the leaf in the answer (default: ca.pem), e.g. an
#                           issuing CA followed by its root
#   CA_DIR/private/ca.pass  the CA key's passphrase (passed as -passin file:...)
#   CA_DIR/openssl.cnf      a configuration of your own instead of the one beside this script
#
# Reads the CSR on stdin and the CERTFLEET_* variables; answers as certmonger's helpers do:
#   0 + the chain (leaf first) on stdout   issued
#   2 + the reason                         rejected (openssl ca refused the request)
#   3 + the reason                         try again later (the CA directory is busy)
#   4 + the reason                         not configured (missing CA files, bad variables)
# It never answers "pending": openssl ca signs at once, so POLL behaves as SUBMIT.
#
# Idempotent: the certificate signed for a renewal and a public key is kept as
# CA_DIR/certfleet/<renewal>-<key hash>.pem and sent again when the same request comes back.
# Runs of this script on one CA directory are serialized with flock(1) when it is installed.
#
# No `set -e`: every failure maps to an exit status of the contract explicitly (an accidental
# exit 1 would mean "pending").

umask 077
PATH=/usr/local/bin:/usr/bin:/bin:${PATH:-}

fail() {
  status=$1
  shift
  printf '%s\n' "$*" >&2
  exit "$status"
}

here=$(cd "$(dirname "$0")" && pwd) || fail 4 "cannot find the directory of $0"
ca_dir=${1:-${CA_DIR:-}}
[ -n "$ca_dir" ] || fail 4 "no CA directory: pass it as the first argument or set CA_DIR"
[ -d "$ca_dir" ] || fail 4 "CA directory $ca_dir does not exist"
ca_dir=$(cd "$ca_dir" && pwd) || fail 4 "cannot enter CA directory $ca_dir"
for f in ca.pem private/ca.key index.txt; do
  [ -r "$ca_dir/$f" ] || fail 4 "CA directory $ca_dir has no readable $f"
done
[ -d "$ca_dir/newcerts" ] || fail 4 "CA directory $ca_dir has no newcerts/ directory"
command -v openssl >/dev/null 2>&1 || fail 4 "openssl is not installed"

conf=$ca_dir/openssl.cnf
[ -r "$conf" ] || conf=$here/openssl.cnf
[ -r "$conf" ] || fail 4 "no openssl.cnf in $ca_dir or $here"

case ${CERTFLEET_OPERATION:-} in
  SUBMIT | POLL) ;;
  *) fail 4 "CERTFLEET_OPERATION must be SUBMIT or POLL, not '${CERTFLEET_OPERATION:-}'" ;;
esac
days=${CERTFLEET_VALIDITY_DAYS:-365}
case $days in
  '' | *[!0-9]*) fail 4 "CERTFLEET_VALIDITY_DAYS must be a number of days, not '$days'" ;;
esac
case ${CERTFLEET_SIGNATURE_HASH:-SHA256} in
  SHA256) md=sha256 ;;
  SHA384) md=sha384 ;;
  SHA512) md=sha512 ;;
  *) fail 2 "unsupported signature hash '${CERTFLEET_SIGNATURE_HASH}'" ;;
esac
renewal=$(printf '%s' "${CERTFLEET_RENEWAL_ID:-}" | tr -c 'A-Za-z0-9._-' '_')
[ -n "$renewal" ] || fail 4 "CERTFLEET_RENEWAL_ID is empty"

tmp=$(mktemp -d) || fail 3 "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 3' HUP INT TERM

cat >"$tmp/request.pem" || fail 3 "cannot read the CSR from stdin"
openssl req -in "$tmp/request.pem" -noout -pubkey >"$tmp/pubkey.pem" 2>"$tmp/err" ||
  fail 2 "the CSR cannot be read: $(tail -n 3 "$tmp/err")"
key_hash=$(openssl pkey -pubin -in "$tmp/pubkey.pem" -outform DER 2>/dev/null |
  openssl dgst -sha256 -r | cut -c1-16)
[ -n "$key_hash" ] || fail 2 "the CSR's public key cannot be read"

mkdir -p "$ca_dir/certfleet" || fail 4 "cannot create $ca_dir/certfleet"
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$ca_dir/certfleet/.lock" || fail 4 "cannot open $ca_dir/certfleet/.lock"
  flock -w 30 9 || fail 3 "CA directory $ca_dir is busy (another signing holds its lock)"
fi

issued=$ca_dir/certfleet/$renewal-$key_hash.pem
if [ ! -s "$issued" ]; then
  passin=
  [ -r "$ca_dir/private/ca.pass" ] && passin="file:$ca_dir/private/ca.pass"
  CERTFLEET_CA_DIR=$ca_dir openssl ca -batch -config "$conf" -in "$tmp/request.pem" \
    -out "$tmp/leaf.pem" -days "$days" -md "$md" -notext ${passin:+-passin "$passin"} \
    >"$tmp/out" 2>"$tmp/err" ||
    fail 2 "openssl ca refused the request: $(grep -v '^Using configuration' "$tmp/err" | tail -n 5)"
  [ -s "$tmp/leaf.pem" ] || fail 2 "openssl ca wrote no certificate"
  if ! { cp "$tmp/leaf.pem" "$issued.tmp" && mv "$issued.tmp" "$issued"; }; then
    fail 3 "cannot keep the certificate in $ca_dir/certfleet"
  fi
fi

chain=$ca_dir/chain.pem
[ -r "$chain" ] || chain=$ca_dir/ca.pem
cat "$issued" "$chain" || fail 3 "cannot write the answer"
exit 0
