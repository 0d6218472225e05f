"""Map the source folders `backend/` and `training/` to distinct import packages.

`backend/` installs as `lama_backend` and `training/` as `lama_training`, so the project never
puts modules with generic names such as `backend` on a user's sys.path.
"""
from setuptools import find_packages, setup

PACKAGE_DIRS = {"lama_backend": "backend", "lama_training": "training"}


def _packages() -> list[str]:
    packages = []
    for name, folder in PACKAGE_DIRS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    return packages


setup(
    packages=_packages(),
    package_dir=PACKAGE_DIRS,
    include_package_data=True,
    package_data={"lama_backend": ["default_model/*.safetensors", "default_model/*.md", "default_model/*.json"],
                  "lama_training": ["configs/*.yaml"]},
)
