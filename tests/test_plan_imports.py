"""The offline plan loads pulumi-aws service packages name by name (automation.planning.plan): same objects, fewer modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (this one has pulumi_aws loaded already); it prints one JSON line."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_name_imports_only_its_module_and_is_the_same_object() -> None:
    facts = _run(
        "import json, sys\n"
        "import automation.planning.plan\n"
        "import pulumi_aws as aws\n"
        "vpc, ingress = aws.ec2.Vpc, aws.ec2.SecurityGroupIngressArgs\n"
        "lazy = sorted(m for m in sys.modules if m.startswith('pulumi_aws.ec2.'))\n"
        "import pulumi_aws.ec2.vpc, pulumi_aws.ec2._inputs\n"
        "print(json.dumps({'lazy': lazy, 'same': vpc is pulumi_aws.ec2.vpc.Vpc\n"
        "                  and ingress is pulumi_aws.ec2._inputs.SecurityGroupIngressArgs,\n"
        "                  'get': aws.ec2.get_subnets_output.__module__}))\n"
    )
    assert facts["same"] is True
    assert "pulumi_aws.ec2.vpc" in facts["lazy"]
    assert "pulumi_aws.ec2.ami" not in facts["lazy"]  # the package's other modules stay unloaded
    assert len(facts["lazy"]) < 20
    assert facts["get"] == "pulumi_aws.ec2.get_subnets"


def test_dir_and_unknown_names_load_the_package_in_full_as_before() -> None:
    code = (
        "import json, sys\n"
        "{setup}"
        "import pulumi_aws as aws\n"
        "names = sorted(n for n in dir(aws.ec2) if not n.startswith('__'))\n"
        "try:\n"
        "    aws.ec2.NoSuchThing\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "print(json.dumps({{'names': names, 'missing': missing, 'ami': 'pulumi_aws.ec2.ami' in sys.modules}}))\n"
    )
    lazy = _run(code.format(setup="import automation.planning.plan\n"))
    eager = _run(code.format(setup=""))
    assert lazy["missing"] is True and lazy["ami"] is True
    assert set(eager["names"]) <= set(lazy["names"])
    assert set(lazy["names"]) - set(eager["names"]) <= {"_utilities"}


def test_the_large_types_modules_define_only_the_classes_asked_for() -> None:
    facts = _run(
        "import json, sys, typing\n"
        "import automation.planning.plan\n"
        "import pulumi_aws as aws\n"
        "from pulumi import _types\n"
        "group, ingress = aws.ec2.SecurityGroup, aws.ec2.SecurityGroupIngressArgs\n"
        "inputs, outputs = sys.modules['pulumi_aws.ec2._inputs'], sys.modules['pulumi_aws.ec2.outputs']\n"
        "hints = _types.resource_types(group)\n"
        "defined = sum(1 for name in inputs.__loader__.chunks if name in vars(inputs))\n"
        "module = sys.modules['pulumi_aws.ec2.security_group']\n"
        "print(json.dumps({'same': ingress is inputs.SecurityGroupIngressArgs,\n"
        "                  'bound': module.SecurityGroupIngressArgs is ingress,\n"
        "                  'hints': str(hints['ingress']), 'defined': defined,\n"
        "                  'all': len(inputs.__all__), 'chunks': len(inputs.__loader__.chunks),\n"
        "                  'enum': aws.ec2.InstanceType.T3_MICRO.value}))\n"
    )
    assert facts["same"] and facts["bound"]
    assert "SecurityGroupIngress" in facts["hints"]  # the SDK's type hints resolve, through the outputs module
    assert facts["defined"] < 20 < 700 <= facts["chunks"]
    assert facts["all"] == facts["chunks"]  # __all__ still names every class
    assert facts["enum"] == "t3.micro"


def test_a_plan_is_the_same_with_the_types_modules_loaded_whole() -> None:
    code = (
        "import json, sys\n"
        "from automation.planning import plan as p\n"
        "{setup}"
        "config = p.merge_config({{}}, recipes='all', branch='imports', ephemeral=True)\n"
        "print(json.dumps(p.build_plan(config, stack='imports').to_json(), sort_keys=True, default=str))\n"
    )
    whole = "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, p._ProviderPackageFinder)]\n"
    assert _run(code.format(setup="")) == _run(code.format(setup=whole))
