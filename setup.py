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
        "orjson>=3.9",
    ],
    extras_require={
        "postgres": ["psycopg[binary]>=3.1"],
        "mysql": ["PyMySQL>=1.1"],
        "mariadb": ["PyMySQL>=1.1"],
        "redis": ["redis>=5"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "psycopg[binary]>=3.1",
            "PyMySQL>=1.1",
            "redis>=5",
            "playwright>=1.40",
        ],
        "bench": ["apscheduler>=3.11,<4", "matplotlib>=3.8"],
    },
    entry_points={
        "console_scripts": ["kalad = kalad.cli.kalad:main", "kalactl = kalad.cli.kalactl:main"]
    },
    data_files=[
        ("share/man/man8", ["man/kalad.8"]),
        ("share/man/man5", ["man/kalad.conf.5"]),
        ("share/man/man1", ["man/kalactl.1"]),
    ],
)
