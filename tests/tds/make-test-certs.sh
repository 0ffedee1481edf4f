#!/usr/bin/env bash
# Makes the certificates of the TLS tests in directory $1 (created if needed):
# nothing with a private key is ever committed. EC P-256 keys, one day of
# validity, so this takes a fraction of a second.
#   ca.pem                 the test CA (what <N>_DB_CA_FILE is given)
#   server.pem server.key  signed by ca.pem, for localhost and 127.0.0.1
#   wronghost.pem .key     signed by ca.pem, for wrong-host.invalid only
#   other-ca.pem           another CA
#   other.pem other.key    signed by other-ca.pem, for localhost and 127.0.0.1
set -euo pipefail
dir=${1:?usage: make-test-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 1 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}

leaf() { # name ca san
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=sqlgate test server" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" \
    -days 1 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "sqlgate test CA"
ca other-ca "another test CA"
leaf server ca "DNS:localhost,IP:127.0.0.1"
leaf wronghost ca "DNS:wrong-host.invalid"
leaf other other-ca "DNS:localhost,IP:127.0.0.1"
rm -f ./*.srl
chmod 644 ./*.pem
