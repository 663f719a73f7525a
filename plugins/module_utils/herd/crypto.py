"""The cluster's x509 certificates for QEMU's TLS migration.

The master creates a cluster CA at cluster init (``new_ca``) and signs one
certificate per node (``node_certificate``); each node keeps its files in
``<state dir>/crypto`` (``/var/lib/herd/crypto``) in the layout QEMU's
``tls-creds-x509`` reads from one directory:

- ``ca-cert.pem``: the cluster CA (0644);
- ``server-cert.pem`` / ``client-cert.pem``: this node's certificate, usable
  for both ends of a migration (0644);
- ``server-key.pem`` / ``client-key.pem``: its private key (0600);
- ``ca-key.pem``: the CA's key, only on the master and master candidates
  (they sign certificates for nodes added after a master failover) (0600).

A node's certificate names the node (CN, DNS) and its primary and secondary
IPs (IP SANs: QEMU checks the migration target's address against them). Its
subject is ``O=herd cluster <uuid>,CN=<node>``; QEMU's ``tls-authz`` on the
target admits exactly the subjects of the cluster's nodes (``peer_dns``).

Generation needs the ``cryptography`` library (Debian python3-cryptography)
and runs on the master only; installing and reading runs on every node with
the standard library.
"""

import datetime
import hashlib
import ipaddress
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import names
from .config import write_bytes_atomic
from .errors import HerdError, ValidationError

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_FILES = ("server-cert.pem", "client-cert.pem")
KEY_FILES = ("server-key.pem", "client-key.pem")
CA_DAYS = 3650
NODE_DAYS = 1825
PEM_CERT = "-----BEGIN CERTIFICATE-----"
PEM_KEYS = ("-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----")


class CryptoError(HerdError):
    """Certificates could not be made or installed."""


def crypto_dir() -> str:
    """Where a node keeps its migration certificates (HERD_STATE_DIR for tests), read at call time."""
    return os.path.join(os.environ.get("HERD_STATE_DIR", "/var/lib/herd"), "crypto")


def organization(cluster_uuid: str) -> str:
    return f"herd cluster {names.check_uuid(cluster_uuid)}"


def node_dn(node: str, cluster_uuid: str) -> str:
    """The subject of ``node``'s certificate as QEMU reports a peer's identity to ``tls-authz``.

    QEMU takes GnuTLS's ``gnutls_x509_crt_get_dn``, which lists the attributes in
    the order the certificate encodes them (O first here), not reversed as RFC 4514.
    """
    return f"O={organization(cluster_uuid)},CN={names.check_hostname(node)}"


def peer_dns(nodes: Iterable[str], cluster_uuid: str) -> List[str]:
    """The identities ``tls-authz`` admits on a migration target: every node of the cluster."""
    return [node_dn(node, cluster_uuid) for node in sorted(set(nodes))]


def _lib() -> Any:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise CryptoError("creating the cluster's certificates needs the Python library cryptography "
                          "on the master (Debian package python3-cryptography; the node_base role "
                          "installs it)") from None
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _key_pem(key: Any) -> str:
    _x509, _hashes, serialization, _ec, _eku, _oid = _lib()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def _cert_pem(cert: Any) -> str:
    _x509, _hashes, serialization, _ec, _eku, _oid = _lib()
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _serial() -> int:
    return int.from_bytes(os.urandom(16), "big") >> 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def new_ca(cluster_name: str, cluster_uuid: str, days: int = CA_DAYS) -> Tuple[str, str]:
    """A fresh cluster CA: (key PEM, certificate PEM)."""
    x509, hashes, _serialization, ec, _eku, NameOID = _lib()
    names.check_hostname(cluster_name, "cluster name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization(cluster_uuid)),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"herd CA {cluster_name}")])
    start = _now() - datetime.timedelta(minutes=5)  # nodes' clocks differ a little
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(_serial()).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _key_pem(key), _cert_pem(cert)


def node_certificate(ca_key_pem: str, ca_cert_pem: str, node: str, addresses: Iterable[str],
                     cluster_uuid: str, days: int = NODE_DAYS) -> Tuple[str, str]:
    """A certificate for ``node`` signed by the cluster CA, for both ends of a migration: (key PEM, cert PEM)."""
    x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _lib()
    node = names.check_hostname(node)
    ips = []
    for address in addresses:
        try:
            ips.append(ipaddress.ip_address(str(address)))
        except ValueError:
            raise ValidationError(f"node {node}: address {address!r} is not an IP address") from None
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode("ascii"), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode("ascii"))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization(cluster_uuid)),
                         x509.NameAttribute(NameOID.COMMON_NAME, node)])
    start = _now() - datetime.timedelta(minutes=5)
    end = min(start + datetime.timedelta(days=days), _not_after(ca_cert))
    sans = [x509.DNSName(node)] + [x509.IPAddress(ip) for ip in dict.fromkeys(ips)]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(_serial()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _key_pem(key), _cert_pem(cert)


def _not_after(cert: Any) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42 gives a naive UTC datetime
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate's DER bytes, as hex pairs (what ``openssl x509 -fingerprint`` shows)."""
    import ssl

    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem.strip() + "\n")).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _check_pem(text: Any, what: str, markers: Tuple[str, ...]) -> str:
    if not isinstance(text, str) or not text.lstrip().startswith(markers):
        # the value itself is never echoed: it may be a key
        raise ValidationError(f"{what} must be a PEM text starting with {markers[0]}")
    return text if text.endswith("\n") else text + "\n"


