#!/bin/sh
# Make a private CA and a broker certificate (and optionally client certificates) with
# openssl. Usage: ./make-certs.sh BROKER_NAME [BROKER_IP] [CLIENT_NAME ...]
#   ./make-certs.sh broker.lan 192.168.1.10 bedroom-pi
# Output in ./certs: ca.crt (give to every agent: [mqtt.tls] ca_file), ca.key (keep
# offline), server.crt/server.key (the broker), <client>.crt/<client>.key (agents).
# The broker name/IP go into subjectAltName: clients check it against the host they
# connect to.
set -eu
name=${1:?usage: $0 BROKER_NAME [BROKER_IP] [CLIENT_NAME ...]}
ip=${2:-}
[ $# -ge 2 ] && shift 2 || shift 1
mkdir -p certs && cd certs
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
if [ ! -f ca.key ]; then
    openssl req -x509 $ec -keyout ca.key -out ca.crt -days 3650 -subj "/CN=ambisense CA"
fi
san="subjectAltName=DNS:$name"
[ -n "$ip" ] && san="$san,IP:$ip"
openssl req $ec -keyout server.key -out server.csr -subj "/CN=$name"
printf '%s\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days 825 -extfile server.ext
for client in "$@"; do
    openssl req $ec -keyout "$client.key" -out "$client.csr" -subj "/CN=$client"
    printf 'extendedKeyUsage=clientAuth\n' > "$client.ext"
    openssl x509 -req -in "$client.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out "$client.crt" -days 825 -extfile "$client.ext"
done
rm -f ./*.csr ./*.ext
chmod 600 ./*.key
echo "made: $(ls)"
