"""`--device gpu` on a machine where CuPy does not work names the problem and the fix in one line.

engine/backend.py loads CuPy and runs one kernel; when that fails it asks util/gpu_doctor.py
why. These tests put a fake `cupy` (whose version calls and failures are set per case) in
sys.modules, and fake the installed packages and the driver, for each cause that a class
meets: CuPy missing, two CuPy packages (Colab's cupy-cuda12x plus cupy-cuda13x), a driver
older than the CuPy's CUDA, a GPU older than it supports, no driver, CUDA's libraries
missing. The last test does it end to end: the training command, a fake CuPy package and
two package records on disk, read by importlib.metadata as pip's would be.
"""

import subprocess
import sys
import types
from pathlib import Path

import pytest

from tinyconvmixer.engine import backend
from tinyconvmixer.util import gpu_doctor

REPO = Path(__file__).resolve().parents[1]


class CUDARuntimeError(RuntimeError):
    """What cupy_backends.cuda.api.runtime raises."""


def fake_cupy(driver=13000, runtime=13000, gpu=("NVIDIA H100 80GB HBM3", 9, 0), fails=None,
              kernel_fails=None):
    """A module that answers CuPy's version calls; getDeviceCount raises `fails`, the first
    kernel raises `kernel_fails` (as NVRTC does for a GPU its CUDA cannot compile for)."""
    def device_count():
        if fails:
            raise fails
        return 1

    def ones(n):
        if kernel_fails:
            raise kernel_fails
        return 0
    runtime_module = types.SimpleNamespace(
        driverGetVersion=lambda: driver, runtimeGetVersion=lambda: runtime, getDeviceCount=device_count,
        getDeviceProperties=lambda i: {"name": gpu[0].encode(), "major": gpu[1], "minor": gpu[2]})
    module = types.ModuleType("cupy")
    module.cuda = types.SimpleNamespace(runtime=runtime_module)
    module.ones = ones
    return module


@pytest.fixture
def gpu_fails(monkeypatch):
    """Call it with (cupy module or None, packages, driver for libcuda): returns the DeviceError's
    message that backend.check_device('gpu') raises on such a machine."""
    def run(cupy, packages, libcuda_driver=0):
        monkeypatch.setitem(sys.modules, "cupy", cupy)          # None: `import cupy` fails
        monkeypatch.setattr(backend, "_cupy", None)
        monkeypatch.setattr(backend, "_cupy_error", None)
        monkeypatch.setattr(gpu_doctor, "cupy_packages", lambda: list(packages))
        monkeypatch.setattr(gpu_doctor, "_libcuda", lambda: libcuda(libcuda_driver))
        with pytest.raises(backend.DeviceError) as info:
            backend.check_device("gpu")
        message = str(info.value)
        assert "\n" not in message and message.startswith("device 'gpu' is not available: ")
        assert message.endswith("; or use --device cpu")
        return message
    return run


def libcuda(driver):
    """libcuda's cuDriverGetVersion, or no libcuda at all (driver 0)."""
    if not driver:
        raise OSError("libcuda.so.1: cannot open shared object file: No such file or directory")

    def cuDriverGetVersion(pointer):
        pointer._obj.value = driver
        return 0
    return types.SimpleNamespace(cuDriverGetVersion=cuDriverGetVersion)


def test_no_cupy_and_no_driver(gpu_fails):
    message = gpu_fails(None, [])
    assert "CuPy is not installed, and this machine has no NVIDIA driver" in message


def test_no_cupy_names_the_package_for_the_driver(gpu_fails):
    message = gpu_fails(None, [], libcuda_driver=12040)
    assert 'CuPy is not installed: `pip install "cupy-cuda12x[ctk]"`' in message
    assert ".[cuda12]" in message and "supports CUDA 12.4" in message
    message = gpu_fails(None, [], libcuda_driver=13000)
    assert 'pip install "cupy-cuda13x[ctk]"' in message


def test_two_cupy_packages_names_both_and_the_commands_to_leave_one(gpu_fails):
    """Colab: cupy-cuda12x preinstalled, cupy-cuda13x added, a CUDA 12 driver. CuPy's own
    error is the driver's; the cause is the second package."""
    cupy = fake_cupy(driver=12040, runtime=13000,
                     fails=CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is "
                                            "insufficient for CUDA runtime version"))
    message = gpu_fails(cupy, ["cupy-cuda12x", "cupy-cuda13x"])
    assert "several CuPy packages are installed (cupy-cuda12x, cupy-cuda13x)" in message
    assert "`pip uninstall -y cupy-cuda12x cupy-cuda13x`, then `pip install \"cupy-cuda12x[ctk]\"`" in message
    # without a driver to go by, both packages are offered with the drivers they need
    message = gpu_fails(None, ["cupy", "cupy-cuda13x"])
    assert "`pip uninstall -y cupy cupy-cuda13x`" in message and "cupy-cuda12x[ctk]" in message
    assert "580 or newer" in message


