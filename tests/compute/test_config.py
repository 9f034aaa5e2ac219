"""Configuration: the spec's names and defaults, file + environment overrides, and every
rejection naming the field, the source and the rule before anything is synthesized."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compute.config import (
    ComputeConfig,
    ConfigError,
    default_config,
    load_config,
    load_environments,
)
from tests.support.spec import spec_text

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "dev.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_rejected(tmp_path: Path, text: str, field: str, rule: str) -> None:
    """Loading ``text`` fails with an error naming the file, then the field (unless the fault
    is the file's own, ``field == ""``), then the rule."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert f"{path}: {field}:" in message if field else str(path) in message
    assert rule in message


def test_defaults_are_the_spec_ones() -> None:
    config = default_config({})
    assert (config.project_name, config.environment, config.aws_region) == (
        "ai-assistant-cli",
        "dev",
        "us-east-1",
    )
    assert config.lambda_runtime == "python3.11"
    assert config.lambda_timeout == 30
    assert config.lambda_memory_size == 512
    assert config.lambda_reserved_concurrency == 10
    assert config.api_gateway_stage_name == "v1"
    assert config.api_gateway_throttle_rate_limit == 1000
    assert config.api_gateway_throttle_burst_limit == 2000
    assert config.dynamodb_billing_mode == "PAY_PER_REQUEST"
    assert config.dynamodb_point_in_time_recovery is True
    assert config.log_retention_days == 30
    assert config.identity_center_issuer_url == ""
    assert config.jwt_audience == ""
    assert config.tags == {}
    assert config.vpc_id is None and config.private_subnet_ids == []
    assert config.lambda_bedrock_role_arn is None and config.knowledge_base_id is None
    assert config.code_deployment_mode == "bundled"
    assert config.lambda_architecture == "x86_64"
    assert config.authorizer_cache_ttl_seconds == 300
    assert config.backend.type == "local"


def test_every_spec_variable_is_a_field() -> None:
    spec = spec_text()
    table_rows = [line for line in spec.splitlines() if line.startswith("| `")]
    names = {row.split("`")[1] for row in table_rows}
    assert names, "the spec's variable tables were not found"
    assert names <= set(ComputeConfig.model_fields), names - set(ComputeConfig.model_fields)


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, 'lambda_timeout = 60\nbedrock_models = ["amazon.nova-lite-v1:0"]\n')
    config = load_config(path, {"COMPUTE_LAMBDA_MEMORY_SIZE": "1024"})
    assert (config.environment, config.lambda_timeout, config.lambda_memory_size) == (
        "dev",
        60,
        1024,
    )
    assert config.bedrock_models == ["amazon.nova-lite-v1:0"]


