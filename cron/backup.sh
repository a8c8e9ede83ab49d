#!/usr/bin/env bash
# Nightly backup of the Dunning database (the seed's "00:00 - Backup database
# otomatis"): one pg_dump in custom format (-Fc) of the whole database — customers,
# invoices and the notifications ledger included — and deletion of backups older
# than N days.
#
#   cron/backup.sh [--dir DIR] [--keep-days N] [--env FILE] [--dry-run]
#
#   --dir DIR        where backups go (default /var/backups/dunning)
#   --keep-days N    delete dunning-*.dump files older than N days (default 14; 0 keeps all)
#   --env FILE       the .env to read DATABASE_URL from (default: .env next to this
#                    script's folder, i.e. /opt/dunning/.env, else ./.env)
#   --dry-run        print what would be dumped and deleted, do nothing
#
# DATABASE_URL in the environment wins over the .env file, as for the binaries.
# The password is handed to pg_dump through PGPASSWORD, never on its command line
# (which every user of the server can read with ps).
#
# Restore (into an empty database):
#   pg_restore --clean --if-exists --no-owner -d postgres://…/dunning /var/backups/dunning/dunning-YYYYmmdd-HHMMSS.dump
# List what a backup holds:
#   pg_restore -l /var/backups/dunning/dunning-YYYYmmdd-HHMMSS.dump
#
# pg_dump must be as new as the server (or newer): install the matching
# postgresql-client-NN package if it says "server version mismatch".
set -euo pipefail
umask 077

dir=/var/backups/dunning
keep_days=14
env_file=
dry_run=0
log() { printf '%s backup: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
    --dir=*) dir=${1#*=}; shift ;;
    --keep-days) keep_days=${2:?--keep-days needs a number}; shift 2 ;;
    --keep-days=*) keep_days=${1#*=}; shift ;;
    --env) env_file=${2:?--env needs a file}; shift 2 ;;
    --env=*) env_file=${1#*=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "backup.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$keep_days" in ''|*[!0-9]*) echo "backup.sh: --keep-days must be a whole number of days" >&2; exit 2 ;; esac

# DATABASE_URL: the environment, else the .env file (its first DATABASE_URL line,
# the one the binaries use).
if [ -z "${DATABASE_URL:-}" ]; then
  if [ -z "$env_file" ]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if [ -f "$here/../.env" ]; then env_file=$here/../.env; else env_file=.env; fi
  fi
  [ -r "$env_file" ] || die "DATABASE_URL is not set and $env_file cannot be read (use --env FILE)"
  line=$(grep -E '^[[:space:]]*(export[[:space:]]+)?DATABASE_URL[[:space:]]*=' "$env_file" | head -n 1 || true)
  [ -n "$line" ] || die "DATABASE_URL is not set in $env_file"
  DATABASE_URL=${line#*=}
  DATABASE_URL=$(printf '%s' "$DATABASE_URL" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")
fi

# postgres://user:password@host:port/database?key=value → libpq's PG* variables.
pct_decode() { local s=$1; s=${s//\\/\\\\}; s=${s//%/\\x}; printf '%b' "$s"; }
url=$DATABASE_URL
case "$url" in
  postgres://*|postgresql://*) url=${url#*://} ;;
  *) die "DATABASE_URL must start with postgres:// or postgresql://" ;;
esac
query=
case "$url" in *\?*) query=${url#*\?}; url=${url%%\?*} ;; esac
authority=${url%%/*}
database=
case "$url" in */*) database=${url#*/} ;; esac
userinfo=
case "$authority" in *@*) userinfo=${authority%@*}; authority=${authority##*@} ;; esac
user=${userinfo%%:*}
password=
case "$userinfo" in *:*) password=${userinfo#*:} ;; esac
host=$authority
port=
case "$authority" in
  \[*\]:*) host=${authority%]:*}; host=${host#[}; port=${authority##*]:} ;;
  \[*\]) host=${authority#[}; host=${host%]} ;;
  *:*) host=${authority%:*}; port=${authority##*:} ;;
esac
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
[ -n "$host" ] && export PGHOST=$(pct_decode "$host")
[ -n "$port" ] && export PGPORT=$port
[ -n "$user" ] && export PGUSER=$(pct_decode "$user")
[ -n "$password" ] && export PGPASSWORD=$(pct_decode "$password")
[ -n "$database" ] && export PGDATABASE=$(pct_decode "$database")
if [ -n "$query" ]; then
  IFS='&' read -r -a params <<<"$query"
  for kv in "${params[@]}"; do
    k=${kv%%=*}; v=$(pct_decode "${kv#*=}")
    case "$k" in
      sslmode) export PGSSLMODE=$v ;;
      sslrootcert) export PGSSLROOTCERT=$v ;;
      sslcert) export PGSSLCERT=$v ;;
      sslkey) export PGSSLKEY=$v ;;
      connect_timeout) export PGCONNECT_TIMEOUT=$v ;;
      application_name) export PGAPPNAME=$v ;;
      host) export PGHOST=$v ;;
      port) export PGPORT=$v ;;
      user) export PGUSER=$v ;;
      password) export PGPASSWORD=$v ;;
      dbname) export PGDATABASE=$v ;;
      options) export PGOPTIONS=$v ;;
      *) log "ignoring connection parameter $k" ;;
    esac
  done
fi
target="${PGUSER:-?}@${PGHOST:-localhost}:${PGPORT:-5432}/${PGDATABASE:-?}"

stamp=$(date '+%Y%m%d-%H%M%S')
file="$dir/dunning-$stamp.dump"
if [ "$dry_run" = 1 ]; then
  log "would dump $target to $file"
else
  command -v pg_dump >/dev/null || die "pg_dump not found: apt-get install postgresql-client"
  mkdir -p "$dir"
  tmp="$file.partial"
  trap 'rm -f "$tmp"' EXIT
  log "dumping $target to $file"
  pg_dump --format=custom --compress=6 --no-password --file="$tmp" \
    || die "pg_dump of $target failed (see above); the previous backups are kept"
  mv "$tmp" "$file"
  trap - EXIT
  log "done: $(du -h "$file" | cut -f1)"
fi

# Retention: only files this script writes, only after a successful dump.
if [ "$keep_days" -gt 0 ] && [ -d "$dir" ]; then
  while IFS= read -r old; do
    if [ "$dry_run" = 1 ]; then log "would delete $old"; else rm -f -- "$old"; log "deleted $old"; fi
  done < <(find "$dir" -maxdepth 1 -type f -name 'dunning-*.dump' -mtime "+$((keep_days - 1))" | sort)
fi
