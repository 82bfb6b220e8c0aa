"""minidr.config: profiles, MINIDR_PROFILE, overrides and the GPU check."""
from __future__ import annotations

import dataclasses

import pytest

import minidr.core.config
from minidr.core.config import PROFILES, Profile, ProfileError, get_profile


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(minidr.core.config, "_cuda_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch):
    monkeypatch.setattr(minidr.core.config, "_cuda_available", lambda: True)


@pytest.fixture(autouse=True)
def _no_profile_env(monkeypatch):
    monkeypatch.delenv("MINIDR_PROFILE", raising=False)  # CI sets it


def test_profile_names():
    assert list(PROFILES) == ["ci", "cpu", "gpu", "colab"]
    assert all(p.name == name for name, p in PROFILES.items())


@pytest.mark.parametrize("name,corpus,device",
                         [("ci", "ci", "cpu"), ("cpu", "full", "cpu")])
def test_get_profile_by_name(name, corpus, device, no_cuda):
    p = get_profile(name)
    assert isinstance(p, Profile)
    assert (p.name, p.corpus, p.device, p.needs_gpu) == (name, corpus, device, False)


def test_ci_profile_is_small():
    ci, cpu = get_profile("ci"), get_profile("cpu")
    assert ci.budget_minutes < cpu.budget_minutes
    assert (len(ci.bm25_grid_k1) * len(ci.bm25_grid_b)
            < len(cpu.bm25_grid_k1) * len(cpu.bm25_grid_b))


def test_default_is_cpu():
    assert get_profile().name == "cpu"
    assert get_profile(None).name == "cpu"


def test_env_var_is_respected(monkeypatch):
    monkeypatch.setenv("MINIDR_PROFILE", "ci")
    assert get_profile().name == "ci"
    assert get_profile("cpu").name == "cpu"  # an explicit name wins


def test_name_is_case_and_space_insensitive(monkeypatch):
    assert get_profile(" CI ").name == "ci"
    monkeypatch.setenv("MINIDR_PROFILE", "Cpu\n")
    assert get_profile().name == "cpu"


@pytest.mark.parametrize("where", ["arg", "env"])
def test_unknown_name_lists_the_valid_ones(where, monkeypatch):
    if where == "env":
        monkeypatch.setenv("MINIDR_PROFILE", "laptop")
    with pytest.raises(ProfileError) as e:
        get_profile("laptop" if where == "arg" else None)
    msg = str(e.value)
    assert "laptop" in msg
    assert all(name in msg for name in PROFILES)
    assert isinstance(e.value, ValueError)


def test_overrides_replace_fields_without_touching_the_registry():
    p = get_profile("cpu", threads=7, budget_minutes=1)
    assert (p.threads, p.budget_minutes) == (7, 1)
    assert PROFILES["cpu"].threads == 2 and get_profile("cpu").threads == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.threads = 3


def test_unknown_override_field_raises():
    with pytest.raises(ProfileError, match="thread_count"):
        get_profile("cpu", thread_count=4)


@pytest.mark.parametrize("name", ["gpu", "colab"])
def test_gpu_profile_without_cuda_raises(name, no_cuda):
    with pytest.raises(ProfileError) as e:
        get_profile(name)
    assert "GPU" in str(e.value)
    assert name in str(e.value)


def test_gpu_profile_from_env_without_cuda_raises(no_cuda, monkeypatch):
    monkeypatch.setenv("MINIDR_PROFILE", "gpu")
    with pytest.raises(ProfileError, match="GPU"):
        get_profile()


def test_override_needs_gpu_is_checked(no_cuda):
    with pytest.raises(ProfileError, match="GPU"):
        get_profile("cpu", needs_gpu=True)


@pytest.mark.parametrize("name", ["gpu", "colab"])
def test_gpu_profile_with_cuda(name, with_cuda):
    p = get_profile(name)
    assert (p.name, p.device, p.needs_gpu, p.corpus) == (name, "cuda", True, "full")


def test_cuda_available_returns_a_bool():
    assert isinstance(minidr.core.config._cuda_available(), bool)
