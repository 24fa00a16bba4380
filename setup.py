"""Build and install showo-sdk: the Python package, the export package, and the _maskgit extension."""

import os
import re
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "showo_sdk" / "__init__.py").read_text()).group(1)

# SHOWO_SANITIZE=1 builds a test-only extension with AddressSanitizer + UBSan (see README, Reliability).
_sanitize = os.environ.get("SHOWO_SANITIZE") == "1"
_cflags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"] if _sanitize else ["-O3"]
# No fused multiply-add: the sampler's float math must round exactly like its numpy twin.
# -fno-trapping-math only lets GCC if-convert (vectorise) selects; it never changes a value.
_cflags += ["-ffp-contract=off", "-fno-trapping-math"]
_lflags = ["-fsanitize=address,undefined"] if _sanitize else []

ext_modules = [
    Pybind11Extension(
        "showo_sdk._maskgit",
        sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cpp_ext").glob("*.cpp")),
        include_dirs=["cpp_ext"],
        cxx_std=17,
        extra_compile_args=_cflags,
        extra_link_args=_lflags + ["-pthread"],
    )
]

TORCH = "torch==2.13.0"  # the local CPU build; an unpinned torch pulls GBs of CUDA wheels

setup(
    name="showo-sdk",
    version=VERSION,
    description="Deployment SDK for Show-o: ONNX/TensorRT export, C++ MaskGIT loop, edge runtime",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["showo_sdk", "showo_sdk.*"]) + ["showo_sdk.export"],
    package_dir={"showo_sdk.export": "export"},
    package_data={"showo_sdk": ["assets/**/*"]},
    include_package_data=True,
    ext_modules=ext_modules,
    cmdclass={"build_ext": build_ext},
    install_requires=[
        "numpy>=1.24",
        "onnxruntime>=1.17",
        "tokenizers>=0.15",
        "pillow>=10",
        "opencv-python-headless>=4.8",
        "safetensors>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        "export": [TORCH, "onnx>=1.16", "onnxscript>=0.1"],
        "train": [TORCH],
        "test": ["pytest>=8", "hypothesis>=6.100", "psutil>=5.9", "matplotlib>=3.7", "threadpoolctl>=3"],
        "gpu": ["onnxruntime-gpu>=1.17"],  # install in an environment without `onnxruntime`
        "tensorrt": ["tensorrt>=10"],
    },
    entry_points={
        "console_scripts": [
            "showo=showo_sdk.cli:main",
            "showo-export=showo_sdk.export.cli:main",
        ]
    },
    zip_safe=False,
)
