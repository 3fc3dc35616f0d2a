#!/usr/bin/env bash
# Install what the tests start as throwaway servers, when missing and we are root on Debian:
# PostgreSQL (tests/postgres_cluster.py) and a single-node SLURM cluster with accounting
# (tests/slurm_cluster.py); gcc for the clock-shift shim of tests/test_clock_skew.py; chromium for the
# browser tests of hyperspace ui (tests/test_ui.py). The
# quickstart needs none of it.
set -euo pipefail

# Tests start a throwaway PostgreSQL server (tests/postgres_cluster.py) with initdb and pg_ctl
# from Debian's postgresql package, which keeps them in /usr/lib/postgresql/<version>/bin.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: PostgreSQL server binaries not found; the PostgreSQL tests will fail (Debian: sudo apt-get install postgresql)" >&2
  fi
fi

# The SLURM tests start a throwaway single-node cluster with accounting (tests/slurm_cluster.py):
# Debian's slurm-wlm, slurmdbd, munge and mariadb-server packages.
missing_slurm=""
for program in slurmctld slurmd slurmdbd munged mariadbd; do
  [ -x "/usr/sbin/$program" ] || missing_slurm="$missing_slurm $program"
done
if [ -n "$missing_slurm" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
  else
    echo "warning: SLURM, slurmdbd, MUNGE or MariaDB not found; the SLURM tests will fail (Debian: sudo apt-get install slurm-wlm slurmdbd munge mariadb-server)" >&2
  fi
fi

# tests/test_ui.py drives Debian's chromium headless through Playwright (never a browser Playwright downloads).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium not found; the browser tests of hyperspace ui will be skipped (Debian: sudo apt-get install chromium)" >&2
  fi
fi

# tests/test_clock_skew.py compiles an LD_PRELOAD shim (tests/clock_shift/clock_shift.c).
if ! command -v gcc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
  else
    echo "warning: gcc not found; the clock-skew tests will be skipped (Debian: sudo apt-get install gcc)" >&2
  fi
fi
