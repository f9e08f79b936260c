"""The settings: .env.example, README.md's Configuration table and the code that reads them agree, both ways.

The rule:
- every variable of .env.example has a row in the table and every row's variable is in .env.example, except
  boto3's own variables (credentials, region, endpoint, CA bundle: read by botocore itself, named in the
  paragraph above the table), which .env.example sets for ``make run`` without a row;
- every variable of the table and of .env.example is read: named by app/platform/config/ (the settings, validated at
  start-up), read by the processes (``os.environ`` in app/, workers/ and deploy/gunicorn.conf.py, ``${NAME}`` in
  the Procfile), or one of botocore's;
- the other way round: every setting app/platform/config/ names is in the table and in .env.example, and every
variable
  the processes read is named in README.md's Configuration section (gunicorn's tunables within the ``PORT`` row).

deploy/.env.example (the deploy contract) is checked against app/platform/config/ by
tests/deploy/test_deploy_files.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import botocore.configprovider
import botocore.credentials

ROOT = Path(__file__).resolve().parents[2]
SETTING = re.compile(r"\A[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\Z")  # a name with an underscore: not "POST", "INFO"


def env_example() -> set[str]:
    """Every variable .env.example sets or shows commented out (``NAME=`` / ``# NAME=``)."""
    line = re.compile(r"\s*(?:#\s*)?(?:export\s+)?([A-Z][A-Z0-9_]+)=")
    return {m.group(1) for text in (ROOT / ".env.example").read_text().splitlines() if (m := line.match(text))}


def configuration_section() -> str:
    return (ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def table() -> set[str]:
    """The variables of the Configuration table: the backticked names in each row's first cell."""
    rows = [row for row in configuration_section().splitlines() if row.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def named_by_config() -> set[str]:
    trees = [ast.parse(path.read_text()) for path in sorted((ROOT / "app" / "platform" / "config").glob("[!_]*.py"))]
    return {
        node.value
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING.match(node.value)
    }


def read_by_processes() -> set[str]:
    sources = [*(ROOT / "app").rglob("*.py"), *(ROOT / "workers").rglob("*.py"), ROOT / "deploy" / "gunicorn.conf.py"]
    read = re.compile(r"os\.(?:environ\.get\(|environ\[|getenv\()\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
    found = {name for path in sources for name in read.findall(path.read_text())}
    return found | set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "Procfile").read_text()))


def botocores(name: str) -> bool:
    """A variable botocore reads itself: its session variables, its credential variables, or a service's
    endpoint (``AWS_ENDPOINT_URL_<SERVICE>``)."""
    session = set()
    for spec in botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        env = spec[1]
        session |= set(env) if isinstance(env, list | tuple) else {env} if env else set()
    env_provider = botocore.credentials.EnvProvider
    credentials = {env_provider.ACCESS_KEY, env_provider.SECRET_KEY, *env_provider.TOKENS}
    return name in session | credentials or name.startswith("AWS_ENDPOINT_URL_")


def test_env_example_and_the_table_list_the_same_settings() -> None:
    in_example, in_table = env_example(), table()
    assert sorted(n for n in in_example - in_table if not botocores(n)) == [], "add rows to README's table"
    assert sorted(in_table - in_example) == [], "add these to .env.example"


def test_every_documented_setting_is_read() -> None:
    read = named_by_config() | read_by_processes()
    unread = sorted(n for n in env_example() | table() if n not in read and not botocores(n))
    assert unread == [], "documented but read by nothing: remove them"


def test_every_setting_the_code_reads_is_documented() -> None:
    config = named_by_config()
    assert sorted(config - table()) == [], "app/platform/config/ reads these: add rows to README's Configuration table"
    assert sorted(config - env_example()) == [], "app/platform/config/ reads these: add them to .env.example"
    section = configuration_section()
    assert sorted(n for n in read_by_processes() if f"`{n}`" not in section) == []
