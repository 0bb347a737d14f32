"""kalad: a Kala-compatible job scheduler daemon for Unix hosts."""

from setuptools import find_packages, setup

setup(
    name="kalad",
    version="0.1.0",
    description="A job scheduler daemon for Unix hosts, compatible with Kala's API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["kalad", "kalad.*"]),
    package_data={"kalad": ["api/ui/*", "api/ui/**/*"]},
    install_requires=[
        "falcon>=4.0,<5",
        "waitress>=3.0,<4",
        "lmdb>=1.4",
        "isodate>=0.6.1",
        "python-daemon>=3.0",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3"],
        "bench": ["apscheduler>=3.11,<4", "matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["kalad = kalad.cli.kalad:main"]},
    data_files=[
        ("share/man/man8", ["man/kalad.8"]),
        ("share/man/man5", ["man/kalad.conf.5"]),
    ],
)
