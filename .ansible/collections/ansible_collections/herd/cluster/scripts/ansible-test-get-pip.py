"""Stand-in for ansible-test's get-pip bootstrap script.

ansible-test bootstraps pip into the venvs it makes by downloading a
get-pip script from a host this machine cannot reach. This does the same
job from what is here: pip from the interpreter's own ensurepip, then
`pip install` with the arguments ansible-test passes (from PyPI, through the
machine's pip configuration). scripts/sanity.sh puts it in ansible-test's cache.
"""

import ensurepip
import subprocess
import sys

# get-pip's own options, which pip install does not know
OWN_OPTIONS = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap(upgrade=True, default_pip=True)
args = [a for a in sys.argv[1:] if a not in OWN_OPTIONS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args))
