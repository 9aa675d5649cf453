#!/usr/bin/env bash
# The compose cluster where no image can be pulled (this project's CI, and any
# machine without a registry): the boxoffice image is built from a Debian
# bootstrapped here and a binary built on this host.
#
#   deploy/compose.sh image [BINARY]   build boxoffice:local (BINARY: target/debug/boxoffice)
#   deploy/compose.sh up               image, then start the cluster (docker-compose.yml)
#   deploy/compose.sh cut eu|us|ap     take a region's WAN link down
#   deploy/compose.sh heal eu|us|ap    and up again
#   deploy/compose.sh down             stop it and delete its volumes
#   deploy/compose.sh test             up, book in every region, cut ap, check that
#                                      eu and us keep selling their own events, down
#
# Needs root (debootstrap) the first time: the base image is kept afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=boxoffice-base:bookworm
IMAGE=${BOXOFFICE_IMAGE:-boxoffice:local}
export BOXOFFICE_IMAGE=$IMAGE
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-boxoffice}
ADMIN='Authorization: Bearer boxoffice-local-admin-token'

# The router delays with tc netem where the kernel has it (containers share
# the host's kernel); elsewhere the nodes simulate the delay themselves.
netem_works() {
    local probe=bxnetem$$
    ip link add "${probe}a" type veth peer name "${probe}b" 2>/dev/null || return 1
    local ok=1
    tc qdisc add dev "${probe}a" root netem delay 1ms 2>/dev/null && ok=0
    ip link del "${probe}a" 2>/dev/null || true
    return $ok
}
if [ -z "${WAN_DELAY:-}" ]; then
    if netem_works; then WAN_DELAY=netem; else WAN_DELAY=simulated; fi
fi
export WAN_DELAY

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "building $BASE_IMAGE needs root (debootstrap): run this once with sudo," >&2
        echo "or, where images can be pulled, use: docker compose up --build" >&2
        exit 1
    fi
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    fi
    local rootfs
    rootfs=$(mktemp -d /tmp/boxoffice-rootfs.XXXXXX)
    echo "bootstrapping Debian bookworm into $rootfs (once)" >&2
    debootstrap --variant=minbase --include=ca-certificates,curl,iproute2,prometheus \
        bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

image() {
    local binary=${1:-target/debug/boxoffice}
    [ -x "$binary" ] || { echo "no binary at $binary: run cargo build --workspace first" >&2; exit 1; }
    base_image
    local context
    context=$(mktemp -d /tmp/boxoffice-image.XXXXXX)
    cp "$binary" "$context/boxoffice"
    cp deploy/entrypoint.sh "$context/entrypoint.sh"
    cat >"$context/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY boxoffice /usr/local/bin/boxoffice
COPY entrypoint.sh /usr/local/bin/boxoffice-entrypoint
ENTRYPOINT ["/usr/local/bin/boxoffice-entrypoint"]
EOF
    docker build -q -t "$IMAGE" "$context" >/dev/null
    rm -rf "$context"
    echo "built $IMAGE from $binary" >&2
}

region_number() {
    case "$1" in
    eu) echo 1 ;; us) echo 2 ;; ap) echo 3 ;;
    *) echo "a region is eu, us or ap, not $1" >&2; exit 1 ;;
    esac
}

wan() {
    compose exec -T wan boxoffice-entrypoint "$1" "$(region_number "$2")"
}

# GET/POST helpers for the test: status code on stdout's last line.
call() {
    local method=$1 url=$2 body=${3:-}
    if [ -n "$body" ]; then
        curl -s -m 15 -o /tmp/boxoffice-compose-body -w '%{http_code}' -X "$method" "$url" \
            -H "$ADMIN" -H 'content-type: application/json' \
            -H "Idempotency-Key: compose-$RANDOM-$RANDOM" -d "$body" || echo 000
    else
        curl -s -m 15 -o /tmp/boxoffice-compose-body -w '%{http_code}' -X "$method" "$url" -H "$ADMIN" || echo 000
    fi
}

# Polls until `call GET $1` answers 200 and the body contains $2, for $3 seconds.
wait_for() {
    local url=$1 needle=$2 deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$(call GET "$url")" = 200 ] && grep -Eq "$needle" /tmp/boxoffice-compose-body; then
            return 0
        fi
        sleep 2
    done
    echo "no '$needle' from $url within $3 s; last answer: $(head -c 400 /tmp/boxoffice-compose-body 2>/dev/null)" >&2
    return 1
}

hold() {
    local port=$1 event=$2 seat=$3 want=$4
    local status
    status=$(call POST "http://localhost:$port/v1/events/$event/holds" "{\"holder\":\"compose\",\"seats\":[\"$seat\"]}")
    if ! [[ "$status" =~ ^($want)$ ]]; then
        echo "hold of $seat on event $event through :$port answered $status, expected $want: $(head -c 400 /tmp/boxoffice-compose-body)" >&2
        return 1
    fi
    echo "hold of $seat on event $event through :$port: $status" >&2
}

run_test() {
    local started=$SECONDS
    trap 'echo "--- logs ---" >&2; compose logs --tail 30 >&2 || true; compose down -v >/dev/null 2>&1 || true' ERR
    compose down -v >/dev/null 2>&1 || true
    echo "WAN delay: ${WAN_MS:-75} ms one way ($WAN_DELAY)" >&2
    image "${1:-target/debug/boxoffice}"
    compose up -d --no-build
    # The sample data exists once `seed` is done: three events, each homed in
    # its own region.
    for port in 8081 8082 8083; do
        wait_for "http://localhost:$port/health" '"ready":true' 180
    done
    wait_for "http://localhost:8081/v1/events/3" '"event_id":3' 180
    for port in 8081 8082 8083; do
        wait_for "http://localhost:$port/v1/events?q=concert" '"event_id":3' 60
    done
    hold 8081 1 A-1-1 201
    hold 8082 2 A-1-1 201
    hold 8083 3 A-1-1 201
    wait_for "http://localhost:9090/api/v1/query?query=count(up==1)" '"9"\]' 90

    wan cut ap
    # eu and us keep selling their own events; ap cannot reach eu's event.
    sleep 3
    hold 8081 1 A-1-2 201
    hold 8082 2 A-1-2 201
    hold 8081 1 A-1-3 201
    # Cut off from the event's home, ap answers unavailable (nothing sent) or
    # outcome unknown (sent on a connection that went silent): never 201.
    hold 8083 1 A-1-4 '503|504'
    wan heal ap
    # The three holds made at home, and perhaps the one from ap if its
    # request was still in flight on the healed connection.
    wait_for "http://localhost:8083/v1/events/1?consistency=linearizable" '"held":(3|4)' 60
    hold 8083 3 A-1-2 201

    trap - ERR
    compose down -v >/dev/null
    echo "compose test passed in $((SECONDS - started)) s" >&2
}

case "${1:-}" in
image) image "${2:-}" ;;
up) image "${2:-}" && compose up -d --no-build ;;
down) compose down -v ;;
cut | heal) wan "$1" "${2:?which region}" ;;
test) run_test "${2:-}" ;;
*)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac
