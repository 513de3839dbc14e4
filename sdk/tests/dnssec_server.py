"""A small authoritative DNS server for the resolver's DNSSEC tests.

Usage: python3 dnssec_server.py ANCHOR_FILE

Signs the zone secure.test. at start with a fresh ECDSA P-256 key
(dnspython), writes the zone's DS record to ANCHOR_FILE (the trust
anchor the resolver is given), prints the UDP port it answers on
(127.0.0.1) and serves until killed. bogus.secure.test. carries a
signature made over another address; other.test. is served unsigned
(outside the anchor). Only names and types that exist are answered with
proofs: the tests ask nothing else.
"""
import socket
import sys
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = dns.name.from_text("secure.test.")
TTL = 300
SIGNED = [
    ("secure.test.", "SOA",
     "ns.secure.test. hostmaster.secure.test. 1 3600 600 86400 300"),
    ("secure.test.", "NS", "ns.secure.test."),
    ("secure.test.", "MX", "10 mx.secure.test."),
    ("mx.secure.test.", "A", "127.0.0.61"),
    ("mx.secure.test.", "AAAA", "2001:db8::61"),
    ("_25._tcp.mx.secure.test.", "TLSA", "3 1 1 " + "ab" * 32),
]
# (name, type, served, signed instead)
FORGED = [("bogus.secure.test.", "A", "127.0.0.62", "127.0.0.99")]
UNSIGNED = [("other.test.", "A", "127.0.0.63")]


def rrset(name, rtype, text):
    return dns.rrset.from_text(name, TTL, "IN", rtype, text)


def build_zone():
    key = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(key.public_key(),
                                    dns.dnssec.Algorithm.ECDSAP256SHA256,
                                    flags=257)
    now = int(time.time())

    def sign(rrs):
        sig = dns.dnssec.sign(rrs, key, ORIGIN, dnskey,
                              inception=now - 3600, expiration=now + 86400)
        return dns.rrset.from_rdata(rrs.name, TTL, sig)

    zone = {}
    keys = dns.rrset.from_rdata(ORIGIN, TTL, dnskey)
    zone[(ORIGIN, dns.rdatatype.DNSKEY)] = [keys, sign(keys)]
    for name, rtype, text in SIGNED:
        rrs = rrset(name, rtype, text)
        zone[(rrs.name, rrs.rdtype)] = [rrs, sign(rrs)]
    for name, rtype, served, signed in FORGED:
        rrs = rrset(name, rtype, served)
        zone[(rrs.name, rrs.rdtype)] = [rrs, sign(rrset(name, rtype, signed))]
    for name, rtype, text in UNSIGNED:
        rrs = rrset(name, rtype, text)
        zone[(rrs.name, rrs.rdtype)] = [rrs]
    ds = dns.dnssec.make_ds(ORIGIN, dnskey, "SHA256")
    return zone, "%s %d IN DS %s\n" % (ORIGIN, TTL, ds)


def answer(zone, wire):
    query = dns.message.from_wire(wire)
    resp = dns.message.make_response(query)
    resp.flags |= dns.flags.AA
    resp.want_dnssec(True)
    q = query.question[0]
    found = zone.get((q.name, q.rdtype))
    if found is not None:
        resp.answer.extend(found)
    elif not any(n == q.name for n, _ in zone):
        resp.set_rcode(dns.rcode.NXDOMAIN)
    return resp.to_wire(max_size=65535)


def main():
    zone, anchor = build_zone()
    with open(sys.argv[1], "w") as f:
        f.write(anchor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    while True:
        wire, peer = sock.recvfrom(65535)
        try:
            sock.sendto(answer(zone, wire), peer)
        except Exception as e:  # a query it cannot parse: no answer
            print("dnssec_server: %s" % e, file=sys.stderr)


if __name__ == "__main__":
    main()
