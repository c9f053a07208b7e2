#!/usr/bin/env bash
# The one-machine certfleet lab: installs what is missing, builds, starts a controller on its
# embedded defaults, seeds four lab SCOM hosts with certificates from a lab "enterprise CA" in
# different states, enrolls an agent on each, waits until all are connected, and prints the
# fleet and its certificate table. Then it does what an administrator does by hand: repairs the
# certificate whose key sits unlinked, imports a fresh PFX on one host and rebinds SCOM to it
# (showing the 20053 evidence), and shows a rebind the HealthService rejects being rolled back;
# and what nobody does by hand today: renews the expiring host end to end through the
# controller's CA, and another host through the manual queue with an officer's approval; and
# runs a campaign over the fleet (a canary wave, then the rest) with one host made to fail,
# showing the halt, the resume, the metrics and the audit log.
# Then stops everything cleanly, or keeps it running with --keep (Ctrl-C stops it).
#
#   ./deploy/lab.sh [--keep]
#
# Environment: LAB_DIR (default ./lab-run), LAB_LISTEN (default 127.0.0.1:7443), BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "lab.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

./tools/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 --target certfleet-controller certfleet-agent certfleetctl

BIN="$ROOT/$BUILD_DIR"
CONTROLLER="$BIN/controller/certfleet-controller"
AGENT="$BIN/agent/certfleet-agent"
CTL="$BIN/tools/certfleetctl/certfleetctl"
LAB=${LAB_DIR:-$ROOT/lab-run}
LISTEN=${LAB_LISTEN:-127.0.0.1:7443}

rm -rf "$LAB"
mkdir -p "$LAB"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "Starting the controller (state in $LAB/controller, listening on $LISTEN)"
"$CONTROLLER" --state-dir "$LAB/controller" --listen "$LISTEN" --metrics-listen 127.0.0.1:0 \
  >"$LAB/controller.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  [ -f "$LAB/controller/listen.addr" ] && break
  if ! kill -0 "${PIDS[0]}" 2>/dev/null; then cat "$LAB/controller.log" >&2; exit 1; fi
  sleep 0.2
done
ADDR=$(cat "$LAB/controller/listen.addr")
export CERTFLEET_CONTROLLER="$ADDR" CERTFLEET_CREDENTIALS="$LAB/controller/admin"
echo "controller at $ADDR; admin credentials in $CERTFLEET_CREDENTIALS"

step "Creating the lab enterprise CA and four SCOM hosts"
PKI="$LAB/enterprise-ca"
mkdir -p "$PKI"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/O=Lab/CN=Lab Enterprise Root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$PKI/root.key" -out "$PKI/root.pem" 2>/dev/null

# issue HOST NAME DAYS EKU -> $PKI/NAME.pem and $PKI/NAME.key
issue() {
  local fqdn=$1 name=$2 days=$3 eku=$4
  openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$fqdn" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' \
    "$fqdn" "$eku" >"$PKI/$name.ext"
  openssl x509 -req -sha256 -days "$days" -in "$PKI/$name.csr" -CA "$PKI/root.pem" \
    -CAkey "$PKI/root.key" -set_serial "0x$(openssl rand -hex 16)" -extfile "$PKI/$name.ext" \
    -out "$PKI/$name.pem" 2>/dev/null
}

# host FQDN -> creates the lab host tree, trusting the enterprise root
host() {
  local h="$LAB/hosts/$1"
  mkdir -p "$h/LocalMachine/My" "$h/LocalMachine/CA" "$h/LocalMachine/Root" "$h/MachineKeys" \
    "$h/Registry" "$h/EventLog"
  cp "$PKI/root.pem" "$h/LocalMachine/Root/lab-enterprise-root.pem"
}

# bind FQDN CERTFILE: writes ChannelCertificateSerialNumber as MOMCertImport would
bind() {
  local serial
  serial=$({ "$CTL" inspect --output json "$2" || true; } | grep -o '"channel_serial":"[0-9A-F]*"' | head -n1 | cut -d'"' -f4)
  printf '{"ChannelCertificateSerialNumber": "%s"}\n' "$serial" >"$LAB/hosts/$1/Registry/Machine Settings.json"
}

