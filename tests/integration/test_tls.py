"""TLS distribution: a node started with -proto_dist inet_tls and certificates
made here (a CA, the node's, ours); attach, trace, detach; and one clear line
for each way it goes wrong."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from pathlib import Path

import pytest

import microscope_jupyter as mic
from microscope_jupyter.errors import HandshakeError, TLSError
from nodes import wait_until

pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


def _issue(name: str, key, issuer_key, issuer_name, ca: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=7)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(out: Path, tag: str) -> dict[str, Path]:
    """A CA and two certificates it signed (node, client), as PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(f"{tag} CA", ca_key, ca_key, None, ca=True)
    files = {}
    for name, key, cert in [("ca", ca_key, ca)] + [
            (n, k, _issue(n, k, ca_key, ca.subject))
            for n, k in (("node", ec.generate_private_key(ec.SECP256R1())),
                         ("client", ec.generate_private_key(ec.SECP256R1())))]:
        (out / f"{tag}-{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (out / f"{tag}-{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[name] = out / f"{tag}-{name}.pem"
        files[name + "_key"] = out / f"{tag}-{name}.key"
    return files


@pytest.fixture(scope="module")
def tls_node(node_factory, tmp_path_factory):
    out = tmp_path_factory.mktemp("tls")
    pki, other = _pki(out, "good"), _pki(out, "other")
    ssl_opts = (f'{{certfile, "{pki["node"]}"}}, {{keyfile, "{pki["node_key"]}"}}, '
                f'{{cacertfile, "{pki["ca"]}"}}, {{verify, verify_peer}}')
    conf = out / "dist.conf"
    conf.write_text(f"[{{server, [{ssl_opts}, {{fail_if_no_peer_cert, true}}]}},\n"
                    f" {{client, [{ssl_opts}]}}].\n")
    node = node_factory("otp25", prefix="tls", long_name=True,
                        extra_args=["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(conf)])
    return node, pki, other


def test_attach_trace_and_detach_over_tls(tls_node):
    node, pki, _ = tls_node
    tls = {"cafile": pki["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]}
    with mic.attach(node.name, cookie=node.cookie, tls=tls) as s:
        assert s.node_info()["otp_release"] == "25"
        worker = s.eval_erlang("spawn(fun Loop() -> receive {ping, F} -> F ! pong, Loop() end end).")
        with s.trace(worker) as rec:
            s.eval_erlang("W ! {ping, self()}, receive pong -> ok end.", W=worker)
            wait_until(lambda: rec.status()["events"] >= 2)
        assert {"receive", "send"} <= set(s.events["kind"])
        assert s.rpc("erlang", "trace_info", [worker, mic.Atom("flags")]) == (
            mic.Atom("flags"), [])                       # nothing left behind


def test_each_tls_failure_is_one_clear_line(tls_node):
    node, pki, other = tls_node
    # the node's certificate from a CA we were not told to trust
    with pytest.raises(TLSError, match=r"certificate did not verify .*pass the CA that signed it"):
        mic.attach(node.name, cookie=node.cookie,
                   tls={"cafile": other["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]})
    # our certificate from a CA the node does not trust
    with pytest.raises(TLSError, match=r"refused our client certificate"):
        mic.attach(node.name, cookie=node.cookie,
                   tls={"cafile": pki["ca"], "certfile": other["client"], "keyfile": other["client_key"]})
    # no CA at all, a missing file, an unknown option
    with pytest.raises(TLSError, match=r"needs the CA that signed the node's certificate"):
        mic.attach(node.name, cookie=node.cookie, tls={"certfile": pki["client"]})
    with pytest.raises(TLSError, match=r"could not load the TLS files"):
        mic.attach(node.name, cookie=node.cookie, tls={"cafile": pki["ca"], "certfile": "/nope.pem"})
    with pytest.raises(TLSError, match=r"unknown tls option"):
        mic.attach(node.name, cookie=node.cookie, tls={"cafile": pki["ca"], "ca": 1})
    # plain TCP to a TLS node says what to do
    with pytest.raises(HandshakeError, match=r"-proto_dist inet_tls needs tls="):
        mic.attach(node.name, cookie=node.cookie, timeout=5)


def test_tls_to_a_plain_node_says_it_does_not_speak_tls(any_node, tls_node):
    """Within the attach timeout, whichever comes first: our timeout (5 s), or the
    node's net_setuptime (7 s), when it hangs up on what it read as a handshake."""
    _, pki, _ = tls_node
    tls = {"cafile": pki["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]}
    for timeout in (5, 10):
        started = time.monotonic()
        with pytest.raises(TLSError, match=rf"^{any_node.name} does not speak TLS on its "
                                           r"distribution port \(.*\); attach without tls=$"):
            mic.attach(any_node.name, cookie=any_node.cookie, timeout=timeout, tls=tls)
        assert time.monotonic() - started < timeout + 1


def test_a_host_name_the_certificate_does_not_name_says_which_it_names(tls_node):
    """The CA was right; the host was not: 127.0.0.2 reaches the node (all of
    127/8 is this machine), but its certificate is for localhost and 127.0.0.1."""
    node, pki, _ = tls_node
    alive = node.name.split("@")[0]
    with pytest.raises(TLSError) as caught:
        mic.attach(f"{alive}@127.0.0.2", cookie=node.cookie,
                   tls={"cafile": pki["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]})
    message = str(caught.value)
    assert message == (f"{alive}@127.0.0.2's certificate is for localhost, 127.0.0.1, not for "
                       "the host 127.0.0.2 it was reached at; attach by a host name it lists, "
                       "or add 127.0.0.2 to its subjectAltName"), message
    # a context of the caller's own cannot be copied to ask: the host, and where to look
    context = ssl.create_default_context(cafile=pki["ca"])
    context.load_cert_chain(pki["client"], pki["client_key"])
    with pytest.raises(TLSError, match=r"certificate is not for the host 127\.0\.0\.2 it was "
                                       r"reached at \(.*\); attach by a host name its "
                                       r"subjectAltName lists, or add 127\.0\.0\.2 to it$"):
        mic.attach(f"{alive}@127.0.0.2", cookie=node.cookie, tls=context)


def test_the_magic_attaches_over_tls_and_speaks_its_own_options(ip, tls_node):
    from IPython.core.error import UsageError

    node, pki, other = tls_node
    import os
    os.environ["MICROSCOPE_COOKIE"] = node.cookie
    try:
        session = ip.run_line_magic("beam_attach", f"{node.name} --tls-ca {pki['ca']} "
                                    f"--tls-cert {pki['client']} --tls-key {pki['client_key']}")
        assert session.attached
        with pytest.raises(UsageError, match=r"pass the CA that signed it: --tls-ca PATH$"):
            ip.run_line_magic("beam_attach", f"{node.name} --tls-ca {other['ca']} "
                              f"--tls-cert {pki['client']} --tls-key {pki['client_key']}")
        with pytest.raises(UsageError, match=r"needs --tls-ca PATH"):
            ip.run_line_magic("beam_attach", f"{node.name}")
    finally:
        del os.environ["MICROSCOPE_COOKIE"]
