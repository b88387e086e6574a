"""The native kernel's cache can never crash the app: every library is checked before it is
loaded, and a bad one means eager PyTorch (one log line) and a rebuild next time."""
import logging
import os

import pytest
import torch

from core import kernels


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty kernel cache of this test, nothing loaded yet; skips without a C compiler."""
    if kernels._compiler() is None:
        pytest.skip("no C compiler: the native decoder cannot be built here")
    monkeypatch.setenv("LIIF_ZOOM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LIIF_ZOOM_KERNELS", "1")
    monkeypatch.setattr(kernels, "_loaded", {})
    return tmp_path / "cache"


def fresh(monkeypatch):
    """As a new process would: nothing loaded."""
    monkeypatch.setattr(kernels, "_loaded", {})
    return kernels.lmf_grid(8)


def rewrite(path, data):
    """Replace a file's bytes under a new inode (the library may be mapped in this process,
    where writing into it would fault)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def library(cache):
    (lib,) = [p for p in cache.iterdir() if p.suffix in (".so", ".dylib")]
    return lib


def test_a_build_is_self_tested_and_recorded(cache):
    assert kernels.lmf_grid(8) is not None
    lib = library(cache)
    rec = lib.with_name(lib.name + ".sha256")
    assert rec.read_text().strip() == kernels._digest(lib)
    assert (cache.stat().st_mode & 0o077) == 0  # a private folder


@pytest.mark.slow
def test_the_cache_key_names_the_cpus_instruction_set(cache, monkeypatch):
    if os.uname().sysname == "Linux":
        assert "flags" in kernels.cpu_capability()
    kernels.lmf_grid(8)
    first = library(cache).name
    monkeypatch.setattr(kernels, "cpu_capability", lambda: "x86_64\nflags: sse2")
    assert fresh(monkeypatch) is not None
    names = {p.name for p in cache.iterdir() if p.suffix == ".so"}
    assert first in names and len(names) == 2  # another CPU gets its own build


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "zero", "replace"])
def test_a_damaged_library_is_rebuilt_not_loaded(cache, monkeypatch, caplog, damage):
    kernels.lmf_grid(8)
    lib = library(cache)
    data = lib.read_bytes()
    if damage == "truncate":
        rewrite(lib, data[:len(data) // 3])
    elif damage == "zero":
        rewrite(lib, bytes(len(data)))
    else:  # same size, other code
        rewrite(lib, data[:-64] + bytes(reversed(data[-64:])))
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        fn = fresh(monkeypatch)
    assert fn is not None and "checksum does not match" in caplog.text
    assert lib.read_bytes() == data or kernels._digest(lib) == \
        lib.with_name(lib.name + ".sha256").read_text().strip()


@pytest.mark.slow
def test_a_library_without_its_record_is_rebuilt(cache, monkeypatch, caplog):
    kernels.lmf_grid(8)
    lib = library(cache)
    lib.with_name(lib.name + ".sha256").unlink()
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert fresh(monkeypatch) is not None
    assert "no checksum record" in caplog.text


@pytest.mark.slow
def test_a_library_without_the_symbol_falls_back_to_eager(cache, monkeypatch, caplog, tmp_path):
    lib = kernels._build(8)  # built and recorded, not loaded here (dlopen would reuse it by name)
    c = tmp_path / "other.c"
    c.write_text("int something_else(void) { return 1; }\n")
    other = tmp_path / "other.so"
    assert os.system(f"{kernels._compiler()} -shared -fPIC -o {other} {c}") == 0
    rewrite(lib, other.read_bytes())
    lib.with_name(lib.name + ".sha256").write_text(kernels._digest(lib) + "\n")
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert fresh(monkeypatch) is None
    assert "loading" in caplog.text and not lib.exists()
    # the next run rebuilds it (a new process: this one keeps the bad one mapped by name)
    assert kernels._build(8) == lib and lib.exists()


@pytest.mark.parametrize("body", ["__builtin_trap();", "*(volatile int *)0 = 1;",
                                  "out[0] = 12345.f;"])
@pytest.mark.slow
def test_a_build_that_crashes_or_computes_wrong_is_rejected(cache, monkeypatch, caplog,
                                                            tmp_path, body):
    """Stands in for a library built for another CPU (SIGILL), or a miscompiled one: it dies
    or fails in the self-test's child process; the app goes on with eager PyTorch."""
    src = tmp_path / "lmf_grid.c"
    src.write_text("#include <stdint.h>\nvoid lmf_grid(const float *t, int64_t k, int l, int s,"
                   " const int64_t *a, const int64_t *b, const float *c, const float *d, int n,"
                   " int64_t th, int64_t tw, const float *e, const float *f, const float *g,"
                   " const float *h, const float *i, const float *j, float *out)"
                   f" {{ {body} }}\n")
    monkeypatch.setattr(kernels, "_SRC", src)
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert kernels.lmf_grid(8) is None
    assert "rejected" in caplog.text and "self-test" in caplog.text
    assert not [p for p in cache.iterdir() if p.suffix == ".so"]


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="needs root to give a file to another user")
def test_a_library_of_another_user_is_never_loaded(cache, monkeypatch, caplog):
    kernels.lmf_grid(8)
    lib = library(cache)
    os.chown(lib, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert fresh(monkeypatch) is None
    assert "another user" in caplog.text and lib.exists()  # not ours to delete
    assert "rebuilding" not in caplog.text  # (it is not rebuilt: eager from now on)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="needs root to give a file to another user")
def test_a_checksum_record_of_another_user_vouches_for_nothing(cache, monkeypatch, caplog):
    """Another user who can write the record could vouch for a library they replaced."""
    kernels.lmf_grid(8)
    lib = library(cache)
    record = lib.with_name(lib.name + ".sha256")
    os.chown(record, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert fresh(monkeypatch) is None
    assert "another user" in caplog.text and "rebuilding" not in caplog.text
    assert lib.exists() and record.exists()


def test_a_cache_folder_others_can_write_to_is_refused(cache, monkeypatch, caplog):
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="core.kernels"):
        assert kernels.lmf_grid(8) is None
    assert "writable by other users" in caplog.text


def test_the_ensemble_size_and_layers_are_checked_before_the_c_code_runs(cache):
    fn = kernels.lmf_grid(8)
    z = torch.zeros
    table = z(5, 2 * 8 * 2 + 3)
    args = dict(win=z(2, 8), cst=z(8), wht=z(1, 8, 8), bh=z(1, 8), wo=z(3, 8), bo=z(3))
    for n in (3, 4, 0):
        with pytest.raises(ValueError, match="ensemble"):
            kernels.run_lmf_grid(fn, table, 2, True, torch.zeros(n, 3, dtype=torch.long),
                                 torch.zeros(n, 4, dtype=torch.long), ry=z(n, 3), rx=z(n, 4),
                                 **args)
    with pytest.raises(ValueError, match="shapes"):
        kernels.run_lmf_grid(fn, table, 2, True, torch.zeros(2, 3, dtype=torch.long),
                             torch.zeros(2, 4, dtype=torch.long), ry=z(6), rx=z(2, 4), **args)
