# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip script ansible-test downloads from a host this machine cannot reach.

ansible-test runs ``python get_pip.py <pip install arguments>`` in each sanity venv. This bootstraps
pip from the standard library (ensurepip) and then runs ``pip install`` with those arguments, so the
venv gets the pip version ansible-test asks for from the package index this machine can reach.
"""

import os
import subprocess
import sys


def main():
    import ensurepip
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in this process; drop it so pip keeps the machine's
    # index and certificate settings.
    os.environ.pop('PIP_CONFIG_FILE', None)
    # --no-setuptools and --no-wheel are get-pip's own options, not pip's: honour them afterwards.
    own_options = ('--no-setuptools', '--no-wheel')
    arguments = [arg for arg in sys.argv[1:] if arg not in own_options]
    if arguments:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + arguments)
    if '--no-setuptools' in sys.argv[1:]:
        subprocess.check_call([sys.executable, '-m', 'pip', 'uninstall', '--yes', '--quiet', 'setuptools'])


if __name__ == '__main__':
    main()
