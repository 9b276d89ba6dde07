"""The way in to the test GCS emulator (fake-gcs-server), for every client. A test double of the network route,
not of storage: every request is answered by fake-gcs-server. It runs as its own process (see `main`).

It serves two kinds of client:
- Plain HTTP, as the emulator's endpoint (STORAGE_EMULATOR_HOST: google-cloud-storage, Beam's GCS IO). Requests
  pass unchanged, except that batch requests get the `Content-ID` part headers fake-gcs-server needs:
  google-cloud-storage sends none (google/cloud/storage/batch.py, `_prepare_batch_request`), GCS accepts that,
  fake-gcs-server skips such parts and answers an empty batch (fakestorage/server.go, `handleBatchCall`:
  "missing content ID, skip"), which breaks Beam's rename and delete (apache_beam/io/gcp/gcsio.py,
  `copy_batch`, `delete_batch`).
- HTTPS through `CONNECT` (HTTPS_PROXY), for TensorFlow's built-in gs:// filesystem, whose endpoints are fixed to
  https://www.googleapis.com and https://storage.googleapis.com (tsl/platform/cloud/gcs_file_system.cc,
  `kGcsUriBase`, `kGcsUploadUriBase`, `kStorageHost`) and which ignores every emulator variable. Its libcurl
  honours HTTPS_PROXY and TensorFlow reads CURL_CA_BUNDLE (tsl/platform/cloud/curl_http_request.cc), so the route
  terminates TLS with a certificate from a throw-away test CA and forwards each request in plain HTTP. It drops
  `Transfer-Encoding: identity`, which TensorFlow adds to empty-body PUTs (curl_http_request.cc,
  `SetPutEmptyBody`) and which Go's net/http answers with `501 Unsupported transfer encoding` ("identity" is no
  transfer coding since RFC 7230: dropping it changes nothing in the message).
For both, the emulator's own address in a `Location` header (resumable-upload sessions) becomes the address the
client used, as a reverse proxy does, so an upload continues on the same route.
"""
import argparse
import datetime
import http.client
import http.server
import ipaddress
import socket
import ssl
import sys
import urllib.parse
from pathlib import Path
from typing import Tuple

GOOGLE_STORAGE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def write_test_ca_and_server_cert(folder: Path) -> Tuple[Path, Path, Path]:
    """A test CA and a server certificate it signs for Google's storage hosts. Returns (ca_cert, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = dict(not_valid_before=now - datetime.timedelta(days=1), not_valid_after=now + datetime.timedelta(days=7))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagepipe test CA (GCS emulator route)")])
    ca_cert = (x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(),
                                       serial_number=x509.random_serial_number(), **validity)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(host) for host in GOOGLE_STORAGE_HOSTS] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GOOGLE_STORAGE_HOSTS[0])])
    cert = (x509.CertificateBuilder(subject_name=subject, issuer_name=ca_name, public_key=key.public_key(),
                                    serial_number=x509.random_serial_number(), **validity)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "test-ca.pem", folder / "server-cert.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def with_content_ids(body: bytes, content_type: str) -> bytes:
    """A multipart/mixed batch body in which every part has a Content-ID header (numbered in order)."""
    boundary = dict(param.strip().split("=", 1) for param in content_type.split(";")[1:] if "=" in param).get(
        "boundary", "").strip('"')
    if not boundary:
        return body
    delimiter = b"--" + boundary.encode()
    segments = body.split(delimiter)
    for index in range(1, len(segments)):
        segment = segments[index]
        if segment.startswith(b"--"):  # the closing delimiter
            continue
        newline = b"\r\n" if segment.startswith(b"\r\n") else b"\n"
        head = segment.split(newline + newline, 1)[0].lower()
        if b"content-id:" not in head:
            segments[index] = newline + b"Content-ID: <item-%d>" % index + newline + segment[len(newline):]
    return delimiter.join(segments)


class _RouteHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "EmulatorRoute"
    scheme = "http"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name. Quiet: the emulator logs.
        pass

    def do_CONNECT(self):  # noqa: N802 - http.server's naming
        host = self.path.rsplit(":", 1)[0]
        if host not in GOOGLE_STORAGE_HOSTS:
            self.send_error(403, f"this test route only leads to {', '.join(GOOGLE_STORAGE_HOSTS)}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        # From here on the connection carries TLS: serve HTTP requests inside it until the client closes.
        self.connection = self.server.tls_context.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        self.wfile = self.connection.makefile("wb", 0)
        self.scheme = "https"
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self):
        body = self._read_body()
        path = urllib.parse.urlsplit(self.path)._replace(scheme="", netloc="").geturl() or "/"
        if path.startswith("/batch/"):
            body = with_content_ids(body, self.headers.get("Content-Type", ""))
        headers = {key: value for key, value in self.headers.items()
                   if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length"}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.server.emulator_address, timeout=300)
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() in _HOP_BY_HOP or key.lower() == "content-length":
                continue
            if key.lower() == "location":
                value = self._through_this_route(value)
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _through_this_route(self, location: str) -> str:
        """fake-gcs-server names itself (its -external-url, or the Host it was asked for) in a resumable-upload
        Location; the client must come back the way it came."""
        parts = urllib.parse.urlsplit(location)
        host = self.headers.get("Host")
        if parts.netloc not in (host, self.server.emulator_netloc):
            return location
        return urllib.parse.urlunsplit((self.scheme, host, parts.path, parts.query, parts.fragment))

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815


class EmulatorRoute(http.server.ThreadingHTTPServer):
    """The route, on a free loopback port, to the emulator at `emulator_url`."""

    daemon_threads = True

    def __init__(self, emulator_url: str, cert: Path, key: Path):
        super().__init__(("127.0.0.1", 0), _RouteHandler)
        self.emulator_netloc = urllib.parse.urlsplit(emulator_url).netloc
        host, port = self.emulator_netloc.rsplit(":", 1)
        self.emulator_address = (host, int(port))
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.load_cert_chain(str(cert), str(key))

    def handle_error(self, request, client_address):
        # A client that drops a kept-alive connection is normal here; anything else the client reports.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, socket.timeout)):
            super().handle_error(request, client_address)


def main(argv=None) -> None:
    """`python -m tests.gcs_emulator_route EMULATOR_URL CERT KEY`: prints the port it listens on, then serves
    until terminated. Its own process, so TensorFlow calls in a test process never wait on that process's GIL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emulator_url")
    parser.add_argument("cert", type=Path)
    parser.add_argument("key", type=Path)
    args = parser.parse_args(argv)
    route = EmulatorRoute(args.emulator_url, args.cert, args.key)
    print(route.server_address[1], flush=True)
    route.serve_forever()


if __name__ == "__main__":
    main()
