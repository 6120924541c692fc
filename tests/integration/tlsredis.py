"""TLS Redis for the tests: a small PKI made with the ``openssl`` CLI, and
redis-server listening with TLS only (``--port 0 --tls-port P``, optionally
a plaintext port beside it).

``Certs(dir).make()`` writes, once, under ``dir``:

- ``ca``: the CA stratq is told to trust (STRATQ_REDIS_CACERT);
- ``server``: localhost and IP 127.0.0.1 (subjectAltName), signed by ``ca``;
- ``client``: a client certificate (clientAuth) signed by ``ca``, for
  ``tls-auth-clients yes`` (STRATQ_REDIS_CERT and STRATQ_REDIS_KEY);
- ``other_ca`` and ``other_ca_server``: an unrelated CA and a localhost
  server certificate it signed (verification against ``ca`` fails);
- ``self_signed``: a localhost server certificate that signed itself;
- ``expired``: a localhost server certificate signed by ``ca`` that was
  valid for one day in 2020 (``openssl ca -startdate/-enddate``: OpenSSL
  3.0's ``x509 -req`` has no way to set a past start date);
- ``wrong_host``: signed by ``ca`` for ``wrong.example`` only.

Keys are P-256 (fast to make). ``TlsRedis`` starts one redis-server with
one of these certificates, on free loopback ports, waits for it to answer
and stops it by its pid. Waiting is always on a condition with a deadline.

Run as a script, ``python3 tlsredis.py DIR`` makes the PKI in DIR and
prints its paths as shell assignments (scripts/bench-api.sh uses it).
"""

import os
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "chaos"))
from stack import free_port, wait_for  # noqa: E402

OPENSSL = os.environ.get("STRATQ_TEST_OPENSSL", "/usr/bin/openssl")
REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("STRATQ_TEST_REDIS_CLI", "/usr/bin/redis-cli")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# One file for `openssl req` and `openssl ca`: the extensions of each kind
# of certificate, and a CA database per CA (``-name``).
OPENSSL_CNF = """\
[ req ]
distinguished_name = dn
[ dn ]
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_self_signed ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
[ wrong_host ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
authorityKeyIdentifier = keyid
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[ policy ]
commonName = supplied
{cas}"""

CA_SECTION = """\
[ {name} ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/issued
certificate = {cert}
private_key = {key}
default_md = sha256
policy = policy
unique_subject = no
copy_extensions = none
email_in_dn = no
"""


class Pem:
    """A certificate and its private key."""

    def __init__(self, dir, name):
        self.cert = dir / f"{name}.crt"
        self.key = dir / f"{name}.key"


