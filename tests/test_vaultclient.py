"""connect() and token_identity(): errors are clear project errors and never carry a token."""

from __future__ import annotations

import hvac
import pytest

from tests.support.baodev import dev_server, free_port
from vault.errors import ConfigError, VaultDown, VaultNotConfigured, VaultUnauthenticated
from vault.keys.client import connect, token_identity
from vault.settings import load_settings

pytestmark = pytest.mark.integration


def test_connect__env_root_token_works(vault_env):
    client = connect(load_settings())
    assert client.is_authenticated()
    ident = token_identity(client)
    assert "root" in ident["policies"]
    assert vault_env.root_token not in repr(ident)


def test_connect__env_ignores_role(vault_env):
    assert "root" in token_identity(connect(load_settings(), "query"))["policies"]


def test_connect__unreachable_address_is_vaultdown_with_advice(monkeypatch):
    addr = f"http://127.0.0.1:{free_port()}"
    secret = "hvs.do-not-leak-this-token"
    monkeypatch.setenv("VAULT_ADDR", addr)
    monkeypatch.setenv("VAULT_TOKEN", secret)
    with pytest.raises(VaultDown) as info:
        connect(load_settings())
    msg = str(info.value)
    assert addr in msg
    assert "genovault vault up" in msg and "VAULT_ADDR" in msg
    assert secret not in msg and secret not in repr(info.value)


def test_connect__wrong_token_is_unauthenticated_without_the_token(monkeypatch, bao_server):
    secret = "s.wrong-token-value-1234567890"
    monkeypatch.setenv("VAULT_ADDR", bao_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", secret)
    with pytest.raises(VaultUnauthenticated) as info:
        connect(load_settings())
    for text in (str(info.value), repr(info.value), str(info.value.__cause__)):
        assert secret not in text
        assert bao_server.root_token not in text


def test_connect__sealed_server_is_vaultdown(monkeypatch, tmp_path):
    with dev_server(tmp_path) as server:
        server.client().sys.seal()
        monkeypatch.setenv("VAULT_ADDR", server.addr)
        monkeypatch.setenv("VAULT_TOKEN", server.root_token)
        with pytest.raises(VaultDown, match="sealed") as info:
            connect(load_settings())
        assert server.root_token not in str(info.value)
        assert server.root_token not in repr(info.value)


def test_connect__only_one_env_var_is_config_error(monkeypatch):
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="VAULT_TOKEN"):
        connect(load_settings())


def test_connect__no_embedded_vault_is_a_configuration_error(monkeypatch, tmp_path):
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("GENOVAULT_HOME", str(tmp_path))
    with pytest.raises(VaultNotConfigured, match="genovault vault up"):
        connect(load_settings())


def test_connect__unknown_role_is_config_error():
    with pytest.raises(ConfigError, match="unknown Vault role"):
        connect(load_settings(), "superuser")


def test_token_identity__role_token_shows_policies_not_token(role_client, bao_server):
    client = role_client("ingest")
    minter = bao_server.client().auth.token.lookup_self()["data"]["display_name"]
    ident = token_identity(client)
    assert ident["policies"] == ["genovault-ingest"]  # minted without the default policy
    assert set(ident) == {"display_name", "entity_id", "policies", "on_behalf_of",
                          "on_behalf_of_entity"}
    assert ident["on_behalf_of"] == minter  # the minting (root) token's display name
    assert ident["display_name"] == "token-genovault-ingest"
    assert client.token not in repr(ident)


def test_client_repr__does_not_show_token(bao_server):
    client = hvac.Client(url=bao_server.addr, token=bao_server.root_token)
    assert bao_server.root_token not in repr(client)
