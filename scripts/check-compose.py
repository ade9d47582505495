#!/usr/bin/env python3
"""Checks a docker-compose file without Docker: it parses as YAML, and the service has what
the README promises (a build, a health check, the env file, and MongoDB with a health check).

Uses PyYAML when it is installed (Debian's python3-yaml), else the `yaml` module is reported
missing with how to get it."""
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-compose: PyYAML is missing (apt-get install python3-yaml or pip install pyyaml)")

path = sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml"
with open(path, encoding="utf-8") as f:
    compose = yaml.safe_load(f)

problems = []
services = compose.get("services") if isinstance(compose, dict) else None
if not isinstance(services, dict):
    sys.exit(f"{path}: no services")
api = services.get("referral-api") or {}
mongo = services.get("mongo") or {}
if "build" not in api:
    problems.append("referral-api has no build")
if "healthcheck" not in api:
    problems.append("referral-api has no healthcheck")
if "healthcheck" not in mongo:
    problems.append("mongo has no healthcheck")
env_files = api.get("env_file") or []
if not any((e.get("path") if isinstance(e, dict) else e) == "referral-api.env" for e in env_files):
    problems.append("referral-api does not read referral-api.env")
if not isinstance(api.get("environment"), dict) or "JWT_SECRET" not in api["environment"]:
    problems.append("referral-api has no JWT_SECRET")
for problem in problems:
    print(f"{path}: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{path}: valid ({len(services)} services)")