class Certs:
    CAS = ("ca", "other_ca")

    def __init__(self, dir):
        self.dir = Path(dir)
        self.cnf = self.dir / "openssl.cnf"
        for name in (*self.CAS, "server", "client", "other_ca_server", "self_signed", "expired", "wrong_host"):
            setattr(self, name, Pem(self.dir / (name if name in self.CAS else ""), name))

    def _openssl(self, *args):
        res = subprocess.run([OPENSSL, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, f"openssl {' '.join(map(str, args))} exited {res.returncode}:\n{res.stderr}"
        return res.stdout

    def _key_and_request(self, pem, cn, *extra):
        """A new P-256 key; with ``extra`` (``-x509 ...``) a self-signed
        certificate, else a request (``pem.cert`` with .csr)."""
        out = pem.cert if extra else pem.cert.with_suffix(".csr")
        self._openssl("req", "-config", self.cnf, "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", pem.key, "-subj", f"/CN={cn}", "-out", out, *extra)
        os.chmod(pem.key, 0o600)
        return out

    def _sign(self, ca, pem, cn, extensions, dates=("-days", "825")):
        csr = self._key_and_request(pem, cn)
        self._openssl("ca", "-batch", "-config", self.cnf, "-name", ca, "-notext", "-extensions", extensions,
                      "-in", csr, "-out", pem.cert, *dates)

    def make(self):
        """Writes every file (idempotent: a second call does nothing)."""
        if self.wrong_host.cert.exists():
            return self
        cas = []
        for ca in self.CAS:
            d = self.dir / ca
            (d / "issued").mkdir(parents=True, exist_ok=True)
            (d / "index.txt").write_text("")
            (d / "serial").write_text(secrets.token_hex(8) + "\n")
            pem = getattr(self, ca)
            cas.append(CA_SECTION.format(name=ca, dir=d, cert=pem.cert, key=pem.key))
        self.cnf.write_text(OPENSSL_CNF.format(cas="".join(cas)))
        for ca in self.CAS:
            self._key_and_request(getattr(self, ca), f"stratq test {ca}", "-x509", "-days", "3650",
                                  "-extensions", "v3_ca")
        self._sign("ca", self.server, "localhost", "server")
        self._sign("ca", self.client, "stratq-test-client", "client")
        self._sign("other_ca", self.other_ca_server, "localhost", "server")
        self._sign("ca", self.expired, "localhost", "server",
                   ("-startdate", "20200101000000Z", "-enddate", "20200102000000Z"))
        self._sign("ca", self.wrong_host, "wrong.example", "wrong_host")
        self._key_and_request(self.self_signed, "localhost", "-x509", "-days", "825", "-extensions",
                              "v3_self_signed")
        return self


def handshake_error(port, cafile, server_hostname="localhost", client=None):
    """What Python's ssl (OpenSSL, as stratq) says of a handshake with the
    server on ``port``, verifying against ``cafile`` and checking
    ``server_hostname``: None when it succeeds, else the error's text."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_hostname):
                return None
    except (ssl.SSLError, ssl.CertificateError) as e:
        return str(e)


class TlsRedis:
    """redis-server with a TLS port (and a plaintext one when ``plain``),
    serving ``server`` (a Pem), trusting ``ca`` for client certificates,
    requiring one when ``auth_clients``. With a ``password`` (and
    ``users``, {name: password}, ACL users with every right) they go in a
    0600 redis.conf, not on the command line."""

    def __init__(self, workdir, certs, server=None, auth_clients=True, plain=False, password=None, users=None):
        self.certs = certs
        self.server = server or certs.server
        self.auth_clients = auth_clients
        self.password = password
        self.users = dict(users or {})
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "redis.log"
        self.tls_port = free_port()
        self.port = free_port() if plain else None
        self.proc = None

    @property
    def url(self):
        """The rediss:// URL of the TLS port (host 127.0.0.1, password if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}127.0.0.1:{self.tls_port}"

    def env(self, client_cert=True):
        """STRATQ_REDIS_* for stratq to verify this server against ``ca``
        (and, with ``client_cert``, present the client certificate)."""
        env = {"STRATQ_REDIS_CACERT": str(self.certs.ca.cert)}
        if client_cert:
            env.update(STRATQ_REDIS_CERT=str(self.certs.client.cert), STRATQ_REDIS_KEY=str(self.certs.client.key))
        return env

    def _argv(self):
        argv = [REDIS_SERVER]
        if self.password or self.users:
            conf = self.dir / "redis.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                if self.password:
                    f.write(f"requirepass {self.password}\n")
                for name, pw in self.users.items():
                    f.write(f"user {name} on >{pw} ~* &* +@all\n")
            argv.append(str(conf))
        return argv + [
            "--port", str(self.port or 0),
            "--tls-port", str(self.tls_port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(self.server.cert),
            "--tls-key-file", str(self.server.key),
            "--tls-ca-cert-file", str(self.certs.ca.cert),
            "--tls-auth-clients", "yes" if self.auth_clients else "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
        ]

    def client(self, verify=None, **kw):
        """redis-py over TLS, with the client certificate, checking the
        server's certificate and the name localhost unless ``verify`` is
        False (by default it is only for the CA's localhost certificate:
        redis-py cannot check a name other than the host's)."""
        if verify is None:
            verify = self.server is self.certs.server
        return redis.Redis(
            host="localhost" if verify else "127.0.0.1", port=self.tls_port, password=self.password,
            decode_responses=True, ssl=True, ssl_ca_certs=str(self.certs.ca.cert),
            ssl_cert_reqs="required" if verify else "none", ssl_check_hostname=verify,
            ssl_certfile=str(self.certs.client.cert), ssl_keyfile=str(self.certs.client.key), **kw)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        client = self.client(verify=False, socket_timeout=2)

        def ping():
            assert self.proc.poll() is None, \
                f"redis-server exited {self.proc.returncode}:\n{self.log_path.read_text(errors='replace')}"
            try:
                return client.ping()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                return False

        try:
            wait_for(ping, START_TIMEOUT, f"redis-server to answer PING over TLS on {self.tls_port}")
        finally:
            client.close()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args, cacert=None, client_cert=True, timeout=10):
        """``redis-cli --tls ... ARGS`` against the TLS port
        (CompletedProcess, text); ``cacert`` defaults to the CA."""
        argv = [REDIS_CLI, "--tls", "--cacert", str(cacert or self.certs.ca.cert), "-h", "127.0.0.1",
                "-p", str(self.tls_port)]
        if client_cert:
            argv += ["--cert", str(self.certs.client.cert), "--key", str(self.certs.client.key)]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        return subprocess.run([*argv, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=env)


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR  (makes the test PKI in DIR, prints its paths)", file=sys.stderr)
        return 2
    c = Certs(argv[1])
    c.dir.mkdir(parents=True, exist_ok=True)
    c.make()
    for name in ("ca", "server", "client"):
        pem = getattr(c, name)
        print(f"{name}_cert={shlex.quote(str(pem.cert))}\n{name}_key={shlex.quote(str(pem.key))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