MS=scom-ms1.lab.example; GW=scom-gw1.lab.example; A1=scom-agent1.lab.example; A2=scom-agent2.lab.example
for h in $MS $GW $A1 $A2; do host $h; done

issue $MS ms1 397 serverAuth,clientAuth
cat "$PKI/ms1.pem" "$PKI/ms1.key" >"$LAB/hosts/$MS/LocalMachine/My/scom.pem"
bind $MS "$PKI/ms1.pem"
echo "$MS: a good certificate, bound"

issue $GW gw1 10 serverAuth,clientAuth
cat "$PKI/gw1.pem" "$PKI/gw1.key" >"$LAB/hosts/$GW/LocalMachine/My/scom.pem"
bind $GW "$PKI/gw1.pem"
echo "$GW: bound, expires in 10 days"

issue $A1 a1 397 serverAuth
cat "$PKI/a1.pem" "$PKI/a1.key" >"$LAB/hosts/$A1/LocalMachine/My/scom.pem"
bind $A1 "$PKI/a1.pem"
echo "$A1: bound, but without the Client Authentication EKU"

issue $A2 a2 397 serverAuth,clientAuth
cp "$PKI/a2.pem" "$LAB/hosts/$A2/LocalMachine/My/scom.pem"
install -m 0600 "$PKI/a2.key" "$LAB/hosts/$A2/MachineKeys/scom-key.pem"
bind $A2 "$PKI/a2.pem"
echo "$A2: bound, its private key sits unlinked in MachineKeys (needs a repair)"

step "Enrolling one agent per host with single-use join tokens"
for h in $MS $GW $A1 $A2; do
  token=$("$CTL" tokens create --ttl 10m --fqdn "$h" --label site=lab)
  "$AGENT" --controller "$ADDR" --state-dir "$LAB/agents/$h" --platform lab \
    --lab-root "$LAB/hosts/$h" --fqdn "$h" --token "$token" --scan-interval 5s \
    >"$LAB/agent-$h.log" 2>&1 &
  PIDS+=($!)
done

connected() { "$CTL" agents list --output json | grep -o '"status":"connected"' | wc -l; }
for _ in $(seq 1 150); do
  [ "$(connected)" -ge 4 ] && break
  sleep 0.2
done
if [ "$(connected)" -lt 4 ]; then
  echo "lab.sh: not all agents connected; logs in $LAB" >&2
  exit 1
fi
sleep 2  # first inventories

step "The fleet (certfleetctl agents list)"
"$CTL" agents list

step "Certificates in the Personal stores (certfleetctl certs list)"
"$CTL" certs list | awk 'NR==1 || $2=="My"'

step "What needs attention (certfleetctl certs list --expiring-within 30d / --problem NO_PRIVATE_KEY)"
"$CTL" certs list --expiring-within 30d
"$CTL" certs list --problem NO_PRIVATE_KEY

thumb() { openssl x509 -in "$1" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':'; }

step "Repairing $A2: link the key in MachineKeys to its certificate (certutil -repairstore)"
"$CTL" cmd repair --agent $A2 --thumbprint "$(thumb "$PKI/a2.pem")" --wait

step "Fixing $A1 (no Client Authentication EKU): import a good PFX as Windows 2012 R2 exports it, then rebind"
issue $A1 a1-fixed 397 serverAuth,clientAuth
printf 'lab-pfx-password\n' >"$PKI/pfx-password"
openssl pkcs12 -export -legacy -in "$PKI/a1-fixed.pem" -inkey "$PKI/a1-fixed.key" \
  -passout file:"$PKI/pfx-password" -out "$PKI/a1-fixed.pfx" 2>/dev/null
"$CTL" cmd import --agent $A1 "$PKI/a1-fixed.pfx" --password-file "$PKI/pfx-password" --wait
"$CTL" cmd rebind --agent $A1 --thumbprint "$(thumb "$PKI/a1-fixed.pem")" --wait

step "A rebind the HealthService rejects (no Client Authentication EKU) is rolled back"
issue $MS ms1-serveronly 397 serverAuth
cat "$PKI/ms1-serveronly.pem" "$PKI/ms1-serveronly.key" >"$LAB/hosts/$MS/LocalMachine/My/serveronly.pem"
"$CTL" cmd rebind --agent $MS --thumbprint "$(thumb "$PKI/ms1-serveronly.pem")" --wait \
  && { echo "lab.sh: this rebind should have been rolled back" >&2; exit 1; }