def _write(path: str, text: str, mode: int) -> bool:
    try:
        with open(path, encoding="ascii") as handle:
            same = handle.read() == text
        if same and (os.stat(path).st_mode & 0o777) == mode:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_bytes_atomic(path, text.encode("ascii"), mode)
    return True


def install(ca_cert: str, cert: str, key: str, ca_key: Optional[str] = None,
            directory: Optional[str] = None) -> Dict[str, Any]:
    """Write this node's certificate files (keys 0600, directory 0700); idempotent.

    Without ``ca_key`` a CA key left from an earlier role (a demoted master
    candidate) is removed. Returns what changed and the fingerprints, never a key.
    """
    directory = directory or crypto_dir()
    ca_cert = _check_pem(ca_cert, "ca_cert", (PEM_CERT,))
    cert = _check_pem(cert, "cert", (PEM_CERT,))
    key = _check_pem(key, "key", PEM_KEYS)
    if ca_key is not None:
        ca_key = _check_pem(ca_key, "ca_key", PEM_KEYS)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    changed = []
    files = [(CA_CERT, ca_cert, 0o644)] + [(n, cert, 0o644) for n in CERT_FILES] + [(n, key, 0o600) for n in KEY_FILES]
    if ca_key is not None:
        files.append((CA_KEY, ca_key, 0o600))
    for filename, text, mode in files:
        if _write(os.path.join(directory, filename), text, mode):
            changed.append(filename)
    if ca_key is None and os.path.exists(os.path.join(directory, CA_KEY)):
        os.unlink(os.path.join(directory, CA_KEY))
        changed.append(CA_KEY)
    return {"changed": bool(changed), "files": changed, "directory": directory,
            "ca_fingerprint": fingerprint(ca_cert), "fingerprint": fingerprint(cert)}


def installed(directory: Optional[str] = None) -> bool:
    """This node has the cluster's certificates: its migrations use TLS (and only TLS)."""
    directory = directory or crypto_dir()
    return all(os.path.isfile(os.path.join(directory, f)) for f in (CA_CERT,) + CERT_FILES + KEY_FILES)


def read_ca(directory: Optional[str] = None) -> Tuple[str, str]:
    """The CA's (key PEM, certificate PEM) on the master; a clear error when this node has no CA key."""
    directory = directory or crypto_dir()
    try:
        with open(os.path.join(directory, CA_KEY), encoding="ascii") as handle:
            key = handle.read()
        with open(os.path.join(directory, CA_CERT), encoding="ascii") as handle:
            cert = handle.read()
    except OSError:
        raise CryptoError(f"the cluster CA is missing in {directory}; run herd.cluster.cluster with "
                          "renew_crypto: true on the master to create it") from None
    return key, cert


def remove(directory: Optional[str] = None) -> List[str]:
    """Forget the cluster's certificates (node leaving its cluster)."""
    directory = directory or crypto_dir()
    removed = []
    for filename in (CA_CERT, CA_KEY) + CERT_FILES + KEY_FILES:
        path = os.path.join(directory, filename)
        if os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    return removed
