"""A throwaway certificate authority for the HTTPS tests, made with the openssl command line:
a CA that exists only in a scratch folder, and a server certificate it signs for the names a
test connects to. Nothing here is trusted outside the test that asks for it.

    python3 scripts/testkit/tls.py DIR [NAME...]   (prints the paths, for tests/e2e)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Certificate:
    ca: Path  # the CA's certificate: what a client trusts
    chain: Path  # the server's certificate and the CA's (fullchain.pem, as certbot names it)
    key: Path  # the server's key (privkey.pem)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make(directory: Path, names: tuple[str, ...] = ("localhost",), addresses: tuple[str, ...] = ("127.0.0.1",)) -> Certificate:
    """A CA and a certificate it signs for `names` and `addresses` (subject alternative
    names), valid for a day, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=bookstore test CA", "-keyout", str(ca_key), "-out", str(ca))
    key, request, certificate = directory / "privkey.pem", directory / "server.csr", directory / "cert.pem"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={names[0]}", "-keyout", str(key), "-out", str(request))
    extensions = directory / "server.ext"
    alternatives = [f"DNS:{name}" for name in names] + [f"IP:{address}" for address in addresses]
    extensions.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
                          f"subjectAltName={','.join(alternatives)}\n")
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(extensions), "-out", str(certificate))
    chain = directory / "fullchain.pem"
    chain.write_text(certificate.read_text() + ca.read_text())
    key.chmod(0o644)  # read by nginx as another user in the container tests
    return Certificate(ca=ca, chain=chain, key=key)


if __name__ == "__main__":
    made = make(Path(sys.argv[1]), tuple(sys.argv[2:]) or ("localhost",))
    print(made.ca, made.chain, made.key)
