#!/bin/sh
# Dunning escalation hook for MikroTik RouterOS: isolir (move the customer's PPPoE
# secret to the isolation profile) and buka (move it back), over SSH.
#
# NOT TESTED AGAINST A ROUTER: written from the RouterOS documentation
# (/ppp secret set, /ppp active remove); try it on one test customer first.
#
#   command = ["/opt/dunning/hooks/mikrotik-isolir.sh", "isolir"]   # or "buka"
#
# Dunning gives the event as JSON on stdin and as DUNNING_* variables. The PPPoE
# user name here is the customer's id in billing, DUNNING_CUSTOMER_ID (change
# SECRET_NAME below if your secrets are named otherwise, e.g. after the phone).
# Exit 0 = done; any other exit is retried (dunning-worker --tries), its output is
# kept in the ledger (dunning-schedule failed shows it).
#
# Router side, once: an SSH key for a user with write rights,
#   /user add name=dunning group=write
#   /user ssh-keys import user=dunning public-key-file=dunning.pub
# and the two profiles (the isolation profile with its own pool and a firewall
# rule redirecting to an "isolir" page), e.g. "default" and "isolir".
set -eu

ROUTER=${MIKROTIK_HOST:-192.168.88.1}
SSH_USER=${MIKROTIK_USER:-dunning}
SSH_KEY=${MIKROTIK_KEY:-/opt/dunning/.ssh/id_ed25519}
NORMAL_PROFILE=${MIKROTIK_NORMAL_PROFILE:-default}
ISOLIR_PROFILE=${MIKROTIK_ISOLIR_PROFILE:-isolir}
SECRET_NAME="cust-${DUNNING_CUSTOMER_ID:?no DUNNING_CUSTOMER_ID}"

case "${1:-}" in
  isolir) profile=$ISOLIR_PROFILE ;;
  buka) profile=$NORMAL_PROFILE ;;
  *) echo "usage: $0 isolir|buka" >&2; exit 64 ;;
esac

# Only letters, digits, - and _ reach the router's command line.
case "$SECRET_NAME" in
  *[!A-Za-z0-9_-]*) echo "refusing PPPoE secret name $SECRET_NAME" >&2; exit 65 ;;
esac

# Set the profile, then drop the active session so that the customer reconnects
# under the new profile. Both are idempotent: running twice does no harm.
ssh -i "$SSH_KEY" -o BatchMode=yes -o ConnectTimeout=10 "$SSH_USER@$ROUTER" \
  "/ppp secret set [find name=\"$SECRET_NAME\"] profile=$profile; /ppp active remove [find name=\"$SECRET_NAME\"]"

echo "$SECRET_NAME -> profile $profile on $ROUTER (event ${DUNNING_EVENT:-?}, invoice ${DUNNING_INVOICE_NUMBER:-?})"
