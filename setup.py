"""Packaging for jobcontrol; tool settings live in pyproject.toml."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version: dict[str, str] = {}
exec((HERE / "jobcontrol" / "version.py").read_text(), version)

setup(
    name="jobcontrol",
    version=version["__version__"],
    description="Run Python jobs from YAML and track every build: state, result, logs, progress.",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["jobcontrol", "jobcontrol.*"]),
    package_data={"jobcontrol": ["py.typed", "storage/migrations/*/*.sql",
                                 "storage/queries/*.sql", "web/templates/*.html",
                                 "web/static/*"]},
    install_requires=[
        "click>=8.1",
        "PyYAML>=6.0",
        "tabulate>=0.9",
        "Jinja2>=3.1",
        "croniter>=2.0",
    ],
    extras_require={
        # psycopg2-binary: a wheel with libpq inside, so no compiler or headers are needed
        "postgresql": ["psycopg2-binary>=2.9"],
        # the web UI and JSON API: jobcontrol web, or jobcontrol.web.create_app under WSGI
        # (prometheus_client: the /metrics endpoint)
        "web": ["Flask>=3.0", "Flask-WTF>=1.2", "prometheus_client>=0.17"],
        # builds on Celery workers (executor: {type: celery}); RabbitMQ needs nothing more,
        # Redis its client and packaging (kombu's Redis transport imports it, and no
        # requirement of kombu's own names it)
        "celery": ["celery>=5.3", "redis>=4.5", "packaging>=21"],
        # the documentation: sphinx-build -W -n -b html docs docs/_build/html (offline)
        "docs": ["Sphinx>=7.2", "furo>=2024.1", "sphinx-click>=5.1", "docutils>=0.20"],
        # every test runs: PostgreSQL (skips without $JOBCONTROL_TEST_POSTGRESQL), Celery
        # (without $JOBCONTROL_TEST_REDIS / _AMQP), the browser test (drives Debian's
        # chromium with playwright, no browser download); ruff and mypy check the code
        "test": ["pytest>=7.4", "ruff>=0.5", "mypy>=1.10", "types-PyYAML",
                 "psycopg2-binary>=2.9", "hypothesis>=6.100", "Flask>=3.0", "Flask-WTF>=1.2",
                 "prometheus_client>=0.17",
                 "playwright>=1.40", "gunicorn>=21", "celery>=5.3", "redis>=4.5",
                 # tests/test_docs.py builds the docs
                 "Sphinx>=7.2", "furo>=2024.1", "sphinx-click>=5.1", "docutils>=0.20"],
    },
    entry_points={"console_scripts": ["jobcontrol = jobcontrol.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX",
        "Topic :: System :: Monitoring",
    ],
)