def test_scoped_override_beats_global_one(tmp_path: Path) -> None:
    path = write(tmp_path, "", name="prod-eu.toml")
    environ = {
        "COMPUTE_LAMBDA_TIMEOUT": "40",
        "COMPUTE_PROD_EU__LAMBDA_TIMEOUT": "90",
        "COMPUTE_TAGS": '{"Team": "ai"}',
    }
    config = load_config(path, environ)
    assert (config.environment, config.lambda_timeout, config.tags) == (
        "prod-eu",
        90,
        {"Team": "ai"},
    )
    assert load_config(write(tmp_path, ""), environ).lambda_timeout == 40


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        ("lambda_timeot = 3", "lambda_timeot", "unknown key"),
        ("lambda_timeout = -5", "lambda_timeout", "greater than or equal to 1"),
        ("lambda_timeout = 901", "lambda_timeout", "less than or equal to 900"),
        ("websocket_lambda_timeout = 0", "websocket_lambda_timeout", "greater than or equal to 1"),
        ('api_gateway_stage_name = "v1/beta"', "api_gateway_stage_name", "should match pattern"),
        ('private_subnet_ids = ["subnet-0123456789abcdef0"]', "(file)", "need vpc_id"),
        ('vpc_id = "vpc-0123456789abcdef0"', "(file)", "needs private_subnet_ids"),
        ("log_retention_days = 31", "(file)", "log_retention_days must be one of"),
        ('dynamodb_billing_mode = "ON_DEMAND"', "dynamodb_billing_mode", "PAY_PER_REQUEST"),
        ('lambda_runtime = "python2.7"', "lambda_runtime", "python3.11"),
        ("lambda_memory_size = 64", "lambda_memory_size", "greater than or equal to 128"),
        (
            "lambda_reserved_concurrency = -2",
            "lambda_reserved_concurrency",
            "greater than or equal to -1",
        ),
        ("bedrock_models = []", "bedrock_models", "at least 1"),
        ('title_model_id = "Claude Haiku"', "title_model_id", "should match pattern"),
        (
            'identity_center_issuer_url = "http://idp.example.com"',
            "(file)",
            "must be an https:// URL",
        ),
        ('cors_allowed_origins = ["example.com"]', "(file)", "scheme://host"),
        (f'project_name = "{"p" * 40}"\nenvironment = "{"e" * 20}"', "(file)", "Lambda allows 64"),
        ('knowledge_base_id = "kb-1"', "knowledge_base_id", "should match pattern"),
        ('[backend]\ntype = "s3"', "backend", "needs both bucket and key"),
        ('[backend]\ntype = "gcs"', "backend.type", "'local' or 's3'"),
        (
            '[remote_state.networking]\nbucket = "b"',
            "remote_state.networking.key",
            "Field required",
        ),
        (
            'vpc_id = "vpc-0123456789abcdef0"\n'
            '[remote_state.networking]\nbucket = "bkt"\nkey = "k"',
            "(file)",
            "both literally and from remote_state",
        ),
        (
            '[remote_state.ai_services]\nbucket = "bkt"\nkey = "k"\noutputs = {vpc_id = "vpc"}',
            "remote_state",
            "unknown inputs ['vpc_id']",
        ),
        (
            '[remote_state.networking]\nbucket = "bkt"\nkey = "k"\noutputs = {vpc_id = "vpc"}',
            "remote_state",
            "maps ['vpc_id'] but not ['private_subnet_ids', 'lambda_security_group_id']",
        ),
        (
            '[remote_state.networking]\nbucket = "bkt"\nkey = "k"\n'
            'outputs = {vpc_id = "vpc", private_subnet_ids = "subnets"}',
            "remote_state",
            "but not ['lambda_security_group_id']: a networking layer supplies all of its inputs",
        ),
        ("lambda_timeout = ", "", "not valid TOML"),
        ("openai_lambda_timeout = 301", "openai_lambda_timeout", "less than or equal to 300"),
        (
            'lambda_web_adapter_layer_arn = "arn:aws:lambda:us-east-1:753240598075:layer:X"',
            "lambda_web_adapter_layer_arn",
            "should match pattern",
        ),
        (
            'lambda_web_adapter_layer_arn = "arn:aws:lambda:eu-west-1:123456789012:layer:lwa:3"',
            "(file)",
            "is in eu-west-1, the functions in us-east-1",
        ),
        (
            'lambda_architecture = "arm64"\nlambda_web_adapter_layer_arn = '
            '"arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:26"',
            "(file)",
            "names LambdaAdapterLayerX86, but lambda_architecture is arm64",
        ),
    ],
)
def test_bad_values_name_field_file_and_rule(
    tmp_path: Path, text: str, field: str, rule: str
) -> None:
    assert_rejected(tmp_path, text, field, rule)


@pytest.mark.parametrize(
    "layer",
    [
        '[remote_state.networking]\nbucket = "bkt"\nkey = "k"',
        '[remote_state.networking]\nbucket = "bkt"\nkey = "k"\noutputs = {vpc_id = "v", '
        'private_subnet_ids = "s", lambda_security_group_id = "g"}',
        '[remote_state.ai_services]\nbucket = "bkt"\nkey = "k"\n'
        'outputs = {knowledge_base_id = "kb"}',
    ],
    ids=["networking-by-name", "networking-mapped", "ai-services-partly"],
)
def test_layers_that_supply_what_they_must_are_accepted(tmp_path: Path, layer: str) -> None:
    """A networking layer supplies all its inputs; an AI-services layer may supply some (the
    role and the knowledge base are each optional)."""
    config = load_config(write(tmp_path, layer), {})
    assert config.uses_vpc == ("networking" in layer)


