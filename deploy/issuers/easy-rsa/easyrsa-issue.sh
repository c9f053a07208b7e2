#!/bin/sh
# certfleet command issuer for an easy-rsa PKI (Debian's easy-rsa package; docs/issuers.md).
#
#   easyrsa-issue.sh [PKI_DIR]
#
# PKI_DIR (or $EASYRSA_PKI) is a PKI made with `easyrsa init-pki` and `easyrsa build-ca`. The
# request is imported (import-req) and signed (sign-req) as the certificate type "scom" of
# x509-types/ beside this script: KeyUsage digitalSignature + keyEncipherment (critical), EKU
# server + client authentication, the request's subjectAltName (--copy-ext).
#
# Environment, besides the CERTFLEET_* variables:
#   EASYRSA_BIN      the easyrsa script (default /usr/share/easy-rsa/easyrsa)
#   EASYRSA_PASSIN   the CA key's passphrase source when it has one ("file:/path", "env:VAR")
#
# Reads the CSR on stdin; answers as certmonger's helpers do:
#   0 + the chain (leaf, CA) on stdout   issued
#   2 + the reason                       rejected (easy-rsa refused to sign)
#   3 + the reason                       try again later
#   4 + the reason                       not configured (no PKI, no CA, no easyrsa)
# It never answers "pending": POLL behaves as SUBMIT.
#
# Idempotent: the request is imported as certfleet-<renewal>-<key hash>; when that name is
# already signed, the same certificate is sent again. Runs on one PKI are serialized with
# flock(1) when it is installed. No `set -e`: an accidental exit 1 would mean "pending".

umask 077
PATH=/usr/local/bin:/usr/bin:/bin:${PATH:-}

fail() {
  status=$1
  shift
  printf '%s\n' "$*" >&2
  exit "$status"
}

here=$(cd "$(dirname "$0")" && pwd) || fail 4 "cannot find the directory of $0"
pki=${1:-${EASYRSA_PKI:-}}
[ -n "$pki" ] || fail 4 "no PKI directory: pass it as the first argument or set EASYRSA_PKI"
[ -d "$pki" ] || fail 4 "PKI directory $pki does not exist"
pki=$(cd "$pki" && pwd) || fail 4 "cannot enter PKI directory $pki"
if [ ! -r "$pki/ca.crt" ] || [ ! -r "$pki/private/ca.key" ]; then
  fail 4 "PKI $pki has no CA (run easyrsa build-ca)"
fi
easyrsa=${EASYRSA_BIN:-/usr/share/easy-rsa/easyrsa}
[ -x "$easyrsa" ] || fail 4 "easyrsa not found at $easyrsa (install Debian's easy-rsa package)"
[ -r "$here/x509-types/scom" ] || fail 4 "no x509-types/scom beside $0"
command -v openssl >/dev/null 2>&1 || fail 4 "openssl is not installed"

case ${CERTFLEET_OPERATION:-} in
  SUBMIT | POLL) ;;
  *) fail 4 "CERTFLEET_OPERATION must be SUBMIT or POLL, not '${CERTFLEET_OPERATION:-}'" ;;
esac
days=${CERTFLEET_VALIDITY_DAYS:-365}
case $days in
  '' | *[!0-9]*) fail 4 "CERTFLEET_VALIDITY_DAYS must be a number of days, not '$days'" ;;
esac
case ${CERTFLEET_SIGNATURE_HASH:-SHA256} in
  SHA256) digest=sha256 ;;
  SHA384) digest=sha384 ;;
  SHA512) digest=sha512 ;;
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
name=certfleet-$renewal-$key_hash

if command -v flock >/dev/null 2>&1; then
  exec 9>>"$pki/.certfleet.lock" || fail 4 "cannot open $pki/.certfleet.lock"
  flock -w 30 9 || fail 3 "PKI $pki is busy (another signing holds its lock)"
fi

# easyrsa talks on stdout; only the chain may go there.
run_easyrsa() {
  EASYRSA_EXT_DIR=$here/x509-types EASYRSA_PKI=$pki "$easyrsa" --batch "$@" \
    >>"$tmp/easyrsa.log" 2>&1
}

if [ ! -s "$pki/issued/$name.crt" ]; then
  if [ ! -f "$pki/reqs/$name.req" ]; then
    run_easyrsa import-req "$tmp/request.pem" "$name" ||
      fail 2 "easyrsa import-req failed: $(tail -n 5 "$tmp/easyrsa.log")"
  fi
  run_easyrsa --days="$days" --digest="$digest" --copy-ext sign-req scom "$name" ||
    fail 2 "easyrsa sign-req failed: $(grep -v '^$' "$tmp/easyrsa.log" | tail -n 5)"
  [ -s "$pki/issued/$name.crt" ] || fail 2 "easyrsa wrote no certificate for $name"
fi

openssl x509 -in "$pki/issued/$name.crt" -outform PEM || fail 3 "cannot read $pki/issued/$name.crt"
cat "$pki/ca.crt" || fail 3 "cannot read $pki/ca.crt"
exit 0
