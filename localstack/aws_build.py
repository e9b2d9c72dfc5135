"""`make aws-build`: build what `sam build` ships to AWS and check it is built as `make up` builds.

    python localstack/aws_build.py          # sam validate --lint, sam build (arm64), the checks
    python localstack/aws_build.py cargo …  # internal: the `cargo` that `sam build` runs through

Run with the interpreter of the venv that holds aws-sam-cli, cargo-lambda and ziglang (the
Makefile's `aws-build` installs them into .local/aws-build). Steps:

1. `sam validate --lint`;
2. `sam build`, for the template's default architecture (arm64), with a `cargo` first on PATH that
   records every cargo command (its arguments and the environment variables that set a profile or
   rustflags) in .local/aws-build/cargo-commands.jsonl and then runs the real cargo. cargo-lambda is
   run with CARGO pointing at it, so the `cargo build` that cargo-lambda composes is recorded too;
3. each function of template.yaml has .aws-sam/build/<LogicalId>/bootstrap, an executable ELF for
   aarch64 needing at most the glibc of provided.al2023 (2.34);
4. each recorded `cargo build` has the same settings as the `cargo build` of the Makefile's `build`
   recipe (what `make up` builds; `make test` builds with the same profile, its binaries also carrying
   the tests' dev-dependency features, docs/BUILD.md): the same profile, no `--config` (profile or
   rustflags overrides), no `-Z`, the same features, no profile or rustflags variables added to the
   environment. They may differ only in what is built where: `--target`, `--bin`/`--workspace`/
   `--package`, `--locked`/`--frozen`/`--offline`. Any other difference fails the build.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / ".local" / "aws-build"
SHIM_DIR = WORK_DIR / "shim"
COMMAND_LOG = WORK_DIR / "cargo-commands.jsonl"
BUILD_DIR = ROOT / ".aws-sam" / "build"
TARGET = "aarch64-unknown-linux-gnu"
# provided.al2023 (Amazon Linux 2023) has glibc 2.34.
MAX_GLIBC = (2, 34)
EM_AARCH64 = 183

# Arguments that choose what is built and where, not how: the only ones allowed to differ.
SELECTION_WITH_VALUE = {"--target", "--bin", "--package", "-p", "--target-dir", "--manifest-path", "--jobs", "-j",
                        "--color", "--message-format"}
SELECTION_FLAGS = {"--workspace", "--all", "--bins", "--locked", "--frozen", "--offline", "--quiet", "-q",
                   "--verbose", "-v", "-vv"}
# Environment variables that change a profile or the flags rustc gets.
PROFILE_ENV = re.compile(r"^(CARGO_PROFILE_.*|RUSTFLAGS|CARGO_ENCODED_RUSTFLAGS|CARGO_BUILD_RUSTFLAGS|"
                         r"CARGO_TARGET_.*_RUSTFLAGS|CARGO_INCREMENTAL|RUSTC_WRAPPER|RUSTC_WORKSPACE_WRAPPER|"
                         r"CARGO_BUILD_RUSTC.*|RUSTC)$")
# Recorded for the reader too: how cargo-lambda sets up the cross build.
RECORDED_ENV = re.compile(PROFILE_ENV.pattern + r"|^(CARGO_TARGET_DIR|CARGO_TARGET_.*_LINKER|CC_.*|CXX_.*|AR_.*|"
                          r"CARGO_ZIGBUILD_.*)$")


def step(message: str):
    print(f"==> {message}", flush=True)


def fail(message: str):
    print(f"aws-build FAILED: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --- the cargo shim ------------------------------------------------------------------------------

def cargo_shim(args: list[str]):
    """What `cargo` is during `sam build`: records the command, then runs the real cargo.

    `cargo lambda …` runs cargo-lambda directly with CARGO set to this shim (real cargo would set
    CARGO to itself), so the cargo commands cargo-lambda composes come back here to be recorded."""
    with COMMAND_LOG.open("a") as log:
        log.write(json.dumps({"argv": ["cargo", *args], "cwd": os.getcwd(),
                              "env": {k: v for k, v in sorted(os.environ.items()) if RECORDED_ENV.match(k)}}) + "\n")
    if args[:1] == ["lambda"]:
        cargo_lambda = shutil.which("cargo-lambda")
        if not cargo_lambda:
            fail("cargo-lambda is not on PATH")
        os.execve(cargo_lambda, ["cargo-lambda", *args], {**os.environ, "CARGO": str(SHIM_DIR / "cargo")})
    real = os.environ["AWS_BUILD_REAL_CARGO"]
    os.execve(real, ["cargo", *args], os.environ)


def install_shim(python: str) -> Path:
    SHIM_DIR.mkdir(parents=True, exist_ok=True)
    shim = SHIM_DIR / "cargo"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(python)} {shlex.quote(str(Path(__file__).resolve()))} cargo \"$@\"\n")
    shim.chmod(0o755)
    return shim


# --- the settings of a cargo build ------------------------------------------------------------------

def build_settings(argv: list[str]) -> dict:
    """How a `cargo build` command builds (its profile, --config, -Z, features, anything else),
    leaving out what it builds and where (SELECTION_*)."""
    args = argv[argv.index("build") + 1:]
    settings = {"profile": "dev", "config": [], "other": []}
    i = 0
    while i < len(args):
        arg = args[i]
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        takes_value = name in SELECTION_WITH_VALUE or name in {"--profile", "--config", "-Z", "--features", "-F"}
        value = inline if inline else (args[i + 1] if takes_value and not inline and i + 1 < len(args) else None)
        i += 1 + (1 if takes_value and not inline else 0)
        if name in {"--release", "-r"}:
            settings["profile"] = "release"
        elif name == "--profile":
            settings["profile"] = value
        elif name == "--config":
            settings["config"].append(value)
        elif name in SELECTION_WITH_VALUE or name in SELECTION_FLAGS:
            continue
        elif takes_value:
            settings["other"].append(f"{name} {value}")
        else:
            settings["other"].append(arg)
    return settings


def make_build_command() -> list[str]:
    """The `cargo build` of the Makefile's `build` recipe: what `make up` runs."""
    recipe, in_build = [], False
    for line in (ROOT / "Makefile").read_text().splitlines():
        if re.match(r"^build\s*:", line):
            in_build = True
        elif in_build and line.startswith("\t"):
            recipe.append(line.strip())
        elif in_build and line.strip():
            break
    # `$(addprefix -p ,$(FUNCTIONS))` chooses what is built, not how: left out like the other selections.
    recipe = [re.sub(r"\$\(addprefix -p ,\$\(\w+\)\)", "", line) for line in recipe]
    commands = [shlex.split(line.replace("$(CARGO)", "cargo")) for line in recipe if line.startswith("$(CARGO) build")]
    if len(commands) != 1:
        fail(f"expected one `$(CARGO) build` in the Makefile's build recipe, found {recipe}")
    return commands[0]


