#!/bin/sh
# dev.sh - build and run sluice on a developer's machine (Debian 12).
#
#   ./dev.sh start   build into ./build and run the daemon in the
#                    foreground with etc/dev.conf (127.0.0.1:2525)
#   ./dev.sh check   build into ./build-check with the test hooks and run
#                    make check
#
# Both install missing Debian packages first when run as root.
set -eu
cd "$(dirname "$0")"
top=$(pwd)

packages="autoconf automake libtool pkg-config make gcc python3
	libevent-dev libssl-dev libdb-dev libc-ares-dev libcmocka-dev
	strace swaks dnsmasq-base"

# For "check" only: tests/e2e/test_exim_compat.py unpacks Debian's Exim
# (never installs it) and runs its tools on sluice's spool. These are the
# shared libraries that exim4-daemon-heavy links against, and perl for
# exipick and exiqgrep.
exim_test_packages="perl libdb5.3 libgnutls30 libgnutls-dane0 libidn12
	libidn2-0 libldap-2.5-0 libmariadb3 libnsl2 libpam0g libpcre2-8-0
	libperl5.36 libpq5 libsasl2-2 libspf2-2 libsqlite3-0"

luajit_package() {
	# Prefer the OpenResty branch of LuaJIT; fall back to the plain one.
	for p in libluajit2-5.1-dev libluajit-5.1-dev; do
		if dpkg -s "$p" >/dev/null 2>&1; then
			echo "$p"
			return
		fi
	done
	if apt-cache show libluajit2-5.1-dev >/dev/null 2>&1; then
		echo libluajit2-5.1-dev
	else
		echo libluajit-5.1-dev
	fi
}

install_packages() {
	missing=""
	for p in $packages; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	lj=$(luajit_package)
	dpkg -s "$lj" >/dev/null 2>&1 || missing="$missing $lj"
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "dev.sh: missing Debian packages:$missing" >&2
		echo "dev.sh: install them with: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "dev.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q $missing
}

# build DIR [configure options...]
build() {
	dir=$1
	shift
	[ -x "$top/configure" ] || "$top/autogen.sh"
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" "$@")
	fi
	make -C "$dir" -j"$(nproc)"
}

case "${1:-}" in
start)
	install_packages
	build "$top/build"
	mkdir -p "$top/var"
	echo "dev.sh: SMTP on 127.0.0.1:2525, logs in $top/var/log/, spool in $top/var/spool/"
	echo "dev.sh: stop with Ctrl-C"
	exec "$top/build/sluice" -bdf -C "$top/etc/dev.conf"
	;;
check)
	packages="$packages $exim_test_packages"
	install_packages
	build "$top/build-check" --enable-test-hooks
	make -C "$top/build-check" check
	;;
*)
	echo "usage: ./dev.sh start | check" >&2
	exit 2
	;;
esac
