# Shell helpers shared by the bench/ scripts: timing, medians, ratios, peak RSS, peers
# that may be missing, and the generated package sets of the scale series. Sourced,
# never run; the caller sets `set -euo pipefail`.

# Seconds since the epoch, to the nanosecond.
now() { date +%s.%N; }

# Seconds, to two decimals, from $1 to $2.
took() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# $1 / $2 to two decimals, or `-` when either is not a number.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"; else printf "%.2f", a / b }'
}

# The median of the numbers on standard input (the lower middle one of an even count).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

# Megabytes of a kilobyte figure, to one decimal.
mb() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f", k / 1024; else print "-" }'; }

# Runs "$@" with its output thrown away (appended to file $SAID when that is set); prints
# "SECONDS KB", its wall time and peak RSS (GNU time's %e and %M). A failing run
# prints its messages and returns 1.
measure() {
    local out
    out=$(mktemp)
    if ! /usr/bin/time -f '%e %M' -o "$out.time" "$@" >"$out" 2>&1; then
        echo "bench: failed: $*" >&2
        cat "$out" >&2
        rm -f "$out" "$out.time"
        return 1
    fi
    tail -n1 "$out.time"
    if [ -n "${SAID:-}" ]; then cat "$out" >>"$SAID"; fi
    rm -f "$out" "$out.time"
}

# $1 less $2, to two decimals, or `-` when either is not a number.
without() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) print "-"; else printf "%.2f", a - b }'
}

# The median of the maintainer scripts' seconds that the compiles of one flavor whose
# output is file $1 (see `measure`) said, a `configured in S s` each, or `-`.
scripts_median() { sed -n 's/.*configured in \([0-9.]*\) s.*/\1/p' "$1" | median; }

# Runs `setup` (a function name, or `:`) then measures "$@", RUNS times; prints the
# median seconds and the median peak RSS in KB, or `failed failed` when a run fails, so
# that row says so (its ratio `-`) and the other rows are still measured.
median_of() {
    local setup=$1 times=() rss=() i line
    shift
    for ((i = 0; i < RUNS; i++)); do
        "$setup"
        line=$(measure "$@") || { echo "failed failed"; return 0; }
        times+=("${line% *}")
        rss+=("${line#* }")
    done
    echo "$(printf '%s\n' "${times[@]}" | median) $(printf '%s\n' "${rss[@]}" | median)"
}

# True when command $1 exists; else, with BENCH_INSTALL=1, installs Debian package $2
# (default $1) and checks again. A peer still missing prints nothing here: the caller
# says `skipped: X not installed` in its row.
have() {
    command -v "$1" >/dev/null && return 0
    if [ "${BENCH_INSTALL:-0}" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null 2>&1 || true
    fi
    command -v "$1" >/dev/null
}

# Writes COUNT generated packages (scale-1 .. scale-COUNT) of FILES files each into
# pool $1 (keeping those already there), each file a few hundred distinct bytes under
# /usr/share/scale/NAME/, with DEBIAN/md5sums as Debian's archives have (without it
# compile keeps every file's bytes to sum them, a path real packages do not take),
# built with dpkg-deb. No maintainer scripts and no dpkg.
scale_pool() {
    local pool=$1 count=$2 files=$3 i j root name
    mkdir -p "$pool"
    for ((i = 1; i <= count; i++)); do
        name=scale-$i
        [ -e "$pool/${name}_1.0_amd64.deb" ] && continue
        root=$(mktemp -d)
        mkdir -p "$root/DEBIAN" "$root/usr/share/scale/$name"
        printf 'Package: %s\nVersion: 1.0\nArchitecture: amd64\nMaintainer: bench <bench@example.org>\nDescription: generated for bench/run\n' \
            "$name" >"$root/DEBIAN/control"
        for ((j = 0; j < files; j++)); do
            printf '%s file %d\n%0300d\n' "$name" "$j" "$j" >"$root/usr/share/scale/$name/f$j"
        done
        (cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
        dpkg-deb --root-owner-group -Zgzip --build "$root" "$pool/${name}_1.0_amd64.deb" >/dev/null
        rm -rf "$root"
    done
}

# Writes a host root at $1 that has no packages (an empty dpkg status, no apt lists),
# with merged /usr, so a compile against it sees only the pool.
empty_sysroot() {
    local root=$1
    mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/etc" "$root/var/lib/dpkg/info"
    ln -sfn usr/bin "$root/bin"
    ln -sfn usr/sbin "$root/sbin"
    ln -sfn usr/lib "$root/lib"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    : >"$root/var/lib/dpkg/status"
}

# Writes package big-state into pool $1: no files of its own, and a postinst that makes
# $2 megabytes of state, as a database server's makes its first files.
state_pool() {
    local pool=$1 megabytes=$2 root
    mkdir -p "$pool"
    root=$(mktemp -d)
    mkdir -p "$root/DEBIAN"
    printf 'Package: big-state\nVersion: 1.0\nArchitecture: all\nMaintainer: bench <bench@example.org>\nDescription: generated for bench/run\n' \
        >"$root/DEBIAN/control"
    printf '#!/bin/sh\nset -e\nmkdir -p /var/lib/big-state\nhead -c %dM /dev/zero >/var/lib/big-state/data\n' \
        "$megabytes" >"$root/DEBIAN/postinst"
    chmod 755 "$root/DEBIAN/postinst"
    dpkg-deb --root-owner-group -Zgzip --build "$root" "$pool/big-state_1.0_all.deb" >/dev/null
    rm -rf "$root"
}
