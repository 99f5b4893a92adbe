#!/usr/bin/env bash
# The Debian package, end to end, on this machine (root needed for dpkg): build it,
# install it, check the binary, the unit, the conffile, the service user and the data
# dir; add a client as root (coachd switches to the service user); edit the config;
# upgrade over itself with a bumped version and check that the data and the edit
# survive; remove (data kept), then purge (data gone). Checks that need a running
# systemd say so where there is none.
#
#   scripts/package-test.sh            # builds the binary first (the `dist` profile)
#   COACHD_DEB_PROFILE=dev COACHD_DEB_NO_BUILD=1 scripts/package-test.sh
#                                      # CI: packages the binary `cargo test` built
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "package test: needs root (dpkg -i); skipped"
  exit 0
fi
if ! command -v dpkg >/dev/null 2>&1; then
  echo "package test: not a Debian system (no dpkg); skipped"
  exit 0
fi
if dpkg-query -W coachd >/dev/null 2>&1 || [ -e /var/lib/coachd ]; then
  echo "package test: coachd is already installed here (or /var/lib/coachd exists); refusing to touch it" >&2
  exit 1
fi
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0

profile="${COACHD_DEB_PROFILE:-dist}"
build=()
[ -n "${COACHD_DEB_NO_BUILD:-}" ] && build=(--no-build)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

fail() { echo "package test FAILED: $*" >&2; exit 1; }
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else fail "$what"; fi; }

echo "== build coachd_${version} ($profile)"
cargo deb --profile "$profile" "${build[@]}" --output "$out/first/"
deb=$(ls "$out"/first/coachd_*.deb)
echo "== install $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg -i "$deb"

check "coachd --version" sh -c "coachd --version | grep -q '$version'"
check "the unit is installed" test -f /usr/lib/systemd/system/coachd.service
if command -v systemd-analyze >/dev/null 2>&1; then
  check "systemd-analyze verify" systemd-analyze verify /usr/lib/systemd/system/coachd.service
  systemd-analyze security --offline=true /usr/lib/systemd/system/coachd.service | tail -n 1
else
  echo "skip systemd-analyze not installed"
fi
check "the config is a conffile" sh -c "dpkg-query -W -f='\${Conffiles}' coachd | grep -q /etc/coachd/coachd.toml"
check "the service user exists" getent passwd coachd
check "... in the bluetooth group" sh -c "id -nG coachd | tr ' ' '\n' | grep -qx bluetooth"
check "the config is root:coachd 0640" sh -c "[ \"\$(stat -c '%U:%G %a' /etc/coachd/coachd.toml)\" = 'root:coachd 640' ]"
check "the data dir is coachd's, 0700" sh -c "[ \"\$(stat -c '%U %a' /var/lib/coachd)\" = 'coachd 700' ]"
check "coachd init made the database" test -f /var/lib/coachd/coachd.db
check "sudo coachd config check" sh -c "coachd config check | grep -q /etc/coachd/coachd.toml"

echo "== data and an edited config"
coachd client add alex --tz Europe/Berlin
coachd setup --yes --public-url https://coach.example.org >/dev/null
check "the client is there" sh -c "coachd client list | grep -q alex"
check "nothing in the data dir is root's" sh -c "[ -z \"\$(find /var/lib/coachd ! -user coachd)\" ]"
check "the edit is in the config" grep -q 'public_url = "https://coach.example.org"' /etc/coachd/coachd.toml
echo "# the admin's own note" >> /etc/coachd/coachd.toml
check "the edited config keeps its owner and mode" sh -c "[ \"\$(stat -c '%U:%G %a' /etc/coachd/coachd.toml)\" = 'root:coachd 640' ]"

if [ -d /run/systemd/system ]; then
  systemctl start coachd.service
  check "the service runs" systemctl is-active --quiet coachd.service
else
  echo "skip systemd is not running here: the service is not started, so the restart after the upgrade is not checked"
fi

echo "== upgrade to ${version}+ci2"
cargo deb --profile "$profile" --no-build --deb-version "${version}+ci2" --output "$out/second/"
dpkg -i "$out"/second/coachd_*.deb
check "the new version is installed" sh -c "[ \"\$(dpkg-query -W -f='\${Version}' coachd)\" = '${version}+ci2' ]"
check "the data survived" sh -c "coachd client list | grep -q alex"
check "the edited config survived" grep -q "the admin's own note" /etc/coachd/coachd.toml
check "... with its setting" grep -q 'public_url = "https://coach.example.org"' /etc/coachd/coachd.toml
if [ -d /run/systemd/system ]; then
  check "the running service was started again" systemctl is-active --quiet coachd.service
fi

echo "== remove, then purge"
dpkg -r coachd
check "remove keeps the data" test -f /var/lib/coachd/coachd.db
check "remove keeps the config" test -f /etc/coachd/coachd.toml
dpkg -P coachd
check "purge deletes the data" test ! -e /var/lib/coachd
check "purge deletes the config" test ! -e /etc/coachd
echo "package test passed"
