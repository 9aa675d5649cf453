#!/bin/sh
# The entry point of the boxoffice image (see docker-compose.yml).
#
#   node CONFIG      route the other regions through the WAN router, then run
#                    `boxoffice node --config CONFIG`
#   wan MS [HOW]     the WAN router: delay everything it forwards by MS (netem;
#                    HOW=simulated leaves the delay to the nodes) and wait; `cut R` / `heal R` take region R's link down / up
#   anything else    run as given (`boxoffice compose-config ...`, `prometheus ...`)
set -eu

# This container's address on the 10.77.R.0/24 network it is on (a node is on one).
own_region() {
    ip -4 -o addr show | sed -n 's/.* inet 10\.77\.\([0-9]*\)\.[0-9]*\/.*/\1/p' | head -1
}

# The interface of the router on region R's network.
router_link() {
    ip -4 -o addr show | awk -v net="10.77.$1." 'index($4, net) == 1 { print $2 }' | head -1
}

case "${1:-}" in
node)
    region=$(own_region)
    [ -n "$region" ] || { echo "not on a 10.77.R.0/24 network" >&2; exit 1; }
    for other in 1 2 3 4 5 6 7 8 9; do
        [ "$other" = "$region" ] && continue
        ip route replace "10.77.$other.0/24" via "10.77.$region.2"
    done
    exec boxoffice node --config "$2"
    ;;
wan)
    delay_ms="${2:-75}"
    how="${3:-netem}"
    for link in $(ip -4 -o addr show | awk 'index($4, "10.77.") == 1 { print $2 }'); do
        if [ "$how" = simulated ]; then
            echo "wan: $link forwards; the nodes simulate ${delay_ms} ms one way"
        elif [ "$delay_ms" -gt 0 ]; then
            tc qdisc replace dev "$link" root netem delay "${delay_ms}ms" || {
                echo "wan: this kernel has no netem; run with WAN_DELAY=simulated" >&2
                exit 1
            }
            echo "wan: $link delays ${delay_ms} ms one way"
        fi
    done
    trap 'exit 0' TERM INT
    sleep infinity &
    wait
    ;;
cut | heal)
    link=$(router_link "$2")
    [ -n "$link" ] || { echo "no link to region $2" >&2; exit 1; }
    if [ "$1" = cut ]; then ip link set "$link" down; else ip link set "$link" up; fi
    echo "wan: region $2 ($link) ${1}"
    ;;
*)
    exec "$@"
    ;;
esac
