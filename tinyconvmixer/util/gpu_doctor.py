"""Why CuPy does not work on this machine, and the command that fixes it.

    python -m tinyconvmixer.util.gpu_doctor      # what is installed, what the driver and GPU are

engine/backend.py asks CuPy for the GPU; when that fails, it calls `diagnose(exc)`
here for the one-line reason that `--device gpu` prints. CuPy's own errors name the
symptom (`cudaErrorInsufficientDriver`, an NVRTC compile error); the usual causes are
few, and each has one fix:

* CuPy is not installed: install the package for the driver's CUDA major.
* Several CuPy packages are installed (Colab holds cupy-cuda12x; adding cupy-cuda13x
  beside it makes `import cupy` load a mix of both): uninstall all, install one
  (uninstalling only one deletes the `cupy/` folder the two share).
* The driver is older than the CUDA that the CuPy package is built for (CUDA 13
  needs driver 580): install the package for the driver's CUDA instead.
* The GPU is older than that CUDA supports (CUDA 13: compute capability 7.5 and up,
  so not a V100): the CUDA 12 package still compiles for it.
* No driver, no GPU (a CPU runtime on Colab), or CUDA's libraries missing beside a
  CuPy installed without its `ctk` extra.

Only the standard library is used, so this works when CuPy itself cannot be imported:
installed packages from importlib.metadata, and the driver's version from libcuda.
"""

import ctypes
import importlib.metadata
import os
import re
import sys

DRIVER_FOR = {13: 580, 12: 525, 11: 450}       # the oldest Linux driver of each CUDA major
MIN_CAPABILITY = {13: 75, 12: 50, 11: 35}      # the oldest GPU each CUDA major compiles for
_CUPY = re.compile(r"^(cupy|amd-cupy|cupy-cuda\d+x?|cupy-rocm-[\d-]+)$")


def cupy_packages():
    """The CuPy distributions installed (CuPy's own list is a subset of this pattern)."""
    names = {re.sub(r"[-_.]+", "-", (d.metadata["Name"] or "")).lower()
             for d in importlib.metadata.distributions()}
    return sorted(n for n in names if _CUPY.match(n))


def _libcuda():
    return ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")


def driver_version(cupy=None):
    """The newest CUDA the NVIDIA driver supports, as 12040 for 12.4; 0 without a driver."""
    try:
        return int(cupy.cuda.runtime.driverGetVersion())
    except Exception:                   # no CuPy, or one that cannot start: ask libcuda itself
        pass
    try:
        version = ctypes.c_int(0)
        return version.value if _libcuda().cuDriverGetVersion(ctypes.byref(version)) == 0 else 0
    except (OSError, AttributeError):
        return 0


def cuda_major(package, cupy=None):
    """The CUDA major that CuPy runs on: its runtime's where CuPy says, else its package name's."""
    try:
        return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:
        m = re.match(r"cupy-cuda(\d\d)x$", package or "")
        return int(m[1]) if m else None


def gpu(cupy=None):
    """(name, compute capability as 75 for 7.5) of GPU 0, from CuPy or else from libcuda;
    None where neither can say."""
    try:
        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode(errors="replace"), 10 * props["major"] + props["minor"]
    except Exception:
        pass
    try:
        lib, device, name = _libcuda(), ctypes.c_int(), ctypes.create_string_buffer(256)
        major, minor = ctypes.c_int(), ctypes.c_int()
        if (lib.cuInit(0) or lib.cuDeviceGet(ctypes.byref(device), 0)
                or lib.cuDeviceGetName(name, 256, device)
                or lib.cuDeviceGetAttribute(ctypes.byref(major), 75, device)     # ..._MAJOR
                or lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)):   # ..._MINOR
            return None
        return name.value.decode(errors="replace"), 10 * major.value + minor.value
    except (OSError, AttributeError):
        return None


def _cuda(version):
    return f"{version // 1000}.{version % 1000 // 10}"


def _cc(cc):
    return f"{cc // 10}.{cc % 10}"


def _install(major):
    return f'pip install "cupy-cuda{major}x[ctk]"'


def fitting(driver, device=None):
    """The CUDA major whose CuPy suits this driver and GPU (13 where it can, else 12), or None."""
    return next((m for m in (13, 12) if driver >= m * 1000
                 and (device is None or device[1] >= MIN_CAPABILITY[m])), None)