def test_a_driver_older_than_the_cupys_cuda_gives_both_versions_and_the_package_to_use(gpu_fails):
    cupy = fake_cupy(driver=12020, runtime=13000,
                     fails=CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is "
                                            "insufficient for CUDA runtime version"))
    message = gpu_fails(cupy, ["cupy-cuda13x"])
    assert "cupy-cuda13x is built for CUDA 13" in message and "supports CUDA 12.2 at most" in message
    assert "driver 580 or newer" in message
    assert "`pip uninstall -y cupy-cuda13x`, then `pip install \"cupy-cuda12x[ctk]\"`" in message
    # a driver too old for any CuPy 14
    cupy = fake_cupy(driver=11040, runtime=12090, fails=CUDARuntimeError("cudaErrorInsufficientDriver"))
    message = gpu_fails(cupy, ["cupy-cuda12x"])
    assert "supports CUDA 11.4 at most" in message and "update the driver" in message
    assert "pip install" not in message


def test_a_gpu_older_than_the_cupys_cuda(gpu_fails):
    """A V100 (7.0) with cupy-cuda13x: the driver is fine, the first kernel does not compile."""
    compile_error = RuntimeError("nvrtc: error: invalid value for --gpu-architecture (-arch)")
    cupy = fake_cupy(driver=13000, runtime=13000, gpu=("Tesla V100-SXM2-16GB", 7, 0),
                     kernel_fails=compile_error)
    message = gpu_fails(cupy, ["cupy-cuda13x"])
    assert "this GPU (Tesla V100-SXM2-16GB, compute capability 7.0) is older than CUDA 13" in message
    assert "(7.5 and newer)" in message
    assert "`pip uninstall -y cupy-cuda13x`, then `pip install \"cupy-cuda12x[ctk]\"`" in message
    # older than CUDA 12 supports too: no package to offer
    cupy = fake_cupy(driver=12040, runtime=12090, gpu=("Tesla K80", 3, 7), kernel_fails=compile_error)
    message = gpu_fails(cupy, ["cupy-cuda12x"])
    assert "compute capability 3.7) is older than CUDA 12 supports (5.0 and newer)" in message
    assert "no CuPy 14 runs on it" in message


def test_cupy_without_a_driver_and_without_cudas_libraries(gpu_fails, monkeypatch):
    message = gpu_fails(fake_cupy(driver=0, fails=CUDARuntimeError("cudaErrorInsufficientDriver")),
                        ["cupy-cuda12x"])
    assert "no NVIDIA driver found" in message and "Change runtime type" in message
    missing = RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open "
                           "shared object file: No such file or directory")
    message = gpu_fails(fake_cupy(driver=12080, runtime=12090, kernel_fails=missing), ["cupy-cuda12x"])
    assert "CuPy cannot load CUDA 12's libnvrtc.so.12" in message
    assert 'pip install "cupy-cuda12x[ctk]"' in message
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    message = gpu_fails(fake_cupy(driver=12080, runtime=12090, fails=CUDARuntimeError(
        "cudaErrorNoDevice: no CUDA-capable device is detected")), ["cupy-cuda12x"])
    assert "shows CuPy no GPU (CUDA_VISIBLE_DEVICES='')" in message


def test_an_unknown_failure_keeps_cupys_own_words(gpu_fails):
    cupy = fake_cupy(driver=13000, runtime=13000, fails=CUDARuntimeError("cudaErrorECCUncorrectable: "
                                                                        "uncorrectable ECC error"))
    message = gpu_fails(cupy, ["cupy-cuda13x"])
    assert "CuPy failed (CUDARuntimeError: cudaErrorECCUncorrectable: uncorrectable ECC error)" in message


def test_the_package_list_comes_from_importlib_metadata(monkeypatch):
    records = [types.SimpleNamespace(metadata={"Name": n}) for n in
               ("numpy", "cupy_cuda12x", "CuPy-CUDA13x", "cupy-rocm-7-0", "cupyx-helpers", "cupy")]
    monkeypatch.setattr(gpu_doctor.importlib.metadata, "distributions", lambda: records)
    assert gpu_doctor.cupy_packages() == ["cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-rocm-7-0"]


def test_the_driver_version_comes_from_libcuda_without_cupy(monkeypatch):
    monkeypatch.setattr(gpu_doctor, "_libcuda", lambda: libcuda(12040))
    assert gpu_doctor.driver_version(None) == 12040
    monkeypatch.setattr(gpu_doctor, "_libcuda", lambda: libcuda(0))
    assert gpu_doctor.driver_version(None) == 0


def test_the_training_command_end_to_end_with_two_cupy_packages(tmp_path):
    """A fake CuPy package and the records pip would leave for cupy-cuda12x and cupy-cuda13x,
    on the path of a real `python -m tinyconvmixer.train --device gpu`."""
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(
        "import types\n"
        "def _fail():\n"
        "    raise RuntimeError('cudaErrorInsufficientDriver: CUDA driver version is insufficient "
        "for CUDA runtime version')\n"
        "cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=_fail,\n"
        "    driverGetVersion=lambda: 12040, runtimeGetVersion=lambda: 13000))\n")
    for name in ("cupy_cuda12x", "cupy_cuda13x"):
        info = tmp_path / f"{name}-14.2.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                       "Version: 14.2.0\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{REPO}", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "tinyconvmixer.train", "--smoke", "--device", "gpu",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: device 'gpu' is not available: several CuPy packages are "
                               "installed (cupy-cuda12x, cupy-cuda13x)")
    assert "`pip uninstall -y cupy-cuda12x cupy-cuda13x`, then `pip install \"cupy-cuda12x[ctk]\"` " \
           "(the driver here supports CUDA 12.4)" in lines[0]
    assert lines[0] in (REPO / "README.md").read_text(encoding="utf-8")     # README shows it word for word
