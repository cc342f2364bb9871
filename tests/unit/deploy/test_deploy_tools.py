"""The deployment checkers' builder says what to do when it cannot build, and reuses builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import deploy_tools


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HL7GW_CACHE_DIR", str(tmp_path))
    return tmp_path / "deploy-tools"


def test_helm_without_go_names_what_to_install(empty_cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy_tools, "find_go", lambda: None)
    with pytest.raises(deploy_tools.ToolUnavailable, match="install Go"):
        deploy_tools.helm()


def test_a_failed_build_says_what_failed_and_what_to_do(empty_cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    go = empty_cache.parent / "go"
    go.write_text("#!/bin/sh\necho 'proxy.example: no such host' >&2\nexit 1\n")
    go.chmod(0o755)
    monkeypatch.setattr(deploy_tools, "find_go", lambda: str(go))
    with pytest.raises(deploy_tools.ToolUnavailable) as caught:
        deploy_tools.helm()
    message = str(caught.value)
    assert "exit 1" in message and "GOPROXY" in message and "no such host" in message


def test_a_built_helm_of_the_pinned_version_is_reused(empty_cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    binary = empty_cache / "bin" / "helm"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    binary.with_name("helm.version").write_text(deploy_tools.HELM_VERSION)
    monkeypatch.setattr(deploy_tools, "find_go", lambda: pytest.fail("rebuilt"))
    assert deploy_tools.helm() == binary


def test_another_version_is_rebuilt(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = empty_cache / "bin" / "helm"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    binary.with_name("helm.version").write_text("v3.0.0")
    calls: list[str] = []
    monkeypatch.setattr(deploy_tools, "find_go", lambda: calls.append("go"))
    with pytest.raises(deploy_tools.ToolUnavailable):
        deploy_tools.helm()
    assert calls == ["go"]