def diagnose(exc, cupy=None, packages=None, driver=None, device=None):
    """One line: what is wrong with CuPy here (`exc` is what failed), and what to run.
    The facts are looked up where not given (the tests give them)."""
    packages = cupy_packages() if packages is None else packages
    driver = driver_version(cupy) if driver is None else driver
    device = gpu(cupy) if device is None and driver else device
    fit, text = fitting(driver, device), f"{type(exc).__name__}: {exc}"
    on = f" (the driver here supports CUDA {_cuda(driver)})" if driver else ""
    if len(packages) > 1:
        then = (f"`{_install(fit)}`{on}" if fit else f"`{_install(12)}` (driver 525 or newer) or "
                f"`{_install(13)}` (driver 580 or newer)")
        return (f"several CuPy packages are installed ({', '.join(packages)}), and they overwrite "
                f"each other's files: remove them all, then install one: `pip uninstall -y "
                f"{' '.join(packages)}`, then {then}")
    package = packages[0] if packages else None
    if isinstance(exc, ImportError) and package is None:
        if not driver:
            return "CuPy is not installed, and this machine has no NVIDIA driver (no GPU here)"
        if fit is None:
            return (f"CuPy is not installed, and no CuPy 14 suits this machine{on}: update the "
                    "driver (525 or newer for CUDA 12)")
        return (f"CuPy is not installed: `{_install(fit)}` (or `pip install -e \".[cuda{fit}]\"` in "
                f"the repository) suits this machine{on}")
    if isinstance(exc, ImportError):
        return f"{package} is installed but `import cupy` fails ({text})"
    if not driver:
        return ("no NVIDIA driver found (`nvidia-smi` should list a GPU): this machine has no GPU, "
                "or its driver is not loaded; on Colab: Runtime > Change runtime type > a GPU")
    major = cuda_major(package, cupy)
    swap = f"`pip uninstall -y {package}`, then `{_install(fit)}`" if package and fit else None
    if major and driver // 1000 < major:
        return (f"{package or 'CuPy'} is built for CUDA {major}, but the NVIDIA driver here "
                f"supports CUDA {_cuda(driver)} at most (CUDA {major} needs driver "
                f"{DRIVER_FOR.get(major, '?')} or newer): "
                + (f"install CuPy for CUDA {fit} instead, {swap}, or update the driver" if swap
                   else "update the driver"))
    if device and major in MIN_CAPABILITY and device[1] < MIN_CAPABILITY[major]:
        return (f"this GPU ({device[0]}, compute capability {_cc(device[1])}) is older than CUDA "
                f"{major} supports ({_cc(MIN_CAPABILITY[major])} and newer): "
                + (f"install CuPy for CUDA {fit} instead, {swap}" if swap and fit != major
                   else "no CuPy 14 runs on it"))
    if "NoDevice" in text or "no CUDA-capable device" in text:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return ("the NVIDIA driver is there but shows CuPy no GPU"
                + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
                + ": `nvidia-smi` lists the GPUs it sees")
    library = re.search(r"lib[\w.-]+\.so[.\d]*|\w+64_\d+\.dll", text)
    if library and major:
        return (f"CuPy cannot load CUDA {major}'s {library[0]}: install CUDA's libraries with it, "
                + (f"`{_install(major)}` (the same package, with its ctk extra)"
                   if package == f"cupy-cuda{major}x" else f"or CUDA {major}'s toolkit"))
    return f"CuPy failed ({text})" + (f"; {package} is built for CUDA {major}{on}" if package and major else "")


def main():
    """Print what is installed and what the driver and the GPU are, then the diagnosis."""
    packages = cupy_packages()
    print("CuPy packages:", ", ".join(packages) or "none")
    try:
        import cupy
    except Exception as exc:
        print(f"import cupy: {type(exc).__name__}: {exc}\ndiagnosis: {diagnose(exc)}")
        return 1
    driver = driver_version(cupy)
    print(f"driver: {'CUDA ' + _cuda(driver) if driver else 'none'} | CuPy {cupy.__version__}, "
          f"CUDA {cuda_major(packages[0] if packages else None, cupy)}")
    try:
        cupy.cuda.runtime.getDeviceCount()
        cupy.ones(1) + 1                     # the first kernel: CuPy compiles it for this GPU
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}\ndiagnosis: {diagnose(exc, cupy)}")
        return 1
    name, cc = gpu(cupy)
    print(f"GPU: {name}, compute capability {_cc(cc)}: CuPy works")
    return 0


if __name__ == "__main__":
    sys.exit(main())
