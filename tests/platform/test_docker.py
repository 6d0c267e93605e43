"""The container files agree with the code and the docs: docker/Dockerfile,
docker/compose.yaml, docker/.env.example and docs/deploy.md.

Docker itself is not needed: the files are parsed, the commands they name are checked
against the ``kameng`` CLI, and the two snippets the image runs on its own (the
build-time collectstatic and the HEALTHCHECK probe) are executed here.
"""
from __future__ import annotations

import ast
import http.server
import inspect
import json
import re
import shlex
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from platform_core import cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / "docker" / "Dockerfile.dockerignore"
COMPOSE = ROOT / "docker" / "compose.yaml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
KAMENG_ROLES = {"migrate": "migrate", "web": "web", "worker": "worker", "beat": "beat"}


# --- helpers (each has a test showing it catches the mistake it is for) -----------------

def kameng_commands() -> set[str]:
    """Sub-commands ``platform_core.cli.main()`` dispatches: the literals it compares
    ``command`` with, plus the keys of any mapping it tests membership in
    (``DJANGO_COMMANDS``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cli.main)))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "command"):
            continue
        for comparator in node.comparators:
            if isinstance(comparator, ast.Constant) and isinstance(comparator.value, str):
                found.add(comparator.value)
            elif isinstance(comparator, (ast.Tuple, ast.List, ast.Set)):
                found |= {e.value for e in comparator.elts if isinstance(e, ast.Constant)}
            elif isinstance(comparator, ast.Name):
                found |= set(getattr(cli, comparator.id))
    return found


def load_compose(text: str | None = None) -> dict:
    return yaml.safe_load(COMPOSE.read_text() if text is None else text)


def runs_our_image(service: dict) -> bool:
    return "build" in service or "kameng" in str(service.get("image", "")).split("/")[-1]


def command_words(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def command_problems(compose: dict, commands: set[str], management_commands: set[str]) -> list[str]:
    """What is wrong with the commands of the services that run the Kameng image."""
    problems = []
    for name, service in compose["services"].items():
        if not runs_our_image(service):
            continue
        words = command_words(service)
        if len(words) < 2 or words[0] != "kameng":
            problems.append(f"{name}: command {words!r} is not `kameng <command>`")
        elif words[1] not in commands:
            problems.append(f"{name}: `kameng {words[1]}` is not a kameng command ({sorted(commands)})")
        elif words[1] == "manage" and (len(words) < 3 or words[2] not in management_commands):
            problems.append(f"{name}: `kameng manage {words[2:3]}` is not a Django management command")
    return problems


VAR_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# $$ escapes a dollar for the container's shell; those are not compose variables
COMPOSE_VAR = re.compile(rf"(?<!\$)\$(?:\{{({VAR_NAME})|({VAR_NAME}))")
REQUIRED_COMPOSE_VAR = re.compile(rf"(?<!\$)\$\{{({VAR_NAME}):?\?")


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def compose_variables(compose: dict, pattern=COMPOSE_VAR) -> set[str]:
    """Variables compose interpolates (YAML values and keys; comments do not count)."""
    found = set()
    for text in _strings(compose):
        for match in pattern.finditer(text):
            found.add(next(group for group in match.groups() if group))
    return found


def env_file_variables(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split("=", 1)[0].removeprefix("export ").strip())
    return names


def env_file_uncommented(text: str) -> list[str]:
    """Variables of an env file without a comment above them (variables written one
    after the other may share the comment above the first)."""
    missing = []
    commented = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            commented = False
        elif stripped.startswith("#"):
            commented = True
        elif not commented:
            missing.append(stripped.split("=", 1)[0])
    return missing


def documented_variables(markdown: str) -> set[str]:
    """Variable names in the first column of the tables of docs/deploy.md."""
    return set(re.findall(rf"^\|\s*`({VAR_NAME})`\s*\|", markdown, flags=re.MULTILINE))


def read_variables(source: str) -> set[str]:
    """Environment variables a Python module reads."""
    pattern = rf"""(?:os\.environ\.get|os\.getenv|os\.environ\.setdefault|_required)\(\s*["']({VAR_NAME})["']"""
    names = set(re.findall(pattern, source))
    names |= set(re.findall(rf"""os\.environ\[\s*["']({VAR_NAME})["']\s*\]""", source))
    return names


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions of each build stage as (INSTRUCTION, arguments), with line
    continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line:
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:  # global ARGs before the first FROM belong to no stage
            stages[-1].append(instruction)
    return stages


def base_image(stage: list[tuple[str, str]], dockerfile: str) -> str:
    """The FROM image of a stage with global ARG defaults substituted."""
    image = stage[0][1].split()[0]
    for line in dockerfile.split("\nFROM", 1)[0].splitlines():
        match = re.fullmatch(rf"ARG\s+({VAR_NAME})=(\S+)", line.strip())
        if match:
            image = image.replace("${%s}" % match.group(1), match.group(2))
    return image


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages(DOCKERFILE.read_text())[-1]


def runtime_user(stage: list[tuple[str, str]]) -> str | None:
    users = [args for keyword, args in stage if keyword == "USER"]
    return users[-1].split(":", 1)[0].strip() if users else None


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD/HEALTHCHECK (shell form is not accepted)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(word, str) for word in value), args
    return value


def env_prefix(run_args: str) -> dict[str, str]:
    """Leading VAR=value assignments of a RUN line."""
    env = {}
    for word in shlex.split(run_args):
        match = re.fullmatch(rf"({VAR_NAME})=(.*)", word)
        if not match:
            break
        env[match.group(1)] = match.group(2)
    return env


@pytest.fixture(scope="module")
def management_commands():
    from django.core.management import get_commands

    return set(get_commands())


# --- the CLI the files rely on ----------------------------------------------------------

def test_kameng_commands_are_read_from_cli():
    commands = kameng_commands()
    assert set(cli.DJANGO_COMMANDS) <= commands
    assert {"web", "worker", "beat", "manage"} <= commands
    assert cli.main(["certainly-not-a-command"]) == 2  # anything else is refused


def test_django_commands_behind_the_cli_exist(management_commands):
    assert set(cli.DJANGO_COMMANDS.values()) <= management_commands


# --- compose.yaml -------------------------------------------------------------------------

def test_every_kameng_service_runs_a_real_kameng_command(management_commands):
    compose = load_compose()
    ours = {name: command_words(s) for name, s in compose["services"].items() if runs_our_image(s)}
    assert {name: words[1:2] for name, words in ours.items()} == \
        {name: [command] for name, command in KAMENG_ROLES.items()}
    assert command_problems(compose, kameng_commands(), management_commands) == []


def test_command_check_catches_wrong_commands(management_commands):
    broken = load_compose("""
services:
  web: {build: {context: ..}, command: ["kameng", "serve"]}
  worker: {image: "registry.example.com/kameng:1.0", command: "celery -A platform_core worker"}
  beat: {image: "kameng:latest"}
  admin: {image: "kameng:latest", command: "kameng manage no_such_management_command"}
  fine: {image: "kameng:latest", command: "kameng manage check --deploy"}
  redis: {image: "redis:7", command: "redis-server"}
""")
    problems = command_problems(broken, kameng_commands(), management_commands)
    assert [p.split(":", 1)[0] for p in problems] == ["web", "worker", "beat", "admin"]


def test_app_services_wait_for_a_successful_migration():
    services = load_compose()["services"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["environment"]["KAMENG_ENV"] == "production", name
        assert services[name]["env_file"] == [".env"], name
    assert "deploy" not in services["beat"]  # never replicated


def test_backing_services():
    services = load_compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:18")
    # PostgreSQL 18 images keep data under /var/lib/postgresql/18/docker
    assert any(v.endswith(":/var/lib/postgresql") for v in services["postgres"]["volumes"])
    redis = command_words(services["redis"])
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    bucket_job = " ".join(command_words(services["createbucket"]))
    assert "mc mb" in bucket_job and "$$S3_BUCKET" in bucket_job
    for name in ("web", "worker", "beat", "migrate"):
        env = services[name]["environment"]
        assert env["S3_ENDPOINT_URL"].endswith("http://minio:9000}")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["DATABASE_URL"]


def test_secrets_are_required_not_defaulted():
    compose = load_compose()
    required = compose_variables(compose, REQUIRED_COMPOSE_VAR)
    assert {"SECRET_KEY", "KAMENG_MASTER_KEY", "POSTGRES_PASSWORD", "S3_SECRET_ACCESS_KEY"} <= required


# --- variables: compose, .env.example and docs/deploy.md agree ----------------------------

def test_every_compose_variable_is_documented():
    documented = documented_variables(DEPLOY_DOC.read_text())
    used = compose_variables(load_compose())
    assert used, "no ${VAR} found in compose.yaml"
    assert sorted(used - documented) == []


def test_variable_checks_catch_undocumented_names():
    compose = load_compose("""
services:
  web:
    environment:
      A: ${SECRET_KEY:?set it}
      B: $UNDOCUMENTED_PLAIN
      C: "${UNDOCUMENTED_BRACED:-x}"
      D: "$${NOT_A_COMPOSE_VARIABLE}"
""")
    documented = documented_variables("| `SECRET_KEY` | yes | — | key |\nsee `UNDOCUMENTED_PLAIN` above\n")
    assert compose_variables(compose) - documented == {"UNDOCUMENTED_PLAIN", "UNDOCUMENTED_BRACED"}
    assert compose_variables(compose, REQUIRED_COMPOSE_VAR) == {"SECRET_KEY"}
    assert env_file_uncommented("# a\nA=1\nB=2\n\nC=3\n# d\nD=4\n") == ["C"]


def test_env_example_is_documented_and_complete():
    text = ENV_EXAMPLE.read_text()
    names = env_file_variables(text)
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert sorted(set(names) - documented_variables(DEPLOY_DOC.read_text())) == []
    assert env_file_uncommented(text) == []
    # everything compose insists on can be filled in from the example
    assert sorted(compose_variables(load_compose(), REQUIRED_COMPOSE_VAR) - set(names)) == []


def test_every_variable_the_code_reads_is_documented():
    documented = documented_variables(DEPLOY_DOC.read_text())
    read = read_variables((ROOT / "platform_core" / "settings.py").read_text())
    read |= read_variables((ROOT / "platform_core" / "cli.py").read_text())
    read |= read_variables((ROOT / "platform_core" / "webserver.py").read_text())
    assert {"SECRET_KEY", "KAMENG_MASTER_KEY", "DATABASE_URL", "S3_BUCKET", "KAMENG_BIND", "KAMENG_WEB_SERVER"} <= read
    assert sorted(read - documented) == []


# --- Dockerfile ---------------------------------------------------------------------------

def test_image_does_not_run_as_root():
    assert runtime_user(final_stage()) not in (None, "", "root", "0")
    assert runtime_user(dockerfile_stages("FROM x\nUSER app\nCMD [\"kameng\", \"web\"]\n")[-1]) == "app"
    assert runtime_user(dockerfile_stages("FROM a AS b\nUSER app\nFROM c\nUSER root:root\n")[-1]) == "root"
    assert runtime_user(dockerfile_stages("FROM a AS b\nUSER app\nFROM c\nCMD x\n")[-1]) is None


def test_image_default_command_is_kameng_web():
    stage = final_stage()
    assert stage[0][0] == "FROM" and base_image(stage, DOCKERFILE.read_text()) == "python:3.11-slim"
    cmd = exec_form([args for keyword, args in stage if keyword == "CMD"][-1])
    assert cmd[0] == "kameng" and cmd[1] in kameng_commands()
    assert cmd == ["kameng", "web"]
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "KAMENG_BIND=0.0.0.0:8000" in env
    assert any(keyword == "EXPOSE" and "8000" in args.split() for keyword, args in stage)
    runs = " ".join(args for keyword, args in dockerfile_stages(DOCKERFILE.read_text())[0] if keyword == "RUN")
    assert "pip install ." in runs


def test_build_context_leaves_secrets_and_local_state_out():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".env", "**/.env", ".venv", ".kameng", ".git"} <= patterns


def test_build_time_collectstatic_runs_with_only_its_placeholder_env(tmp_path):
    """The RUN line's variables are enough for production settings, and collectstatic
    (manifest + compression, as in the image) succeeds."""
    from platform_core.crypto import parse_master_key

    run = next(args for keyword, args in final_stage() if keyword == "RUN" and "collectstatic" in args)
    env = env_prefix(run)
    assert env["KAMENG_ENV"] == "production"
    assert len(parse_master_key(env["KAMENG_MASTER_KEY"])) == 32
    command = shlex.split(run)[len(env):]
    assert command[:3] == ["kameng", "manage", "collectstatic"]
    kameng = Path(sys.executable).with_name("kameng")
    program = [str(kameng)] if kameng.exists() else [sys.executable, "-m", "platform_core.cli"]
    static_root = tmp_path / "static"
    result = subprocess.run(
        [*program, *command[1:]],
        env={**env, "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
             "STATIC_ROOT": str(static_root), "KAMENG_STATE_DIR": str(tmp_path / "state")},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (static_root / "staticfiles.json").exists()


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 - http.server API
        body = json.dumps({"status": "ok" if self.status == 200 else "degraded"}).encode()
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_probe_follows_healthz(tmp_path, status, healthy):
    healthcheck = next(args for keyword, args in final_stage() if keyword == "HEALTHCHECK")
    probe = exec_form(healthcheck[healthcheck.index("CMD") + 3:])
    assert probe[0] == "python"
    handler = type("Health", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run([sys.executable, *probe[1:]], capture_output=True, text=True, timeout=30,
                                env={"KAMENG_BIND": f"0.0.0.0:{server.server_port}", "PATH": "/usr/bin:/bin"})
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode == 0) is healthy, result.stderr