echo "(rolled back as expected: $MS is still bound to its good certificate)"

step "Renewing $GW (expires in 10 days) end to end through the builtin CA"
echo "(key and CSR made on the host, CSR checked, signed, installed, rebound with 20053)"
"$CTL" renew --agent $GW --wait

step "Renewing $MS through the manual queue: a stand-alone CA's officer approves"
RENEWAL=$("$CTL" renew --agent $MS --issuer manual)
for _ in $(seq 1 100); do
  REQUEST=$("$CTL" renewals show "$RENEWAL" --output json | grep -o '"approval_request_id":"[^"]*"' | cut -d'"' -f4)
  [ -n "$REQUEST" ] && break
  sleep 0.2
done
"$CTL" requests list --state pending
"$CTL" requests approve "$REQUEST" --reason "lab change 1"
for _ in $(seq 1 150); do
  STATE=$("$CTL" renewals show "$RENEWAL" --output json | grep -o '"state":"[a-z_]*"' | tail -n1 | cut -d'"' -f4)
  case "$STATE" in done|failed|rolled_back) break ;; esac
  sleep 0.2
done
"$CTL" renewals show "$RENEWAL"

step "A campaign over the lab fleet: a canary wave, then the rest, halting on a failure"
CAMPAIGN=$("$CTL" campaign create --name lab-rollout --selector site=lab --waves 1,100% \
  --max-in-flight 1 --max-failures 0)
"$CTL" campaign plan "$CAMPAIGN"
# The last host of the plan gets a HealthService that refuses its next restart: its rebind
# rolls back, the failure budget (0) is spent, the campaign halts.
LAST=$("$CTL" campaign plan "$CAMPAIGN" --output json | grep -o '"fqdn":"[^"]*"' | tail -n1 | cut -d'"' -f4)
mkdir -p "$LAB/hosts/$LAST/Faults"
echo '{"restart": "fail", "times": 1}' >"$LAB/hosts/$LAST/Faults/HealthService.json"
echo "(made $LAST fail its next HealthService restart)"
"$CTL" campaign start "$CAMPAIGN"
"$CTL" campaign watch "$CAMPAIGN" --interval 500ms \
  && { echo "lab.sh: the campaign should have halted" >&2; exit 1; }
"$CTL" campaign show "$CAMPAIGN"

step "The operator accepts the failure and resumes; the campaign finishes"
"$CTL" campaign resume "$CAMPAIGN"
"$CTL" campaign watch "$CAMPAIGN" --interval 500ms
"$CTL" campaign show "$CAMPAIGN"

step "Metrics (GET /metrics on $(cat "$LAB/controller/metrics.addr"))"
METRICS_ADDR=$(cat "$LAB/controller/metrics.addr")
exec 3<>"/dev/tcp/${METRICS_ADDR%:*}/${METRICS_ADDR##*:}"
printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$METRICS_ADDR" >&3
grep -E '^certfleet_(campaign_hosts|renewals_total|agents_connected)' <&3 || true
exec 3<&-

step "The audit log (certfleetctl audit list / audit verify)"
"$CTL" audit list | tail -n 12
"$CTL" audit verify

step "Renewals (certfleetctl renewals list)"
"$CTL" renewals list

step "Commands (certfleetctl cmd list)"
"$CTL" cmd list

step "The fleet after the work"
sleep 2
"$CTL" certs list | awk 'NR==1 || $2=="My"'

if [ "$KEEP" = 1 ]; then
  step "Running. Try:"
  echo "  export CERTFLEET_CONTROLLER=$ADDR CERTFLEET_CREDENTIALS=$CERTFLEET_CREDENTIALS"
  echo "  $CTL certs list --output json"
  echo "Logs in $LAB. Ctrl-C stops the lab."
  trap 'cleanup; exit 0' INT TERM
  wait
fi
step "Stopping the lab"
cleanup
trap - EXIT
echo "stopped; everything the lab wrote is in $LAB"
