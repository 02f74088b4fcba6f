"""Real Mosquitto for tests: a plain broker and one with TLS + a password file, on free ports,
with generated configs and a throwaway CA. Registered from tests/conftest.py.

    def test_x(broker):            # LocalBroker, started; broker.stop()/start()/restart()
    def test_y(tls_broker):        # (LocalBroker, TlsLogin)
    cfg = config_for(tmp_path, broker, sync={"batch_records": 50})
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_sync.fleet.localbroker import BrokerSecurity, LocalBroker, find_mosquitto, free_port
from device.config import Config, build, to_toml
from device.config_schema import SCHEMA

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_mosquitto() -> None:
    """Skip a broker test where Mosquitto is missing; fail it in CI, where a skip would hide
    that the broker tests did not run."""
    message = ("mosquitto is not installed (PATH or /usr/sbin); install the Debian package "
               "'mosquitto' (scripts/setup does)")
    if IN_CI:
        pytest.fail(message + " — CI must run the broker tests")
    pytest.skip(message)


requires_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None and not IN_CI,
    reason="mosquitto is not installed (PATH or /usr/sbin); install the Debian package "
           "'mosquitto' to run the broker tests")


@dataclass(frozen=True)
class TlsLogin:
    ca_file: Path
    username: str
    password: str
    client_cert: Path
    client_key: Path


@pytest.fixture
def broker(tmp_path):
    if find_mosquitto() is None:
        missing_mosquitto()
    b = LocalBroker(tmp_path / "broker").start()
    yield b
    b.kill()


@pytest.fixture
def tls_broker(tmp_path):
    if find_mosquitto() is None:
        missing_mosquitto()
    login = make_tls_material(tmp_path / "pki")
    pw = tmp_path / "pki" / "passwords"
    pw.write_text(mosquitto_password_line(login.username, login.password) + "\n")
    security = BrokerSecurity(ca_file=tmp_path / "pki" / "ca.pem",
                              cert_file=tmp_path / "pki" / "server.pem",
                              key_file=tmp_path / "pki" / "server.key", password_file=pw)
    b = LocalBroker(tmp_path / "tls-broker", security=security).start()
    yield b, login
    b.kill()


@pytest.fixture
def cert_broker(tmp_path):
    """TLS where the client certificate is the login (its CN becomes the user name)."""
    if find_mosquitto() is None:
        missing_mosquitto()
    login = make_tls_material(tmp_path / "pki")
    security = BrokerSecurity(ca_file=login.ca_file, cert_file=tmp_path / "pki" / "server.pem",
                              key_file=tmp_path / "pki" / "server.key",
                              require_certificate=True)
    b = LocalBroker(tmp_path / "cert-broker", security=security).start()
    yield b, login
    b.kill()


def config_for(tmp_path: Path, broker: LocalBroker | None, device: str = "glasses-1",
               **sections: dict) -> Config:
    """A full config for one device and the given broker; writes it to tmp_path/edgelens.toml
    (for subprocesses) and returns it."""
    raw = {"telemetry": {"db_path": str(tmp_path / "telemetry.sqlite"), "device_id": device,
                         "system_metrics": False},
           "mqtt": {"port": broker.port if broker else 1883, "reconnect_min_s": 0.1,
                    "reconnect_max_s": 1.0, "keepalive_s": 5},
           "sync": {"idle_poll_s": 0.05, "retry_delay_s": 0.2, "status_interval_s": 1.0},
           "fleet": {"db": str(tmp_path / "fleet.sqlite")}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    cfg = build(raw, SCHEMA, str(tmp_path / "edgelens.toml"))
    (tmp_path / "edgelens.toml").write_text(to_toml(cfg))
    return cfg


def mosquitto_password_line(username: str, password: str) -> str:
    """A mosquitto 2 password-file line: PBKDF2-SHA512, 101 iterations, 12-byte salt."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return (f"{username}:$7$101${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def make_tls_material(folder: Path) -> TlsLogin:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        os.chmod(path, 0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("edgelens test CA"))
          .issuer_name(name("edgelens test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn: str, stem: str, server: bool) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, folder / f"{stem}.key")

    leaf("127.0.0.1", "server", server=True)
    leaf("glasses-1", "client", server=False)
    return TlsLogin(folder / "ca.pem", "glasses-1", secrets.token_urlsafe(12),
                    folder / "client.pem", folder / "client.key")


# --- ACL broker (issue 6): the ACL `edgelens-fleet acl` writes, with password logins ----------

ACL_USERS = ("fleet", "glasses-1", "glasses-2", "glasses-3")
ACL_GROUPS = {"lab": ["glasses-1", "glasses-3"], "field": ["glasses-2"]}


@pytest.fixture
def acl_broker(tmp_path):
    """Mosquitto set up as deploy/mosquitto.conf is, without TLS: logins per listener, a device
    listener (`port`) that uses the user name as client id and takes device logins only, a
    fleet listener (`fleet_port`) that takes the fleet login only, and the ACL rendered from
    ACL_GROUPS (`acl_file`, re-read on SIGHUP). A password per user in ACL_USERS (the user name
    + '-pw')."""
    from cloud_sync.fleet.acl import render_acl
    if find_mosquitto() is None:
        missing_mosquitto()
    folder = tmp_path / "acl-broker"
    folder.mkdir()
    pw = folder / "passwords"                  # device logins only
    pw.write_text("".join(mosquitto_password_line(u, f"{u}-pw") + "\n" for u in ACL_USERS
                          if u != "fleet"))
    fleet_pw = folder / "fleet.passwords"      # the fleet listener takes the fleet login only
    acl = folder / "edgelens.acl"
    acl.write_text(render_acl("edgelens", ACL_GROUPS))
    fleet_pw.write_text(mosquitto_password_line("fleet", "fleet-pw") + "\n")
    fleet_port = free_port()
    b = LocalBroker(folder, per_listener_settings=True,
                    extra_config=["use_username_as_clientid true", "allow_anonymous false",
                                  f"password_file {pw}", f"acl_file {acl}",
                                  f"listener {fleet_port} 127.0.0.1", "allow_anonymous false",
                                  f"password_file {fleet_pw}", f"acl_file {acl}"])
    b.fleet_port, b.acl_file = fleet_port, acl
    b.start()
    yield b
    b.kill()


# --- the shipped broker config (issue 11): deploy/mosquitto.conf itself, on test ports ---------

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONF = ROOT / "deploy" / "mosquitto.conf"
SHIPPED_ACL = ROOT / "deploy" / "mosquitto.acl"
SHIPPED_DEVICES = ("glasses-0001", "glasses-0002", "glasses-0100")    # groups.example.toml


class ShippedBroker(LocalBroker):
    """deploy/mosquitto.conf (or `conf`) with only its paths, ports and addresses swapped for
    test ones: TLS from a throwaway CA, the shipped ACL, a password per user (user name +
    '-pw'). `port` is the device listener, `fleet_port` the fleet listener; kill() is kill -9
    and start() again reuses the same persistence directory."""

    conf: Path = SHIPPED_CONF
    fleet_port: int = 0

    def write_config(self) -> None:
        pki = self.workdir / "pki"
        if not (pki / "ca.pem").is_file():
            make_tls_material(pki)
        text = Path(self.conf).read_text()
        split = "/etc/mosquitto/fleet.passwords" in text     # logins per listener
        users = [*SHIPPED_DEVICES] + ([] if split else ["fleet"])
        (pki / "passwords").write_text("".join(mosquitto_password_line(u, f"{u}-pw") + "\n"
                                               for u in users))
        (pki / "fleet.passwords").write_text(mosquitto_password_line("fleet", "fleet-pw") +
                                             "\n")
        for old, new in {"/etc/mosquitto/certs/ca.pem": pki / "ca.pem",
                         "/etc/mosquitto/certs/server.pem": pki / "server.pem",
                         "/etc/mosquitto/certs/server.key": pki / "server.key",
                         "/etc/mosquitto/fleet.passwords": pki / "fleet.passwords",
                         "/etc/mosquitto/passwords": pki / "passwords",
                         "/etc/mosquitto/edgelens.acl": SHIPPED_ACL,
                         "/var/lib/mosquitto/": f"{self.workdir}/",
                         "listener 8883\n": f"listener {self.port} 127.0.0.1\n",
                         "listener 8884 10.0.0.1": f"listener {self.fleet_port} 127.0.0.1",
                         "log_dest syslog": f"log_dest file {self.log_file}\nlog_type all\n"
                                            f"user {os.environ.get('USER') or 'root'}"}.items():
            text = text.replace(old, str(new))
        self.config_file.write_text(text)

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.pem"

    def mqtt(self, user: str, fleet: bool | None = None) -> dict:
        """The [mqtt] section for `user` on its listener (fleet listener for `fleet`)."""
        fleet = user == "fleet" if fleet is None else fleet
        return {"port": self.fleet_port if fleet else self.port, "tls": True,
                "ca_file": str(self.ca_file), "username": user, "password": f"{user}-pw"}


def shipped_broker(folder: Path, conf: Path = SHIPPED_CONF) -> ShippedBroker:
    """A started ShippedBroker; the caller kills it."""
    if find_mosquitto() is None:
        missing_mosquitto()
    b = ShippedBroker(folder)
    b.conf, b.fleet_port = conf, free_port()
    while b.fleet_port == b.port:          # two listeners, two ports
        b.fleet_port = free_port()
    return b.start()