def profile_differences(recorded: dict, local_argv: list[str]) -> list[str]:
    ours, theirs = build_settings(local_argv), build_settings(recorded["argv"])
    differences = []
    if theirs["profile"] != ours["profile"]:
        differences.append(f"profile {theirs['profile']!r} (make up: {ours['profile']!r})")
    for config in theirs["config"]:
        if config not in ours["config"]:
            differences.append(f"--config {config}")
    for config in ours["config"]:
        if config not in theirs["config"]:
            differences.append(f"no --config {config} (make up has it)")
    if theirs["other"] != ours["other"]:
        differences.append(f"arguments {theirs['other']} (make up: {ours['other']})")
    local_env = {k: v for k, v in os.environ.items() if PROFILE_ENV.match(k)}
    build_env = {k: v for k, v in recorded["env"].items() if PROFILE_ENV.match(k)}
    for name in sorted(set(local_env) | set(build_env)):
        if local_env.get(name) != build_env.get(name):
            differences.append(f"environment {name}={build_env.get(name)!r} (make up: {local_env.get(name)!r})")
    return differences


# --- the artifacts ------------------------------------------------------------------------------

def template_functions() -> dict[str, str]:
    from cfnlint.decode import cfn_yaml  # cfn-lint comes with aws-sam-cli (sam validate --lint)
    template = cfn_yaml.loads((ROOT / "template.yaml").read_text())
    # As stack.functions_in: the functions are never in an Fn::ForEach loop.
    return {logical_id: resource["Metadata"]["BuildProperties"]["Binary"]
            for logical_id, resource in template["Resources"].items()
            if not logical_id.startswith("Fn::ForEach::") and resource["Type"] == "AWS::Serverless::Function"}


