"""The README's record sections served by real servers on loopback: uvicorn for FastAPI,
Flask's own server (werkzeug) for Flask, werkzeug for Django's WSGI application; each app
written from the README's block into a directory of its own, where its store file lands."""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import free_port, readme_block, stop_process, wait_until_up

DJANGO_SETTINGS = """
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
MIDDLEWARE = []
INSTALLED_APPS = []
DATABASES = {}
"""

DJANGO_URLS = """
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def webhook(request, provider):
    return JsonResponse({"received": provider, "bytes": len(request.body)})


urlpatterns = [path("webhooks/<str:provider>", webhook)]
"""

WERKZEUG = """
import sys
from werkzeug.serving import run_simple
import wsgi
run_simple("127.0.0.1", int(sys.argv[1]), wsgi.application, threaded=True)
"""


@dataclass
class ServedApp:
    name: str
    url: str
    directory: Path
    proc: subprocess.Popen

    @property
    def store(self) -> Path:
        return self.directory / "webhooks.db"


def serve(name: str, directory: Path, env: dict[str, str] | None = None) -> ServedApp:
    """The README's app for `name` (fastapi, flask, django), served on a free port."""
    pytest.importorskip(name)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    code = readme_block(f"record: {name}")
    if name == "fastapi":
        (directory / "app.py").write_text(code)
        argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    elif name == "flask":
        (directory / "app.py").write_text(code)
        argv = [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port)]
    else:
        (directory / "settings.py").write_text(DJANGO_SETTINGS)
        (directory / "urls.py").write_text(textwrap.dedent(DJANGO_URLS))
        (directory / "wsgi.py").write_text(code)
        (directory / "serve.py").write_text(WERKZEUG)
        argv = [sys.executable, "serve.py", str(port)]
    proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(directory), "DJANGO_SETTINGS_MODULE": "settings",
                                 **(env or {})})
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc, timeout=30)
    return ServedApp(name, url, directory, proc)


@pytest.fixture
def served():
    started: list[ServedApp] = []

    def start(name: str, directory: Path, env: dict[str, str] | None = None) -> ServedApp:
        app = serve(name, directory, env)
        started.append(app)
        return app
    yield start
    for app in started:
        stop_process(app.proc)


@pytest.fixture
def verifying_app(tmp_path):
    """The developer's local app that checks signatures with its own secrets."""
    pytest.importorskip("stripe")
    pytest.importorskip("uvicorn")
    port = free_port()
    env = {**os.environ, "LOCAL_STRIPE_SECRET": "whsec_local_dev", "LOCAL_GITHUB_SECRET": "local-github-secret",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.record.verifying_app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc, timeout=30)
    yield url
    stop_process(proc)
