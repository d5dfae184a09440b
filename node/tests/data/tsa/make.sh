#!/bin/sh
# Regenerates the RFC 3161 fixtures of node/src/timestamp.rs's unit tests with OpenSSL:
# a test CA, a TSA certificate (EKU critical timeStamping) under it, another CA, and the
# TSA's answers to hand-built requests (imprint IMPRINT, nonce 0x0102030405060708; the unit
# test `request_is_the_rfc_3161_der` checks that the node builds the same bytes).
# Run from this directory; then put the printed genTime into the tests' FIXTURE_TIME.
set -eu
IMPRINT=$(printf 'sealpost test checkpoint' | openssl dgst -sha256 -r | cut -c1-64)
OTHER=$(printf 'another checkpoint' | openssl dgst -sha256 -r | cut -c1-64)
W=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/ca.key" \
  -out ca.pem -days 7300 -subj "/CN=Sealpost test TSA CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/other.key" \
  -out other-ca.pem -days 7300 -subj "/CN=Another CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tsa.key" \
  -out "$W/tsa.csr" -subj "/CN=Sealpost test TSA" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n' > "$W/ext"
openssl x509 -req -in "$W/tsa.csr" -CA ca.pem -CAkey "$W/ca.key" -CAcreateserial -days 7300 \
  -extfile "$W/ext" -out "$W/tsa.pem" 2>/dev/null
cat > "$W/ts.cnf" <<CNF
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = $W
serial = $W/serial
crypto_device = builtin
signer_cert = $W/tsa.pem
certs = ca.pem
signer_key = $W/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
echo 01 > "$W/serial"
# TimeStampReq: version 1, SHA-256 imprint, nonce, certReq true.
req() { printf '30430201013031300d060960864801650304020105000420%s0208%s0101ff' "$1" "$2" | xxd -r -p > "$3"; }
req "$IMPRINT" 0102030405060708 "$W/ok.tsq"
req "$OTHER" 0102030405060708 "$W/other.tsq"
req "$IMPRINT" 0102030405060709 "$W/nonce.tsq"
# SHA-1 imprint (20 bytes): the TSA accepts only sha256 and rejects it.
printf '303b0201013029300906052b0e03021a0500041400112233445566778899aabbccddeeff0011223302080102030405060708 0101ff' | tr -d ' ' | xxd -r -p > "$W/sha1.tsq"
for q in ok other nonce sha1; do
  openssl ts -reply -config "$W/ts.cnf" -queryfile "$W/$q.tsq" -out "resp-$q.der" 2>/dev/null
done
# The TSA's own certificate chains to ca.pem; a second TSA under other-ca.pem:
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tsa2.key" \
  -out "$W/tsa2.csr" -subj "/CN=Foreign TSA" 2>/dev/null
openssl x509 -req -in "$W/tsa2.csr" -CA other-ca.pem -CAkey "$W/other.key" -CAcreateserial \
  -days 7300 -extfile "$W/ext" -out "$W/tsa2.pem" 2>/dev/null
sed -e "s#$W/tsa.pem#$W/tsa2.pem#; s#$W/tsa.key#$W/tsa2.key#; s#certs = ca.pem#certs = other-ca.pem#" "$W/ts.cnf" > "$W/ts2.cnf"
openssl ts -reply -config "$W/ts2.cnf" -queryfile "$W/ok.tsq" -out resp-foreign.der 2>/dev/null
# The same TSTInfo signed by a certificate under ca.pem without EKU timeStamping (an S/MIME
# certificate), wrapped as a granted TimeStampResp: refused for its purpose.
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection\n' > "$W/ext3"
openssl x509 -req -in "$W/tsa2.csr" -CA ca.pem -CAkey "$W/ca.key" -CAcreateserial \
  -days 7300 -extfile "$W/ext3" -out "$W/noeku.pem" 2>/dev/null
openssl ts -reply -in resp-ok.der -token_out -out "$W/tok.der" 2>/dev/null
openssl cms -verify -noverify -binary -inform DER -in "$W/tok.der" -out "$W/tst.der" 2>/dev/null
openssl cms -sign -binary -nodetach -econtent_type 1.2.840.113549.1.9.16.1.4 -md sha256 \
  -in "$W/tst.der" -signer "$W/noeku.pem" -inkey "$W/tsa2.key" -outform DER -out "$W/noeku.p7"
TOK=$(xxd -p "$W/noeku.p7" | tr -d '\n')
LEN=$(( ${#TOK} / 2 + 5 ))
printf '3082%04x3003020100%s' "$LEN" "$TOK" | xxd -r -p > resp-noeku.der
rm -f *.srl
openssl ts -reply -in resp-ok.der -text | grep 'Time stamp:'
openssl ts -verify -in resp-ok.der -queryfile "$W/ok.tsq" -CAfile ca.pem
echo "$IMPRINT" > imprint.hex
rm -rf "$W"