def check_bootstrap(path: Path) -> str:
    """'ok: <what it is>' for an executable aarch64 Linux ELF needing at most MAX_GLIBC, else what is wrong."""
    if not path.is_file():
        return f"{path} is missing"
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        return f"{path} is not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return f"{path} is not a 64-bit little-endian ELF"
    e_type, e_machine = int.from_bytes(data[16:18], "little"), int.from_bytes(data[18:20], "little")
    if e_machine != EM_AARCH64:
        return f"{path} is for machine {e_machine}, not aarch64 ({EM_AARCH64})"
    if e_type not in (2, 3):
        return f"{path} is not an executable (ELF type {e_type})"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    glibc = max((tuple(int(p) for p in m.groups() if p is not None)
                 for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?", data)), default=(0, 0))
    if glibc[:2] > MAX_GLIBC:
        return f"{path} needs glibc {'.'.join(map(str, glibc))}, provided.al2023 has {'.'.join(map(str, MAX_GLIBC))}"
    return f"ok: ELF 64-bit aarch64 executable, {len(data) / 1e6:.1f} MB, needs glibc {'.'.join(map(str, glibc))}"


# --- the build ----------------------------------------------------------------------------------

def main():
    venv_bin = Path(sys.executable).parent
    sam = venv_bin / "sam"
    for tool in (sam, venv_bin / "cargo-lambda"):
        if not tool.exists():
            fail(f"{tool} is missing: `make aws-build` installs aws-sam-cli, cargo-lambda and ziglang into {venv_bin.parent}")
    real_cargo = shutil.which("cargo", path=os.environ.get("PATH", "").replace(str(SHIM_DIR), ""))
    if not real_cargo:
        fail("cargo is not on PATH")
    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout.split()
    if TARGET not in installed:
        fail(f"the Rust target {TARGET} is missing: rustup target add {TARGET}")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0",
           "PATH": os.pathsep.join([str(SHIM_DIR), str(venv_bin), os.environ.get("PATH", "")]),
           "AWS_BUILD_REAL_CARGO": real_cargo}

    # --language-extensions: SAM CLI expands the template's Fn::ForEach loops only when asked.
    step("sam validate --lint --language-extensions")
    subprocess.run([str(sam), "validate", "--lint", "--language-extensions", "--template", "template.yaml"],
                   cwd=ROOT, env=env, check=True)

    step(f"sam build (arm64; every cargo command recorded in {COMMAND_LOG.relative_to(ROOT)})")
    install_shim(sys.executable)
    COMMAND_LOG.unlink(missing_ok=True)
    started = time.monotonic()
    built = subprocess.run([str(sam), "build", "--language-extensions", "--template", "template.yaml"], cwd=ROOT, env=env)
    minutes = (time.monotonic() - started) / 60
    if built.returncode != 0:
        fail(f"sam build exited with {built.returncode} after {minutes:.1f} min")
    step(f"sam build took {minutes:.1f} min")

    step("checking the artifacts: one aarch64 Lambda bootstrap per function")
    problems = []
    functions = template_functions()
    for logical_id, binary in sorted(functions.items()):
        verdict = check_bootstrap(BUILD_DIR / logical_id / "bootstrap")
        if verdict.startswith("ok: "):
            print(f"  {logical_id} ({binary}): {verdict[4:]}")
        else:
            problems.append(verdict)

    step("checking the cargo commands cargo-lambda ran against the Makefile's build")
    local_argv = make_build_command()
    print(f"  make up builds with:  {shlex.join(local_argv)}")
    recorded = [json.loads(line) for line in COMMAND_LOG.read_text().splitlines()] if COMMAND_LOG.exists() else []
    builds = [r for r in recorded if "build" in r["argv"][1:2]]
    built_bins = set()
    for record in builds:
        argv = record["argv"]
        print(f"  sam build ran:        {shlex.join(argv)}")
        if TARGET not in [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--target"]:
            problems.append(f"not built for {TARGET}: {shlex.join(argv)}")
        built_bins.update(argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--bin")
        for difference in profile_differences(record, local_argv):
            problems.append(f"`{shlex.join(argv)}` differs from make up's build: {difference}")
    missing = set(functions.values()) - built_bins
    if missing:
        problems.append(f"no recorded `cargo build --bin` for {sorted(missing)} (was cargo-lambda run through the shim?)")

    if problems:
        fail("\n  " + "\n  ".join(problems))
    print(f"aws-build OK: {len(functions)} functions in .aws-sam/build, built with make up's profile for {TARGET} "
          f"(sam build {minutes:.1f} min). Deploy with `sam deploy --guided --language-extensions`.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["cargo"]:
        cargo_shim(sys.argv[2:])
    else:
        main()
