"""The method registry: every method is known whichever method module was imported first."""
import json
import subprocess
import sys

import pytest

from viscnn.circuits.methods import all_methods, get_method
from viscnn.errors import ViscnnError

EVERY_METHOD = ["ablation", "actgrad", "actgrad_signed", "force", "learned", "magnitude", "random", "snip", "worst"]

FIRST_IMPORT = """
import json, sys
import viscnn.circuits.methods.{first}
from viscnn.circuits.methods import all_methods, get_method
print(json.dumps({{"named": get_method(sys.argv[1]).name, "all": sorted(all_methods())}}))
"""


@pytest.mark.parametrize("first, asked", [("actgrad", "snip"), ("learned", "random"), ("snip", "worst")])
def test_one_method_module_imported_first_hides_no_other(first, asked):
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT.format(first=first), asked], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["named"] == asked
    assert answer["all"] == EVERY_METHOD


def test_all_methods_and_unknown_names():
    assert sorted(all_methods()) == EVERY_METHOD
    assert all(method.description for method in all_methods().values())
    assert not get_method("learned").normalise and get_method("actgrad").normalise
    with pytest.raises(ViscnnError, match="unknown circuit method 'best': choose from ablation, actgrad"):
        get_method("best")
