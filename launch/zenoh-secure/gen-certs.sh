#!/usr/bin/env bash
# Creates a private CA and one certificate per zenoh identity for the
# mTLS example: the router, the drivers (cameras, joint states), an operator
# station, a policy server's router (remote inference, docs/REMOTE.md). The access-control rules in router.json5 match these common names.
# The runtime itself connects through the router's unix socket on the robot
# (see README.md), so it needs no certificate.
#
# Usage: gen-certs.sh OUT_DIR [ROUTER_HOSTNAME]   (needs openssl)
set -euo pipefail
out="${1:?usage: gen-certs.sh OUT_DIR [ROUTER_HOSTNAME]}"
host="${2:-localhost}"
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=ganglion-ca" -keyout ca.key -out ca.pem 2>/dev/null

issue() { # issue NAME CN SAN
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue router ganglion-router "DNS:$host,DNS:localhost,IP:127.0.0.1"
issue drivers so101-drivers "DNS:so101-drivers"
issue operator operator "DNS:operator"
issue policy-server policy-server "DNS:policy-server"
chmod 600 ./*.key
echo "certificates in $out: ca.pem router.pem drivers.pem operator.pem policy-server.pem (+ keys)"
