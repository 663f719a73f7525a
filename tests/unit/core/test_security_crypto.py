"""Issue 11 items 7 and 8 on the master and node side: the cluster CA, node certificates, renew_crypto,
the uid pool and the default security model of a new cluster."""

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from plugins.module_utils.herd import crypto
from plugins.module_utils.herd.errors import ValidationError
from plugins.module_utils.herd.hypervisor import confine
from plugins.module_utils.herd.hypervisor.base import HypervisorError, check_hvparams
from plugins.module_utils.herd.ops import cluster as cluster_op
from plugins.module_utils.herd.ops import node as node_op

from .conftest import add_spec, init_spec

UUID = "0b7a1f0e-5d2c-4e8b-9a61-3f2d7c4b8e10"


def load(directory, filename):
    with open(os.path.join(directory, filename), "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def signed_by(cert, ca):
    try:
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except Exception:  # noqa: BLE001 - any failure means "not signed by this CA"
        return False
    return True


def mode(directory, filename):
    return stat.S_IMODE(os.stat(os.path.join(directory, filename)).st_mode)


# --- crypto.py ------------------------------------------------------------------------------

def test_item7_node_certificate_names_the_node_and_its_addresses_and_is_signed_by_the_ca(tmp_path):
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    key, cert = crypto.node_certificate(ca_key, ca_cert, "node1.example", ["198.51.100.11", "203.0.113.11"], UUID)
    crypto.install(ca_cert, cert, key, directory=str(tmp_path))
    node = load(tmp_path, "server-cert.pem")
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert (node.subject.rfc4514_string(), sorted(str(ip) for ip in sans.get_values_for_type(x509.IPAddress)),
            sans.get_values_for_type(x509.DNSName)) == \
        (f"CN=node1.example,O=herd cluster {UUID}", ["198.51.100.11", "203.0.113.11"], ["node1.example"])
    assert signed_by(node, load(tmp_path, "ca-cert.pem"))


def test_item7_certificate_of_another_ca_does_not_verify():
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    _other_key, other_cert = crypto.new_ca("cluster.example", UUID)
    _key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    assert signed_by(x509.load_pem_x509_certificate(cert.encode()),
                     x509.load_pem_x509_certificate(other_cert.encode())) is False


def test_item7_install_writes_keys_0600_in_a_0700_directory_and_is_idempotent(tmp_path):
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    directory = str(tmp_path / "crypto")
    first = crypto.install(ca_cert, cert, key, ca_key=ca_key, directory=directory)
    again = crypto.install(ca_cert, cert, key, ca_key=ca_key, directory=directory)
    assert (first["changed"], again["changed"]) == (True, False)
    assert {f: mode(directory, f) for f in ("server-key.pem", "client-key.pem", "ca-key.pem")} == \
        {"server-key.pem": 0o600, "client-key.pem": 0o600, "ca-key.pem": 0o600}
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert crypto.installed(directory)


def test_item7_install_answer_carries_no_key_material(tmp_path):
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    answer = crypto.install(ca_cert, cert, key, ca_key=ca_key, directory=str(tmp_path))
    assert "PRIVATE" not in repr(answer)


def test_item7_a_key_that_is_not_pem_is_refused_without_echoing_it(tmp_path):
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    _key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    with pytest.raises(ValidationError) as raised:
        crypto.install(ca_cert, cert, "s3cr3t-not-a-key", directory=str(tmp_path))
    assert "s3cr3t" not in str(raised.value) and not crypto.installed(str(tmp_path))


def test_item7_a_non_candidate_loses_a_ca_key_it_held(tmp_path):
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    crypto.install(ca_cert, cert, key, ca_key=ca_key, directory=str(tmp_path))
    crypto.install(ca_cert, cert, key, directory=str(tmp_path))
    assert not os.path.exists(tmp_path / "ca-key.pem")


def test_item7_authz_admits_the_subjects_qemu_reports_for_the_cluster_nodes():
    assert crypto.peer_dns(["node2", "node1", "node1"], UUID) == \
        [f"O=herd cluster {UUID},CN=node1", f"O=herd cluster {UUID},CN=node2"]


# --- the cluster op ---------------------------------------------------------------------------

def test_item7_cluster_init_creates_the_ca_and_the_masters_certificate(ctx):
    result = cluster_op.present(ctx, init_spec())
    directory = ctx.rpc.crypto_dir(ctx.rpc.local)
    ca = load(directory, "ca-cert.pem")
    assert signed_by(load(directory, "server-cert.pem"), ca) and crypto.installed(directory)
    assert (mode(directory, "ca-key.pem"), result["crypto"]["nodes"]) == (0o600, ["node1"])


def test_item7_node_add_installs_a_certificate_from_the_cluster_ca_without_the_ca_key(ctx, nodes):
    cluster_op.present(ctx, init_spec(candidate_pool_size=1))
    node_op.present(ctx, add_spec(2))
    master_dir, node_dir = ctx.rpc.crypto_dir(nodes[0]), ctx.rpc.crypto_dir(nodes[1])
    assert signed_by(load(node_dir, "client-cert.pem"), load(master_dir, "ca-cert.pem"))
    assert (ctx.store.load().nodes["node2"].master_candidate, os.path.exists(os.path.join(node_dir, "ca-key.pem"))) \
        == (False, False)


def test_item7_master_candidates_get_the_ca_key_for_a_master_failover(ctx, nodes):
    cluster_op.present(ctx, init_spec())
    node_op.present(ctx, add_spec(2, master_candidate=True))
    assert mode(ctx.rpc.crypto_dir(nodes[1]), "ca-key.pem") == 0o600


def test_item7_renew_crypto_gives_every_node_a_certificate_of_a_new_ca(cluster, nodes):
    before = load(ctx_dir := cluster.rpc.crypto_dir(nodes[0]), "ca-cert.pem")
    result = cluster_op.present(cluster, init_spec(renew_crypto=True))
    after = load(ctx_dir, "ca-cert.pem")
    certs = [load(cluster.rpc.crypto_dir(n), "server-cert.pem") for n in nodes[:3]]
    assert (result["changed"], before.fingerprint(after.signature_hash_algorithm) !=
            after.fingerprint(after.signature_hash_algorithm)) == (True, True)
    assert [signed_by(c, after) for c in certs] == [True, True, True]
    assert [signed_by(c, before) for c in certs] == [False, False, False]
    assert result["crypto"]["nodes"] == ["node1", "node2", "node3"]


def test_item7_renew_crypto_in_check_mode_touches_nothing(cluster, nodes):
    directory = cluster.rpc.crypto_dir(nodes[1])
    with open(os.path.join(directory, "ca-cert.pem")) as handle:
        before = handle.read()
    cluster.check_mode = True
    result = cluster_op.present(cluster, init_spec(renew_crypto=True))
    with open(os.path.join(directory, "ca-cert.pem")) as handle:
        assert (result["changed"], handle.read()) == (True, before)


def test_item7_renew_crypto_is_not_journalled_as_a_parameter(cluster):
    cluster_op.present(cluster, init_spec(renew_crypto=True))
    serial = cluster.store.load().serial_no
    assert cluster_op.present(cluster, init_spec())["changed"] is False
    assert cluster.store.load().serial_no == serial


def test_item7_cluster_leave_forgets_the_certificates(tmp_path, monkeypatch):
    from plugins.module_utils.herd.agent import files
    monkeypatch.setenv("HERD_STATE_DIR", str(tmp_path))
    ca_key, ca_cert = crypto.new_ca("cluster.example", UUID)
    key, cert = crypto.node_certificate(ca_key, ca_cert, "node1", ["198.51.100.11"], UUID)
    crypto.install(ca_cert, cert, key, ca_key=ca_key)
    files.cluster_leave({"cluster_name": "cluster.example"})
    assert os.listdir(tmp_path / "crypto") == []


def test_item8_a_new_cluster_confines_qemu_to_the_uid_pool(ctx):
    cluster_op.present(ctx, init_spec())
    assert ctx.store.load().cluster.hvparams["kvm"]["security_model"] == "pool"


def test_item8_a_declared_security_model_wins_at_init(ctx):
    cluster_op.present(ctx, init_spec(hvparams={"kvm": {"security_model": "none"}}))
    assert ctx.store.load().cluster.hvparams["kvm"]["security_model"] == "none"


# --- confine.py -------------------------------------------------------------------------------

def test_item8_pool_user_is_the_first_one_no_qemu_runs_as():
    pool = (65534, 65534)  # nobody: present on every Debian machine
    assert confine.free_pool_user(pool, used=[]) == "nobody"
    with pytest.raises(HypervisorError, match="every user of the uid pool 65534-65534 runs a QEMU"):
        confine.free_pool_user(pool, used=[65534])


def test_item8_a_pool_without_users_names_the_role_that_creates_them():
    with pytest.raises(HypervisorError, match="node_hypervisor role creates them"):
        confine.free_pool_user((64000, 64001), used=[])


@pytest.mark.parametrize("text", ["42000", "42000-41999", "10-20", "42000-42031\n", "a-b"])
def test_item8_bad_uid_pool_is_refused(text):
    with pytest.raises(ValidationError, match="uid_pool"):
        confine.parse_uid_pool(text)


def test_item8_user_model_needs_a_user_that_is_not_root():
    with pytest.raises(ValidationError, match="root would not confine QEMU"):
        check_hvparams({"security_model": "user", "security_domain": "root"})
    with pytest.raises(ValidationError, match="is not a user name"):
        check_hvparams({"security_model": "user", "security_domain": "bad name"})


def test_item8_unknown_security_model_is_refused():
    with pytest.raises(ValidationError, match="security_model 'chroot' is not one of"):
        check_hvparams({"security_model": "chroot"})


def test_item8_files_qemu_reopens_are_given_to_its_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    disk = tmp_path / "disk0"
    disk.write_bytes(b"")
    changed = confine.give([str(disk), None, str(tmp_path / "missing")], "nobody")
    assert (changed, os.stat(disk).st_uid) == ([str(disk)], 65534)


def test_item8_no_user_changes_no_owner(tmp_path):
    disk = tmp_path / "disk0"
    disk.write_bytes(b"")
    assert (confine.give([str(disk)], None), os.stat(disk).st_uid) == ([], os.geteuid())


def test_item8_a_node_without_a_uid_pool_fails_the_pre_start_check_naming_the_role():
    assert "herd.cluster.node_hypervisor role" in confine.check_node({"security_model": "pool"}, None)
    assert confine.check_node({"security_model": "pool"}, "42000-42031") is None


def test_item8_a_missing_security_domain_user_fails_the_pre_start_check():
    assert confine.check_node({"security_model": "user", "security_domain": "herd-no-such-user"}, None) == \
        "security_domain user herd-no-such-user does not exist"
