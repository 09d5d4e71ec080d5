"""The generated client is imported lazily, and resolves to the real objects.

Each case runs in a fresh interpreter: in this one, other tests imported the client long ago.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_controller_loads_no_model_and_few_api_classes() -> None:
    out = run(
        """
        import sys
        import signer.app
        models = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.models.")]
        apis = [m for m in sys.modules if m.startswith("kubernetes_asyncio.client.api.")]
        print(len(models), len(apis))
        """
    )
    models, apis = map(int, out.split())
    assert models == 0, "the controller reads raw JSON: no model is needed"
    assert apis <= 8, "only the API classes the controller uses"


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("client.CertificatesV1Api.__module__", id="api-class"),
        pytest.param("client.V1Secret.__module__", id="model-through-the-client-package"),
        pytest.param("models.V1Secret is client.V1Secret", id="same-object-both-ways"),
        pytest.param("client.rest.RESTClientObject.__name__", id="submodule-attribute"),
        pytest.param("client.__version__", id="package-constants"),
        pytest.param("'V1Secret' in dir(client)", id="dir-lists-lazy-names"),
        pytest.param("hasattr(client, 'NoSuchThing')", id="unknown-name-is-attribute-error"),
    ],
)
def test_lazy_names_resolve_like_the_real_package(expression: str) -> None:
    setup = "import signer\nfrom kubernetes_asyncio import client\n"
    setup += "import kubernetes_asyncio.client.models as models\n"
    lazy = run(setup + f"print({expression})")
    real = run(setup.replace("import signer\n", "") + f"print({expression})")
    assert lazy == real


def test_no_op_when_the_client_is_already_imported() -> None:
    out = run(
        """
        import kubernetes_asyncio.client
        from signer.kube import lazyclient
        print(lazyclient.install(), type(kubernetes_asyncio.client.V1Secret).__name__)
        """
    )
    assert out == "False type"