def test_bad_override_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"COMPUTE_DEV__LAMBDA_TIMEOUT": "soon"})
    assert f"COMPUTE_DEV__LAMBDA_TIMEOUT (overriding {path}): lambda_timeout:" in str(caught.value)
    assert "'soon'" in str(caught.value)


def test_bad_json_in_an_override_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"COMPUTE_BEDROCK_MODELS": '["amazon.nova-lite-v1:0"'})
    assert (
        f"COMPUTE_BEDROCK_MODELS (overriding {path}): bedrock_models: Input should be a valid "
        """list (got '["amazon.nova-lite-v1:0"')"""
    ) in str(caught.value)


def test_an_override_replaces_a_table_and_the_scoped_one_wins(tmp_path: Path) -> None:
    """Tables are replaced whole, never merged: the file's, then the global override's."""
    path = write(tmp_path, '[tags]\nOwner = "platform"', name="prod.toml")
    environ = {"COMPUTE_TAGS": '{"Team": "ai"}', "COMPUTE_PROD__TAGS": '{"CostCenter": "42"}'}
    assert load_config(path, environ).tags == {"CostCenter": "42"}
    assert load_config(path, {"COMPUTE_TAGS": '{"Team": "ai"}'}).tags == {"Team": "ai"}
    # A bad global value does not matter where this environment's own form is set.
    scoped = {"COMPUTE_LAMBDA_TIMEOUT": "soon", "COMPUTE_PROD__LAMBDA_TIMEOUT": "60"}
    assert load_config(path, scoped).lambda_timeout == 60


def test_overrides_are_upper_case_variables_of_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "")
    monkeypatch.setenv("COMPUTE_DEV__LAMBDA_TIMEOUT", "61")
    assert load_config(path).lambda_timeout == 61
    assert load_config(path, {"compute_lambda_timeout": "5"}).lambda_timeout == 30
    assert load_config(path, {"COMPUTE_lambda_timeout": "5"}).lambda_timeout == 30


def test_environments_are_all_files_or_the_selected_ones(tmp_path: Path) -> None:
    write(tmp_path, "", "dev.toml")
    write(tmp_path, "lambda_timeout = 60", "prod.toml")
    assert [c.environment for c in load_environments(tmp_path, {})] == ["dev", "prod"]
    chosen = load_environments(tmp_path, {"COMPUTE_ENVIRONMENTS": "prod"})
    assert [c.environment for c in chosen] == ["prod"]
    with pytest.raises(ConfigError, match=r"names \['qa'\]"):
        load_environments(tmp_path, {"COMPUTE_ENVIRONMENTS": "qa"})
    assert [c.environment for c in load_environments(tmp_path / "none", {})] == ["dev"]


def test_one_environment_defined_twice_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "", "dev.toml")
    write(tmp_path, 'environment = "dev"', "dev-copy.toml")
    with pytest.raises(ConfigError, match="also defined by"):
        load_environments(tmp_path, {})


def test_a_bad_file_stops_synthesis_before_anything_is_written(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    write(config_dir, "", "dev.toml")
    write(config_dir, 'api_gateway_stage_name = "a/b"', "prod.toml")
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COMPUTE_CONFIG_DIR": str(config_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config_dir / 'prod.toml'}: api_gateway_stage_name:" in result.stderr
    assert not (tmp_path / "cdktf.out").exists()


def test_shipped_configs_are_valid() -> None:
    configs = load_environments(ROOT / "config", {})
    assert [c.environment for c in configs] == ["dev", "prod"]


@pytest.mark.parametrize(
    ("text", "layer"),
    [
        ("", "arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:26"),
        (
            'aws_region = "eu-west-1"\nlambda_architecture = "arm64"',
            "arn:aws:lambda:eu-west-1:753240598075:layer:LambdaAdapterLayerArm64:26",
        ),
        (
            'lambda_web_adapter_layer_arn = "arn:aws:lambda:us-east-1:123456789012:layer:lwa:7"',
            "arn:aws:lambda:us-east-1:123456789012:layer:lwa:7",
        ),
    ],
    ids=["default", "region-and-architecture", "own-copy"],
)
def test_web_adapter_layer_is_the_public_one_unless_set(
    tmp_path: Path, text: str, layer: str
) -> None:
    assert load_config(write(tmp_path, text), {}).web_adapter_layer_arn == layer
